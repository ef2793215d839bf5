"""deploy/iam: the shipped policies grant exactly the API calls the code makes, derived, not listed.

The daemon's exporters, its periodic audit and `watchdog audit --fix-ipsec --apply` run against the
transport-level fakes (moto's server for EC2, the Compute REST / Cloud DNS / Cloud Monitoring gRPC
fakes for GCP); every request those servers receive is mapped to the IAM action or GCP permission it
needs. A policy that lacks one fails (the daemon would get AccessDenied); a policy with an extra one
fails too (least privilege). A static scan of every boto3 EC2 method the code names backs this up
for code paths the scenario did not reach.
"""

from __future__ import annotations

import ast
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
import yaml

from deploy.lab.emulators.aws import MotoAws
from deploy.lab.emulators.gcp import FakeGcp, FakeMonitoring, FakeRequest
from deploy.lab.emulators.gcp_logging import CloudLogging
from exporters.registry import build_exporter
from watchdog.audit.command import audit_main, periodic_audit
from watchdog.config import AwsExporterConfig, Config, load_config

ROOT = Path(__file__).resolve().parents[1]
IAM = ROOT / "deploy" / "iam"
REGION = "ap-northeast-1"
READ_PREFIXES = ("Describe", "Get", "Search", "List", "Filter")
LOG_GROUP = "/vpn/tunnels"  # the group deploy/iam/aws-policy.json names (DESIGN.md's example)

LOGS_OPERATIONS = frozenset(botocore.session.get_session().get_service_model("logs").operation_names)
STS_OPERATIONS = frozenset(botocore.session.get_session().get_service_model("sts").operation_names)
# "No permissions are required to perform this operation" (STS API reference, GetCallerIdentity).
NEEDS_NO_PERMISSION = frozenset({"sts:GetCallerIdentity"})

# Compute custom methods -> the permission Google documents for them.
_CUSTOM_METHODS = {
    ("vpnGateways", "getStatus"): "compute.vpnGateways.get",
    ("routers", "getRouterStatus"): "compute.routers.get",
}
_COMPUTE = re.compile(
    r"^/compute/v1/projects/[^/]+/(?:(?P<aggregated>aggregated)/|regions/[^/]+/|global/)"
    r"(?P<collection>[A-Za-z]+)(?:/(?P<name>[^/]+)(?:/(?P<method>[A-Za-z]+))?)?$"
)
_DNS = re.compile(r"^/dns/v1/projects/[^/]+/(?P<collection>[A-Za-z]+)(?:/(?P<name>[^/]+))?$")


def gcp_permission(request: FakeRequest) -> str | None:
    """The IAM permission one Compute / Cloud DNS REST request needs (None: OAuth token exchange)."""
    if request.method == "POST" and request.path == "/token":
        return None
    if request.method == "POST" and request.path == "/v2/entries:list":  # Cloud Logging reads with a POST
        return "logging.logEntries.list"
    assert request.method == "GET", f"the watchdog must only read GCP, but sent {request.method} {request.path}"
    if match := _COMPUTE.match(request.path):
        collection, name, method = match["collection"], match["name"], match["method"]
        if method:
            assert (collection, method) in _CUSTOM_METHODS, f"unknown custom method {collection}.{method}"
            return _CUSTOM_METHODS[(collection, method)]
        verb = "list" if match["aggregated"] or name is None else "get"
        return f"compute.{collection}.{verb}"
    if match := _DNS.match(request.path):
        return f"dns.{match['collection']}.{'get' if match['name'] else 'list'}"
    raise AssertionError(f"no permission mapping for {request.method} {request.path}")


@dataclass
class Observed:
    daemon_aws: set[str] = field(default_factory=set)
    daemon_gcp: set[str] = field(default_factory=set)
    fix_aws: set[str] = field(default_factory=set)
    fix_gcp: set[str] = field(default_factory=set)
    fix_exit: int | None = None
    ec2_methods: dict[str, str] = field(default_factory=dict)  # boto3 method -> API operation


def write_config(
    path: Path, aws: MotoAws, gcp: FakeGcp, mon: FakeMonitoring, credentials: str, resolver_table: str
) -> Path:
    """The 4-tunnel setup, pointed at the fakes, with every optional read the config model offers."""
    aws_entry: dict[str, Any] = {"name": "aws-tokyo", "type": "aws", "region": REGION, "endpoint_url": aws.endpoint_url}
    gcp_entry: dict[str, Any] = {
        "name": "gcp-hub",
        "type": "gcp",
        "project": gcp.project,
        "region": gcp.region,
        "endpoint": gcp.url,
        "monitoring_endpoint": mon.url,
        "credentials_file": credentials,
    }
    if "dns_resolver_route_tables" in AwsExporterConfig.model_fields:
        aws_entry["dns_resolver_route_tables"] = [resolver_table]
    aws_entry["tunnel_logs"] = {"log_group": LOG_GROUP}
    gcp_entry["logs"] = True
    path.write_text(yaml.safe_dump({"exporters": [aws_entry, gcp_entry], "audit": {"interval": "1h"}}))
    return path


def build_world(aws: MotoAws, gcp: FakeGcp) -> str:
    """Moto: a TGW and 2 VPN connections whose outside IPs are the GCP fake's external gateway interfaces."""
    tgw = aws.create_transit_gateway()
    table = aws.default_route_table(tgw)
    client = aws.client()
    for i in range(2):
        cgw = aws.create_customer_gateway(f"203.0.113.{10 + i}")  # the HA VPN gateway's interfaces
        info = aws.create_vpn_connection(
            cgw,
            transit_gateway_id=tgw,
            outside_ips=(f"198.51.100.{2 * i + 1}", f"198.51.100.{2 * i + 2}"),
            inside_cidrs=(f"169.254.{10 + 2 * i}.0/30", f"169.254.{11 + 2 * i}.0/30"),
        )
        client.associate_transit_gateway_route_table(
            TransitGatewayRouteTableId=table, TransitGatewayAttachmentId=info.attachment_id
        )
        client.enable_transit_gateway_route_table_propagation(
            TransitGatewayRouteTableId=table, TransitGatewayAttachmentId=info.attachment_id
        )
        aws.add_propagated_route(table, f"10.{20 + i}.0.0/16", info.vpn_id)
    aws.enable_modify_vpn_tunnel_options()
    networks = "global/networks"
    gcp.add(
        networks,
        {
            "name": "hub",
            "selfLink": gcp.link(networks, "hub"),
            "peerings": [
                {
                    "name": "to-spoke",
                    "network": gcp.link(networks, "spoke"),
                    "state": "ACTIVE",
                    "exportCustomRoutes": True,
                }
            ],
        },
    )
    gcp.add(
        networks,
        {
            "name": "spoke",
            "selfLink": gcp.link(networks, "spoke"),
            "peerings": [
                {"name": "to-hub", "network": gcp.link(networks, "hub"), "state": "ACTIVE", "importCustomRoutes": True}
            ],
        },
    )
    gcp.add(networks, {"name": "lab", "selfLink": gcp.link(networks, "lab")})
    gcp.route("GET", r"^/dns/v1/projects/[^/]+/managedZones$", lambda request: (200, {"managedZones": []}))
    CloudLogging(gcp.project).mount(gcp)
    logs = boto3.client("logs", endpoint_url=aws.endpoint_url, region_name=REGION)
    if not logs.describe_log_groups(logGroupNamePrefix=LOG_GROUP)["logGroups"]:  # moto's state is per process
        logs.create_log_group(logGroupName=LOG_GROUP)
    vpc = client.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]  # the AWS DNS resolvers' VPC
    return str(client.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"])


def aws_service(action: str) -> str:
    return "logs" if action in LOGS_OPERATIONS else "sts" if action in STS_OPERATIONS else "ec2"


class Recorder:
    """What the fakes received since the last `take()`, as AWS actions and GCP permissions."""

    def __init__(self, aws: MotoAws, gcp: FakeGcp, mon: FakeMonitoring) -> None:
        self.aws, self.gcp, self.mon = aws, gcp, mon
        self._marks = (0, 0, 0)
        aws.clear_requests()
        self.take()

    def take(self) -> tuple[set[str], set[str]]:
        a, g, m = self._marks
        actions = {f"{aws_service(r.action)}:{r.action}" for r in self.aws.requests[a:]} - NEEDS_NO_PERMISSION
        permissions = {p for r in self.gcp.requests[g:] if (p := gcp_permission(r))}
        if self.mon.requests[m:]:
            permissions.add("monitoring.timeSeries.list")
        self._marks = (len(self.aws.requests), len(self.gcp.requests), len(self.mon.requests))
        return actions, permissions


def run_daemon_calls(config: Config) -> None:
    """One poll of every exporter and one periodic audit: every call the daemon makes."""
    for entry in config.exporters:
        exporter = build_exporter(entry, timeout=10.0)
        try:
            exporter.poll()
        finally:
            exporter.close()  # type: ignore[attr-defined]
    periodic_audit(config)


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    tmp = tmp_path_factory.mktemp("iam")
    result = Observed()
    monkeypatch = pytest.MonkeyPatch()
    try:
        with MotoAws(region=REGION) as aws, FakeGcp() as gcp, FakeMonitoring() as mon:
            aws.use_test_credentials(monkeypatch)
            resolver_table = build_world(aws, gcp)
            result.ec2_methods = dict(aws.client().meta.method_to_api_mapping)
            credentials = gcp.write_credentials(tmp)
            recorder = Recorder(aws, gcp, mon)
            # Nothing narrowed: the code path with the most calls (route tables and routers listed).
            run_daemon_calls(load_config(write_config(tmp / "daemon.yaml", aws, gcp, mon, credentials, resolver_table)))
            result.daemon_aws, result.daemon_gcp = recorder.take()
            fix = write_config(tmp / "fix.yaml", aws, gcp, mon, credentials, resolver_table)
            result.fix_exit = audit_main(
                str(fix),
                fmt="json",
                fix_ipsec=True,
                apply=True,
                out=io.StringIO(),
                wait_timeout=5.0,
                poll_interval=0.01,
                settle=0.0,
            )
            result.fix_aws, result.fix_gcp = recorder.take()
            yield result
    finally:
        monkeypatch.undo()


def aws_policy_actions(name: str) -> set[str]:
    document = json.loads((IAM / name).read_text())
    assert document["Version"] == "2012-10-17"
    actions: set[str] = set()
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow" and "NotAction" not in statement and "NotResource" not in statement
        listed = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert not any("*" in a for a in listed), f"{name}: wildcard action in {listed}"
        actions |= set(listed)
    return actions


def gcp_role_permissions() -> set[str]:
    role = yaml.safe_load((IAM / "gcp-role.yaml").read_text())
    assert set(role) == {"title", "description", "stage", "includedPermissions"}
    return set(role["includedPermissions"])


def referenced_ec2_operations(methods: dict[str, str]) -> set[str]:
    """Every EC2 client method named in the code, as its API operation (botocore's service model)."""
    found = set()
    for path in [*(ROOT / "exporters").glob("*.py"), *(ROOT / "watchdog").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr in methods:
                found.add(f"ec2:{methods[node.attr]}")
    return found


def test_the_scenario_reached_the_calls_it_derives_from(observed: Observed) -> None:
    assert observed.fix_exit == 0, "audit --fix-ipsec --apply did not change every tunnel"
    assert "ec2:ModifyVpnTunnelOptions" in observed.fix_aws
    assert {"ec2:SearchTransitGatewayRoutes", "ec2:DescribeTransitGatewayRouteTables"} <= observed.daemon_aws
    assert {"compute.routers.list", "monitoring.timeSeries.list", "dns.managedZones.list"} <= observed.daemon_gcp
    assert "logs:FilterLogEvents" in observed.daemon_aws and "logging.logEntries.list" in observed.daemon_gcp


def reads(actions: set[str]) -> set[str]:
    return {a for a in actions if a.split(":", 1)[1].startswith(READ_PREFIXES)}


def test_aws_policy_is_exactly_what_the_daemon_calls(observed: Observed) -> None:
    granted = aws_policy_actions("aws-policy.json")
    assert observed.daemon_aws - granted == set(), "the daemon would be denied these"
    # Reads only a configured option triggers (named in the code, not sent here) are the daemon's too.
    called = observed.daemon_aws | reads(referenced_ec2_operations(observed.ec2_methods))
    assert granted - called == set(), "granted but never called"


def test_aws_policy_is_read_only() -> None:
    for action in aws_policy_actions("aws-policy.json"):
        assert action.split(":", 1)[1].startswith(READ_PREFIXES), action


def test_fix_ipsec_policy_is_exactly_what_apply_calls(observed: Observed) -> None:
    granted = aws_policy_actions("aws-fix-ipsec-policy.json")
    assert observed.fix_aws - granted == set(), "audit --fix-ipsec --apply would be denied these"
    called = observed.fix_aws | reads(referenced_ec2_operations(observed.ec2_methods))
    assert granted - called == set(), "granted but never called"
    writes = {a for a in granted if not a.split(":", 1)[1].startswith(READ_PREFIXES)}
    assert writes == {"ec2:ModifyVpnTunnelOptions"}


def test_log_reads_are_scoped_to_the_tunnel_log_group() -> None:
    document = json.loads((IAM / "aws-policy.json").read_text())
    (statement,) = [s for s in document["Statement"] if any(a.startswith("logs:") for a in s["Action"])]
    assert statement["Action"] == ["logs:FilterLogEvents"]
    assert statement["Resource"] == f"arn:aws:logs:*:*:log-group:{LOG_GROUP}:*"


def test_modify_is_scoped_to_vpn_connections() -> None:
    document = json.loads((IAM / "aws-fix-ipsec-policy.json").read_text())
    (statement,) = [s for s in document["Statement"] if "ec2:ModifyVpnTunnelOptions" in s["Action"]]
    assert statement["Action"] == ["ec2:ModifyVpnTunnelOptions"]
    assert statement["Resource"] == "arn:aws:ec2:*:*:vpn-connection/*"


def test_every_ec2_call_named_in_the_code_is_granted(observed: Observed) -> None:
    """Static backstop: a boto3 call on a path the scenario misses (e.g. behind a config option)
    still needs its policy line: reads in both policies (`--apply` runs the whole audit first), the
    one write only in the fix policy."""
    referenced = referenced_ec2_operations(observed.ec2_methods)
    assert "ec2:DescribeVpnConnections" in referenced
    assert reads(referenced) - aws_policy_actions("aws-policy.json") == set()
    assert referenced - aws_policy_actions("aws-fix-ipsec-policy.json") == set()


def test_gcp_role_is_exactly_what_the_daemon_and_audit_use(observed: Observed) -> None:
    granted = gcp_role_permissions()
    used = observed.daemon_gcp | observed.fix_gcp
    assert used - granted == set(), "the daemon would get 403 for these"
    assert granted - used == set(), "granted but never used"
    assert all(p.rsplit(".", 1)[1] in {"get", "list"} for p in granted), "the GCP role must be read-only"


def test_the_assume_roles_policies_grant_only_assuming_the_read_role() -> None:
    (statement,) = json.loads((IAM / "aws-assume-roles-policy.json").read_text())["Statement"]
    assert (statement["Effect"], statement["Action"]) == ("Allow", ["sts:AssumeRole"])
    assert statement["Resource"] == "arn:aws:iam::*:role/vpn-watchdog-read"
    (trust,) = json.loads((IAM / "aws-read-role-trust-policy.json").read_text())["Statement"]
    assert trust["Action"] == "sts:AssumeRole" and "sts:ExternalId" in trust["Condition"]["StringEquals"]
