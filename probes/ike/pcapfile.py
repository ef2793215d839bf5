"""Stream pcap and pcapng files record by record, with memory flat in the capture size.

Yields `(timestamp, linktype, frame_bytes)`. The file is read in large chunks and records are sliced
out with `struct`, because per-record `read()` calls and scapy readers are several times slower.
A file that is not a capture at all raises `InputError`; damage after a valid start (a record header
that makes no sense, a truncated last record) ends that file early and is counted in `ReadStats`,
never raised: a half-written capture from a crashed tcpdump is still worth analysing.
This module must not interpret packet contents.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from watchdog.errors import InputError

CHUNK = 1 << 20
# A record bigger than this is corruption, not a packet (pcapng blocks are bounded the same way).
MAX_RECORD = 1 << 18

_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"


@dataclass
class ReadStats:
    """What the reader had to skip; shown in the report so damage is never silent."""

    records: int = 0
    truncated_records: int = 0
    corrupt_files: int = 0
    skipped_blocks: int = 0
    first_ts: float | None = None
    last_ts: float | None = None


class _Buffer:
    """A refillable window over a binary file (avoids one read() call per record)."""

    __slots__ = ("f", "buf", "pos")

    def __init__(self, f: BinaryIO, initial: bytes) -> None:
        self.f = f
        self.buf = initial
        self.pos = 0

    def ensure(self, n: int) -> bool:
        """Make at least n bytes available from pos; False at end of file."""
        avail = len(self.buf) - self.pos
        if avail >= n:
            return True
        more = self.f.read(max(CHUNK, n - avail))
        self.buf = self.buf[self.pos :] + more
        self.pos = 0
        return len(self.buf) >= n


def read_packets(path: str, stats: ReadStats | None = None) -> Iterator[tuple[float, int, bytes]]:
    """Yield (timestamp seconds, linktype, frame) for every record of a pcap or pcapng file."""
    stats = stats if stats is not None else ReadStats()
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed in finally; the generator may be abandoned
    except OSError as exc:
        raise InputError(f"{path}: cannot read capture: {exc.strerror or exc}") from exc
    try:
        try:
            head = f.read(CHUNK)
        except OSError as exc:
            raise InputError(f"{path}: cannot read capture: {exc.strerror or exc}") from exc
        if len(head) >= 24 and head[:4] in _PCAP_MAGICS:
            yield from _read_pcap(path, _Buffer(f, head), stats)
        elif len(head) >= 28 and head[:4] == _PCAPNG_SHB:
            yield from _read_pcapng(path, _Buffer(f, head), stats)
        else:
            raise InputError(f"{path}: not a pcap or pcapng capture file")
    finally:
        f.close()


def _read_pcap(path: str, b: _Buffer, stats: ReadStats) -> Iterator[tuple[float, int, bytes]]:
    endian, unit = _PCAP_MAGICS[b.buf[:4]]
    linktype = struct.unpack_from(endian + "I", b.buf, 20)[0] & 0x0FFFFFFF
    b.pos = 24
    rec = struct.Struct(endian + "IIII")
    unpack = rec.unpack_from
    while True:
        buf = b.buf
        pos = b.pos
        if len(buf) - pos < 16:
            if not b.ensure(16):
                if len(b.buf) - b.pos:
                    stats.truncated_records += 1
                return
            buf = b.buf
            pos = b.pos
        sec, frac, caplen, _origlen = unpack(buf, pos)
        if caplen > MAX_RECORD:
            stats.corrupt_files += 1
            return
        end = pos + 16 + caplen
        if end > len(buf):
            if not b.ensure(16 + caplen):
                stats.truncated_records += 1
                return
            buf = b.buf
            pos = b.pos
            end = pos + 16 + caplen
        b.pos = end
        stats.records += 1
        yield sec + frac * unit, linktype, buf[pos + 16 : end]


def _read_pcapng(path: str, b: _Buffer, stats: ReadStats) -> Iterator[tuple[float, int, bytes]]:
    endian = "<"
    interfaces: list[tuple[int, float]] = []  # (linktype, seconds per tick)
    last_ts = 0.0  # a Simple Packet Block has no timestamp: it gets the previous packet's
    while True:
        if not b.ensure(12):
            if len(b.buf) - b.pos:
                stats.truncated_records += 1
            return
        buf, pos = b.buf, b.pos
        if buf[pos : pos + 4] == _PCAPNG_SHB:
            bom = buf[pos + 8 : pos + 12]
            if bom == b"\x4d\x3c\x2b\x1a":
                endian = "<"
            elif bom == b"\x1a\x2b\x3c\x4d":
                endian = ">"
            else:
                raise InputError(f"{path}: pcapng section header has a bad byte-order magic")
            interfaces = []
        btype, blen = struct.unpack_from(endian + "II", buf, pos)
        if blen < 12 or blen % 4 or blen > MAX_RECORD + 64:
            stats.corrupt_files += 1
            return
        if not b.ensure(blen):
            stats.truncated_records += 1
            return
        buf, pos = b.buf, b.pos
        b.pos = pos + blen
        body = pos + 8
        body_end = pos + blen - 4
        if btype == 6 and blen >= 32:  # Enhanced Packet Block
            iface, hi, lo, caplen, _orig = struct.unpack_from(endian + "IIIII", buf, body)
            if iface >= len(interfaces) or body + 20 + caplen > body_end:
                stats.skipped_blocks += 1
                continue
            linktype, tick = interfaces[iface]
            stats.records += 1
            last_ts = ((hi << 32) | lo) * tick
            yield last_ts, linktype, buf[body + 20 : body + 20 + caplen]
        elif btype == 3 and blen >= 16:  # Simple Packet Block: no timestamp, interface 0
            if not interfaces:
                stats.skipped_blocks += 1
                continue
            (origlen,) = struct.unpack_from(endian + "I", buf, body)
            caplen = min(origlen, body_end - body - 4)
            stats.records += 1
            yield last_ts, interfaces[0][0], buf[body + 4 : body + 4 + caplen]
        elif btype == 1 and blen >= 20:  # Interface Description Block
            (linktype,) = struct.unpack_from(endian + "H", buf, body)
            interfaces.append((linktype, _tsresol(buf, body + 8, body_end, endian)))
        elif btype == 0x0A0D0D0A:
            continue
        else:
            stats.skipped_blocks += 1


def _tsresol(buf: bytes, pos: int, end: int, endian: str) -> float:
    """Seconds per timestamp tick from the if_tsresol option (default microseconds)."""
    while pos + 4 <= end:
        code, length = struct.unpack_from(endian + "HH", buf, pos)
        if code == 0:
            break
        if code == 9 and length >= 1:
            v = buf[pos + 4]
            return float(2.0 ** -(v & 0x7F)) if v & 0x80 else float(10.0 ** -(v & 0x7F))
        pos += 4 + ((length + 3) & ~3)
    return 1e-6
