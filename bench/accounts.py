"""Many accounts x regions: one `type: aws` entry over 20 accounts (STS AssumeRole) x 3 regions x 10
VPN connections, against moto in its own process, beside bare boto3 making the same calls.

Prints per cycle: API calls (ours, bare boto3, and ours per target against a single-target entry's
calls for the same (account, region)) and cycle time (ours, bare boto3, ratio). The bare reference
assumes each role once, then runs per (account, region) exactly the exporter's calls
(DescribeVpnConnections, DescribeCustomerGateways, DescribeTransitGatewayAttachments,
DescribeTransitGatewayRouteTables, SearchTransitGatewayRoutes per table) on the same number of
threads, with no translation, budget, redaction, merging or rendering.

    .venv/bin/python bench/accounts.py [--accounts 20] [--regions 3] [--connections 10] [--cycles 5]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3  # noqa: E402

from deploy.lab.emulators.aws import TEST_ACCESS_KEY, TEST_SECRET_KEY, MotoAws  # noqa: E402
from exporters.registry import build_exporter  # noqa: E402
from tests.fakes.aws_accounts import account, role_arn  # noqa: E402
from watchdog.config import AwsExporterConfig  # noqa: E402
from watchdog.metrics import render_page  # noqa: E402
from watchdog.runners import ExporterRunner, WatchdogState  # noqa: E402

REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "ap-northeast-1", "eu-central-1")


class _Env:
    """The monkeypatch subset `MotoAws.use_test_credentials` needs, on the real environment."""

    def setenv(self, key: str, value: str) -> None:
        os.environ[key] = value

    def delenv(self, key: str, raising: bool = True) -> None:
        os.environ.pop(key, None)


def accounts_of(n: int) -> list[str]:
    return [f"{100000000000 + i:012d}" for i in range(n)]


def serve(conn: Any, accounts: int, regions: int, connections: int) -> None:
    MotoAws.use_test_credentials(_Env())
    with MotoAws(region=REGIONS[0]) as aws:
        started = time.monotonic()
        for acct in accounts_of(accounts):
            view = account(aws, acct)
            for region in REGIONS[:regions]:
                view.build_lab(connections, region=region)
        conn.send((aws.endpoint_url, time.monotonic() - started))
        conn.recv()  # until the parent is done


def bare_cycle(
    endpoint: str, accounts: list[str], regions: tuple[str, ...], workers: int, creds: dict[str, Any]
) -> tuple[int, float]:
    """The exporter's calls with plain boto3 clients (built beforehand, like the exporter's)."""
    started = time.monotonic()
    calls = 0

    def one(client: Any) -> int:
        n = 0
        vpns = client.describe_vpn_connections()["VpnConnections"]
        n += 1
        cgws = sorted({v["CustomerGatewayId"] for v in vpns})
        client.describe_customer_gateways(CustomerGatewayIds=cgws)
        n += 1
        ids = sorted(v["VpnConnectionId"] for v in vpns)
        tgws = sorted({v["TransitGatewayId"] for v in vpns if v.get("TransitGatewayId")})
        client.describe_transit_gateway_attachments(
            Filters=[
                {"Name": "resource-type", "Values": ["vpn"]},
                {"Name": "transit-gateway-id", "Values": tgws},
                {"Name": "resource-id", "Values": ids},
            ]
        )
        n += 1
        tables = client.describe_transit_gateway_route_tables(Filters=[{"Name": "transit-gateway-id", "Values": tgws}])[
            "TransitGatewayRouteTables"
        ]
        n += 1
        for table in tables:
            client.search_transit_gateway_routes(
                TransitGatewayRouteTableId=table["TransitGatewayRouteTableId"],
                Filters=[
                    {"Name": "type", "Values": ["propagated"]},
                    {"Name": "attachment.resource-type", "Values": ["vpn"]},
                ],
                MaxResults=1000,
            )
            n += 1
        return n

    clients = creds["clients"]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        calls = sum(pool.map(one, clients))
    return calls, time.monotonic() - started


def bare_clients(endpoint: str, accounts: list[str], regions: tuple[str, ...]) -> tuple[list[Any], int]:
    sts = boto3.session.Session().client("sts", region_name=REGIONS[0], endpoint_url=endpoint)
    clients, calls = [], 0
    for acct in accounts:
        given = sts.assume_role(RoleArn=role_arn(acct), RoleSessionName="bench")["Credentials"]
        calls += 1
        session = boto3.session.Session(
            aws_access_key_id=given["AccessKeyId"],
            aws_secret_access_key=given["SecretAccessKey"],
            aws_session_token=given["SessionToken"],
        )
        clients += [session.client("ec2", region_name=r, endpoint_url=endpoint) for r in regions]
    return clients, calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--regions", type=int, default=3)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--cycles", type=int, default=5)
    args = parser.parse_args()
    regions = REGIONS[: args.regions]
    accounts = accounts_of(args.accounts)
    targets = len(accounts) * len(regions)

    parent, child = multiprocessing.Pipe()
    fake = multiprocessing.Process(
        target=serve, args=(child, args.accounts, args.regions, args.connections), daemon=True
    )
    fake.start()
    endpoint, setup = parent.recv()
    print(
        f"moto: {args.accounts} accounts x {len(regions)} regions x {args.connections} VPN connections"
        f" built in {setup:.1f} s"
    )
    os.environ.update(
        AWS_ACCESS_KEY_ID=TEST_ACCESS_KEY, AWS_SECRET_ACCESS_KEY=TEST_SECRET_KEY, AWS_EC2_METADATA_DISABLED="true"
    )
    os.environ.pop("AWS_PROFILE", None)
    try:
        config = AwsExporterConfig.model_validate(
            {
                "name": "aws-fleet",
                "type": "aws",
                "regions": list(regions),
                "assume_roles": [{"role_arn": role_arn(a)} for a in accounts],
                "endpoint_url": endpoint,
            }
        )
        built = time.monotonic()
        exporter = build_exporter(config, timeout=60.0)
        print(f"ours: built {targets} targets in {time.monotonic() - built:.1f} s")
        runner = ExporterRunner(exporter, interval=60, timeout=60)
        ours: list[tuple[int, float]] = []
        import asyncio

        for _ in range(args.cycles):
            started = time.monotonic()
            asyncio.run(runner.poll_once())
            elapsed = time.monotonic() - started
            assert runner.snapshot is not None and runner.health.up, runner.health.last_error
            ours.append((runner.snapshot.api_calls, elapsed))
        snapshot = runner.snapshot
        assert all(t.up for t in runner.health.targets), [t.last_error for t in runner.health.targets if not t.up]
        render_started = time.monotonic()
        page = render_page(WatchdogState(exporters={"aws-fleet": runner}))
        render = time.monotonic() - render_started
        runner.close()

        single = AwsExporterConfig.model_validate(
            {
                "name": "one",
                "type": "aws",
                "region": regions[0],
                "assume_roles": [{"role_arn": role_arn(accounts[0])}],
                "endpoint_url": endpoint,
            }
        )
        one = build_exporter(single, timeout=30.0)
        one.poll()
        single_calls = one.poll().api_calls  # steady state: credentials already assumed
        one.close()

        workers = min(32, targets)
        clients, bare_setup_calls = bare_clients(endpoint, accounts, regions)
        bare = [bare_cycle(endpoint, accounts, regions, workers, {"clients": clients}) for _ in range(args.cycles)]
    finally:
        parent.send("done")
        fake.join(10)

    steady_ours = statistics.median(t for _, t in ours[1:] or ours)
    steady_bare = statistics.median(t for _, t in bare[1:] or bare)
    print(f"tunnels {len(snapshot.tunnels)}, BGP sessions {len(snapshot.bgp_sessions)}, targets {targets}")
    print(
        f"API calls per cycle: ours first {ours[0][0]} (incl. {len(accounts)} AssumeRole), then {ours[-1][0]};"
        f" bare boto3 {bare[-1][0]} (+ {bare_setup_calls} AssumeRole once)"
    )
    print(
        f"API calls per target: ours {ours[-1][0] / targets:.2f}, single-target entry {single_calls}:"
        f" ratio {ours[-1][0] / targets / single_calls:.2f}"
    )
    print(
        f"cycle time: ours {', '.join(f'{t:.2f}' for _, t in ours)} s;"
        f" bare boto3 {', '.join(f'{t:.2f}' for _, t in bare)} s"
    )
    print(
        f"steady cycle (median of cycles 2..): ours {steady_ours:.2f} s, bare {steady_bare:.2f} s,"
        f" ratio {steady_ours / steady_bare:.2f}"
    )
    print(f"/metrics render {render * 1000:.0f} ms for {len(page) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
