"""The audit rules over in-memory inventories: good shapes are clean, each breakage gives its finding."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from tests.fakes import audit_topologies as topo
from watchdog.audit import rules
from watchdog.audit.inventory import (
    DnsZone,
    Inventory,
    Network,
    Peering,
    VpcRouteTable,
)
from watchdog.audit.rules import audit


def _non_info(inv: Inventory) -> list[rules.Finding]:
    return [f for f in audit(inv).findings if f.severity != "info"]


def test_good_four_tunnel_topology_has_no_findings() -> None:
    result = audit(topo.four_tunnels())
    assert result.findings == ()
    assert not result.has_errors
    # Single transforms with group 14 leave most of a 1500-byte packet free.
    assert set(result.ike_margins.values()) == {992}
    assert len(result.ike_margins) == 4


def test_cheap_topology_is_info_only_and_its_spare_tunnel_is_not_an_outage() -> None:
    result = audit(topo.cheap())
    assert [(f.rule, f.severity) for f in result.findings] == [("ha.cheap-mode", "info")]
    # The spare tunnel (DOWN, AWS default options) is neither audited nor counted.
    assert list(result.ike_margins) == ["aws-tokyo:vpn-000a tunnel 198.51.100.1"]


def _gcp_drop_tunnel(inv: Inventory) -> Inventory:
    return topo.with_gcp(inv, tunnels=inv.gcp[0].tunnels[:3])


def _ext(inv: Inventory, **changes: object) -> Inventory:
    return topo.with_gcp(inv, external_gateways=(replace(inv.gcp[0].external_gateways[0], **changes),))  # type: ignore[arg-type]


def _gw(inv: Inventory, **changes: object) -> Inventory:
    return topo.with_gcp(inv, ha_gateways=(replace(inv.gcp[0].ha_gateways[0], **changes),))  # type: ignore[arg-type]


def _router(inv: Inventory, **changes: object) -> Inventory:
    return topo.with_gcp(inv, routers=(replace(inv.gcp[0].routers[0], **changes),))  # type: ignore[arg-type]


def _table(inv: Inventory, **changes: object) -> Inventory:
    return topo.with_aws(inv, route_tables=(replace(inv.aws[0].route_tables[0], **changes),))  # type: ignore[arg-type]


def _without_route(inv: Inventory, prefix: str) -> Inventory:
    routes = tuple(r for r in inv.aws[0].route_tables[0].routes if r.prefix != prefix)
    return _table(inv, routes=routes)


def _peer_wrong(inv: Inventory) -> Inventory:
    router = inv.gcp[0].routers[0]
    peers = list(router.peers)
    peers[1] = replace(peers[1], peer_ip_address="169.254.10.9")
    return _router(inv, peers=tuple(peers))


def _gcp_tunnel(inv: Inventory, index: int, **changes: object) -> Inventory:
    tunnels = list(inv.gcp[0].tunnels)
    tunnels[index] = replace(tunnels[index], **changes)  # type: ignore[arg-type]
    return topo.with_gcp(inv, tunnels=tuple(tunnels))


def _interface_without_range(inv: Inventory) -> Inventory:
    router = inv.gcp[0].routers[0]
    interfaces = list(router.interfaces)
    interfaces[2] = replace(interfaces[2], ip_range="")
    return _router(inv, interfaces=tuple(interfaces))


def _networks(inv: Inventory, hub_export: bool = True, spoke_import: bool = True) -> Inventory:
    return topo.with_gcp(
        inv,
        networks=(
            Network(topo.HUB, topo.HUB_SUBNETS, (Peering("hub-to-spoke", topo.SPOKE, "ACTIVE", hub_export, False),)),
            Network(
                topo.SPOKE, topo.SPOKE_SUBNETS, (Peering("spoke-to-hub", topo.HUB, "ACTIVE", False, spoke_import),)
            ),
        ),
    )


def _zones(inv: Inventory, *zones: DnsZone) -> Inventory:
    return topo.with_gcp(inv, dns_zones=zones)


FOUR = topo.four_tunnels
CHEAP = topo.cheap
FORWARD = DnsZone("aws-internal", "aws.internal.", "forwarding", (topo.HUB,), forwarding_targets=("10.0.0.2",))
PEER = DnsZone("aws-internal-peer", "aws.internal.", "peering", (topo.SPOKE,), target_network=topo.HUB)

BROKEN: list[tuple[str, Callable[[], Inventory], str, str, int]] = [
    # (case, fixture, rule, severity, how many findings of it)
    ("three-gcp-tunnels", lambda: _gcp_drop_tunnel(FOUR()), "ha.tunnel-count", "warning", 1),
    (
        "cheap-cgw-on-second-ip",
        lambda: topo.with_connection(CHEAP(), 0, customer_gateway_ip=topo.HA_IPS[1]),
        "ha.cheap-mode-customer-gateway",
        "error",
        1,
    ),
    (
        "four-ips-declared-two",
        lambda: _ext(FOUR(), redundancy_type="TWO_IPS_REDUNDANCY"),
        "ha.redundancy-type",
        "error",
        1,
    ),
    (
        "cheap-declared-two",
        lambda: _ext(CHEAP(), redundancy_type="TWO_IPS_REDUNDANCY"),
        "ha.redundancy-type",
        "error",
        1,
    ),
    (
        "redundancy-not-met",
        lambda: _gw(FOUR(), redundancy=(("aws-peer", "CONNECTION_REDUNDANCY_NOT_MET"),)),
        "ha.redundancy-not-met",
        "error",
        1,
    ),
    ("aws-tunnel-down", lambda: topo.with_tunnel(FOUR(), 2, status="DOWN"), "ha.tunnel-down", "warning", 1),
    (
        "gcp-tunnel-down",
        lambda: topo.with_gcp(
            FOUR(),
            tunnels=(*FOUR().gcp[0].tunnels[:3], replace(FOUR().gcp[0].tunnels[3], status="NO_INCOMING_PACKETS")),
        ),
        "ha.tunnel-down",
        "warning",
        1,
    ),
    (
        "external-ip-hard-coded",
        lambda: _ext(FOUR(), interfaces=(*FOUR().gcp[0].external_gateways[0].interfaces[:3], (3, "198.51.100.99"))),
        "wiring.external-interface-ip",
        "error",
        1,
    ),
    (
        "external-ips-swapped",
        lambda: _ext(
            FOUR(), interfaces=((0, topo.AWS_IPS[2]), (1, topo.AWS_IPS[3]), (2, topo.AWS_IPS[0]), (3, topo.AWS_IPS[1]))
        ),
        "wiring.external-interface-ip",
        "error",
        4,
    ),
    (
        "cgw-not-gcp-ip",
        lambda: topo.with_connection(FOUR(), 1, customer_gateway_ip="203.0.113.99"),
        "wiring.customer-gateway-ip",
        "error",
        1,
    ),
    (
        "cgw-shared",
        lambda: topo.with_connection(FOUR(), 1, customer_gateway_id="cgw-000a"),
        "wiring.customer-gateway-shared",
        "error",
        1,
    ),
    (
        "inside-reserved",
        lambda: topo.with_tunnel(FOUR(), 0, inside_cidr="169.254.169.252/30"),
        "inside.cidr-invalid",
        "error",
        1,
    ),
    (
        "inside-reserved-low",
        lambda: topo.with_tunnel(FOUR(), 0, inside_cidr="169.254.3.0/30"),
        "inside.cidr-invalid",
        "error",
        1,
    ),
    (
        "inside-not-30",
        lambda: topo.with_tunnel(FOUR(), 0, inside_cidr="169.254.10.0/29"),
        "inside.cidr-invalid",
        "error",
        1,
    ),
    (
        "inside-not-link-local",
        lambda: topo.with_tunnel(FOUR(), 0, inside_cidr="192.0.2.0/30"),
        "inside.cidr-invalid",
        "error",
        1,
    ),
    ("inside-unset", lambda: topo.with_tunnel(FOUR(), 0, inside_cidr=None), "inside.cidr-invalid", "error", 1),
    (
        "inside-duplicate",
        lambda: topo.with_tunnel(FOUR(), 3, inside_cidr=topo.INSIDE[0]),
        "inside.cidr-duplicate",
        "error",
        1,
    ),
    ("router-peer-ip", lambda: _peer_wrong(FOUR()), "inside.router-mismatch", "error", 1),
    (
        "tunnel-on-the-other-ha-interface",
        lambda: _gcp_tunnel(FOUR(), 1, gateway_interface=1),
        "wiring.tunnel-gateway-interface",
        "error",
        1,
    ),
    (
        "two-tunnels-on-one-external-interface",
        lambda: _gcp_tunnel(FOUR(), 3, peer_interface=2, peer_ip=topo.AWS_IPS[2]),
        "wiring.peer-interface-shared",
        "error",
        1,
    ),
    (
        "router-interface-no-range",
        lambda: _interface_without_range(FOUR()),
        "inside.router-interface-no-range",
        "error",
        1,
    ),
    (
        "ikev1-allowed",
        lambda: topo.with_options(FOUR(), 0, ike_versions=("ikev1", "ikev2")),
        "ipsec.ike-version",
        "warning",
        1,
    ),
    ("ike-default", lambda: topo.with_options(FOUR(), 1, ike_versions=()), "ipsec.ike-version", "warning", 1),
    ("ikev1-only", lambda: topo.with_options(FOUR(), 1, ike_versions=("ikev1",)), "ipsec.ike-version", "error", 1),
    (
        "two-encryptions",
        lambda: topo.with_options(FOUR(), 0, phase1_encryption=("AES128", "AES256")),
        "ipsec.single-transform",
        "error",
        1,
    ),
    (
        "phase2-sha384",
        lambda: topo.with_options(FOUR(), 0, phase2_integrity=("SHA2-384",)),
        "ipsec.unsupported-algorithm",
        "error",
        1,
    ),
    ("dh-not-gcp-first", lambda: topo.with_options(FOUR(), 0, phase1_dh=(19,)), "ipsec.dh-gcp-first", "error", 1),
    ("small-path-mtu", lambda: replace(FOUR(), mtu=400), "ipsec.message-size", "error", 4),
    (
        "spoke-not-advertised",
        lambda: _router(FOUR(), advertised_ranges=(topo.DNS_RANGE,)),
        "routing.spoke-not-advertised",
        "error",
        1,
    ),
    ("hub-does-not-export", lambda: _networks(FOUR(), hub_export=False), "routing.peering-custom-routes", "error", 1),
    (
        "spoke-does-not-import",
        lambda: _networks(FOUR(), spoke_import=False),
        "routing.peering-custom-routes",
        "error",
        1,
    ),
    ("aws-did-not-learn", lambda: _without_route(FOUR(), "10.30.0.0/16"), "routing.aws-not-learned", "error", 1),
    (
        "route-limit-reached",
        lambda: topo.with_tunnel(FOUR(), 0, accepted_routes=100),
        "routing.route-limit",
        "error",
        1,
    ),
    ("route-limit-close", lambda: topo.with_tunnel(FOUR(), 0, accepted_routes=95), "routing.route-limit", "warning", 1),
    (
        "not-propagating",
        lambda: _table(FOUR(), propagations=("tgw-attach-000a",)),
        "routing.tgw-association",
        "error",
        1,
    ),
    (
        "wrong-route-table",
        lambda: topo.with_aws(FOUR(), intended_route_tables=("tgw-rtb-0002",)),
        "routing.tgw-association",
        "error",
        2,
    ),
    (
        "no-dns-return-route",
        lambda: _router(_without_route(FOUR(), topo.DNS_RANGE), advertised_ranges=topo.SPOKE_SUBNETS),
        "dns.return-route",
        "error",
        1,
    ),
    (
        "resolver-vpc-no-return-route",
        lambda: topo.with_aws(FOUR(), resolver_route_tables=(VpcRouteTable("rtb-0001", (("0.0.0.0/0", "igw-1"),)),)),
        "dns.return-route",
        "error",
        1,
    ),
    (
        "forwarding-in-two-vpcs",
        lambda: _zones(FOUR(), FORWARD, PEER, replace(FORWARD, name="fwd2", networks=(topo.SPOKE,))),
        "dns.forwarding-multiple-vpcs",
        "error",
        1,
    ),
    ("no-peering-zone", lambda: _zones(FOUR(), FORWARD), "dns.peering-zone", "warning", 1),
    (
        "peering-zone-wrong-target",
        lambda: _zones(FOUR(), FORWARD, replace(PEER, target_network=topo.SPOKE)),
        "dns.peering-zone",
        "warning",
        1,
    ),
]


@pytest.mark.parametrize(("case", "fixture", "rule", "severity", "count"), BROKEN, ids=[b[0] for b in BROKEN])
def test_each_breakage_produces_exactly_its_finding(
    case: str, fixture: Callable[[], Inventory], rule: str, severity: str, count: int
) -> None:
    findings = _non_info(fixture())
    assert [(f.rule, f.severity) for f in findings] == [(rule, severity)] * count, findings
    for f in findings:
        assert f.message and f.fix and f.object
        assert f.fix.endswith(".") and "\n" not in f.fix


def test_every_rule_has_a_broken_fixture() -> None:
    covered = {b[2] for b in BROKEN} | {"ha.cheap-mode"}
    assert covered == set(rules.RULES)


def test_aws_default_options_trip_every_ipsec_rule_and_predict_fragmentation() -> None:
    defaults = topo.with_tunnel(FOUR(), 0, options=replace(topo.GOOD_OPTIONS.__class__()))
    found = {f.rule for f in _non_info(defaults)}
    # The lists are the cause of the oversized message: one finding (single-transform) says both.
    assert found == {"ipsec.ike-version", "ipsec.single-transform"}
    msg = next(f.message for f in _non_info(defaults) if f.rule == "ipsec.single-transform")
    assert "CREATE_CHILD_SA" in msg and "exceeds the path MTU 1500" in msg


def test_dh17_is_unsupported_and_not_gcp_first() -> None:
    found = [f.rule for f in _non_info(topo.with_options(FOUR(), 0, phase1_dh=(17,), phase2_dh=(17,)))]
    assert found == ["ipsec.dh-gcp-first", "ipsec.unsupported-algorithm"]


def test_mismatched_wiring_messages_name_the_expected_address() -> None:
    inv = _ext(FOUR(), interfaces=(*FOUR().gcp[0].external_gateways[0].interfaces[:3], (3, "198.51.100.99")))
    (finding,) = _non_info(inv)
    assert "vpn-000b tunnel2 outside address 198.51.100.4" in finding.message
    assert "198.51.100.4" in finding.fix


def test_router_mismatch_names_both_inside_addresses() -> None:
    (finding,) = _non_info(_peer_wrong(FOUR()))
    assert "169.254.10.5" in finding.fix and "169.254.10.6/30" in finding.fix


def test_aws_only_inventory_audits_every_connection() -> None:
    inv = replace(topo.with_options(FOUR(), 3, phase2_dh=(14, 19)), gcp=())
    assert [f.rule for f in _non_info(inv)] == ["ipsec.single-transform"]


def test_onprem_connection_on_the_same_region_is_not_held_to_gcp_rules() -> None:
    onprem = replace(
        FOUR().aws[0].connections[0],
        id="vpn-onprem",
        customer_gateway_id="cgw-onprem",
        customer_gateway_ip="192.0.2.50",
        attachment_id="tgw-attach-onprem",
        tunnels=(
            replace(
                FOUR().aws[0].connections[0].tunnels[0],
                outside_ip="198.51.100.50",
                inside_cidr="169.254.20.0/30",
                options=topo.GOOD_OPTIONS.__class__(),
            ),
        ),
    )
    inv = topo.with_aws(FOUR(), connections=(*FOUR().aws[0].connections, onprem))
    assert _non_info(inv) == []


def test_resolver_vpc_route_to_the_tgw_is_enough() -> None:
    table = VpcRouteTable("rtb-0001", (("0.0.0.0/0", "igw-1"), ("35.199.192.0/19", "tgw-0001")))
    assert _non_info(topo.with_aws(FOUR(), resolver_route_tables=(table,))) == []


def test_counts_feed_the_metric() -> None:
    result = audit(topo.with_options(FOUR(), 0, phase1_dh=(19,)))
    assert result.counts() == {("ipsec.dh-gcp-first", "error"): 1}


def test_router_interface_without_range_is_reported_whatever_the_aws_inside_cidr() -> None:
    inv = topo.with_tunnel(_interface_without_range(FOUR()), 2, inside_cidr=None)
    found = {(f.rule, f.object) for f in _non_info(inv)}
    assert ("inside.router-interface-no-range", "gcp-hub:Cloud Router cr-hub tunnel tunnel-2") in found
    assert "inside.router-mismatch" not in {rule for rule, _ in found}


def test_tunnel_interface_findings_name_the_interface_to_use() -> None:
    (wrong_if,) = _non_info(_gcp_tunnel(FOUR(), 2, gateway_interface=0))
    assert wrong_if.object == "gcp-hub:VPN tunnel tunnel-2"
    assert "HA VPN interface 1" in wrong_if.message and "vpnGatewayInterface to 1" in wrong_if.fix
    (shared,) = _non_info(_gcp_tunnel(FOUR(), 3, peer_interface=2, peer_ip=topo.AWS_IPS[2]))
    assert shared.object == "gcp-hub:VPN tunnel tunnel-3" and "like tunnel tunnel-2" in shared.message
    assert "interface 3 has no tunnel" in shared.fix
