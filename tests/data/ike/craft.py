"""Build IKE test packets: raw IKE bytes by hand, IP/UDP/fragments with scapy, pcap files.

Only for tests and the benchmark. The IKE bytes are built with struct (not scapy's IKEv2 layer) so the
lengths and payload types are exactly what a test states.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable

from scapy.layers.inet import IP, UDP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, fragment6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.utils import PcapWriter


def eth() -> Ether:
    """Ethernet header with fixed MACs (a bare Ether() makes scapy resolve MACs: ARP/ND on the wire)."""
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


SPI_I = bytes.fromhex("1111111111111111")
SPI_R = bytes.fromhex("2222222222222222")
I_FLAG = 0x08
R_FLAG = 0x20


def ike(
    exchange: int,
    *,
    spi_i: bytes = SPI_I,
    spi_r: bytes = SPI_R,
    msgid: int = 1,
    flags: int = I_FLAG,
    version: int = 0x20,
    first_payload: int = 46,
    body: bytes | None = None,
    size: int = 200,
) -> bytes:
    """One IKE message of `size` bytes (header included) unless body is given."""
    if body is None:
        body = sk(41, size - 28)
    header = struct.pack("!8s8sBBBBII", spi_i, spi_r, first_payload, version, exchange, flags, msgid, 28 + len(body))
    return header + body


def sk(inner: int, size: int) -> bytes:
    """An SK payload whose generic header names `inner` as the first inner payload."""
    return struct.pack("!BBH", inner, 0, size) + os.urandom(max(0, size - 4))


def skf(inner: int, number: int, total: int, size: int) -> bytes:
    """An RFC 7383 SKF payload."""
    return struct.pack("!BBHHH", inner, 0, size, number, total) + os.urandom(max(0, size - 8))


def ike_skf(exchange: int, number: int, total: int, *, inner: int = 41, size: int = 300, **kw: object) -> bytes:
    return ike(exchange, first_payload=53, body=skf(inner if number == 1 else 0, number, total, size - 28), **kw)  # type: ignore[arg-type]


def udp4(
    src: str, dst: str, payload: bytes, *, sport: int = 500, dport: int = 500, natt: bool = False, ip_id: int = 1
) -> Packet:
    if natt:
        sport, dport = (4500 if sport == 500 else sport), (4500 if dport == 500 else dport)
        payload = b"\x00\x00\x00\x00" + payload
    return eth() / IP(src=src, dst=dst, id=ip_id) / UDP(sport=sport, dport=dport) / Raw(payload)


def udp6(src: str, dst: str, payload: bytes, *, sport: int = 500, dport: int = 500) -> Packet:
    return eth() / IPv6(src=src, dst=dst) / UDP(sport=sport, dport=dport) / Raw(payload)


def frag4(pkt: Packet, size: int = 512) -> list[Packet]:
    """IPv4 fragments of pkt (Ethernet kept), offset order."""
    ip = pkt[IP]
    ip = IP(bytes(ip))  # freeze lengths/checksums
    return [eth() / f for f in fragment(ip, fragsize=size)]


def frag6(pkt: Packet, ident: int = 77, size: int = 600) -> list[Packet]:
    ip6 = pkt[IPv6]
    base = IPv6(bytes(ip6))
    base = IPv6(src=base.src, dst=base.dst) / IPv6ExtHdrFragment(id=ident) / base.payload
    return [eth() / f for f in fragment6(base, size)]


def write(
    path: str, packets: Iterable[Packet | tuple[float, Packet]], start: float = 1_700_000_000.0, linktype: int = 1
) -> str:
    """Write packets (optionally with explicit timestamps) to a pcap, 10 ms apart by default."""
    w = PcapWriter(path, linktype=linktype, sync=False)
    t = start
    for item in packets:
        if isinstance(item, tuple):
            ts, p = item
        else:
            ts, p = t, item
            t += 0.01
        p.time = ts
        w.write(p)
    w.close()
    return path
