"""Entry points behind `watchdog ike analyze` and `watchdog ike sniff`.

Both print their report and return the exit code (0 nothing IP-fragmented, 1 fragmented IKE seen).
An unreadable or non-capture file raises `InputError` (the CLI maps it to exit 2); argument parsing
and exception-to-exit-code mapping stay in the CLI.
"""

from __future__ import annotations

import json
import math
import sys
import time
from typing import Any, TextIO

from probes.ike.analyzer import Analyzer
from probes.ike.pcapfile import ReadStats, read_packets
from probes.ike.report import problem_found, to_json, to_text
from watchdog.errors import InputError


def analyze_files(paths: list[str], mtu: int, *, max_events: int = 1000) -> tuple[Analyzer, ReadStats]:
    """Run every capture through one analyzer (files in order, as one stream) and close it."""
    analyzer = Analyzer(mtu, max_events=max_events)
    stats = ReadStats()
    feed = analyzer.feed
    first, last = math.inf, -math.inf  # over every packet of every file: files may come in any order
    for path in paths:
        for ts, linktype, frame in read_packets(path, stats):
            if ts < first:
                first = ts
            if ts > last:
                last = ts
            feed(ts, linktype, frame)
    if stats.records:
        stats.first_ts, stats.last_ts = first, last
    analyzer.finish(stats.last_ts)
    return analyzer, stats


def analyze_main(paths: list[str], fmt: str = "text", mtu: int = 1460, out: TextIO | None = None) -> int:
    """`watchdog ike analyze PCAP... [--format text|json] [--mtu BYTES]`."""
    if fmt not in ("text", "json"):
        raise InputError(f"unknown format {fmt!r} (expected text or json)")
    if not paths:
        raise InputError("no capture files given")
    out = out or sys.stdout
    analyzer, stats = analyze_files(paths, mtu)
    doc = to_json(analyzer, stats, paths)
    if fmt == "json":
        json.dump(doc, out, indent=2)
        out.write("\n")
    else:
        out.write(to_text(doc) + "\n")
    return 1 if problem_found(analyzer) else 0


def sniff_main(
    interfaces: list[str],
    peers: list[str],
    duration: float | None,
    mtu: int = 1460,
    out: TextIO | None = None,
    *,
    fmt: str = "text",
    netns: str | None = None,
) -> int:
    """`watchdog ike sniff [-i IFACE] [--peer IP] [--duration S]`: capture, then print a summary.

    `netns` is `ike.netns` from the config (interfaces living in that network namespace).
    Exit 2 (after saying why) when no interface could be captured on at all.
    """
    from probes.ike.sniffer import IkeSniffer

    if fmt not in ("text", "json"):
        raise InputError(f"unknown format {fmt!r} (expected text or json)")
    out = out or sys.stdout
    if not interfaces:
        raise InputError("no interface to sniff on (use -i IFACE or ike.interfaces in the config)")
    sniffer = IkeSniffer(interfaces, peers, mtu, netns=netns)
    sniffer.start()
    try:
        snap = sniffer.snapshot()
        if not any(snap.sniffer_up.values()):
            for iface, err in sniffer.errors().items():
                print(f"ike sniff: cannot capture on {iface}: {err}", file=sys.stderr)
            return 2
        up = [i for i, ok in snap.sniffer_up.items() if ok]
        span = "until Ctrl-C" if duration is None else f"for {duration:g} s"
        print(f"ike sniff: capturing on {', '.join(up)} {span}", file=sys.stderr, flush=True)
        deadline = None if duration is None else time.monotonic() + duration
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic())))
        except KeyboardInterrupt:
            pass
        up_at_end = sniffer.snapshot().sniffer_up
    finally:
        sniffer.stop()
    snap = sniffer.snapshot()
    docs: dict[str, Any] = sniffer.reports()
    errors = sniffer.errors()
    if fmt == "json":
        per_iface = {
            iface: {
                "sniffer_up": bool(up_at_end.get(iface)),
                "error": errors.get(iface),
                "kernel_drops": snap.kernel_drops.get(iface, 0),
                **docs.get(iface, {}),
            }
            for iface in interfaces
        }
        json.dump({"fragmentation_found": sniffer.problem_found(), "interfaces": per_iface}, out, indent=2)
        out.write("\n")
        return 1 if sniffer.problem_found() else 0
    lines = []
    for iface in interfaces:
        state = "capturing" if up_at_end.get(iface) else f"DOWN ({errors.get(iface, 'unknown')})"
        lines.append(f"== interface {iface}: {state}; kernel drops {snap.kernel_drops.get(iface, 0)}")
        if iface in docs:
            lines.append(to_text(docs[iface]))
    out.write("\n".join(lines) + "\n")
    return 1 if sniffer.problem_found() else 0
