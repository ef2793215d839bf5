#!/usr/bin/env python3
"""Memory of `watchdog ike analyze` on a capture with very many distinct peer pairs.

Generates (or reuses) bench/out/ike-peers-N.pcap: N IKE_SA_INIT requests, each between a different
pair of addresses (198.18.0.0/15 sources to 203.0.113.0/24 destinations), as a scanner or a busy
concentrator would produce. Then runs `watchdog ike analyze --format json` and `--format text` on it,
each in its own process, and prints wall time, peak RSS (`wait4`), output size and exit code.
Per-pair state is capped (`probes.ike.analyzer.MAX_PEER_PAIRS`), so RSS and output size stay flat
however many pairs the capture holds.

Usage: .venv/bin/python bench/ike_peers.py [--pairs N] [--regenerate]
"""

from __future__ import annotations

import argparse
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"


def generate(path: Path, pairs: int) -> None:
    """One 200-byte IKEv2 IKE_SA_INIT request per pair, 1 ms apart, in a classic pcap (struct only)."""
    ike = struct.pack("!8s8sBBBBII", b"\x11" * 8, b"\x00" * 8, 33, 0x20, 34, 0x08, 0, 200) + b"\x00" * 172
    udp = struct.pack("!HHHH", 500, 500, 8 + len(ike), 0) + ike
    eth = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"
    rec = struct.Struct("<IIII")
    base_src = int.from_bytes(bytes([198, 18, 0, 0]), "big")
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        chunk: list[bytes] = []
        for i in range(pairs):
            src = (base_src + i // 200).to_bytes(4, "big")
            dst = bytes([203, 0, 113, i % 200 + 1])
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0, src, dst)
            frame = eth + ip + udp
            ts = 1_700_000_000 + i / 1000
            chunk.append(rec.pack(int(ts), int((ts % 1) * 1e6), len(frame), len(frame)) + frame)
            if len(chunk) >= 10000:
                f.write(b"".join(chunk))
                chunk.clear()
        f.write(b"".join(chunk))


def measure(fmt: str, pcap: Path) -> tuple[float, int, int, int]:
    """(wall s, peak RSS bytes, output bytes, exit code) of one `watchdog ike analyze` process."""
    out = OUT / f"ike-peers.{fmt}"
    cmd = [str(ROOT / ".venv" / "bin" / "python"), "-m", "watchdog", "ike", "analyze", str(pcap), "--format", fmt]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    with open(out, "wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - t0, usage.ru_maxrss * 1024, out.stat().st_size, os.waitstatus_to_exitcode(status)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=300_000)
    ap.add_argument("--regenerate", action="store_true")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    pcap = OUT / f"ike-peers-{args.pairs}.pcap"
    if args.regenerate or not pcap.exists():
        generate(pcap, args.pairs)
    print(f"capture: {pcap} ({pcap.stat().st_size / 1e6:.0f} MB, {args.pairs:,} distinct peer pairs)")
    for fmt in ("json", "text"):
        wall, rss, size, code = measure(fmt, pcap)
        print(f"{fmt:>4}: {wall:6.2f} s  peak RSS {rss / 2**20:7.1f} MiB  output {size / 1e6:8.2f} MB  exit {code}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
