"""Collection at scale: the AWS exporter against moto (server mode), beside bare boto3 making the same calls.

Topology: `--connections` (default 100) VPN connections, 2 tunnels each, on one transit gateway whose
default route table holds `--routes` (default 5,000) propagated routes, spread over the connections'
attachments. The fake (`deploy.lab.emulators.aws.MotoAws`, moto's server on 127.0.0.1) runs in its own
interpreter; each run spawns two fresh ones, measured one after the other:

- ours: `AwsExporter.poll()` (wall and CPU per cycle after one warm-up poll); peak RSS of that process.
- reference: one plain boto3 EC2 client making the exporter's calls with its pagination
  (DescribeVpnConnections, DescribeCustomerGateways, DescribeTransitGatewayAttachments and
  DescribeTransitGatewayRouteTables following NextToken, SearchTransitGatewayRoutes with MaxResults
  1,000 following NextToken), with no budget, retries hook, translation, redaction or snapshot.

Prints both, the ratio, the API calls per cycle and the peak RSS of each run, then the medians over the
runs. Target (issue 17): keep the cycle near 1.1x bare boto3.

    .venv/bin/python bench/scale_aws.py [--connections 100] [--routes 5000] [--cycles 3] [--runs 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scale_gcp import _Discard, in_process, peak_rss_mb  # noqa: E402

REGION = "us-east-1"
ROUTE_PAGE = 1000  # the exporter's MaxResults for SearchTransitGatewayRoutes


def serve_fake(conn: Any, connections: int, routes: int) -> None:
    """moto in its own interpreter, so its XML work shares no GIL with the measured side."""
    from bench.accounts import _Env
    from deploy.lab.emulators.aws import MotoAws

    MotoAws.use_test_credentials(_Env())
    credentials = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    with MotoAws(region=REGION) as aws:
        started = time.monotonic()
        lab = aws.build_lab(connections)
        vpn_ids = [c.vpn_id for c in lab.connections]
        for i in range(routes):
            aws.add_propagated_route(
                lab.route_table_id, f"10.{i // 256 % 256}.{i % 256}.0/24", vpn_ids[i % len(vpn_ids)]
            )
        aws.requests = _Discard()  # thousands of requests: don't keep them
        conn.send((aws.endpoint_url, credentials, time.monotonic() - started))
        conn.recv()  # until the parent is done


def run_ours(conn: Any, endpoint: str, cycles: int) -> None:
    from exporters.aws import AwsExporter
    from watchdog.config import AwsExporterConfig

    before = peak_rss_mb()
    config = AwsExporterConfig.model_validate(
        {"name": "aws-scale", "type": "aws", "region": REGION, "endpoint_url": endpoint}
    )
    exporter = AwsExporter(config, timeout=60)
    snapshot = exporter.poll()  # warm-up: connection pool, first-use imports
    walls, cpus = [], []
    for _ in range(cycles):
        wall, cpu = time.perf_counter(), time.process_time()
        snapshot = exporter.poll()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    exporter.close()
    conn.send(
        {
            "wall": walls,
            "cpu": cpus,
            "api_calls": snapshot.api_calls,
            "counts": (len(snapshot.tunnels), len(snapshot.routes)),
            "sessions": len(snapshot.bgp_sessions),
            "rss_before": before,
            "rss_peak": peak_rss_mb(),
        }
    )


def run_reference(conn: Any, endpoint: str, cycles: int) -> None:
    import boto3

    client = boto3.session.Session().client("ec2", region_name=REGION, endpoint_url=endpoint)
    calls = 0

    def pages(method: Any, key: str, **params: Any) -> list[Any]:
        nonlocal calls
        items: list[Any] = []
        token = None
        while True:
            page = method(**params, **({"NextToken": token} if token else {}))
            calls += 1
            items.extend(page.get(key) or [])
            token = page.get("NextToken")
            if not token:
                return items

    def cycle() -> tuple[int, int]:
        nonlocal calls
        calls = 0
        vpns = pages(client.describe_vpn_connections, "VpnConnections")
        cgws = sorted({v["CustomerGatewayId"] for v in vpns})
        pages(client.describe_customer_gateways, "CustomerGateways", CustomerGatewayIds=cgws)
        ids = sorted(v["VpnConnectionId"] for v in vpns)
        tgws = sorted({v["TransitGatewayId"] for v in vpns if v.get("TransitGatewayId")})
        pages(
            client.describe_transit_gateway_attachments,
            "TransitGatewayAttachments",
            Filters=[
                {"Name": "resource-type", "Values": ["vpn"]},
                {"Name": "transit-gateway-id", "Values": tgws},
                {"Name": "resource-id", "Values": ids},
            ],
        )
        tables = pages(
            client.describe_transit_gateway_route_tables,
            "TransitGatewayRouteTables",
            Filters=[{"Name": "transit-gateway-id", "Values": tgws}],
        )
        routes = 0
        for table in tables:
            routes += len(
                pages(
                    client.search_transit_gateway_routes,
                    "Routes",
                    TransitGatewayRouteTableId=table["TransitGatewayRouteTableId"],
                    Filters=[
                        {"Name": "type", "Values": ["propagated"]},
                        {"Name": "attachment.resource-type", "Values": ["vpn"]},
                    ],
                    MaxResults=ROUTE_PAGE,
                )
            )
        tunnels = sum(len(v.get("VgwTelemetry") or []) for v in vpns)
        return tunnels, routes

    cycle()  # warm-up, as ours
    walls, cpus = [], []
    for _ in range(cycles):
        wall, cpu = time.perf_counter(), time.process_time()
        counts = cycle()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    client.close()
    conn.send({"wall": walls, "cpu": cpus, "api_calls": calls, "counts": counts, "rss_peak": peak_rss_mb()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=100, help="VPN connections (2 tunnels each)")
    parser.add_argument("--routes", type=int, default=5000, help="propagated TGW routes")
    parser.add_argument("--cycles", type=int, default=3, help="measured cycles (after one warm-up) per process")
    parser.add_argument("--runs", type=int, default=3, help="fresh process pairs (ours, reference)")
    args = parser.parse_args()

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    fake = ctx.Process(target=serve_fake, args=(child, args.connections, args.routes), daemon=True)
    fake.start()
    endpoint, credentials, setup = parent.recv()
    # The fake's test credentials, for the measured processes to inherit. This process imports nothing
    # heavy: a spawned child starts with its parent's peak RSS (Linux keeps ru_maxrss across exec).
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        del os.environ[key]
    os.environ.update(credentials)
    print(
        f"moto: {args.connections} VPN connections on one transit gateway, {args.routes} routes, built in {setup:.1f} s"
    )
    runs: list[tuple[dict[str, Any], dict[str, Any]]] = []
    try:
        for _ in range(args.runs):
            ours = in_process(ctx, run_ours, endpoint, args.cycles)
            ref = in_process(ctx, run_reference, endpoint, args.cycles)
            if ours["counts"] != ref["counts"]:
                sys.exit(f"ours and the reference disagree: tunnels/routes {ours['counts']} vs {ref['counts']}")
            runs.append((ours, ref))
    finally:
        parent.send("stop")
        fake.join(10)

    tunnels, routes = runs[0][0]["counts"]
    print(f"topology      {tunnels} tunnels, {runs[0][0]['sessions']} BGP sessions, {routes} routes")
    print(f"{'':13} {'ours':>8} {'boto3':>8} {'ratio':>7}   (median of {args.cycles} cycles per process)")
    walls, cpus = [], []
    for n, (ours, ref) in enumerate(runs, 1):
        ow, rw = statistics.median(ours["wall"]), statistics.median(ref["wall"])
        oc, rc = statistics.median(ours["cpu"]), statistics.median(ref["cpu"])
        walls.append((ow, rw))
        cpus.append((oc, rc))
        print(f"run {n}")
        print(f"{'  cycle s':13} {ow:8.2f} {rw:8.2f} {ow / rw:6.2f}x")
        print(f"{'  CPU s/cycle':13} {oc:8.2f} {rc:8.2f} {oc / rc:6.2f}x")
        print(f"{'  API calls':13} {ours['api_calls']:8d} {ref['api_calls']:8d}")
        print(
            f"{'  peak RSS MB':13} {ours['rss_peak']:8.1f} {ref['rss_peak']:8.1f}"
            f"   (ours {ours['rss_before']:.1f} before the first poll)"
        )
    ow, rw = statistics.median(w for w, _ in walls), statistics.median(w for _, w in walls)
    oc, rc = statistics.median(c for c, _ in cpus), statistics.median(c for _, c in cpus)
    print(
        f"median of {len(runs)} runs: cycle {ow:.2f} s vs {rw:.2f} s ({ow / rw:.2f}x),"
        f" CPU {oc:.2f} s vs {rc:.2f} s ({oc / rc:.2f}x)"
    )


if __name__ == "__main__":
    main()
