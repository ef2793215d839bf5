"""`watchdog ike analyze` on hostile captures: absurd timestamps, files out of order, and more peer
pairs than any real deployment has (a scan): bounded state, and a report that says what it folded."""

from __future__ import annotations

import io
import json
import struct
import tracemalloc
from pathlib import Path
from typing import Any

from probes.ike.analyzer import MAX_PEER_PAIRS, OTHERS
from tests.data.ike.craft import ike, udp4
from watchdog.cli import main
from watchdog.ike_command import analyze_files, analyze_main

FRAME = bytes(udp4("203.0.113.1", "198.51.100.1", ike(34, flags=0x08, msgid=0, size=120)))
T0 = 1_700_000_000.0


def pcap(path: Path, frames: list[tuple[float, bytes]]) -> str:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for ts, data in frames:
        out += struct.pack("<IIII", int(ts), round((ts % 1) * 1e6), len(data), len(data)) + data
    path.write_bytes(out)
    return str(path)


def pcapng_block(btype: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    length = 12 + len(body)
    return struct.pack("<II", btype, length) + body + struct.pack("<I", length)


def coarse_pcapng(path: Path, ticks: int) -> str:
    """pcapng whose interface counts whole seconds (if_tsresol 10^0) and one packet at `ticks`."""
    shb = pcapng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    tsresol = struct.pack("<HHB3x", 9, 1, 0) + struct.pack("<HH", 0, 0)
    idb = pcapng_block(1, struct.pack("<HHI", 1, 0, 65535) + tsresol)
    epb = pcapng_block(6, struct.pack("<IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, len(FRAME), len(FRAME)) + FRAME)
    path.write_bytes(shb + idb + epb)
    return str(path)


def pcapng_with_simple_block(path: Path, ts: float) -> str:
    """An Enhanced Packet Block at `ts` (microseconds) then a Simple Packet Block (no timestamp)."""
    shb = pcapng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb = pcapng_block(1, struct.pack("<HHI", 1, 0, 65535))
    ticks = round(ts * 1e6)
    epb = pcapng_block(6, struct.pack("<IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, len(FRAME), len(FRAME)) + FRAME)
    spb = pcapng_block(3, struct.pack("<I", len(FRAME)) + FRAME)
    path.write_bytes(shb + idb + epb + spb)
    return str(path)


def many_pairs(path: Path, pairs: int) -> str:
    """One IKE_SA_INIT request per distinct (198.18.x.y -> 203.0.113.z) pair."""
    frames = []
    for i in range(pairs):
        src = f"198.18.{i // 40000}.{i // 200 % 200}"
        frame = bytearray(FRAME)
        frame[26:30] = bytes(int(x) for x in src.split("."))
        frame[30:34] = bytes([203, 0, 113, i % 200 + 1])
        frames.append((T0 + i / 1000, bytes(frame)))
    return pcap(path, frames)


def test_coarse_tsresol_with_a_huge_timestamp_prints_the_text_report(tmp_path: Path, capsys: Any) -> None:
    for ticks in (2**48, 2**64 - 1):
        path = coarse_pcapng(tmp_path / f"coarse-{ticks}.pcapng", ticks)
        assert main(["ike", "analyze", path]) == 0
        out = capsys.readouterr().out
        assert out.startswith("IKE fragmentation report: 1 file(s), 1 packets, ")
        assert "OK: no IP-fragmented IKE messages among 1 IKE message(s)." in out


def test_time_range_is_earliest_to_latest_over_all_files(tmp_path: Path) -> None:
    late = pcap(tmp_path / "late.pcap", [(T0 + 100, FRAME), (T0 + 300, FRAME), (T0 + 200, FRAME)])
    early = pcap(tmp_path / "early.pcap", [(T0 + 50, FRAME), (T0, FRAME)])
    out = io.StringIO()
    analyze_main([late, early], "json", out=out)
    capture = json.loads(out.getvalue())["capture"]
    assert (capture["first_packet"], capture["last_packet"]) == (T0, T0 + 300)
    out = io.StringIO()
    analyze_main([late, early], "text", out=out)
    assert out.getvalue().splitlines()[0].endswith("2023-11-14 22:13:20.000Z .. 2023-11-14 22:18:20.000Z")


def test_a_packet_without_timestamp_does_not_stretch_the_range_to_1970(tmp_path: Path) -> None:
    path = pcapng_with_simple_block(tmp_path / "spb.pcapng", T0 + 60)
    out = io.StringIO()
    analyze_main([path], "json", out=out)
    doc = json.loads(out.getvalue())
    assert doc["packets"] == 2 and doc["messages"] == 2
    assert (doc["capture"]["first_packet"], doc["capture"]["last_packet"]) == (T0 + 60, T0 + 60)


def test_peer_pairs_past_the_cap_fold_into_others(tmp_path: Path) -> None:
    path = many_pairs(tmp_path / "scan.pcap", MAX_PEER_PAIRS + 500)
    out = io.StringIO()
    assert analyze_main([path], "json", out=out) == 0
    doc = json.loads(out.getvalue())
    assert len(doc["peers"]) == MAX_PEER_PAIRS + 1 and list(doc["peers"])[-1] == OTHERS
    assert doc["peers"][OTHERS]["messages"] == 500 and doc["messages"] == MAX_PEER_PAIRS + 500
    assert doc["peer_pairs"] == {
        "limit": MAX_PEER_PAIRS,
        "tracked": MAX_PEER_PAIRS,
        "folded": 500,
        "folded_exact": True,
    }
    out = io.StringIO()
    analyze_main([path], "text", out=out)
    text = out.getvalue()
    assert f"500 more peer pair(s) past the first {MAX_PEER_PAIRS} are summed in 'others'" in text
    assert text.count("\nPeers ") <= 21  # the busiest pairs and the others bucket, not a thousand tables


def test_memory_stays_flat_however_many_peer_pairs(tmp_path: Path) -> None:
    peaks = []
    for pairs in (MAX_PEER_PAIRS + 5_000, MAX_PEER_PAIRS + 13_000):  # both past the 4,096-entry label cache
        path = many_pairs(tmp_path / f"scan-{pairs}.pcap", pairs)
        tracemalloc.start()
        analyzer, _ = analyze_files([path], 1460)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert len(analyzer.peers) == MAX_PEER_PAIRS + 1
    # 8,000 more pairs would cost ~24 MB of per-pair counters; folded, only their hashes (~1 MB)
    assert peaks[1] - peaks[0] < 3 * 2**20, peaks
