"""`watchdog audit --terraform`: the live audit's rules on `.tf` files and on a plan JSON.

The corpus (tests/data/terraform/) is the seed's production shape written as a user would (count,
a dynamic interface block with lookup, the cheap mode by a .tfvars), and the same setup as a plan
JSON of the deployed state. Each pitfall is one edit a user could make, applied to a copy of the
files and to the plan; both sources must give the same finding (rule and severity) on the same
resource address.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from watchdog.audit.terraform.command import run, terraform_main
from watchdog.cli import main

DATA = Path(__file__).parent / "data" / "terraform"
PRODUCTION = DATA / "production"
PLAN = DATA / "plan-production.json"
PSK = "Known.Psk.Never.Printed_123"

Edit = tuple[str, str, str]  # (file, old text, new text)
PlanEdit = Callable[[dict[str, Any]], None]


def _tf(tmp_path: Path, edits: list[Edit], tfvars: str | None = None) -> list[str]:
    root = tmp_path / "tf"
    shutil.copytree(PRODUCTION, root)
    for file, old, new in edits:
        path = root / file
        text = path.read_text()
        assert old in text, (file, old)
        path.write_text(text.replace(old, new, 1))
    if tfvars is not None:
        (root / "terraform.tfvars").write_text(tfvars)
    return [str(root)]


def _plan(tmp_path: Path, edit: PlanEdit) -> list[str]:
    doc = json.loads(PLAN.read_text())
    edit(doc)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(doc))
    return [str(path)]


def _resource(doc: dict[str, Any], address: str) -> dict[str, Any]:
    for r in doc["planned_values"]["root_module"]["resources"]:
        if r["address"] == address:
            return r["values"]  # type: ignore[no-any-return]
    raise KeyError(address)


def _set(address: str, **values: Any) -> PlanEdit:
    def edit(doc: dict[str, Any]) -> None:
        _resource(doc, address).update(values)

    return edit


def _drop(*addresses: str) -> PlanEdit:
    def edit(doc: dict[str, Any]) -> None:
        doc["planned_values"]["root_module"]["resources"] = [
            r for r in doc["planned_values"]["root_module"]["resources"] if r["address"] not in addresses
        ]

    return edit


def _ext_ip(index: int, ip: str) -> PlanEdit:
    def edit(doc: dict[str, Any]) -> None:
        _resource(doc, "google_compute_external_vpn_gateway.aws")["interface"][index]["ip_address"] = ip

    return edit


def _advertised(*ranges: str) -> PlanEdit:
    def edit(doc: dict[str, Any]) -> None:
        bgp = _resource(doc, "google_compute_router.hub")["bgp"][0]
        bgp["advertised_ip_ranges"] = [{"range": r, "description": ""} for r in ranges]

    return edit


def _visible_to(zone: str, network: str) -> PlanEdit:
    def edit(doc: dict[str, Any]) -> None:
        _resource(doc, zone)["private_visibility_config"][0]["networks"].append(
            {"network_url": f"projects/net-hub-prod/global/networks/{network}"}
        )

    return edit


def _findings(paths: list[str]) -> list[tuple[str, str, str]]:
    located, _ = run(paths, [])
    return [(x.finding.rule, x.finding.severity, x.finding.object) for x in located if x.finding.severity != "info"]


VPN0, VPN1 = "aws_vpn_connection.vpn[0]", "aws_vpn_connection.vpn[1]"
EXT = "google_compute_external_vpn_gateway.aws"
ROUTER = "google_compute_router.hub"
OPTION_ARGS = {
    "ike_versions": '["ikev2"]',
    "phase1_encryption_algorithms": '["AES256"]',
    "phase1_integrity_algorithms": '["SHA2-256"]',
    "phase1_dh_group_numbers": "[14]",
    "phase2_encryption_algorithms": '["AES256"]',
    "phase2_integrity_algorithms": '["SHA2-256"]',
    "phase2_dh_group_numbers": "[14]",
}
TUNNEL1_OPTIONS = "".join(f"  {'tunnel1_' + arg:<36} = {value}\n" for arg, value in OPTION_ARGS.items())
PROPAGATION = 'resource "aws_ec2_transit_gateway_route_table_propagation" "vpn" {\n  count                          = '
TUNNEL_EXT = 'tunnel1_phase1_encryption_algorithms = ["AES256"]'

# (case, .tf edits, plan edit, expected (rule, severity, object) findings)
PITFALLS: list[tuple[str, list[Edit], PlanEdit, list[tuple[str, str, str]]]] = [
    (
        "four-interfaces-declared-two-ips",
        [
            (
                "gcp.tf",
                "redundancy_type = lookup(local.redundancy, var.num_tunnels)",
                'redundancy_type = "TWO_IPS_REDUNDANCY"',
            )
        ],
        _set(EXT, redundancy_type="TWO_IPS_REDUNDANCY"),
        [("ha.redundancy-type", "error", EXT)],
    ),
    (
        "interfaces-swapped",
        [
            (
                "gcp.tf",
                "interface.value % local.tunnels_per_connection + 1",
                "(interface.value + 1) % local.tunnels_per_connection + 1",
            )
        ],
        lambda doc: [
            _ext_ip(0, "198.51.100.2")(doc),
            _ext_ip(1, "198.51.100.1")(doc),
            _ext_ip(2, "198.51.100.4")(doc),
            _ext_ip(3, "198.51.100.3")(doc),
        ],
        [("wiring.external-interface-ip", "error", EXT)] * 4,
    ),
    (
        "customer-gateway-not-a-gcp-address",
        [
            (
                "aws.tf",
                "google_compute_ha_vpn_gateway.hub.vpn_interfaces[count.index].ip_address",
                "google_compute_address.vpn[count.index].address",
            ),
            (
                "gcp.tf",
                "# One interface per AWS tunnel",
                'resource "google_compute_address" "vpn" {\n  count = 2\n  name  = "vpn-${count.index}"\n}\n\n'
                "# One interface per AWS tunnel",
            ),
        ],
        lambda doc: [_set(f"aws_customer_gateway.gcp[{i}]", ip_address=f"203.0.113.{99 - i}")(doc) for i in (0, 1)],
        [("wiring.customer-gateway-ip", "error", VPN0), ("wiring.customer-gateway-ip", "error", VPN1)],
    ),
    (
        "customer-gateway-shared",
        [
            (
                "aws.tf",
                "customer_gateway_id = aws_customer_gateway.gcp[count.index].id",
                "customer_gateway_id = aws_customer_gateway.gcp[0].id",
            )
        ],
        _set(VPN1, customer_gateway_id="cgw-000a"),
        [("wiring.customer-gateway-shared", "error", VPN1)],
    ),
    (
        "inside-cidr-reserved",
        [("variables.tf", '"169.254.10.12/30"]', '"169.254.169.252/30"]')],
        lambda doc: [
            _set(VPN1, tunnel2_inside_cidr="169.254.169.252/30")(doc),
            _set("google_compute_router_interface.aws[3]", ip_range="169.254.169.254/30")(doc),
            _set("google_compute_router_peer.aws[3]", ip_address="169.254.169.254", peer_ip_address="169.254.169.253")(
                doc
            ),
        ],
        [("inside.cidr-invalid", "error", VPN1)],
    ),
    (
        "inside-cidr-duplicate",
        [("variables.tf", '"169.254.10.12/30"]', '"169.254.10.0/30"]')],
        _set(VPN1, tunnel2_inside_cidr="169.254.10.0/30"),
        [("inside.cidr-duplicate", "error", VPN1)],
    ),
    (
        "router-peer-address-wrong",
        [
            (
                "gcp.tf",
                "peer_ip_address = cidrhost(var.inside_cidrs[count.index], 1)",
                "peer_ip_address = cidrhost(var.inside_cidrs[count.index], 3)",
            )
        ],
        lambda doc: [
            _set(f"google_compute_router_peer.aws[{i}]", peer_ip_address=ip)(doc)
            for i, ip in enumerate(("169.254.10.3", "169.254.10.7", "169.254.10.11", "169.254.10.15"))
        ],
        [("inside.router-mismatch", "error", f"google_compute_router_peer.aws[{i}]") for i in range(4)],
    ),
    (
        "router-interface-without-ip-range",
        [("gcp.tf", '  ip_range   = "${cidrhost(var.inside_cidrs[count.index], 2)}/30"\n', "")],
        lambda doc: [_set(f"google_compute_router_interface.aws[{i}]", ip_range=None)(doc) for i in range(4)],
        [("inside.router-interface-no-range", "error", f"google_compute_router_interface.aws[{i}]") for i in range(4)],
    ),
    (
        "tunnels-on-the-wrong-ha-interface",
        [
            (
                "gcp.tf",
                "vpn_gateway_interface           = floor(count.index / local.tunnels_per_connection)",
                "vpn_gateway_interface           = count.index % local.tunnels_per_connection",
            )
        ],
        lambda doc: [
            _set("google_compute_vpn_tunnel.aws[1]", vpn_gateway_interface=1)(doc),
            _set("google_compute_vpn_tunnel.aws[2]", vpn_gateway_interface=0)(doc),
        ],
        [("wiring.tunnel-gateway-interface", "error", f"google_compute_vpn_tunnel.aws[{i}]") for i in (1, 2)],
    ),
    (
        "two-tunnels-on-one-external-interface",
        [
            (
                "gcp.tf",
                "peer_external_gateway_interface = count.index",
                "peer_external_gateway_interface = min(count.index, 2)",
            )
        ],
        _set("google_compute_vpn_tunnel.aws[3]", peer_external_gateway_interface=2),
        [("wiring.peer-interface-shared", "error", "google_compute_vpn_tunnel.aws[3]")],
    ),
    (
        "ikev1-allowed",
        [
            (
                "aws.tf",
                'tunnel1_ike_versions                 = ["ikev2"]',
                'tunnel1_ike_versions                 = ["ikev1", "ikev2"]',
            )
        ],
        lambda doc: [_set(v, tunnel1_ike_versions=["ikev1", "ikev2"])(doc) for v in (VPN0, VPN1)],
        [("ipsec.ike-version", "warning", VPN0), ("ipsec.ike-version", "warning", VPN1)],
    ),
    (
        "ikev1-only",
        [
            (
                "aws.tf",
                'tunnel1_ike_versions                 = ["ikev2"]',
                'tunnel1_ike_versions                 = ["ikev1"]',
            )
        ],
        lambda doc: [_set(v, tunnel1_ike_versions=["ikev1"])(doc) for v in (VPN0, VPN1)],
        [("ipsec.ike-version", "error", VPN0), ("ipsec.ike-version", "error", VPN1)],
    ),
    (
        "two-encryptions",
        [("aws.tf", TUNNEL_EXT, 'tunnel1_phase1_encryption_algorithms = ["AES128", "AES256"]')],
        lambda doc: [_set(v, tunnel1_phase1_encryption_algorithms=["AES128", "AES256"])(doc) for v in (VPN0, VPN1)],
        [("ipsec.single-transform", "error", VPN0), ("ipsec.single-transform", "error", VPN1)],
    ),
    (
        "phase2-sha384",
        [
            (
                "aws.tf",
                'tunnel2_phase2_integrity_algorithms  = ["SHA2-256"]',
                'tunnel2_phase2_integrity_algorithms  = ["SHA2-384"]',
            )
        ],
        lambda doc: [_set(v, tunnel2_phase2_integrity_algorithms=["SHA2-384"])(doc) for v in (VPN0, VPN1)],
        [("ipsec.unsupported-algorithm", "error", VPN0), ("ipsec.unsupported-algorithm", "error", VPN1)],
    ),
    (
        "dh-not-gcp-first",
        [("aws.tf", "tunnel1_phase1_dh_group_numbers      = [14]", "tunnel1_phase1_dh_group_numbers      = [19]")],
        lambda doc: [_set(v, tunnel1_phase1_dh_group_numbers=[19])(doc) for v in (VPN0, VPN1)],
        [("ipsec.dh-gcp-first", "error", VPN0), ("ipsec.dh-gcp-first", "error", VPN1)],
    ),
    (
        "spoke-not-advertised",
        [("variables.tf", 'default = ["10.30.0.0/16"]', "default = []")],
        _advertised("35.199.192.0/19"),
        [("routing.spoke-not-advertised", "error", ROUTER)],
    ),
    (
        "dns-range-not-advertised",
        [("gcp.tf", 'concat(var.spoke_ranges, ["35.199.192.0/19"])', "var.spoke_ranges")],
        _advertised("10.30.0.0/16"),
        [("dns.return-route", "error", "aws_ec2_transit_gateway_route_table.vpn")],
    ),
    (
        "hub-does-not-export",
        [("gcp.tf", "  export_custom_routes = true\n", "")],
        _set("google_compute_network_peering.hub_to_spoke", export_custom_routes=False),
        [("routing.peering-custom-routes", "error", "google_compute_network_peering.hub_to_spoke")],
    ),
    (
        "spoke-does-not-import",
        [("gcp.tf", "  import_custom_routes = true\n", "")],
        _set("google_compute_network_peering.spoke_to_hub", import_custom_routes=False),
        [("routing.peering-custom-routes", "error", "google_compute_network_peering.spoke_to_hub")],
    ),
    (
        "vpn-attachment-not-propagated",
        [
            (
                "aws.tf",
                PROPAGATION + "local.num_connections",
                PROPAGATION + "1",
            )
        ],
        _drop("aws_ec2_transit_gateway_route_table_propagation.vpn[1]"),
        [("routing.tgw-association", "error", VPN1)],
    ),
    (
        "dns-forwarding-from-two-vpcs",
        [
            (
                "dns.tf",
                "      network_url = google_compute_network.hub.id\n    }\n  }\n  forwarding_config",
                "      network_url = google_compute_network.hub.id\n    }\n    networks {\n"
                "      network_url = google_compute_network.spoke.id\n    }\n  }\n  forwarding_config",
            )
        ],
        _visible_to("google_dns_managed_zone.aws_forward", "spoke-vpc"),
        [("dns.forwarding-multiple-vpcs", "error", "google_dns_managed_zone.aws_forward")],
    ),
    (
        "no-dns-peering-zone",
        [
            (
                "dns.tf",
                'resource "google_dns_managed_zone" "aws_peer" {',
                'resource "google_dns_managed_zone" "aws_peer" {\n  count = 0',
            )
        ],
        _drop("google_dns_managed_zone.aws_peer"),
        [("dns.peering-zone", "warning", "google_compute_network.spoke")],
    ),
    (
        "over-100-advertised-ranges",
        [
            (
                "gcp.tf",
                'concat(var.spoke_ranges, ["35.199.192.0/19"])',
                'concat(var.spoke_ranges, ["35.199.192.0/19"], [for i in range(100) : "10.200.${i}.0/24"])',
            )
        ],
        _advertised("10.30.0.0/16", "35.199.192.0/19", *(f"10.200.{i}.0/24" for i in range(100))),
        [("routing.route-limit", "error", ROUTER)],
    ),
    (
        "aws-default-options",
        [("aws.tf", TUNNEL1_OPTIONS, "")],
        lambda doc: [_set(v, **{f"tunnel1_{arg}": None for arg in OPTION_ARGS})(doc) for v in (VPN0, VPN1)],
        [
            (rule, severity, vpn)
            for vpn in (VPN0, VPN1)
            for rule, severity in (("ipsec.ike-version", "warning"), ("ipsec.single-transform", "error"))
        ],
    ),
    (
        "three-tunnels",
        [
            (
                "gcp.tf",
                'resource "google_compute_vpn_tunnel" "aws" {\n  count                           = var.num_tunnels',
                'resource "google_compute_vpn_tunnel" "aws" {\n  count                           = 3',
            )
        ],
        _drop("google_compute_vpn_tunnel.aws[3]"),
        [("ha.tunnel-count", "warning", "google_compute_ha_vpn_gateway.hub")],
    ),
]


def test_production_shape_is_clean_from_files_and_from_the_plan() -> None:
    for paths in ([str(PRODUCTION)], [str(PLAN)]):
        located, summary = run(paths, [])
        assert [x.finding for x in located] == [], paths
        assert summary["resources"] == 33
        assert len(summary["ike_message_margin_bytes"]) == 4


def _cheap(doc: dict[str, Any]) -> None:
    """The plan of the cheap shape: 1 connection, 1 external interface, 1 tunnel."""
    gone = {VPN1, "aws_customer_gateway.gcp[1]"}
    gone |= {f"aws_ec2_transit_gateway_route_table_{k}.vpn[1]" for k in ("association", "propagation")}
    gone |= {
        f"google_compute_{t}.aws[{i}]" for t in ("vpn_tunnel", "router_interface", "router_peer") for i in (1, 2, 3)
    }
    _drop(*gone)(doc)
    ext = _resource(doc, EXT)
    ext["redundancy_type"] = "SINGLE_IP_INTERNALLY_REDUNDANT"
    ext["interface"] = ext["interface"][:1]


def test_cheap_mode_is_info_only_from_tfvars_and_from_the_plan(tmp_path: Path) -> None:
    for paths in (_tf(tmp_path, [], tfvars="num_tunnels = 1\n"), _plan(tmp_path, _cheap)):
        located, summary = run(paths, [])
        assert [(x.finding.rule, x.finding.severity) for x in located] == [("ha.cheap-mode", "info")], paths
        # The spare AWS tunnel (tunnel2) is not held to the IPsec rules.
        assert list(summary["ike_message_margin_bytes"]) == ["aws_vpn_connection.vpn[0] tunnel1"]


def test_cheap_mode_customer_gateway_on_the_second_address(tmp_path: Path) -> None:
    edits = [("aws.tf", "vpn_interfaces[count.index].ip_address", "vpn_interfaces[1].ip_address")]
    expected = [("ha.cheap-mode-customer-gateway", "error", VPN0)]
    assert _findings(_tf(tmp_path, edits, tfvars="num_tunnels = 1\n")) == expected

    def plan_edit(doc: dict[str, Any]) -> None:
        _cheap(doc)
        _resource(doc, "aws_customer_gateway.gcp[0]")["ip_address"] = "203.0.113.11"

    assert _findings(_plan(tmp_path, plan_edit)) == expected


@pytest.mark.parametrize(("case", "edits", "plan_edit", "expected"), PITFALLS, ids=[p[0] for p in PITFALLS])
def test_each_pitfall_gives_the_same_finding_from_files_and_plan(
    tmp_path: Path, case: str, edits: list[Edit], plan_edit: PlanEdit, expected: list[tuple[str, str, str]]
) -> None:
    from_files = _findings(_tf(tmp_path, edits))
    from_plan = _findings(_plan(tmp_path, plan_edit))
    assert sorted(from_files) == sorted(expected), from_files
    assert sorted(from_plan) == sorted(expected), from_plan


def test_every_rule_decidable_from_terraform_is_covered() -> None:
    from watchdog.audit import rules

    live_only = {
        rules.HA_REDUNDANCY_MET,  # vpnGateways.getStatus
        rules.HA_TUNNEL_DOWN,  # tunnel status
        rules.ROUTING_LEARNED,  # routes AWS really learned
    }
    covered = {rule for *_, expected in PITFALLS for rule, _, _ in expected}
    covered |= {rules.HA_CHEAP_MODE, rules.HA_CHEAP_CGW}
    covered |= {rules.IPSEC_SIZE}  # test_one_value_per_list_over_a_small_path_mtu
    assert set(rules.RULES) - live_only == covered


def test_ipsec_fix_names_the_argument_and_the_address(tmp_path: Path) -> None:
    located, _ = run(
        _tf(tmp_path, [("aws.tf", TUNNEL_EXT, 'tunnel1_phase1_encryption_algorithms = ["AES128", "AES256"]')]), []
    )
    (first, second) = [x for x in located if x.finding.rule == "ipsec.single-transform"]
    assert first.finding.fix == (
        'Set tunnel1_phase1_encryption_algorithms = ["AES256"] on aws_vpn_connection.vpn[0] '
        "(one GCP-supported value each, DH group 14 first)."
    )
    assert first.finding.message.startswith("tunnel1: ")
    assert first.file.endswith("aws.tf") and first.line == 28
    assert second.finding.object == VPN1


def test_aws_defaults_predict_fragmentation(tmp_path: Path) -> None:
    text = (PRODUCTION / "aws.tf").read_text()
    start = text.index("  tunnel2_ike_versions")
    end = text.index("}", start)
    root = Path(_tf(tmp_path, [])[0])
    (root / "aws.tf").write_text(text[:start] + text[end:])
    located, _ = run([str(root)], [])
    single = [x.finding for x in located if x.finding.rule == "ipsec.single-transform"]
    assert [f.object for f in single] == [VPN0, VPN1]
    assert all(f.message.startswith("tunnel2: ") and "exceeds the path MTU 1500" in f.message for f in single)
    # Said once per tunnel: the oversized message is the lists' doing, not a second finding.
    assert not [x for x in located if x.finding.rule == "ipsec.message-size"]
    assert ("ipsec.ike-version", VPN1) in {(x.finding.rule, x.finding.object) for x in located}


def test_one_value_per_list_over_a_small_path_mtu() -> None:
    for paths in ([str(PRODUCTION)], [str(PLAN)]):
        located, _ = run(paths, [], mtu=400)
        found = [(x.finding.rule, x.finding.object) for x in located]
        assert sorted(found) == sorted(("ipsec.message-size", v) for v in (VPN0, VPN0, VPN1, VPN1)), paths


def test_hard_coded_external_address_is_not_checked_not_a_false_error(tmp_path: Path) -> None:
    edits = [
        (
            "gcp.tf",
            "ip_address = lookup(aws_vpn_connection.vpn[floor(interface.value / local.tunnels_per_connection)], "
            '"tunnel${interface.value % local.tunnels_per_connection + 1}_address")',
            'ip_address = "198.51.100.${interface.value + 1}"',
        )
    ]
    located, summary = run(_tf(tmp_path, edits), [])
    assert summary["errors"] == 0
    infos = [x.finding for x in located if x.finding.rule == "wiring.external-interface-ip"]
    assert len(infos) == 4 and {f.severity for f in infos} == {"info"}
    assert "hard-coded as 198.51.100.1" in infos[0].message
    assert "aws_vpn_connection.vpn[0].tunnel1_address" in infos[0].fix
    # The same addresses in a plan of the deployed setup are known, so there they are checked (and right).
    assert _findings([str(PLAN)]) == []


def test_unknown_values_are_info_never_errors(tmp_path: Path) -> None:
    edits = [
        (
            "variables.tf",
            'variable "inside_cidrs" {\n  type    = list(string)\n  default = ["169.254.10.0/30", "169.254.10.4/30", '
            '"169.254.10.8/30", "169.254.10.12/30"]\n}',
            'variable "inside_cidrs" {\n  type = list(string)\n}',
        ),
    ]
    located, summary = run(_tf(tmp_path, edits), [])
    assert summary["errors"] == 0 and summary["warnings"] == 0
    rules_seen = {x.finding.rule for x in located}
    assert {"inside.cidr-invalid", "terraform.unevaluated"} <= rules_seen
    note = next(x for x in located if x.finding.rule == "terraform.unevaluated")
    assert "var.inside_cidrs has no value" in note.finding.message and note.file.endswith("variables.tf")


def test_var_file_overrides_defaults(tmp_path: Path) -> None:
    var_file = tmp_path / "bad.tfvars"
    var_file.write_text('inside_cidrs = ["169.254.10.0/30", "169.254.10.4/30", "169.254.10.8/30", "169.254.1.0/30"]\n')
    located, _ = run([str(PRODUCTION)], [str(var_file)])
    assert [(x.finding.rule, x.finding.object) for x in located if x.finding.severity == "error"] == [
        ("inside.cidr-invalid", VPN1)
    ]


def test_local_module_followed_registry_module_noted(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(PRODUCTION, root / "modules" / "vpn")
    (root / "modules" / "vpn" / "variables.tf").write_text(
        (PRODUCTION / "variables.tf")
        .read_text()
        .replace('  default = ["169.254.10.0/30"', '  default = ["169.254.1.0/30"')
    )
    (root / "main.tf").write_text(
        'module "vpn" {\n  source = "./modules/vpn"\n  num_tunnels = 4\n}\n'
        'module "vpc" {\n  source  = "terraform-google-modules/network/google"\n  version = "~> 9.0"\n}\n'
    )
    located, _ = run([str(root)], [])
    errors = [(x.finding.rule, x.finding.object) for x in located if x.finding.severity == "error"]
    assert errors == [("inside.cidr-invalid", "module.vpn.aws_vpn_connection.vpn[0]")]
    notes = [x.finding.message for x in located if x.finding.rule == "terraform.unevaluated"]
    assert any("module.vpc" in n and "not followed" in n for n in notes)


def test_text_output_groups_by_file_and_address_with_lines(tmp_path: Path) -> None:
    paths = _tf(
        tmp_path,
        [
            (
                "gcp.tf",
                "redundancy_type = lookup(local.redundancy, var.num_tunnels)",
                'redundancy_type = "TWO_IPS_REDUNDANCY"',
            )
        ],
    )
    out = io.StringIO()
    assert terraform_main(paths, [], fmt="text", out=out) == 1
    text = out.getvalue()
    lines = text.splitlines()
    assert any(line.endswith("gcp.tf") for line in lines)
    assert "  google_compute_external_vpn_gateway.aws" in lines
    assert any("ERROR" in line and "line 65" in line and "[ha.redundancy-type]" in line for line in lines)
    assert 'fix: Set redundancy_type = "FOUR_IPS_REDUNDANCY" on google_compute_external_vpn_gateway.aws' in text


def test_cli_json_shape_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "--terraform", str(PRODUCTION), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["findings"] == [] and doc["summary"]["errors"] == 0
    paths = _plan(tmp_path, _set(EXT, redundancy_type="TWO_IPS_REDUNDANCY"))
    assert main(["audit", "--terraform", *paths, "--format", "json"]) == 1
    (finding,) = json.loads(capsys.readouterr().out)["findings"]
    assert set(finding) == {"rule", "severity", "object", "message", "fix", "file", "line"}
    assert finding["object"] == EXT and finding["file"].endswith("plan.json")


@pytest.mark.parametrize(
    ("name", "content", "where"),
    [
        (
            "broken.tf",
            'resource "aws_vpn_connection" "vpn" {\n  tunnel1_preshared_key = "' + PSK + '" x }\n',
            "broken.tf:2",
        ),
        ("unclosed.tf", 'resource "aws_customer_gateway" "gcp" {\n  bgp_asn = 65000\n', "unclosed.tf:"),
        ("plan.json", '{"format_version": "1.2", "planned_values": {', "plan.json:1"),
    ],
)
def test_unparseable_files_exit_2_naming_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: str, where: str
) -> None:
    root = tmp_path / "bad"
    root.mkdir()
    (root / name).write_text(content)
    target = root / name if name.endswith(".json") else root
    assert main(["audit", "--terraform", str(target)]) == 2
    captured = capsys.readouterr()
    assert where in captured.err and "Traceback" not in captured.err
    assert PSK not in captured.err + captured.out


def test_corpus_unparseable_files(capsys: pytest.CaptureFixture[str]) -> None:
    for path in sorted((DATA / "unparseable").iterdir()):
        assert main(["audit", "--terraform", str(path)]) == 2, path
        err = capsys.readouterr().err
        assert path.name in err and "Traceback" not in err


def test_not_a_plan_json_is_an_input_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"version": 4, "resources": []}')
    assert main(["audit", "--terraform", str(path)]) == 2
    assert "not a Terraform plan in JSON" in capsys.readouterr().err


def test_pre_shared_keys_never_appear_in_any_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken_tf = _tf(tmp_path, [("aws.tf", TUNNEL_EXT, 'tunnel1_phase1_encryption_algorithms = ["AES128", "AES256"]')])
    plan_doc = json.loads(PLAN.read_text())
    assert PSK in json.dumps(plan_doc)  # the plan holds it (sensitive values are in plans)
    broken_plan = _plan(tmp_path, _set(VPN0, tunnel1_ike_versions=["ikev1"]))
    for paths in (broken_tf, [str(PRODUCTION)], broken_plan, [str(PLAN)]):
        for fmt in ("text", "json"):
            main(["audit", "--terraform", *paths, "--format", fmt])
            captured = capsys.readouterr()
            assert PSK not in captured.out + captured.err
            assert captured.out


def test_evaluator_follows_what_the_field_notes_use() -> None:
    from watchdog.audit.terraform.evaluate import Evaluator
    from watchdog.audit.terraform.hcl import parse_text
    from watchdog.audit.terraform.values import Unknown

    class Scope:
        def lookup(self, name: str) -> Any:
            return {"var": {"n": 4, "m": {"a": "x"}}}.get(name, Unknown(name))

        def note(self, message: str) -> None:
            pass

    body = parse_text(
        'a = floor(7 / 2)\nb = [for i in range(var.n) : i % 2 + 1 if i > 0]\nc = lookup(var.m, "b", "dflt")\n'
        'd = var.n == 4 ? "FOUR_IPS_REDUNDANCY" : "TWO_IPS_REDUNDANCY"\ne = "tunnel${var.n - 3}_address"\n'
        'f = cidrhost("169.254.10.4/30", 1)\ng = { for k, v in var.m : upper(k) => v }\nh = -var.n * 2\n'
        'i = unknown_fn(1)\nj = "$${literal}"\nk = x.y[0].z\n'
    )
    ev = Evaluator(Scope())
    got = {k: ev.eval(a.expr) for k, a in body.attributes.items()}
    assert got["a"] == 3 and got["b"] == [2, 1, 2] and got["c"] == "dflt"
    assert got["d"] == "FOUR_IPS_REDUNDANCY" and got["e"] == "tunnel1_address"
    assert got["f"] == "169.254.10.5" and got["g"] == {"A": "x"} and got["h"] == -8
    assert got["i"] == Unknown() and got["j"] == "${literal}"
    assert got["k"] == Unknown("x.y[0].z")


PLUGIN_DIR = Path(os.environ.get("WATCHDOG_TF_PLUGIN_DIR", "/opt/tf-plugins"))


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("terraform") is None or not (PLUGIN_DIR / "registry.terraform.io" / "hashicorp" / "aws").is_dir(),
    reason="needs the terraform binary and a local mirror of the hashicorp/aws provider",
)
def test_real_terraform_plan_json_gives_the_same_findings_as_the_files(tmp_path: Path) -> None:
    """`terraform plan` + `show -json` of an AWS-only root module (offline: endpoints on loopback)."""
    root = tmp_path / "aws-only"
    shutil.copytree(DATA / "aws-only", root)
    rc = tmp_path / "terraform.rc"
    rc.write_text(
        f'provider_installation {{\n  filesystem_mirror {{\n    path = "{PLUGIN_DIR}"\n  }}\n'
        '  direct {\n    exclude = ["registry.terraform.io/*/*"]\n  }\n}\n'
    )
    env = {**os.environ, "TF_CLI_CONFIG_FILE": str(rc), "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"}
    for argv in (
        ["terraform", "init", "-input=false", "-no-color"],
        ["terraform", "plan", "-input=false", "-no-color", "-refresh=false", "-out", "plan.out"],
    ):
        done = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=240, check=False)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    shown = subprocess.run(
        ["terraform", "show", "-json", "plan.out"], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    plan = tmp_path / "plan.json"
    plan.write_text(shown.stdout)
    assert PSK in shown.stdout  # a real plan carries the sensitive value; the audit must drop it
    from_files = sorted(_findings([str(DATA / "aws-only")]))
    from_plan = sorted(_findings([str(plan)]))
    assert from_plan == from_files
    assert ("inside.cidr-duplicate", "error", VPN1) in from_plan
    assert [r for r, _, o in from_plan if r == "ipsec.single-transform"] == ["ipsec.single-transform"] * 2
    out = io.StringIO()
    terraform_main([str(plan)], [], fmt="json", out=out)
    assert PSK not in out.getvalue()


def test_for_each_instances_are_addressed_by_key(tmp_path: Path) -> None:
    root = tmp_path / "fe"
    root.mkdir()
    (root / "main.tf").write_text(
        'variable "sites" {\n  default = {\n    tokyo = { inside = ["169.254.20.0/30", "169.254.20.4/30"] }\n'
        '    osaka = { inside = ["169.254.20.0/30", "169.254.20.12/30"] }\n  }\n}\n'
        'resource "aws_customer_gateway" "gcp" {\n  for_each   = var.sites\n  bgp_asn    = 65000\n'
        '  ip_address = "203.0.113.10"\n  type       = "ipsec.1"\n}\n'
        'resource "aws_vpn_connection" "vpn" {\n  for_each            = var.sites\n'
        "  customer_gateway_id = aws_customer_gateway.gcp[each.key].id\n"
        "  transit_gateway_id  = aws_ec2_transit_gateway.tgw.id\n"
        '  type                = "ipsec.1"\n  tunnel1_inside_cidr = each.value.inside[0]\n'
        "  tunnel2_inside_cidr = each.value.inside[1]\n}\n"
        'resource "aws_ec2_transit_gateway" "tgw" {\n  amazon_side_asn = 64512\n}\n'
    )
    located, summary = run([str(root)], [])
    duplicates = [x.finding for x in located if x.finding.rule == "inside.cidr-duplicate"]
    assert [(f.object, f.message) for f in duplicates] == [
        (
            'aws_vpn_connection.vpn["osaka"]',
            'tunnel1: inside CIDR 169.254.20.0/30 is also used by aws_vpn_connection.vpn["tokyo"] tunnel1',
        )
    ]
    assert summary["resources"] == 5


def test_one_side_audited_alone_gives_no_false_warning(tmp_path: Path) -> None:
    gcp, aws = tmp_path / "gcp", tmp_path / "aws"
    gcp.mkdir()
    aws.mkdir()
    for name in ("gcp.tf", "variables.tf", "dns.tf"):
        shutil.copy(PRODUCTION / name, gcp / name)
    shutil.copy(PRODUCTION / "aws.tf", aws / "aws.tf")
    shutil.copy(PRODUCTION / "variables.tf", aws / "variables.tf")
    located, summary = run([str(gcp)], [])
    assert summary["errors"] == summary["warnings"] == 0
    (count,) = [x.finding for x in located if x.finding.rule == "ha.tunnel-count"]
    assert count.severity == "info" and "--terraform AWS_DIR GCP_DIR" in count.message
    # The AWS side alone still has its own rules checked (the references to GCP are unknown, not wrong).
    edits_aws = (aws / "aws.tf").read_text().replace('tunnel2_ike_versions                 = ["ikev2"]', "")
    (aws / "aws.tf").write_text(edits_aws)
    found = {(x.finding.rule, x.finding.severity, x.finding.object) for x in run([str(aws)], [])[0]}
    assert {f for f in found if f[1] != "info"} == {
        ("ipsec.ike-version", "warning", VPN0),
        ("ipsec.ike-version", "warning", VPN1),
    }


MODULES = DATA / "modules"


def _line_of(path: Path, text: str) -> list[int]:
    return [n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line]


def test_a_finding_about_another_modules_resource_names_that_resources_file_and_line() -> None:
    located, _ = run([str(MODULES)], [])
    cgw_file = MODULES / "modules" / "cgw" / "main.tf"
    wiring = [x for x in located if x.finding.rule == "wiring.customer-gateway-ip"]
    assert [x.finding.object for x in wiring] == [
        "module.vpn.aws_vpn_connection.vpn[0]",
        "module.vpn.aws_vpn_connection.vpn[1]",
    ]
    assert {x.file for x in wiring} == {str(cgw_file)}
    assert [x.line for x in wiring] == _line_of(cgw_file, "ip_address = jsondecode(")


def test_a_function_not_evaluated_is_noted_where_it_is_written() -> None:
    located, _ = run([str(MODULES)], [])
    cgw_file = MODULES / "modules" / "cgw" / "main.tf"
    notes = [x for x in located if x.finding.rule == "terraform.unevaluated"]
    assert [(x.finding.object, x.file, x.line) for x in notes] == [
        (f"module.cgw.aws_customer_gateway.{name}", str(cgw_file), line)
        for name, line in zip(("first", "second"), _line_of(cgw_file, "jsondecode("), strict=True)
    ]
    assert all("jsondecode() is not evaluated" in x.finding.message for x in notes)


def test_a_finding_about_an_absent_argument_points_at_the_resource_block(tmp_path: Path) -> None:
    ike = 'tunnel1_ike_versions                 = ["ikev2"]\n'
    (root,) = _tf(tmp_path, [("aws.tf", ike, "")])
    located, _ = run([root], [])
    found = [x for x in located if x.finding.rule == "ipsec.ike-version"]
    assert [x.finding.object for x in found] == [VPN0, VPN1]
    (block_line,) = _line_of(Path(root) / "aws.tf", 'resource "aws_vpn_connection" "vpn"')
    assert {(Path(x.file).name, x.line) for x in found} == {("aws.tf", block_line)}


def _modules_variant(tmp_path: Path, edits: list[Edit]) -> Path:
    root = tmp_path / "modules"
    shutil.copytree(MODULES, root)
    for file, old, new in edits:
        path = root / file
        text = path.read_text()
        assert old in text, (file, old)
        path.write_text(text.replace(old, new))
    return root


def test_router_interface_without_ip_range_is_an_error_even_while_aws_picks_the_inside_cidr(tmp_path: Path) -> None:
    root = _modules_variant(
        tmp_path,
        [
            ("main.tf", '  ip_range   = "${module.vpn.cgw_inside_addresses[count.index]}/30"\n', ""),
            (
                "modules/vpn/main.tf",
                '  tunnel1_inside_cidr                  = "169.254.10.${count.index * 8}/30"\n',
                "",
            ),
            (
                "modules/vpn/main.tf",
                '  tunnel2_inside_cidr                  = "169.254.10.${count.index * 8 + 4}/30"\n',
                "",
            ),
        ],
    )
    located, _ = run([str(root)], [])
    found = [x for x in located if x.finding.rule == "inside.router-interface-no-range"]
    assert [(x.finding.severity, x.finding.object) for x in found] == [
        ("error", f"google_compute_router_interface.aws[{i}]") for i in range(4)
    ]
    (block_line,) = _line_of(root / "main.tf", 'resource "google_compute_router_interface" "aws"')
    assert {(x.file, x.line) for x in found} == {(str(root / "main.tf"), block_line)}
    assert found[3].finding.fix == (
        'Set ip_range = "${module.vpn.aws_vpn_connection.vpn[1].tunnel2_cgw_inside_address}/30" on '
        "google_compute_router_interface.aws[3]."
    )
    # The unset inside CIDRs are AWS's pick at apply: "not checked", never an error of their own.
    errors = {x.finding.rule for x in located if x.finding.severity == "error"}
    assert errors == {"inside.router-interface-no-range"}


def test_router_mismatch_fix_names_the_interface_ip_range_where_it_is_written(tmp_path: Path) -> None:
    wrong = 'ip_range   = "${cidrhost(var.inside_cidrs[count.index], 3)}/30"'
    (root,) = _tf(tmp_path, [("gcp.tf", 'ip_range   = "${cidrhost(var.inside_cidrs[count.index], 2)}/30"', wrong)])
    located, _ = run([root], [])
    found = [x for x in located if x.finding.rule == "inside.router-mismatch"]
    assert [x.finding.object for x in found] == [f"google_compute_router_interface.aws[{i}]" for i in range(4)]
    assert found[0].finding.fix == 'Set ip_range = "169.254.10.2/30" on google_compute_router_interface.aws[0].'
    assert {(Path(x.file).name, x.line) for x in found} == {("gcp.tf", *_line_of(Path(root) / "gcp.tf", wrong))}


def test_tunnel_interface_findings_name_the_argument_where_it_is_written(tmp_path: Path) -> None:
    wrong = "vpn_gateway_interface           = count.index % local.tunnels_per_connection"
    (root,) = _tf(
        tmp_path,
        [("gcp.tf", "vpn_gateway_interface           = floor(count.index / local.tunnels_per_connection)", wrong)],
    )
    located, _ = run([root], [])
    found = [x for x in located if x.finding.rule == "wiring.tunnel-gateway-interface"]
    assert [x.finding.fix.split(" (")[0] for x in found] == [
        "Set vpn_gateway_interface = 0 on google_compute_vpn_tunnel.aws[1]",
        "Set vpn_gateway_interface = 1 on google_compute_vpn_tunnel.aws[2]",
    ]
    assert {(Path(x.file).name, x.line) for x in found} == {("gcp.tf", *_line_of(Path(root) / "gcp.tf", wrong))}


UNSET_INSIDE = [
    ("modules/vpn/main.tf", '  tunnel1_inside_cidr                  = "169.254.10.${count.index * 8}/30"\n', ""),
    ("modules/vpn/main.tf", '  tunnel2_inside_cidr                  = "169.254.10.${count.index * 8 + 4}/30"\n', ""),
]


def test_unset_inside_cidr_followed_by_the_gcp_side_is_info_not_an_error(tmp_path: Path) -> None:
    located, summary = run([str(_modules_variant(tmp_path, UNSET_INSIDE))], [])
    found = [x.finding for x in located if x.finding.rule == "inside.cidr-invalid"]
    assert [(f.severity, f.object) for f in found] == [
        ("info", f"module.vpn.aws_vpn_connection.vpn[{c}]") for c in (0, 0, 1, 1)
    ]
    assert found[0].message.startswith("not checked before apply: tunnel1: tunnel1_inside_cidr is unset, AWS picks")
    assert 'tunnel1_inside_cidr = "169.254.10.0/30"' in found[0].fix
    assert summary["errors"] == 0


def test_unset_inside_cidr_against_a_written_down_router_range_is_an_error(tmp_path: Path) -> None:
    (root,) = _tf(
        tmp_path, [("aws.tf", "  tunnel1_inside_cidr                  = var.inside_cidrs[count.index * 2]\n", "")]
    )
    located, _ = run([root], [])
    found = [x.finding for x in located if x.finding.rule == "inside.cidr-invalid"]
    assert [(f.severity, f.object) for f in found] == [("error", VPN0), ("error", VPN1)]
    assert "google_compute_router_interface.aws[2] has ip_range = 169.254.10.10/30 written down" in found[1].message
    assert found[1].fix == (
        'Set tunnel1_inside_cidr = "169.254.10.8/30" on aws_vpn_connection.vpn[1] '
        "(the /30 google_compute_router_interface.aws[2] already uses)."
    )
