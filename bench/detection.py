"""Detection latency on the lab: time from a tunnel cut to the alert visible in Alertmanager.

Brings the lab up (BGP timers 1/3 unless --bgp-timers), starts `watchdog run` with the lab config
(per-path ICMP probes every 1 s, FRR polled every 1 s, strongSwan on VICI events, `for: 1s`), cuts
tunnel 1 with an nft drop in the router namespace, and measures, per run:
  - the first alert about the cut in Alertmanager's /api/v2/alerts (and which one it was),
  - VpnRedundancyDegraded in Alertmanager,
  - BGP's own detection (hold timer) from the bgpd log of the gcp side, the anchor to compare with.
Then restores and waits for the alerts to resolve. Needs root. Leaves nothing behind.

    .venv/bin/python bench/detection.py [--runs 3] [--bgp-timers 1/3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.lab_up import down, labctl, new_lab_dir, up_args  # noqa: E402

WATCHDOG = [str(Path(sys.executable).parent / "watchdog")]
PREFIX = "vwb-"
AM_PORT, PROM_PORT, WD_PORT = 19193, 19190, 19787
GCP_PORT = 19191  # and 19192: the lab's GCP API emulator
AWS_PORT = 19194  # the lab's AWS API emulator
ADJ_DOWN = re.compile(r"^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d+).*ADJCHANGE: neighbor (\S+).* Down")


def alerts() -> list[dict[str, object]]:
    """Active alerts sent by the daemon (the lab's Prometheus also evaluates the shipped rules and
    sends to the same Alertmanager; its alerts link to Prometheus, the daemon's to /metrics)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{AM_PORT}/api/v2/alerts?active=true", timeout=2) as r:
        return [a for a in json.load(r) if str(a.get("generatorURL", "")).endswith(f":{WD_PORT}/metrics")]


def metrics() -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{WD_PORT}/metrics", timeout=2) as r:
        return r.read().decode()


def wait(predicate, timeout: float, what: str) -> float:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return time.time()
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


def about_tunnel1(alert: dict[str, object]) -> bool:
    labels = alert.get("labels", {})
    assert isinstance(labels, dict)
    text = json.dumps(labels)
    return any(key in text for key in ("tun1", "169.254.10.1", "169.254.10.2", '198.51.100.1"')) or (
        labels.get("alertname") in ("VpnRedundancyDegraded", "VpnPathFailover")
    )


def bgp_down_after(log: Path, since: float) -> float | None:
    for line in log.read_text(errors="replace").splitlines():
        match = ADJ_DOWN.match(line)
        if match:
            ts = datetime.strptime(match.group(1), "%Y/%m/%d %H:%M:%S.%f").timestamp()
            if ts >= since:
                return ts
    return None


def one_run(lab_dir: Path) -> dict[str, float | str]:
    wait(lambda: 'prefix="198.18.1.0/24"} 4.0' in metrics() and not alerts(), 120, "4/4 paths and no alerts")
    cut = time.time()
    labctl(lab_dir, "cut", "1")
    first: dict[str, float] = {}

    def seen() -> bool:
        for alert in alerts():
            name = str(alert["labels"]["alertname"])  # type: ignore[index]
            if about_tunnel1(alert) and name not in first:
                first[name] = time.time() - cut
        return "VpnRedundancyDegraded" in first

    wait(seen, 300, "VpnRedundancyDegraded")
    bgpd_log = lab_dir / "gcp" / "frr" / "bgpd.log"
    wait(lambda: bgp_down_after(bgpd_log, cut) is not None, 300, "BGP to notice (hold timer)")
    bgp = bgp_down_after(bgpd_log, cut)
    earliest = min(first, key=lambda k: first[k])
    labctl(lab_dir, "restore", "1")
    try:
        wait(lambda: not alerts(), 120, "resolution after restore")
    except TimeoutError:
        still = sorted(str(a["labels"]) + " " + str(a["annotations"]) for a in alerts())  # type: ignore[index]
        raise TimeoutError(f"alerts still active 120 s after restore: {still}") from None
    return {
        "first_alert": earliest,
        "first_alert_s": round(first[earliest], 2),
        "degraded_s": round(first["VpnRedundancyDegraded"], 2),
        "bgp_hold_timer_s": round(bgp - cut, 2) if bgp else float("nan"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bgp-timers", default="1/3")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("detection.py needs root (network namespaces)", file=sys.stderr)
        return 2
    lab_dir = new_lab_dir("vw-detection-")
    daemon: subprocess.Popen[bytes] | None = None
    results: list[dict[str, float | str]] = []
    try:
        started = time.monotonic()
        labctl(
            lab_dir,
            *up_args(
                PREFIX,
                "--bgp-timers",
                args.bgp_timers,
                prom=PROM_PORT,
                am=AM_PORT,
                watchdog=WD_PORT,
                gcp=GCP_PORT,
                monitoring=GCP_PORT + 1,
                aws=AWS_PORT,
            ),
        )
        print(f"lab up in {time.monotonic() - started:.1f}s")
        log = (lab_dir / "watchdog.log").open("wb")
        daemon = subprocess.Popen([*WATCHDOG, "run", "-c", str(lab_dir / "watchdog.yaml")], stdout=log, stderr=log)
        for i in range(args.runs):
            result = one_run(lab_dir)
            results.append(result)
            print(
                f"run {i + 1}: first alert {result['first_alert']} after {result['first_alert_s']}s, "
                f"VpnRedundancyDegraded after {result['degraded_s']}s, BGP hold timer noticed after "
                f"{result['bgp_hold_timer_s']}s"
            )
    finally:
        if daemon is not None:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(15)
        down(lab_dir)
    first = [float(r["first_alert_s"]) for r in results]
    degraded = [float(r["degraded_s"]) for r in results]
    bgp = [float(r["bgp_hold_timer_s"]) for r in results]
    print(
        f"\nmedian of {len(results)}: first alert {statistics.median(first):.2f}s, VpnRedundancyDegraded "
        f"{statistics.median(degraded):.2f}s, BGP detection {statistics.median(bgp):.2f}s "
        f"(timers {args.bgp_timers}); target < 5s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
