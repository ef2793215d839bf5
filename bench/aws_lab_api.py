"""The lab's AWS API emulator: request latency, memory, how soon a cut shows, and log lag.

Brings a lab up (its own prefix and ports), then measures:
  - DescribeVpnConnections latency, median of 20, back to back (mostly served from the 1 s reading)
    and with 1.1 s gaps (each one reads the lab afresh: VICI + vtysh), next to the same call on the
    static test fake (`MotoAws.build_lab`: the cost of moto's HTTP + XML path alone);
  - the emulator's RSS after `--polls` polls of the real AwsExporter (with `tunnel_logs`);
  - `cut 2` -> tunnel 2 DOWN in VgwTelemetry (median of `--runs`);
  - `rekey N` -> the exporter counts `tunnel_log_events_total{event="rekey"}` for that tunnel
    (charon's line -> shipped record -> FilterLogEvents -> metric; median of `--runs`).
Needs root. Leaves nothing behind.

    .venv/bin/python bench/aws_lab_api.py [--runs 3] [--polls 100] [--prefix vwn-]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402

from bench.lab_up import down, labctl, new_lab_dir, up_args  # noqa: E402
from deploy.lab import topology as topo  # noqa: E402
from deploy.lab.emulators.aws import TEST_ACCESS_KEY, TEST_SECRET_KEY, MotoAws  # noqa: E402
from exporters.aws import AwsExporter  # noqa: E402
from watchdog.config import AwsExporterConfig  # noqa: E402


def latency_ms(call: Callable[[], Any], count: int = 20, gap: float = 0.0) -> float:
    samples = []
    for _ in range(count):
        time.sleep(gap)
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def ec2_client(url: str) -> Any:
    return boto3.session.Session().client(
        "ec2",
        region_name=topo.AWS_REGION,
        endpoint_url=url,
        aws_access_key_id=TEST_ACCESS_KEY,
        aws_secret_access_key=TEST_SECRET_KEY,
    )


def status(ec2: Any, ip: str) -> str:
    for conn in ec2.describe_vpn_connections()["VpnConnections"]:
        for tele in conn.get("VgwTelemetry") or []:
            if tele["OutsideIpAddress"] == ip:
                return str(tele["Status"])
    return "?"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--polls", type=int, default=100)
    p.add_argument("--prefix", default="vwn-")
    p.add_argument("--ports", default="19395,19396,19397,19398,19399", help="aws, gcp, monitoring, prometheus, am")
    args = p.parse_args()
    ports = dict(zip(("aws", "gcp", "monitoring", "prom", "am"), (int(x) for x in args.ports.split(",")), strict=True))
    os.environ.update(AWS_ACCESS_KEY_ID=TEST_ACCESS_KEY, AWS_SECRET_ACCESS_KEY=TEST_SECRET_KEY)
    lab_dir = new_lab_dir(f"{args.prefix}bench-")
    base = f"http://127.0.0.1:{ports['aws']}"
    try:
        print(labctl(lab_dir, *up_args(args.prefix, **ports, watchdog=19394)).splitlines()[0])
        pid = int((lab_dir / "aws" / "api.pid").read_text())
        ec2 = ec2_client(base)
        with MotoAws(region=topo.AWS_REGION) as fake:
            fake.build_lab(connections=2)
            static = ec2_client(fake.endpoint_url)
            reference = latency_ms(static.describe_vpn_connections)
        warm = latency_ms(ec2.describe_vpn_connections)
        fresh = latency_ms(ec2.describe_vpn_connections, gap=1.1)
        print(
            f"DescribeVpnConnections median of 20: {warm:.1f} ms back to back, {fresh:.1f} ms reading the lab "
            f"afresh; static fake {reference:.1f} ms (fresh/static {fresh / reference:.1f}x)"
        )
        config = AwsExporterConfig(
            name="bench",
            type="aws",
            region=topo.AWS_REGION,
            endpoint_url=base,
            tunnel_logs={"log_group": topo.AWS_TUNNEL_LOG_GROUP},  # type: ignore[arg-type]
        )
        exporter = AwsExporter(config, timeout=10)
        start_rss = rss_mib(pid)
        start = time.monotonic()
        for _ in range(args.polls):
            exporter.poll()
        took = (time.monotonic() - start) / args.polls
        print(
            f"emulator RSS {start_rss:.1f} MiB at start, {rss_mib(pid):.1f} MiB after {args.polls} exporter polls "
            f"({took * 1000:.0f} ms/poll)"
        )
        spec = topo.tunnel(2)
        cuts = []
        for _ in range(args.runs):
            labctl(lab_dir, "cut", "2")
            t0 = time.monotonic()
            while status(ec2, spec.aws_outside) != "DOWN" and time.monotonic() - t0 < 60:
                time.sleep(0.05)
            cuts.append(time.monotonic() - t0)
            labctl(lab_dir, "restore", "2")
            t0 = time.monotonic()
            while status(ec2, spec.aws_outside) != "UP" and time.monotonic() - t0 < 60:
                time.sleep(0.1)
        print(
            f"cut 2 -> DOWN in DescribeVpnConnections (runs {args.runs}): median {statistics.median(cuts):.2f} s "
            f"{[round(x, 2) for x in cuts]}"
        )

        def rekeys() -> int:
            snapshot = exporter.poll()
            assert snapshot.logs is not None
            return sum(n for t, e, n in snapshot.logs.events if e == "rekey" and t == spec.aws_outside)

        time.sleep(1.0)
        before, lags = rekeys(), []
        for _ in range(args.runs):
            labctl(lab_dir, "rekey", "2")
            t0 = time.monotonic()
            while (now := rekeys()) == before and time.monotonic() - t0 < 30:
                time.sleep(0.05)
            lags.append(time.monotonic() - t0)
            before = now
            time.sleep(1.0)  # whole-second log times: the next rekey in a later second
        print(
            f"rekey 2 -> tunnel_log_events_total{{event=rekey}} (runs {args.runs}): median "
            f"{statistics.median(lags):.2f} s {[round(x, 2) for x in lags]}"
        )
        exporter.close()
        api = json.loads((lab_dir / "aws" / "api.json").read_text())
        print(f"ids: {len(api['vpn_connections'])} connections, TGW {api['transit_gateway_id']}")
    finally:
        down(lab_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
