"""ICMP echo sockets and packets: open the right kind of socket, build requests, parse replies.

Two kinds of socket can send echo requests without a helper binary: unprivileged ICMP datagram
sockets (allowed when the caller's group is inside `net.ipv4.ping_group_range`; the kernel then
owns the echo identifier) and raw sockets (need CAP_NET_RAW; they see every ICMP packet of the
host, so replies are matched on identifier, sequence and a per-run payload token). This module only
knows sockets and bytes; scheduling and results live in `probes.icmp`. It must not block: every
socket it returns is non-blocking.
"""

from __future__ import annotations

import errno
import os
import random
import socket
import struct
from dataclasses import dataclass

from watchdog.errors import ProbeFailure

PING_GROUP_RANGE = "/proc/sys/net/ipv4/ping_group_range"

ICMP_ECHO_REQUEST = 8
ICMP_ECHO_REPLY = 0
ICMP_DEST_UNREACH = 3
ICMP_TIME_EXCEEDED = 11
ICMP6_DEST_UNREACH = 1
ICMP6_PACKET_TOO_BIG = 2
ICMP6_TIME_EXCEEDED = 3
ICMP6_ECHO_REQUEST = 128
ICMP6_ECHO_REPLY = 129

_SOL_RAW = 255
_IP_RECVERR = 11  # linux/in.h; not exported by the socket module
_IPV6_RECVERR = 25  # linux/in6.h
_SOCK_EXTENDED_ERR = struct.Struct("=IBBBBII")  # errno, origin, type, code, pad, info, data
_EE_ORIGIN_ICMP = 2
_EE_ORIGIN_ICMP6 = 3
_ICMP_FILTER = 1  # linux/icmp.h: a bitmask of ICMP types a raw socket should NOT receive
_HEADER = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence

_UNREACH_CODES = {
    0: "net unreachable",
    1: "host unreachable",
    3: "port unreachable",
    4: "fragmentation needed",
    13: "prohibited",
}
_FRAG_NEEDED = 4  # ICMP destination unreachable code; the next-hop MTU is in bytes 6-7
_IP_MTU_DISCOVER, _IP_PMTUDISC_PROBE = 10, 3  # linux/in.h: set DF, ignore the cached path MTU
_IPV6_MTU_DISCOVER, _IPV6_PMTUDISC_PROBE = 23, 3  # linux/in6.h
_IPV6_DONTFRAG = 62


@dataclass(frozen=True)
class EchoSocket:
    """An open, non-blocking ICMP socket and what it takes to recognise its replies."""

    sock: socket.socket
    mode: str  # "unprivileged" or "raw"
    why: str  # why this mode was chosen (logged once per probe)
    ipv6: bool
    # The echo identifier on the wire: for datagram sockets the kernel's (the socket's "port"), for
    # raw sockets a random one per socket, so concurrent probes in one process tell theirs apart.
    identifier: int

    def close(self) -> None:
        self.sock.close()


@dataclass(frozen=True)
class Reply:
    """One parsed ICMP message: an echo reply, or an error quoting one of our requests."""

    sequence: int
    identifier: int
    source: str
    payload: bytes = b""
    error: str = ""  # e.g. "host unreachable from 198.51.100.254"
    mtu: int = 0  # "fragmentation needed" / "packet too big": the MTU the error names


def ping_group_range() -> tuple[int, int] | None:
    try:
        with open(PING_GROUP_RANGE, "rb") as fh:
            low, high = fh.read().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return None


def _groups() -> set[int]:
    return {os.getegid(), *os.getgroups()}


def open_echo_socket(target_ipv6: bool, mode: str, source: str | None, interface: str | None) -> EchoSocket:
    """Open an echo socket in `mode` (auto | unprivileged | raw), bound to `source` / `interface`."""
    family = socket.AF_INET6 if target_ipv6 else socket.AF_INET
    proto = socket.IPPROTO_ICMPV6 if target_ipv6 else socket.IPPROTO_ICMP
    group_range = ping_group_range()
    shown_range = f"{group_range[0]} {group_range[1]}" if group_range else "unreadable"
    gid = os.getegid()
    sock: socket.socket | None = None
    why = ""
    if mode in ("auto", "unprivileged"):
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM, proto)
            chosen = "unprivileged"
            why = (
                "configured"
                if mode == "unprivileged"
                else f"gid {gid} is inside net.ipv4.ping_group_range {shown_range}"
            )
        except PermissionError as exc:
            if mode == "unprivileged":
                raise ProbeFailure(
                    "permission",
                    f"unprivileged ICMP socket refused ({exc.strerror}): gid {gid} is outside "
                    f"net.ipv4.ping_group_range {shown_range}",
                ) from exc
    if sock is None:
        try:
            sock = socket.socket(family, socket.SOCK_RAW, proto)
            chosen = "raw"
            why = "configured" if mode == "raw" else f"gid {gid} is outside net.ipv4.ping_group_range {shown_range}"
        except PermissionError as exc:
            refused = "" if mode == "raw" else f"gid {gid} is outside net.ipv4.ping_group_range {shown_range} and "
            raise ProbeFailure(
                "permission",
                f"cannot open an ICMP socket: {refused}raw sockets need CAP_NET_RAW ({exc.strerror})",
            ) from exc
    try:
        sock.setblocking(False)
        if chosen == "raw" and not target_ipv6:
            wanted = (1 << ICMP_ECHO_REPLY) | (1 << ICMP_DEST_UNREACH) | (1 << ICMP_TIME_EXCEEDED)
            sock.setsockopt(_SOL_RAW, _ICMP_FILTER, struct.pack("I", ~wanted & 0xFFFFFFFF))
        if interface is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode() + b"\0")
            except OSError as exc:
                raise ProbeFailure(
                    "network_error", f"cannot bind to interface {interface!r}: {exc.strerror or exc}"
                ) from exc
        if source is not None:
            try:
                sock.bind((source, 0))
            except OSError as exc:
                raise ProbeFailure(
                    "network_error", f"cannot use source address {source}: {exc.strerror or exc}"
                ) from exc
        elif chosen == "unprivileged":
            sock.bind(("::", 0) if target_ipv6 else ("0.0.0.0", 0))  # fixes the identifier now
        if chosen == "unprivileged":
            # Datagram sockets only report ICMP errors (unreachable, ...) through the error queue.
            if target_ipv6:
                sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVERR, 1)
            else:
                sock.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 1)
    except BaseException:
        sock.close()
        raise
    identifier = int(sock.getsockname()[1]) if chosen == "unprivileged" else random.randrange(1, 0x10000)
    return EchoSocket(sock=sock, mode=chosen, why=why, ipv6=target_ipv6, identifier=identifier)


def set_dont_fragment(echo: EchoSocket) -> None:
    """Send with DF and without the kernel's cached path MTU, so each packet tests the path itself
    (a router's "fragmentation needed", a silent drop, or the local device MTU as EMSGSIZE)."""
    if echo.ipv6:
        echo.sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_MTU_DISCOVER, _IPV6_PMTUDISC_PROBE)
        echo.sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_DONTFRAG, 1)
    else:
        echo.sock.setsockopt(socket.IPPROTO_IP, _IP_MTU_DISCOVER, _IP_PMTUDISC_PROBE)


def ip_header_size(ipv6: bool) -> int:
    """What the kernel puts in front of our ICMP message (no options)."""
    return 40 if ipv6 else 20


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(ipv6: bool, identifier: int, sequence: int, payload: bytes) -> bytes:
    """An echo request; for ICMPv6 the kernel fills in the checksum (it covers a pseudo-header)."""
    kind = ICMP6_ECHO_REQUEST if ipv6 else ICMP_ECHO_REQUEST
    header = _HEADER.pack(kind, 0, 0, identifier, sequence)
    if ipv6:
        return header + payload
    return _HEADER.pack(kind, 0, checksum(header + payload), identifier, sequence) + payload


class EchoRequests:
    """Echo requests that differ only in their sequence number: the checksum of the fixed part is
    summed once and each request's is updated from it (RFC 1624), not recomputed over the payload."""

    def __init__(self, ipv6: bool, identifier: int, payload: bytes) -> None:
        self.ipv6 = ipv6
        self.identifier = identifier
        self.payload = payload
        self._kind = ICMP6_ECHO_REQUEST if ipv6 else ICMP_ECHO_REQUEST
        padded = payload + b"\0" if len(payload) % 2 else payload
        self._sum = (self._kind << 8) + identifier + sum(struct.unpack(f"!{len(padded) // 2}H", padded))

    def packet(self, sequence: int) -> bytes:
        if self.ipv6:  # the kernel fills in ICMPv6 checksums
            return _HEADER.pack(self._kind, 0, 0, self.identifier, sequence) + self.payload
        total = self._sum + sequence
        while total >> 16:
            total = (total >> 16) + (total & 0xFFFF)
        return _HEADER.pack(self._kind, 0, ~total & 0xFFFF, self.identifier, sequence) + self.payload


def parse(data: bytes, source: str, ipv6: bool, raw: bool) -> Reply | None:
    """Parse one received datagram; None for anything that is not about an echo.

    Raw IPv4 sockets deliver the IP header too; datagram and ICMPv6 sockets deliver ICMP only.
    """
    if raw and not ipv6:
        if len(data) < 20:
            return None
        data = data[(data[0] & 0x0F) * 4 :]
    if len(data) < _HEADER.size:
        return None
    kind, code, _, identifier, sequence = _HEADER.unpack_from(data)
    if kind == (ICMP6_ECHO_REPLY if ipv6 else ICMP_ECHO_REPLY):
        return Reply(sequence=sequence, identifier=identifier, source=source, payload=data[_HEADER.size :])
    mtu = 0
    if ipv6:
        errors = {
            ICMP6_DEST_UNREACH: "unreachable",
            ICMP6_PACKET_TOO_BIG: "packet too big",
            ICMP6_TIME_EXCEEDED: "time exceeded",
        }
        quoted_header = 40
        if kind == ICMP6_PACKET_TOO_BIG:
            mtu = identifier << 16 | sequence  # the 32-bit MTU field sits where an echo has id/seq
    else:
        errors = {
            ICMP_DEST_UNREACH: _UNREACH_CODES.get(code, "unreachable"),
            ICMP_TIME_EXCEEDED: "time exceeded",
        }
        quoted_header = (data[8] & 0x0F) * 4 if len(data) > 8 else 20
        if kind == ICMP_DEST_UNREACH and code == _FRAG_NEEDED:
            mtu = sequence  # unused (16 bits) + next-hop MTU (16 bits)
    if kind not in errors:
        return None
    quoted = data[8 + quoted_header :]  # the start of our request, as the router saw it
    if len(quoted) < _HEADER.size:
        return None
    qkind, _, _, qid, qseq = _HEADER.unpack_from(quoted)
    if qkind != (ICMP6_ECHO_REQUEST if ipv6 else ICMP_ECHO_REQUEST):
        return None
    return Reply(sequence=qseq, identifier=qid, source=source, error=f"{errors[kind]} from {source}", mtu=mtu)


def read_error_queue(sock: socket.socket, ipv6: bool) -> list[Reply]:
    """Drain a datagram socket's error queue: each entry quotes the request it is about."""
    replies: list[Reply] = []
    while True:
        try:
            data, ancdata, _, _ = sock.recvmsg(512, 512, socket.MSG_ERRQUEUE)
        except (BlockingIOError, InterruptedError):
            return replies
        except OSError:
            return replies
        for level, kind, cdata in ancdata:
            if (level, kind) not in ((socket.IPPROTO_IP, _IP_RECVERR), (socket.IPPROTO_IPV6, _IPV6_RECVERR)):
                continue
            if len(cdata) < _SOCK_EXTENDED_ERR.size or len(data) < _HEADER.size:
                continue
            err, origin, icmp_type, icmp_code, _, info, _ = _SOCK_EXTENDED_ERR.unpack_from(cdata)
            offender = _offender(cdata[_SOCK_EXTENDED_ERR.size :], ipv6)
            if origin == _EE_ORIGIN_ICMP and icmp_type == ICMP_DEST_UNREACH:
                text = _UNREACH_CODES.get(icmp_code, "unreachable")
            elif origin in (_EE_ORIGIN_ICMP, _EE_ORIGIN_ICMP6):
                text = os.strerror(err).lower() if err else "icmp error"
            else:
                text = os.strerror(err) if err else "local error"
            _, _, _, identifier, sequence = _HEADER.unpack_from(data)
            where = f" from {offender}" if offender else ""
            # EMSGSIZE (a local device MTU, or a "fragmentation needed" / "packet too big" the kernel
            # took note of) carries the MTU in ee_info.
            mtu = info if err == errno.EMSGSIZE else 0
            replies.append(
                Reply(sequence=sequence, identifier=identifier, source=offender, error=text + where, mtu=mtu)
            )


def _offender(raw_address: bytes, ipv6: bool) -> str:
    """The sockaddr after sock_extended_err: who sent the ICMP error."""
    try:
        if ipv6 and len(raw_address) >= 24:
            return socket.inet_ntop(socket.AF_INET6, raw_address[8:24])
        if not ipv6 and len(raw_address) >= 8:
            return socket.inet_ntop(socket.AF_INET, raw_address[4:8])
    except (OSError, ValueError):
        pass
    return ""


NETWORK_ERRNOS = {
    errno.ENETUNREACH,
    errno.EHOSTUNREACH,
    errno.EHOSTDOWN,
    errno.ENETDOWN,
    errno.EADDRNOTAVAIL,
    errno.EINVAL,
    errno.EPERM,  # a local firewall (nft/iptables reject on output) refuses the packet
    errno.EACCES,
    errno.ECONNREFUSED,
    errno.ENODEV,  # the interface a long-lived socket is bound to went away
    errno.ENXIO,
}
