"""The lab watched through the clouds' APIs: lab up time, cut -> alert latency, emulator memory.

Brings a lab up (its own prefix and ports; `--ups` times, the last one kept), runs `watchdog run -c
<lab>/watchdog.yaml` on it (cloud exporters poll every 2 s, strongswan every 5 s, BGP 1/3, DPD 2 s),
then `--cuts` times: cut tunnel N (1..4 in turn) and time until Alertmanager holds
  - the cloud view's VpnTunnelDown (labels gcp_tunnel=tunN: the AWS <-> GCP pair, or the GCP
    exporter's own when no AWS view is configured), and
  - the strongswan exporter's VpnTunnelDown (exporter=gcp-strongswan, tunnel=tunN),
restore, and wait until both resolved. Reports medians, and the RSS of the cloud API emulators.
Needs root. Leaves nothing behind.

    .venv/bin/python bench/lab_clouds.py [--cuts 5] [--ups 3] [--prefix vwb-]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.lab_up import down, labctl, new_lab_dir, up_args  # noqa: E402
from deploy.lab import topology as topo  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def alerts(am: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{am}/api/v2/alerts?active=true", timeout=3) as response:  # loopback only
        found: list[dict[str, Any]] = json.load(response)
    return found


def down_alerts(am: str, tunnel: str) -> tuple[bool, bool]:
    """(cloud view's VpnTunnelDown for `tunnel` is firing, strongswan's is firing)."""
    cloud = swan = False
    for a in alerts(am):
        labels = a["labels"]
        if labels.get("alertname") != "VpnTunnelDown":
            continue
        if labels.get("gcp_tunnel") == tunnel or (
            labels.get("exporter") == topo.GCP_EXPORTER and labels.get("tunnel") == tunnel
        ):
            cloud = True
        if labels.get("exporter") == "gcp-strongswan" and labels.get("tunnel") == tunnel:
            swan = True
    return cloud, swan


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cuts", type=int, default=5)
    p.add_argument("--ups", type=int, default=3)
    p.add_argument("--prefix", default="vwb-")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    directory = new_lab_dir("vw-bench-")
    port, am_port = free_port(), free_port()
    am = f"http://127.0.0.1:{am_port}"
    up = up_args(
        args.prefix,
        prom=free_port(),
        am=am_port,
        watchdog=port,
        gcp=free_port(),
        monitoring=free_port(),
        aws=free_port(),
    )
    daemon: subprocess.Popen[bytes] | None = None
    try:
        ups = []
        for _ in range(args.ups):
            start = time.monotonic()
            labctl(directory, *up, timeout=120)
            ups.append(time.monotonic() - start)
        state = json.loads((directory / "state.json").read_text())
        log = (directory / "bench-daemon.log").open("wb")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "watchdog", "run", "-c", str(directory / "watchdog.yaml")],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        time.sleep(15)  # first polls, the join, paths baseline
        cloud_times, swan_times = [], []
        for i in range(args.cuts):
            spec = topo.TUNNELS[i % len(topo.TUNNELS)]
            start = time.monotonic()
            labctl(directory, "cut", str(spec.number), timeout=120)
            cloud_at = swan_at = None
            while (cloud_at is None or swan_at is None) and time.monotonic() - start < 90:
                cloud, swan = down_alerts(am, spec.name)
                now = time.monotonic() - start
                cloud_at = now if cloud and cloud_at is None else cloud_at
                swan_at = now if swan and swan_at is None else swan_at
                time.sleep(0.05)
            labctl(directory, "restore", str(spec.number), timeout=120)
            print(f"cut {spec.number}: cloud view {cloud_at}, strongswan {swan_at}", flush=True)
            if cloud_at is not None:
                cloud_times.append(cloud_at)
            if swan_at is not None:
                swan_times.append(swan_at)
            deadline = time.monotonic() + 90
            while any(down_alerts(am, spec.name)) and time.monotonic() < deadline:
                time.sleep(0.2)
        emulators = {}
        for name in ("gcp", "aws"):
            pidfile = directory / name / "api.pid"
            if pidfile.exists():
                emulators[f"{name}-api"] = round(rss_mib(int(pidfile.read_text().split()[0])), 1)
        result = {
            "lab_up_seconds": [round(t, 2) for t in ups],
            "cut_to_VpnTunnelDown_median_seconds": {
                "cloud_apis": round(statistics.median(cloud_times), 2) if cloud_times else None,
                "strongswan": round(statistics.median(swan_times), 2) if swan_times else None,
            },
            "cuts": args.cuts,
            "cloud_samples": [round(t, 2) for t in cloud_times],
            "strongswan_samples": [round(t, 2) for t in swan_times],
            "emulator_rss_mib": emulators,
            "cloud_exporters": [k for k in ("aws_api_port", "gcp_api_port") if k in state],
        }
        print(json.dumps(result, indent=2))
    finally:
        if daemon is not None:
            daemon.terminate()
            daemon.wait(10)
        down(directory, timeout=60)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
