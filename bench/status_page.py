"""Rendering the status page for 1,000 tunnels, beside `json.dumps` of the same report (/status.json).

The page is rendered per request in the HTTP thread from the published state, so it must stay cheap
(target: < 50 ms for 1,000 tunnels) and must not slow scrapes down (it never holds a lock a scrape needs).

    .venv/bin/python bench/status_page.py [--tunnels 1000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from watchdog import statuspage


def report(n: int) -> dict[str, Any]:
    tunnels, sessions, pairs = [], [], []
    for i in range(n):
        outside, interface = f"198.18.{i // 250}.{i % 250}", f"203.0.113.{i % 2 + 10}"
        connection, name = f"vpn-{i // 2:04d}", f"tun-{i:04d}"
        up = i % 9 != 0
        tunnels.append(
            {
                "exporter": "aws",
                "cloud": "aws",
                "connection": connection,
                "tunnel": outside,
                "local_ip": outside,
                "peer_ip": interface,
                "up": up,
                "status": "UP",
                "detail": "",
            }
        )
        tunnels.append(
            {
                "exporter": "gcp",
                "cloud": "gcp",
                "connection": f"ha-gw-{i // 4}",
                "tunnel": name,
                "local_ip": interface,
                "peer_ip": outside,
                "up": True,
                "status": "ESTABLISHED",
                "detail": "",
            }
        )
        sessions.append(
            {
                "exporter": "gcp",
                "cloud": "gcp",
                "router": f"cr-{i // 4}",
                "peer": f"bgp-{i}",
                "local_ip": "",
                "peer_ip": "",
                "up": up,
                "state": "Established",
                "uptime_seconds": 1,
                "received_prefixes": 3,
                "tunnel": name,
            }
        )
        pairs.append(
            {
                "aws_exporter": "aws",
                "aws_connection": connection,
                "aws_tunnel": outside,
                "gcp_exporter": "gcp",
                "gcp_tunnel": name,
            }
        )
    exporters = [
        {"name": e, "cloud": e, "up": True, "error": "", "duration_seconds": 1.0, "last_success": 1.0}
        for e in ("aws", "gcp")
    ]
    return {"healthy": False, "exporters": exporters, "tunnels": tunnels, "bgp_sessions": sessions,
            "expected_prefixes": [], "probes": [], "pairs": pairs}  # fmt: skip


def timed(fn: Any, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tunnels", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    data = report(args.tunnels)
    page = statuspage.render(data, now=100.0)
    ours = timed(lambda: statuspage.render(data, now=100.0), args.repeat)
    reference = timed(lambda: json.dumps(data, sort_keys=True), args.repeat)
    o, r = statistics.median(ours), statistics.median(reference)
    print(f"{args.tunnels} tunnels, page {len(page) / 1e6:.2f} MB, median of {args.repeat}")
    print(f"status page render: {o * 1000:.1f} ms (max {max(ours) * 1000:.1f} ms; target < 50 ms)")
    print(f"json.dumps of the same report (/status.json): {r * 1000:.1f} ms")
    print(f"ratio page/json: {o / r:.1f}x")


if __name__ == "__main__":
    main()
