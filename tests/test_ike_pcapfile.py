"""Reading captures: pcap (both byte orders, micro/nanoseconds), pcapng, damaged and non-capture files."""

from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
import tracemalloc
from pathlib import Path

import pytest

from probes.ike.pcapfile import ReadStats, read_packets
from tests.data.ike.craft import ike, udp4
from watchdog.errors import InputError
from watchdog.ike_command import analyze_main

DATA = Path(__file__).parent / "data" / "ike"
FRAME = bytes(udp4("203.0.113.1", "198.51.100.1", ike(37, size=80)))


def pcap_bytes(frames: list[tuple[float, bytes]], endian: str = "<", nano: bool = False) -> bytes:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 65535, 1)
    for ts, data in frames:
        frac = round((ts % 1) * (1e9 if nano else 1e6))
        out += struct.pack(endian + "IIII", int(ts), frac, len(data), len(data)) + data
    return out


@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_byte_orders_and_resolutions(tmp_path: Path, endian: str, nano: bool) -> None:
    p = tmp_path / "x.pcap"
    p.write_bytes(pcap_bytes([(1700000000.25, FRAME), (1700000001.5, FRAME)], endian, nano))
    recs = list(read_packets(str(p)))
    assert [(round(ts, 3), lt, data) for ts, lt, data in recs] == [(1700000000.25, 1, FRAME), (1700000001.5, 1, FRAME)]


def test_pcapng_gives_the_same_report_as_pcap(tmp_path: Path) -> None:
    if shutil.which("editcap") is None:
        pytest.skip("editcap (from tshark's package) not installed")
    ng = tmp_path / "lowmtu.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(DATA / "lowmtu.pcap"), str(ng)], check=True)
    assert ng.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
    docs = []
    for path in (DATA / "lowmtu.pcap", ng):
        out = io.StringIO()
        analyze_main([str(path)], "json", 1460, out=out)
        doc = json.loads(out.getvalue())
        doc.pop("capture")
        docs.append(doc)
    assert docs[0] == docs[1]


def test_truncated_last_record_is_counted_not_raised(tmp_path: Path) -> None:
    p = tmp_path / "cut.pcap"
    p.write_bytes(pcap_bytes([(1.0, FRAME), (2.0, FRAME)])[:-10])
    stats = ReadStats()
    assert len(list(read_packets(str(p), stats))) == 1
    assert stats.truncated_records == 1
    out = io.StringIO()
    assert analyze_main([str(p)], "text", 1460, out=out) == 0
    assert "1 truncated record(s)" in out.getvalue()


def test_garbage_record_header_ends_the_file_early(tmp_path: Path) -> None:
    p = tmp_path / "bad.pcap"
    p.write_bytes(pcap_bytes([(1.0, FRAME)]) + struct.pack("<IIII", 2, 0, 0x7FFFFFFF, 0x7FFFFFFF) + b"x" * 100)
    stats = ReadStats()
    assert len(list(read_packets(str(p), stats))) == 1
    assert stats.corrupt_files == 1


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not a pcap or pcapng capture file"),
        (b"hello world, this is not a capture at all", "not a pcap or pcapng capture file"),
        (b"\x0a\x0d\x0d\x0a" + b"\x1c\x00\x00\x00" + b"\x00" * 24, "bad byte-order magic"),
    ],
)
def test_not_a_capture_is_an_input_error(tmp_path: Path, content: bytes, message: str) -> None:
    p = tmp_path / "x.pcap"
    p.write_bytes(content)
    with pytest.raises(InputError, match=message):
        analyze_main([str(p)], "text", 1460, out=io.StringIO())


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read capture"):
        analyze_main([str(tmp_path / "nope.pcap")], "json", 1460, out=io.StringIO())


def test_directory_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read capture"):
        analyze_main([str(tmp_path)], "json", 1460, out=io.StringIO())


def test_reading_is_streamed_with_flat_memory(tmp_path: Path) -> None:
    p = tmp_path / "big.pcap"
    with open(p, "wb") as f:
        f.write(pcap_bytes([]))
        rec = struct.pack("<IIII", 1, 0, len(FRAME), len(FRAME)) + FRAME
        f.write(rec * 100_000)  # ~16 MB
    tracemalloc.start()
    n = sum(1 for _ in read_packets(str(p)))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert n == 100_000
    assert peak < 8 << 20  # a few 1 MiB read chunks, not the 16 MB file
