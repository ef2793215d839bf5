"""Ground truth for the IKE captures, computed by tshark (IPv4/IPv6 reassembly OFF).

With reassembly off tshark dissects the IKE header on an unfragmented frame or on the FIRST fragment,
so each datagram counts once; RFC 7383 messages are counted on their fragment number 1 (the analyzer
counts a message once however many SKF fragments carried it). Incomplete datagrams come from joining
all fragment frames on (src, dst, ip id) and checking coverage.

`python -m tests.data.ike.tshark_truth A.pcap B.pcap ...` prints {basename: truth} as JSON.
Only for tests, the capture recipe and the benchmark.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter, defaultdict
from typing import Any

from probes.ike.wire import exchange_name


def _tshark(path: str, display_filter: str, fields: list[str]) -> list[list[str]]:
    cmd = [
        "tshark",
        "-n",
        "-r",
        path,
        "-o",
        "ip.defragment:FALSE",
        "-o",
        "ipv6.defragment:FALSE",
        "-Y",
        display_filter,
        "-T",
        "fields",
        "-E",
        "separator=/t",
        "-E",
        "occurrence=f",
    ]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def truth(path: str) -> dict[str, Any]:
    rows = _tshark(
        path,
        "isakmp",
        [
            "isakmp.version",
            "isakmp.exchangetype",
            "isakmp.nextpayload",
            "isakmp.frag.number",
            "isakmp.length",
            "ip.flags.mf",
            "ip.frag_offset",
            "ipv6.fraghdr.more",
            "ipv6.fraghdr.offset",
            "udp.length",
            "udp.srcport",
            "udp.dstport",
        ],
    )
    by_exchange: Counter[str] = Counter()
    ip_fragmented: Counter[str] = Counter()
    ikev2_fragmented: Counter[str] = Counter()
    largest = 0
    for version, exch, np, fragnum, length, mf, _foff, mf6, _foff6, udplen, sport, dport in rows:
        name = exchange_name(int(version, 16), int(exch))
        skf = np == "53"
        if not skf or fragnum == "1":
            by_exchange[name] += 1
            if skf:
                ikev2_fragmented[name] += 1
        if mf in ("1", "True") or mf6 in ("1", "True"):
            ip_fragmented[name] += 1
        if not length:  # tshark stops before the Length field on a truncated NAT-T first fragment
            length = str(int(udplen) - 8 - (4 if "4500" in (sport, dport) and "500" not in (sport, dport) else 0))
        largest = max(largest, int(length))
    # Fragment sets: which IKE first fragments never got all their pieces.
    frags = _tshark(
        path,
        "(ip.flags.mf == 1 or ip.frag_offset > 0) and ip.proto == 17",
        [
            "ip.src",
            "ip.dst",
            "ip.id",
            "ip.flags.mf",
            "ip.frag_offset",
            "ip.len",
            "ip.hdr_len",
            "udp.length",
            "isakmp.ispi",
        ],
    )
    sets: dict[tuple[str, str, str], dict[str, Any]] = defaultdict(lambda: {"pieces": {}, "udp": None, "ike": False})
    for src, dst, ipid, _mf, foff, iplen, hdrlen, udplen, ikelen in frags:
        s = sets[(src, dst, ipid)]
        off = int(foff) * 8
        s["pieces"][off] = off + int(iplen) - int(hdrlen)
        if off == 0:
            s["udp"] = int(udplen) if udplen else None
            s["ike"] = bool(ikelen)
    incomplete = 0
    complete = 0
    for s in sets.values():
        if not s["ike"]:
            continue
        covered = 0
        for o in sorted(s["pieces"]):
            if o > covered:
                break
            covered = max(covered, s["pieces"][o])
        if s["udp"] is not None and covered >= s["udp"]:
            complete += 1
        else:
            incomplete += 1
    return {
        "messages": sum(by_exchange.values()),
        "by_exchange": dict(sorted(by_exchange.items())),
        "ip_fragmented": dict(sorted(ip_fragmented.items())),
        "ikev2_fragmented": dict(sorted(ikev2_fragmented.items())),
        "largest_message_bytes": largest,
        "complete_datagrams": complete,
        "incomplete_datagrams": incomplete,
    }


def main(argv: list[str]) -> int:
    json.dump({os.path.basename(p): truth(p) for p in argv}, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
