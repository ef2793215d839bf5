"""An AWS account's tunnels join a GCP project's: two accounts (moto, STS AssumeRole) to two projects
(the GCP fake, one template with other addresses), each entry polled through its real exporter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.lab.emulators.aws import MotoAws
from deploy.lab.emulators.gcp import FakeGcp
from exporters.registry import build_exporter
from tests.fakes.aws_accounts import account, role_arn
from tests.fakes.gcp_projects import MultiProjectGcp
from watchdog.config import AwsExporterConfig, GcpExporterConfig
from watchdog.join import join_tunnels
from watchdog.model import Scope

PROD, STAGING = "111111111111", "222222222222"
HUB, STG = "net-hub-prod", "net-hub-stg"
AWS_REGION, GCP_REGION = "us-west-2", "us-west1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoAws]:
    with MotoAws(region=AWS_REGION) as server:
        server.use_test_credentials(monkeypatch)
        yield server


def readdress(fake: FakeGcp, offset: int) -> None:
    """The template's HA interfaces 203.0.113.10/.11 and peers 198.51.100.1-4, moved by `offset`."""
    (gateway,) = fake.collections[fake.regional("vpnGateways")]
    for interface in gateway["vpnInterfaces"]:
        head, _, last = interface["ipAddress"].rpartition(".")
        interface["ipAddress"] = f"{head}.{int(last) + offset}"
    for tunnel in fake.collections[fake.regional("vpnTunnels")]:
        head, _, last = tunnel["peerIp"].rpartition(".")
        tunnel["peerIp"] = f"{head}.{int(last) + offset}"


def test_each_account_pairs_with_its_project(aws: MotoAws, tmp_path: Path) -> None:
    # AWS: one VPN connection per account, its customer gateway the project's first HA interface.
    for acct, offset in ((PROD, 0), (STAGING, 10)):
        view = account(aws, acct)
        cgw = view.create_customer_gateway(f"203.0.113.{10 + offset}", region=AWS_REGION)
        tgw = view.create_transit_gateway(region=AWS_REGION)
        view.create_vpn_connection(
            cgw,
            transit_gateway_id=tgw,
            outside_ips=(f"198.51.100.{1 + offset}", f"198.51.100.{2 + offset}"),
            region=AWS_REGION,
        )
    with FakeGcp(project="front", empty=True) as front:
        multi = MultiProjectGcp(front)
        multi.add(HUB, GCP_REGION)
        readdress(multi.add(STG, GCP_REGION), 10)
        aws_entry = AwsExporterConfig.model_validate(
            {
                "name": "aws-fleet",
                "type": "aws",
                "region": AWS_REGION,
                "assume_roles": [{"role_arn": role_arn(PROD)}, {"role_arn": role_arn(STAGING)}],
                "endpoint_url": aws.endpoint_url,
            }
        )
        gcp_entry = GcpExporterConfig.model_validate(
            {
                "name": "gcp-fleet",
                "type": "gcp",
                "projects": [HUB, STG],
                "region": GCP_REGION,
                "endpoint": front.url,
                "credentials_file": front.write_credentials(tmp_path),
                "monitoring": False,
            }
        )
        aws_exporter = build_exporter(aws_entry, timeout=10.0)
        gcp_exporter = build_exporter(gcp_entry, timeout=10.0)
        try:
            snapshots = [aws_exporter.poll(), gcp_exporter.poll()]
        finally:
            aws_exporter.close()
            gcp_exporter.close()
    pairs = join_tunnels(snapshots)
    found = sorted((p.aws_scope, p.aws_tunnel, p.gcp_scope, p.gcp_tunnel) for p in pairs if p.aws_scope)
    a, b = Scope("account", PROD, AWS_REGION), Scope("account", STAGING, AWS_REGION)
    hub, stg = Scope("project", HUB, GCP_REGION), Scope("project", STG, GCP_REGION)
    assert found == [
        (a, "198.51.100.1", hub, "aws-tun-0"),
        (a, "198.51.100.2", hub, "aws-tun-1"),
        (b, "198.51.100.11", stg, "aws-tun-0"),
        (b, "198.51.100.12", stg, "aws-tun-1"),
    ]
    labels = dict(next(p for p in pairs if p.gcp_scope == stg).labels())
    assert (labels["aws_account"], labels["gcp_project"], labels["aws_exporter"], labels["gcp_exporter"]) == (
        STAGING,
        STG,
        "aws-fleet",
        "gcp-fleet",
    )
