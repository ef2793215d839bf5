"""Hostile input: random and mutated frames never crash the analyzer, and floods cannot grow it."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probes.ike.analyzer import Analyzer
from probes.ike.fragments import Limits
from probes.ike.pcapfile import read_packets

DATA = Path(__file__).parent / "data" / "ike"
CORPUS = DATA / "corpus"
LINKTYPES = [1, 101, 113, 276, 228, 229, 147]


def real_frames() -> list[tuple[int, bytes]]:
    frames = []
    for name in ("lowmtu.pcap", "rfc7383.pcap"):
        frames += [(lt, data) for _, lt, data in read_packets(str(DATA / name))]
    return frames


REAL = real_frames()


def check_consistent(a: Analyzer) -> None:
    assert a.messages <= a.ike_datagrams <= a.packets
    assert sum(a.malformed.values()) <= a.packets
    assert len(a.tracker) <= a.tracker.limits.max_keys
    assert 0 <= a.tracker.bytes <= a.tracker.limits.max_bytes
    for p in a.peers.values():
        assert all(n <= a.ike_datagrams for n in p.ip_fragmented.values())
        assert all(v >= 0 for v in p.messages.values())


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(LINKTYPES), st.binary(max_size=200)), max_size=20))
def test_random_bytes_never_crash(frames: list[tuple[int, bytes]]) -> None:
    a = Analyzer(1460)
    for i, (lt, data) in enumerate(frames):
        a.feed(float(i), lt, data)
    a.finish()
    check_consistent(a)


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(0, len(REAL) - 1),
            st.lists(st.tuples(st.integers(0, 120), st.integers(0, 255)), max_size=4),
            st.integers(0, 2000),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_mutated_real_frames_never_crash(edits: list[tuple[int, list[tuple[int, int]], int]]) -> None:
    a = Analyzer(1460)
    for i, (idx, flips, cut) in enumerate(edits):
        lt, data = REAL[idx]
        buf = bytearray(data)
        for pos, val in flips:
            if pos < len(buf):
                buf[pos] = val
        a.feed(float(i), lt, bytes(buf[: max(0, len(buf) - cut)] if cut < len(buf) else buf[:cut]))
    a.finish()
    check_consistent(a)


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.bin")), ids=lambda p: p.name)
def test_fuzz_corpus(path: Path) -> None:
    lt = int(path.name.split("-", 1)[0])
    a = Analyzer(1460)
    a.feed(0.0, lt, path.read_bytes())
    a.finish()
    check_consistent(a)
    assert a.messages == 0  # every corpus entry is broken in some way


def test_corpus_is_not_empty() -> None:
    assert len(list(CORPUS.glob("*.bin"))) >= 10


def fragment_frame(src: int, ipid: int, offset: int, length: int = 64, more: bool = True, proto: int = 17) -> bytes:
    """Ethernet + IPv4 fragment header by hand (fast enough for floods)."""
    ff = (0x2000 if more else 0) | (offset // 8)
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + length,
        ipid,
        ff,
        64,
        proto,
        0,
        struct.pack("!I", 0xC6336400 + src),
        bytes([203, 0, 113, 1]),
    )
    return b"\x02" * 12 + b"\x08\x00" + ip + b"\x00" * length


def test_fragment_flood_with_distinct_ip_ids_stays_within_caps() -> None:
    a = Analyzer(1460)
    for i in range(30_000):
        a.feed(i * 1e-4, 1, fragment_frame(src=i % 200, ipid=i & 0xFFFF, offset=8 * (1 + i % 50)))
    t = a.tracker
    assert len(t) <= t.limits.max_keys
    assert t.counters.peak_keys <= t.limits.max_keys
    assert t.counters.evicted > 0
    assert a.messages == 0
    a.finish()
    assert len(t) == 0 and t.bytes == 0


def test_one_source_cannot_take_the_whole_table() -> None:
    a = Analyzer(1460)
    for i in range(2_000):
        a.feed(0.0, 1, fragment_frame(src=1, ipid=i, offset=80))
    assert len(a.tracker) == a.tracker.limits.max_keys_per_source
    assert a.tracker.counters.rejected_per_source == 2_000 - a.tracker.limits.max_keys_per_source
    a.feed(0.0, 1, fragment_frame(src=2, ipid=1, offset=80))  # another source still gets in
    assert len(a.tracker) == a.tracker.limits.max_keys_per_source + 1


def test_byte_cap_evicts_oldest() -> None:
    a = Analyzer(1460, limits=Limits(max_bytes=100_000))
    for i in range(200):
        a.feed(0.0, 1, fragment_frame(src=i, ipid=i, offset=800, length=1400))
    assert a.tracker.bytes <= 100_000
    assert a.tracker.counters.evicted > 0


def test_too_many_pieces_for_one_datagram_drops_it() -> None:
    a = Analyzer(1460)
    for i in range(100):
        a.feed(0.0, 1, fragment_frame(src=1, ipid=9, offset=8 * (1 + 20 * i), length=8))
    assert a.tracker.counters.too_many_pieces >= 1
    assert len(a.tracker) <= 1


def test_orphans_expire_on_packet_time() -> None:
    a = Analyzer(1460)
    a.feed(0.0, 1, fragment_frame(src=1, ipid=9, offset=800))
    a.tick(29.0)
    assert len(a.tracker) == 1
    a.tick(31.0)
    assert len(a.tracker) == 0
    assert a.tracker.counters.orphans_expired == 1
