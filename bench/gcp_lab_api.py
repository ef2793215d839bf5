"""The lab's GCP API emulator: request latency, memory, and how soon a cut shows in the API.

Brings a lab up (its own prefix and ports), then measures:
  - getRouterStatus latency, median of 20, back to back (mostly served from the 0.5 s reading) and
    with 0.6 s gaps (each one reads the lab afresh: VICI + 2 vtysh calls), next to the same call on
    the static test fake (the reference: the cost of the HTTP + JSON path alone);
  - the emulator's RSS after `--polls` polls of the real GcpExporter (Compute + Monitoring);
  - `cut 2` -> tunnel 2 not ESTABLISHED and its BGP peer DOWN in the API (median of `--runs`).
Needs root. Leaves nothing behind.

    .venv/bin/python bench/gcp_lab_api.py [--runs 3] [--polls 100] [--prefix vwm-]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.lab_up import down, labctl, new_lab_dir, up_args  # noqa: E402
from deploy.lab import topology as topo  # noqa: E402
from deploy.lab.emulators.gcp import FakeGcp  # noqa: E402
from exporters.gcp import GcpExporter  # noqa: E402
from watchdog.config import GcpExporterConfig  # noqa: E402

REGIONAL = f"/compute/v1/projects/{topo.GCP_PROJECT}/regions/{topo.GCP_REGION}"


def fetch(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=10) as response:  # loopback only
        data = json.loads(response.read())
    return data if isinstance(data, dict) else {}


def latency_ms(url: str, count: int = 20, gap: float = 0.0) -> float:
    samples = []
    for _ in range(count):
        time.sleep(gap)
        start = time.perf_counter()
        fetch(url)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def tunnel2(base: str) -> tuple[str, str]:
    tunnels = fetch(f"{base}{REGIONAL}/vpnTunnels")["items"]
    status = fetch(f"{base}{REGIONAL}/routers/{topo.CLOUD_ROUTER}/getRouterStatus")["result"]
    tunnel = next(t for t in tunnels if t["name"] == "tun2")  # type: ignore[union-attr]
    peer = next(p for p in status["bgpPeerStatus"] if p["name"] == "peer-tun2")  # type: ignore[index]
    return str(tunnel["status"]), str(peer["status"])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--polls", type=int, default=100)
    p.add_argument("--prefix", default="vwm-")
    p.add_argument(
        "--ports", default="19295,19296,19297,19298,19294", help="gcp, monitoring, prometheus, alertmanager, aws"
    )
    args = p.parse_args()
    ports = dict(zip(("gcp", "monitoring", "prom", "am", "aws"), (int(x) for x in args.ports.split(",")), strict=True))
    lab_dir = new_lab_dir(f"{args.prefix}bench-")
    base = f"http://127.0.0.1:{ports['gcp']}"
    try:
        print(labctl(lab_dir, *up_args(args.prefix, **ports, watchdog=19299)).splitlines()[0])
        pid = int((lab_dir / "gcp" / "api.pid").read_text())
        status_url = f"{base}{REGIONAL}/routers/{topo.CLOUD_ROUTER}/getRouterStatus"
        with FakeGcp() as fake:
            reference = latency_ms(
                f"{fake.url}/compute/v1/projects/{fake.project}/{fake.regional('routers')}/cr-aws/getRouterStatus"
            )
        warm, fresh = latency_ms(status_url), latency_ms(status_url, gap=0.6)
        print(
            f"getRouterStatus median of 20: {warm:.1f} ms back to back, {fresh:.1f} ms reading the lab afresh; "
            f"static fake {reference:.1f} ms (fresh/static {fresh / reference:.0f}x)"
        )
        config = GcpExporterConfig(
            name="bench",
            type="gcp",
            project=topo.GCP_PROJECT,
            region=topo.GCP_REGION,
            endpoint=base,
            monitoring_endpoint=f"http://127.0.0.1:{ports['monitoring']}",
        )
        exporter = GcpExporter(config, timeout=10)
        start_rss = rss_mib(pid)
        start = time.monotonic()
        for _ in range(args.polls):
            exporter.poll()
        took = (time.monotonic() - start) / args.polls
        exporter.close()
        print(
            f"emulator RSS {start_rss:.1f} MiB at start, {rss_mib(pid):.1f} MiB after {args.polls} polls "
            f"({took * 1000:.0f} ms/poll)"
        )
        tunnel_times, peer_times = [], []
        for _ in range(args.runs):
            labctl(lab_dir, "cut", "2")
            t0 = time.monotonic()
            seen: dict[str, float] = {}
            while len(seen) < 2 and time.monotonic() - t0 < 60:
                tunnel, peer = tunnel2(base)
                if tunnel != "ESTABLISHED":
                    seen.setdefault("tunnel", time.monotonic() - t0)
                if peer == "DOWN":
                    seen.setdefault("peer", time.monotonic() - t0)
                time.sleep(0.05)
            tunnel_times.append(seen.get("tunnel", float("nan")))
            peer_times.append(seen.get("peer", float("nan")))
            labctl(lab_dir, "restore", "2")
            t0 = time.monotonic()
            while tunnel2(base) != ("ESTABLISHED", "UP") and time.monotonic() - t0 < 60:
                time.sleep(0.1)
        print(
            f"cut 2 -> API (runs {args.runs}): BGP peer DOWN median {statistics.median(peer_times):.2f} s "
            f"{[round(x, 2) for x in peer_times]}, tunnel not ESTABLISHED median "
            f"{statistics.median(tunnel_times):.2f} s {[round(x, 2) for x in tunnel_times]}"
        )
    finally:
        down(lab_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
