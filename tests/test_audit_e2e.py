"""`watchdog audit` end to end: real boto3 against the moto server, real Compute/DNS clients against
the local GCP fake, the CLI's exit codes and JSON, and `--fix-ipsec --apply` as the endpoint saw it."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.lab.emulators.aws import MOTO_TEMPLATE_PSK, TEST_PSK
from deploy.lab.emulators.aws_audit import AuditMotoAws
from deploy.lab.emulators.gcp_audit import FakeGcpAudit
from exporters.aws_inventory import AwsInventoryReader
from exporters.gcp_inventory import GcpInventoryReader
from tests.fakes import audit_topologies as topo
from watchdog.audit.command import audit_main, periodic_audit
from watchdog.audit.inventory import Inventory, TunnelOptions
from watchdog.audit.rules import audit
from watchdog.cli import main
from watchdog.config import AwsExporterConfig, load_config

SECRETS = (topo.KNOWN_PSK, TEST_PSK, MOTO_TEMPLATE_PSK)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """`watchdog.cli.main` configures global logging (root handlers, SDK levels); undo it per test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    names = ("botocore", "boto3", "urllib3", "google", "apscheduler", "scapy.runtime")
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


@pytest.fixture(scope="module")
def moto_server() -> Iterator[AuditMotoAws]:
    server = AuditMotoAws(region=topo.AWS_REGION)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def aws(moto_server: AuditMotoAws, monkeypatch: pytest.MonkeyPatch) -> AuditMotoAws:
    moto_server.reset()
    moto_server.use_test_credentials(monkeypatch)
    moto_server.enable_modify_vpn_tunnel_options()
    return moto_server


@pytest.fixture
def gcp() -> Iterator[FakeGcpAudit]:
    fake = FakeGcpAudit(topo.PROJECT, topo.REGION, shared_secret=topo.KNOWN_PSK)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


class Lab:
    """Both fakes seeded from one Inventory, and a config file pointing at them."""

    def __init__(self, aws: AuditMotoAws, gcp: FakeGcpAudit, tmp_path: Path) -> None:
        self.aws, self.gcp, self.tmp_path = aws, gcp, tmp_path
        self.rename: dict[str, str] = {}
        self.expected: Inventory | None = None

    def seed(self, inventory: Inventory, **aws_extra: Any) -> Inventory:
        account, self.rename = self.aws.seed(inventory.aws[0])
        self.gcp.seed(inventory.gcp[0])
        self.aws.clear_requests()
        self.expected = replace(inventory, aws=(account,))
        self.config = self.tmp_path / "config.yaml"
        aws_entry: dict[str, Any] = {
            "name": "aws-tokyo",
            "type": "aws",
            "region": topo.AWS_REGION,
            "endpoint_url": self.aws.endpoint_url,
            "timeout": "20s",
            **aws_extra,
        }
        self.config.write_text(
            yaml.safe_dump(
                {
                    "exporters": [
                        aws_entry,
                        {
                            "name": "gcp-hub",
                            "type": "gcp",
                            "project": topo.PROJECT,
                            "region": topo.REGION,
                            "endpoint": self.gcp.url,
                            "monitoring": False,
                            "credentials_file": self.gcp.write_credentials(self.tmp_path),
                        },
                    ],
                }
            )
        )
        return self.expected

    def run(self, *args: str, **kwargs: Any) -> tuple[int, str]:
        out = io.StringIO()
        code = audit_main(
            str(self.config), fmt="json", fix_ipsec="--fix-ipsec" in args, apply="--apply" in args, out=out, **kwargs
        )
        return code, out.getvalue()

    def vpn(self, index: int) -> str:
        return self.rename[f"vpn-000{'ab'[index]}"]


@pytest.fixture
def lab(aws: AuditMotoAws, gcp: FakeGcpAudit, tmp_path: Path) -> Lab:
    return Lab(aws, gcp, tmp_path)


def _readers(lab: Lab) -> tuple[AwsInventoryReader, GcpInventoryReader]:
    config = load_config(lab.config)
    aws_cfg, gcp_cfg = config.exporters
    return AwsInventoryReader(aws_cfg, timeout=20), GcpInventoryReader(gcp_cfg, timeout=20)  # type: ignore[arg-type]


def test_adapters_read_back_exactly_what_the_clouds_hold(lab: Lab) -> None:
    expected = lab.seed(topo.four_tunnels())
    aws_reader, gcp_reader = _readers(lab)
    try:
        account = expected.aws[0]
        # The reader sorts connections by id (moto's ids are random).
        assert aws_reader.read() == replace(account, connections=tuple(sorted(account.connections, key=lambda c: c.id)))
        assert gcp_reader.read() == expected.gcp[0]
    finally:
        aws_reader.close()
        gcp_reader.close()


def test_good_four_tunnel_setup_exits_0_with_no_findings(lab: Lab) -> None:
    lab.seed(topo.four_tunnels())
    code, out = lab.run()
    doc = json.loads(out)
    assert code == 0
    assert doc["findings"] == []
    assert doc["summary"]["errors"] == 0 and doc["summary"]["min_ike_message_margin_bytes"] == 992
    # Reads only: the audit changed nothing.
    assert lab.aws.modify_calls == []


def test_cheap_setup_is_info_only(lab: Lab) -> None:
    lab.seed(topo.cheap())
    code, out = lab.run()
    assert code == 0
    assert [(f["rule"], f["severity"]) for f in json.loads(out)["findings"]] == [("ha.cheap-mode", "info")]


def test_aws_default_tunnel_options_are_errors_and_no_secret_is_printed(
    lab: Lab, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    lab.seed(topo.with_tunnel(topo.four_tunnels(), 0, options=TunnelOptions()))
    # First without the CLI's logging setup, so every SDK debug record reaches caplog.
    code, out = lab.run()
    assert code == 1
    assert any("DescribeVpnConnections" in r.getMessage() for r in caplog.records)
    assert not any(secret in out + caplog.text for secret in SECRETS)
    code = main(["audit", "-c", str(lab.config), "--format", "json"])
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert code == 1
    tunnel = f"aws-tokyo:{lab.vpn(0)} tunnel {topo.AWS_IPS[0]}"
    assert {(f["rule"], f["object"]) for f in doc["findings"]} == {
        ("ipsec.ike-version", tunnel),
        ("ipsec.single-transform", tunnel),
    }
    assert all(set(f) == {"rule", "severity", "object", "message", "fix"} for f in doc["findings"])
    assert doc["summary"]["errors"] == 1 and "ipsec.message-size" not in doc["summary"]["by_rule"]
    single = next(f for f in doc["findings"] if f["rule"] == "ipsec.single-transform")
    assert "exceeds the path MTU 1500" in single["message"]  # the predicted size, said once
    # AWS's default IKE versions include IKEv2, which Cloud VPN negotiates: a warning, not an error.
    assert {f["severity"] for f in doc["findings"] if f["rule"] == "ipsec.ike-version"} == {"warning"}
    text = captured.out + captured.err + caplog.text
    for secret in SECRETS:
        assert secret not in text
    # The text report too.
    assert main(["audit", "-c", str(lab.config)]) == 1
    readable = capsys.readouterr().out
    assert readable.startswith("ERRORS (1)") and "fix: Allow IKEv2 only" in readable
    assert not any(secret in readable for secret in SECRETS)


def test_unadvertised_spoke_is_found_through_the_compute_api(lab: Lab) -> None:
    inv = topo.four_tunnels()
    router = replace(inv.gcp[0].routers[0], advertised_ranges=(topo.DNS_RANGE,))
    lab.seed(topo.with_gcp(inv, routers=(router,)))
    code, out = lab.run()
    assert code == 1
    (finding,) = json.loads(out)["findings"]
    assert finding["rule"] == "routing.spoke-not-advertised" and "10.30.0.0/16" in finding["message"]


def test_missing_dns_peering_zone_is_a_warning_only(lab: Lab) -> None:
    inv = topo.four_tunnels()
    lab.seed(topo.with_gcp(inv, dns_zones=inv.gcp[0].dns_zones[:1]))
    lab.gcp.zone_page_size = 1
    code, out = lab.run()
    assert code == 0
    assert [f["rule"] for f in json.loads(out)["findings"]] == ["dns.peering-zone"]


def test_unpropagated_attachment_is_found_in_the_tgw(lab: Lab) -> None:
    lab.seed(topo.four_tunnels())
    lab.aws.client().disable_transit_gateway_route_table_propagation(
        TransitGatewayRouteTableId=lab.rename["tgw-rtb-0001"], TransitGatewayAttachmentId=lab.rename["tgw-attach-000b"]
    )
    code, out = lab.run()
    assert code == 1
    (finding,) = json.loads(out)["findings"]
    assert finding["rule"] == "routing.tgw-association" and lab.vpn(1) in finding["object"]


# -- --fix-ipsec ------------------------------------------------------------------------------------


def _broken_three(lab: Lab) -> Inventory:
    inv = topo.four_tunnels()
    inv = topo.with_tunnel(inv, 0, options=TunnelOptions())
    inv = topo.with_options(inv, 1, phase2_integrity=("SHA2-384",))
    inv = topo.with_options(inv, 2, phase1_dh=(19, 20))
    return lab.seed(inv)


def test_fix_plan_prints_the_exact_call_and_changes_nothing(lab: Lab) -> None:
    _broken_three(lab)
    code, out = lab.run("--fix-ipsec")
    doc = json.loads(out)
    assert code == 1 and doc["changes_needed"] is True
    by_ip = {t["outside_ip"]: t for t in doc["tunnels"]}
    assert by_ip[topo.AWS_IPS[3]]["changes_needed"] is False and by_ip[topo.AWS_IPS[3]]["call"] is None
    assert by_ip[topo.AWS_IPS[0]]["call"] == {
        "ModifyVpnTunnelOptions": {
            "VpnConnectionId": lab.vpn(0),
            "VpnTunnelOutsideIpAddress": topo.AWS_IPS[0],
            "TunnelOptions": {
                "IKEVersions": [{"Value": "ikev2"}],
                "Phase1EncryptionAlgorithms": [{"Value": "AES256"}],
                "Phase1IntegrityAlgorithms": [{"Value": "SHA2-256"}],
                "Phase1DHGroupNumbers": [{"Value": 14}],
                "Phase2EncryptionAlgorithms": [{"Value": "AES256"}],
                "Phase2IntegrityAlgorithms": [{"Value": "SHA2-256"}],
                "Phase2DHGroupNumbers": [{"Value": 14}],
            },
        }
    }
    assert by_ip[topo.AWS_IPS[1]]["call"]["ModifyVpnTunnelOptions"]["TunnelOptions"] == {
        "Phase2IntegrityAlgorithms": [{"Value": "SHA2-256"}]
    }
    assert by_ip[topo.AWS_IPS[2]]["terraform"]["tunnel1_phase1_dh_group_numbers"] == [14]
    assert by_ip[topo.AWS_IPS[1]]["terraform"]["tunnel2_ike_versions"] == ["ikev2"]
    assert lab.aws.calls("ModifyVpnTunnelOptions") == []


def test_fix_apply_changes_one_tunnel_at_a_time_and_waits_for_up(lab: Lab) -> None:
    _broken_three(lab)
    lab.aws.down_polls = 2
    code, out = lab.run("--fix-ipsec", "--apply", poll_interval=0.01, settle=5, wait_timeout=10)
    assert code == 0, out
    assert json.loads(out)["ok"] is True
    sequence = [
        (r.action, r.params.get("VpnTunnelOutsideIpAddress"))
        for r in lab.aws.requests
        if r.action in ("ModifyVpnTunnelOptions", "DescribeVpnConnections")
    ]
    modifies = [ip for action, ip in sequence if action == "ModifyVpnTunnelOptions"]
    assert modifies == list(topo.AWS_IPS[:3])
    # Between two modifies: DOWN twice, then UP once (down_polls=2), before the next tunnel is touched.
    first, second = [i for i, (a, _) in enumerate(sequence) if a == "ModifyVpnTunnelOptions"][:2]
    assert [a for a, _ in sequence[first + 1 : second]] == ["DescribeVpnConnections"] * 3
    # What the endpoint received uses the request casing.
    assert lab.aws.modify_calls[1].options == {"Phase2IntegrityAlgorithms": [{"Value": "SHA2-256"}]}
    assert "IKEVersions" in lab.aws.modify_calls[0].options
    # Now nothing is left to do, and the audit is clean.
    assert lab.run("--fix-ipsec")[0] == 0
    assert lab.run()[0] == 0


def test_fix_apply_fixes_down_tunnels_before_taking_up_ones_down(lab: Lab) -> None:
    inv = topo.with_tunnel(topo.four_tunnels(), 0, options=TunnelOptions())
    inv = topo.with_tunnel(inv, 1, status="DOWN", options=replace(topo.GOOD_OPTIONS, phase1_dh=(20,)))
    lab.seed(inv)
    code, _ = lab.run("--fix-ipsec", "--apply", poll_interval=0.01, settle=5, wait_timeout=10)
    assert code == 0
    modified = [r.params["VpnTunnelOutsideIpAddress"] for r in lab.aws.calls("ModifyVpnTunnelOptions")]
    assert modified == [topo.AWS_IPS[1], topo.AWS_IPS[0]]


def test_fix_apply_stops_at_the_first_api_failure(lab: Lab) -> None:
    _broken_three(lab)
    lab.aws.fail("ModifyVpnTunnelOptions", status=400, code="InvalidParameterValue", message="nope", times=1)
    code, out = lab.run("--fix-ipsec", "--apply", poll_interval=0.01, settle=5, wait_timeout=10)
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False
    assert [a["result"] for a in doc["applied"]] == ["failed", "not-attempted", "not-attempted"]
    assert "InvalidParameterValue" in doc["applied"][0]["detail"]
    assert len(lab.aws.calls("ModifyVpnTunnelOptions")) == 1


def test_fix_apply_stops_when_a_tunnel_does_not_come_back(lab: Lab) -> None:
    _broken_three(lab)
    lab.aws.never_up = {topo.AWS_IPS[0]}
    code, out = lab.run("--fix-ipsec", "--apply", poll_interval=0.01, settle=5, wait_timeout=0.5)
    doc = json.loads(out)
    assert code == 1
    assert [a["result"] for a in doc["applied"]] == ["failed", "not-attempted", "not-attempted"]
    assert "did not come back UP" in doc["applied"][0]["detail"]
    # Its sibling tunnel in the same connection was never touched.
    assert [r.params["VpnTunnelOutsideIpAddress"] for r in lab.aws.calls("ModifyVpnTunnelOptions")] == [topo.AWS_IPS[0]]


# -- CLI and errors -----------------------------------------------------------------------------------


def test_api_error_exits_2_with_a_message(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    lab.seed(topo.four_tunnels())
    lab.aws.fail("DescribeVpnConnections", status=403, code="UnauthorizedOperation", message="denied")
    assert main(["audit", "-c", str(lab.config)]) == 2
    err = capsys.readouterr().err
    assert "UnauthorizedOperation" in err and "Traceback" not in err


def test_gcp_error_exits_2(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    lab.seed(topo.four_tunnels())
    lab.gcp.fault(r"/managedZones$", status=403)
    assert main(["audit", "-c", str(lab.config)]) == 2
    assert "managedZones.list" in capsys.readouterr().err


def test_fix_plan_cli_exit_codes(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    lab.seed(topo.four_tunnels())
    assert main(["audit", "-c", str(lab.config), "--fix-ipsec"]) == 0
    assert "already minimal" in capsys.readouterr().out
    assert main(["audit", "-c", str(lab.config), "--apply"]) == 2


def test_config_without_cloud_exporters_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("exporters: []\n")
    assert main(["audit", "-c", str(path)]) == 2
    assert "no exporters of type aws or gcp" in capsys.readouterr().err


def test_periodic_audit_counts_findings_by_rule_and_severity(lab: Lab) -> None:
    lab.seed(topo.with_options(topo.four_tunnels(), 3, phase1_dh=(19,)))
    assert periodic_audit(load_config(lab.config)) == {("ipsec.dh-gcp-first", "error"): 1}


class _WithResolvers(AwsExporterConfig):
    """The aws exporter config with the proposed `dns_resolver_route_tables` key."""

    dns_resolver_route_tables: tuple[str, ...] = ()


def test_resolver_vpc_route_tables_are_read_where_configured(lab: Lab) -> None:
    lab.seed(topo.four_tunnels())
    client = lab.aws.client()
    vpc = client.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    good = client.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    bad = client.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    client.create_route(RouteTableId=good, DestinationCidrBlock=topo.DNS_RANGE, TransitGatewayId=lab.rename["tgw-0001"])
    config = load_config(lab.config)
    aws_cfg = config.exporters[0]
    extended = _WithResolvers.model_validate(
        {**aws_cfg.model_dump(exclude_unset=True), "dns_resolver_route_tables": [good, bad]}
    )
    reader = AwsInventoryReader(extended, timeout=20)
    try:
        account = reader.read()
    finally:
        reader.close()
    tables = {t.id: t for t in account.resolver_route_tables}
    assert (topo.DNS_RANGE, lab.rename["tgw-0001"]) in tables[good].routes
    assert lab.expected is not None
    findings = audit(replace(lab.expected, aws=(account,))).findings
    assert [(f.rule, f.object) for f in findings] == [("dns.return-route", f"aws-tokyo:{bad}")]


def test_an_ipv6_tunnel_inside_range_is_read(lab: Lab) -> None:
    """The reader reads TunnelInsideIpv6Cidr where there is no IPv4 inside range (as the exporter does)."""
    expected = lab.seed(topo.four_tunnels())
    connection = sorted(expected.aws[0].connections, key=lambda c: c.id)[0]
    tunnel = connection.tunnels[0]
    lab.aws.set_tunnel_options(
        connection.id, tunnel.outside_ip, TunnelInsideCidr=None, TunnelInsideIpv6Cidr="fd00:0:0:1::/126"
    )
    aws_reader, gcp_reader = _readers(lab)
    try:
        read = {c.id: c for c in aws_reader.read().connections}[connection.id]
    finally:
        aws_reader.close()
        gcp_reader.close()
    assert read.tunnels[0].inside_cidr == "fd00:0:0:1::/126"
