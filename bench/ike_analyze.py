#!/usr/bin/env python3
"""Benchmark `watchdog ike analyze` against tshark on a >= 1,000,000-packet capture.

Generates (or reuses) bench/out/ike-1m.pcap: mostly ESP (proto 50 and ESP-in-UDP), TCP, DNS, NAT
keepalives, ~1% IKE (IKEv2 and IKEv1, some IP-fragmented, some in reverse order, some missing their
last fragment, some RFC 7383), and fragmented non-IKE UDP. Then times, each in its own process:
  ours:   the analyzer behind `watchdog ike analyze` (watchdog.ike_command.analyze_files)
  tshark: one pass with IP reassembly off extracting the same facts (-T fields), joined in Python
  bare:   the floor for Python, a struct loop over the same file that only finds the UDP 500/4500
          packets (no IKE decoding, no fragment tracking)
prints packets/s of each, the ratios and the peak RSS of each, and checks that both found the same
IKE messages per exchange and the same IP-fragmented IKE datagrams (src, dst, IP ID), complete or not.

Usage: .venv/bin/python bench/ike_analyze.py [--packets N] [--regenerate] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import struct
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OUT = ROOT / "bench" / "out"
GCP = ["198.51.100.10", "198.51.100.11"]
AWS = ["203.0.113.10", "203.0.113.11", "203.0.113.20", "203.0.113.21"]
TUNNELS = [(GCP[0], AWS[0]), (GCP[0], AWS[1]), (GCP[1], AWS[2]), (GCP[1], AWS[3])]
NATT_TUNNEL = 3


def generate(path: Path, target: int, seed: int = 7) -> dict[str, int]:
    """Write the synthetic capture; returns what was put in (for the record, not as truth)."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.packet import Raw

    from tests.data.ike.craft import eth, frag4, ike, ike_skf, sk, udp4

    rnd = random.Random(seed)

    def frame(p: Any) -> bytes:
        return bytes(p)

    a, b = TUNNELS[0]
    esp50 = [frame(eth() / IP(src=a, dst=b, proto=50) / Raw(os.urandom(n))) for n in (80, 400, 1400)]
    espudp = [
        frame(eth() / IP(src=a, dst=b) / UDP(sport=4500, dport=4500) / Raw(b"\xc0\x01\x02\x03" + os.urandom(n)))
        for n in (100, 1300)
    ]
    tcp = [
        frame(eth() / IP(src="198.18.0.1", dst="198.18.1.1") / TCP(sport=443, dport=5555) / Raw(os.urandom(n)))
        for n in (0, 600)
    ]
    dns = frame(eth() / IP(src="198.18.0.1", dst="198.18.1.53") / UDP(sport=5353, dport=53) / Raw(os.urandom(40)))
    keepalive = frame(eth() / IP(src=a, dst=b) / UDP(sport=4500, dport=4500) / Raw(b"\xff"))

    def ike_frames(
        t: int,
        exch: int,
        size: int,
        *,
        v1: bool = False,
        resp: bool = False,
        msgid: int = 1,
        big: bool = False,
        skf: int = 0,
    ) -> list[bytes]:
        src, dst = TUNNELS[t] if not resp else TUNNELS[t][::-1]
        natt = t == NATT_TUNNEL
        spi = struct.pack("!Q", rnd.getrandbits(64) | 1)
        flags = (0x20 if resp else 0x08) if not v1 else 1
        if skf:
            return [
                frame(udp4(src, dst, ike_skf(exch, n, skf, msgid=msgid, spi_i=spi, size=500), natt=natt))
                for n in range(1, skf + 1)
            ]
        if v1:
            msg = ike(
                exch, version=0x10, flags=flags, msgid=msgid, spi_i=spi, first_payload=8, body=b"\x00" * (size - 28)
            )
        else:
            msg = ike(exch, flags=flags, msgid=msgid, spi_i=spi, body=sk(41 if exch == 36 else 33, size - 28))
        pkt = udp4(src, dst, msg, natt=natt, ip_id=rnd.getrandbits(16))
        return [frame(p) for p in frag4(pkt, 1480)] if big else [frame(pkt)]

    # Templates: the IP ID (frame offset 18) is patched per use so every datagram is distinct.
    whole = [
        ike_frames(t, e, rnd.randint(80, 1200), resp=r)
        for t in range(4)
        for e in (34, 35, 36, 37)
        for r in (False, True)
    ]
    whole += [ike_frames(t, e, rnd.randint(80, 600), v1=True) for t in range(4) for e in (2, 5, 32)]
    fragmented = [ike_frames(t, 36, rnd.randint(1500, 6000), big=True) for t in range(4)]
    fragmented += [ike_frames(t, 34, rnd.randint(1500, 3000), big=True) for t in range(4)]
    fragmented += [ike_frames(t, 32, rnd.randint(1500, 3000), v1=True, big=True) for t in range(4)]
    skf_sets = [ike_frames(t, 36, 0, skf=4) for t in range(4)]
    nonike_frag = [
        frame(p)
        for p in frag4(
            eth() / IP(src=a, dst=b) / UDP(sport=4500, dport=4500) / Raw(b"\xc0\x01\x02\x03" + os.urandom(3000)), 1480
        )
    ]

    kinds = ["esp50", "espudp", "tcp", "dns", "keepalive", "ike", "ikefrag", "skf", "nonikefrag"]
    weights = [64.0, 21.5, 11.0, 1.5, 0.2, 0.85, 0.05, 0.008, 0.04]
    counts: Counter[str] = Counter()
    ts = 1_700_000_000.0
    n = 0
    chunk: list[bytes] = []
    hdr = struct.Struct("<IIII")
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))

        next_id = 0

        def emit(frames: list[bytes], patch_id: bool) -> None:
            # IP IDs count up (as a real stack's do), so no two datagrams of a capture share a
            # reassembly key and the offline tshark join stays unambiguous.
            nonlocal ts, n, next_id
            if patch_id:
                next_id = (next_id + 1) & 0xFFFF
            ipid = next_id.to_bytes(2, "big")
            for fr in frames:
                if patch_id:
                    fr = fr[:18] + ipid + fr[20:]
                ts += 20e-6
                sec = int(ts)
                chunk.append(hdr.pack(sec, int((ts - sec) * 1e6), len(fr), len(fr)))
                chunk.append(fr)
                n += 1

        while n < target:
            kind = rnd.choices(kinds, weights)[0]
            counts[kind] += 1
            if kind == "esp50":
                emit([rnd.choice(esp50)], False)
            elif kind == "espudp":
                emit([rnd.choice(espudp)], False)
            elif kind == "tcp":
                emit([rnd.choice(tcp)], False)
            elif kind == "dns":
                emit([dns], False)
            elif kind == "keepalive":
                emit([keepalive], False)
            elif kind == "ike":
                emit(rnd.choice(whole), True)
            elif kind == "skf":
                emit(rnd.choice(skf_sets), False)
            elif kind == "nonikefrag":
                emit(nonike_frag, True)
            else:
                frs = list(rnd.choice(fragmented))
                r = rnd.random()
                if r < 0.1:
                    frs.reverse()
                    counts["ikefrag_reversed"] += 1
                elif r < 0.14:
                    frs = frs[:-1]
                    counts["ikefrag_missing_last"] += 1
                emit(frs, True)
            if len(chunk) > 20000:
                f.write(b"".join(chunk))
                chunk.clear()
        f.write(b"".join(chunk))
    counts["frames"] = n
    return dict(counts)


def run_measured(cmd: list[str], stdout: Any) -> tuple[float, int]:
    """Run cmd; return (wall seconds, peak RSS bytes) of that process alone (os.wait4)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{cmd[0]} failed with exit code {proc.returncode}")
    return wall, usage.ru_maxrss * 1024


OURS = """
import json, sys
from watchdog.ike_command import analyze_files
a, stats = analyze_files([sys.argv[1]], 1460, max_events=10**7)
frags = sorted([e["src"], e["dst"], e["ip_id"], e["complete"]] for e in a.events if e["type"] == "ip_fragmented")
by = {}
for p in a.peers.values():
    for k, v in p.messages.items():
        by[k] = by.get(k, 0) + v
json.dump({"packets": a.packets, "by_exchange": by, "fragmented": frags}, open(sys.argv[2], "w"))
"""

BARE = """
import struct, sys
record = struct.Struct("<IIII")
packets = ike = 0
with open(sys.argv[1], "rb") as f:
    f.read(24)  # the pcap file header
    data, pos = b"", 0
    while chunk := f.read(1 << 20):
        data, pos = data[pos:] + chunk, 0
        end = len(data)
        while pos + 16 <= end:
            caplen = record.unpack_from(data, pos)[2]
            frame = pos + 16
            if frame + caplen > end:
                break
            if data[frame + 12 : frame + 14] == b"\\x08\\x00" and data[frame + 23] == 17:
                udp = frame + 14 + (data[frame + 14] & 15) * 4
                if data[udp + 2 : udp + 4] in (b"\\x01\\xf4", b"\\x11\\x94"):  # port 500 or 4500
                    ike += 1
            packets += 1
            pos = frame + caplen
print(packets, ike)
"""

TSHARK_FIELDS = [
    "ip.src",
    "ip.dst",
    "ip.id",
    "ip.flags.mf",
    "ip.frag_offset",
    "ip.len",
    "ip.hdr_len",
    "udp.length",
    "isakmp.ispi",
    "isakmp.version",
    "isakmp.exchangetype",
    "isakmp.nextpayload",
    "isakmp.frag.number",
]


def tshark_facts(out_path: Path) -> dict[str, Any]:
    """Join tshark's field dump into the same facts: messages per exchange, fragmented datagrams."""
    from probes.ike.wire import exchange_name

    by: Counter[str] = Counter()
    sets: dict[tuple[str, str, int], dict[str, Any]] = {}
    with open(out_path) as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            src, dst, ipid, mf, foff, iplen, hdrlen, udplen, ispi, ver, exch, np, fragnum = fields
            off = int(foff or 0) * 8
            fragment = mf in ("1", "True") or off > 0
            if ispi and (np != "53" or fragnum == "1"):
                by[exchange_name(int(ver, 16), int(exch))] += 1
            if fragment:
                key = (src, dst, int(ipid, 16))
                s = sets.setdefault(key, {"pieces": {}, "udp": None, "ike": False})
                s["pieces"][off] = off + int(iplen) - int(hdrlen)
                if off == 0:
                    s["udp"] = int(udplen) if udplen else None
                    s["ike"] = bool(ispi)
    frags = []
    for (fsrc, fdst, fid), s in sets.items():
        if not s["ike"]:
            continue
        covered = 0
        for o in sorted(s["pieces"]):
            if o > covered:
                break
            covered = max(covered, s["pieces"][o])
        frags.append([fsrc, fdst, fid, s["udp"] is not None and covered >= s["udp"]])
    return {"by_exchange": dict(by), "fragmented": sorted(frags)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--regenerate", action="store_true")
    ap.add_argument("--repeat", type=int, default=3, help="runs of ours and of the bare loop, alternating (median)")
    ap.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    pcap = OUT / f"ike-{args.packets}.pcap"
    if args.generate_only:
        t0 = time.perf_counter()
        mix = generate(pcap, args.packets)
        print(f"generated {pcap} ({pcap.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s: {mix}")
        return 0
    if args.regenerate or not pcap.exists():
        # In a child process: a parent grown by generation would inflate the measured children's peak
        # RSS (a forked child counts the parent's pages until it execs).
        subprocess.run([sys.executable, __file__, "--packets", str(args.packets), "--generate-only"], check=True)
    else:
        print(f"reusing {pcap} ({pcap.stat().st_size / 1e6:.0f} MB)")
    subprocess.run(["cat", str(pcap)], stdout=subprocess.DEVNULL, check=True)  # warm the page cache

    ours_json = OUT / "ours.json"
    py = str(ROOT / ".venv" / "bin" / "python")
    ours_runs, bare_runs = [], []
    for _ in range(max(1, args.repeat)):  # alternating, so load that comes and goes hits both alike
        ours_runs.append(run_measured([py, "-c", OURS, str(pcap), str(ours_json)], subprocess.DEVNULL))
        bare_runs.append(run_measured([py, "-c", BARE, str(pcap)], subprocess.DEVNULL))
    ours = json.loads(ours_json.read_text())
    ours_wall, ours_rss = statistics.median(w for w, _ in ours_runs), max(r for _, r in ours_runs)
    bare_wall, bare_rss = statistics.median(w for w, _ in bare_runs), max(r for _, r in bare_runs)

    tshark_out = OUT / "tshark.tsv"
    cmd = [
        "tshark",
        "-n",
        "-r",
        str(pcap),
        "-o",
        "ip.defragment:FALSE",
        "-Y",
        "isakmp or ip.flags.mf == 1 or ip.frag_offset > 0",
        "-T",
        "fields",
        "-E",
        "separator=/t",
        "-E",
        "occurrence=f",
    ]
    for fld in TSHARK_FIELDS:
        cmd += ["-e", fld]
    t0 = time.perf_counter()
    with open(tshark_out, "w") as f:
        ts_wall, ts_rss = run_measured(cmd, f)
    theirs = tshark_facts(tshark_out)
    ts_total = time.perf_counter() - t0

    n = ours["packets"]
    print(f"packets: {n}   (ours and bare: median of {len(ours_runs)} runs each, alternating; tshark: one run)")
    print(f"ours:   {ours_wall:7.2f} s  {n / ours_wall:10,.0f} pkt/s  peak RSS {ours_rss / 2**20:6.1f} MiB")
    print(
        f"tshark: {ts_wall:7.2f} s  {n / ts_wall:10,.0f} pkt/s  peak RSS {ts_rss / 2**20:6.1f} MiB"
        f"  (+ join in Python: {ts_total:.2f} s total)"
    )
    print(
        f"bare:   {bare_wall:7.2f} s  {n / bare_wall:10,.0f} pkt/s  peak RSS {bare_rss / 2**20:6.1f} MiB"
        "  (a struct loop that only finds UDP 500/4500)"
    )
    print(f"ratio:  {ts_wall / ours_wall:.1f}x faster than tshark (target >= 5x)")
    print(f"ratio:  {ours_wall / bare_wall:.2f}x the bare loop's time (the floor for Python)")
    same_msgs = ours["by_exchange"] == theirs["by_exchange"]
    same_frags = ours["fragmented"] == theirs["fragmented"]
    nfrag = len(ours["fragmented"])
    incomplete = sum(1 for x in ours["fragmented"] if not x[3])
    print(f"IKE messages per exchange identical: {same_msgs}  {dict(sorted(ours['by_exchange'].items()))}")
    print(f"IP-fragmented IKE datagrams identical: {same_frags}  ({nfrag}, {incomplete} incomplete)")
    if not (same_msgs and same_frags):
        print(f"tshark: {dict(sorted(theirs['by_exchange'].items()))}, {len(theirs['fragmented'])} fragmented")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
