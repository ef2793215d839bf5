"""Usable-path counting for expected prefixes, per cloud's rules (DESIGN.md)."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.model import BgpSession, LearnedRoute, Snapshot, Tunnel
from watchdog.paths import PathIndex, covers, expected_paths


def aws_snapshot(down: tuple[str, ...] = ()) -> Snapshot:
    tunnels = tuple(
        Tunnel(conn, ip, ip, f"203.0.113.{1 + i // 2}", up=ip not in down, status="DOWN" if ip in down else "UP")
        for i, (conn, ip) in enumerate(
            [("vpn-a", "198.51.100.1"), ("vpn-a", "198.51.100.2"), ("vpn-b", "198.51.100.3"), ("vpn-b", "198.51.100.4")]
        )
    )
    routes = (
        LearnedRoute("tgw-rtb-1", "198.18.0.0/24", "tgw-attach-a", connection="vpn-a"),
        LearnedRoute("tgw-rtb-1", "198.18.0.0/24", "tgw-attach-b", connection="vpn-b"),
        LearnedRoute("tgw-rtb-1", "198.18.2.0/23", "tgw-attach-a", connection="vpn-a"),
    )
    return Snapshot("aws", "aws", 0.0, tunnels=tunnels, routes=routes)


def test_aws_paths_are_up_tunnels_of_connections_carrying_the_route() -> None:
    assert len(expected_paths(aws_snapshot(), ["198.18.0.0/24"])["198.18.0.0/24"]) == 4
    paths = expected_paths(aws_snapshot(down=("198.51.100.1",)), ["198.18.0.0/24"])["198.18.0.0/24"]
    assert paths == {"vpn-a/198.51.100.2", "vpn-b/198.51.100.3", "vpn-b/198.51.100.4"}


def test_containing_route_counts_and_missing_prefix_has_no_path() -> None:
    paths = expected_paths(aws_snapshot(), ["198.18.3.0/24", "198.18.9.0/24", "2001:db8::/32"])
    assert len(paths["198.18.3.0/24"]) == 2  # covered by 198.18.2.0/23 over vpn-a only
    assert paths["198.18.9.0/24"] == frozenset()
    assert paths["2001:db8::/32"] == frozenset()


def test_gcp_route_needs_its_session_and_tunnel_up() -> None:
    tunnels = tuple(
        Tunnel("ha-gw", f"t{i}", "203.0.113.1", f"198.51.100.{i}", up=True, status="ESTABLISHED") for i in range(2)
    )
    sessions = (
        BgpSession("cr", "p0", "169.254.10.2", "169.254.10.1", True, "Established", tunnel="t0"),
        BgpSession("cr", "p1", "169.254.10.6", "169.254.10.5", True, "Established", tunnel="t1"),
    )
    routes = (
        LearnedRoute("cr", "198.18.1.0/24", "169.254.10.1", peer="p0", tunnel="t0"),
        LearnedRoute("cr", "198.18.1.0/24", "169.254.10.5", peer="p1", tunnel="t1"),
    )
    snap = Snapshot("gcp", "gcp", 0.0, tunnels=tunnels, bgp_sessions=sessions, routes=routes)
    assert len(expected_paths(snap, ["198.18.1.0/24"])["198.18.1.0/24"]) == 2
    session_down = replace(snap, bgp_sessions=(replace(sessions[0], up=False), sessions[1]))
    assert expected_paths(session_down, ["198.18.1.0/24"])["198.18.1.0/24"] == {"ha-gw/t1"}
    tunnel_down = replace(snap, tunnels=(tunnels[0], replace(tunnels[1], up=False)))
    assert expected_paths(tunnel_down, ["198.18.1.0/24"])["198.18.1.0/24"] == {"ha-gw/t0"}


def test_frr_paths_are_established_neighbors() -> None:
    sessions = (
        BgpSession("r", "169.254.10.1", "169.254.10.2", "169.254.10.1", True, "Established"),
        BgpSession("r", "169.254.10.5", "169.254.10.6", "169.254.10.5", False, "Active"),
    )
    routes = tuple(LearnedRoute("r", "198.18.1.0/24", s.peer_ip, peer=s.peer) for s in sessions)
    snap = Snapshot("frr", "frr", 0.0, bgp_sessions=sessions, routes=routes)
    assert expected_paths(snap, ["198.18.1.0/24"])["198.18.1.0/24"] == {"169.254.10.1"}


def test_covers() -> None:
    assert covers("10.0.0.0/8", "10.20.0.0/16")
    assert covers("10.20.0.0/16", "10.20.0.0/16")
    assert not covers("10.20.0.0/16", "10.0.0.0/8")
    assert not covers("not-a-prefix", "10.0.0.0/8")
    assert not covers("::/0", "10.0.0.0/8")


@settings(max_examples=300, deadline=None)
@given(
    st.ip_addresses(v=4),
    st.integers(0, 32),
    st.ip_addresses(v=4),
    st.integers(0, 32),
)
def test_covers_agrees_with_ipaddress(a: object, alen: int, b: object, blen: int) -> None:
    route = ipaddress.ip_network(f"{a}/{alen}", strict=False)
    wanted = ipaddress.ip_network(f"{b}/{blen}", strict=False)
    assert covers(str(route), str(wanted)) == wanted.subnet_of(route)
    # and the index finds exactly the covering routes
    snap = Snapshot("x", "frr", 0.0, routes=(LearnedRoute("r", str(route), "169.254.0.1"),))
    assert bool(PathIndex(snap).covering_routes(str(wanted))) == wanted.subnet_of(route)
