"""Joining the AWS and GCP ends of each tunnel."""

from __future__ import annotations

from dataclasses import replace

from tests.health_lab import AWS, GCP, aws_snapshot, gcp_snapshot
from watchdog.join import TunnelPair, join_tunnels
from watchdog.model import Snapshot


def test_four_tunnels_pair_up_by_outside_ip() -> None:
    pairs = join_tunnels([aws_snapshot(), gcp_snapshot()])
    assert [p.info_labels() for p in pairs] == [
        (AWS, "vpn-1", "198.51.100.1", GCP, "tun1"),
        (AWS, "vpn-1", "198.51.100.2", GCP, "tun2"),
        (AWS, "vpn-2", "198.51.100.3", GCP, "tun3"),
        (AWS, "vpn-2", "198.51.100.4", GCP, "tun4"),
    ]
    assert pairs[0] == TunnelPair(AWS, "vpn-1", "198.51.100.1", GCP, "tun1", "ha-gw")


def test_down_tunnels_still_pair() -> None:
    assert len(join_tunnels([aws_snapshot(down={1, 2, 3, 4}), gcp_snapshot(down={1, 2, 3, 4})])) == 4


def test_customer_gateway_must_be_the_gcp_interface_when_known() -> None:
    gcp = gcp_snapshot()
    # tun1 claims 198.51.100.1 but from the second HA interface, which AWS does not know as its peer.
    wrong = replace(gcp.tunnels[0], local_ip="203.0.113.2")
    unknown = replace(gcp.tunnels[1], local_ip="")
    snap = replace(gcp, tunnels=(wrong, unknown, *gcp.tunnels[2:]))
    tunnels = {p.gcp_tunnel for p in join_tunnels([aws_snapshot(), snap])}
    assert tunnels == {"tun2", "tun3", "tun4"}


def test_ambiguous_outside_ip_is_left_unpaired() -> None:
    gcp = gcp_snapshot()
    twin = Snapshot("gcp-other", "gcp", 0, (replace(gcp.tunnels[0], name="dup"),))
    pairs = join_tunnels([aws_snapshot(), gcp, twin])
    assert "198.51.100.1" not in {p.aws_tunnel for p in pairs}
    assert len(pairs) == 3
    # The same outside IP seen by two AWS exporters is ambiguous too.
    other_aws = replace(aws_snapshot(), exporter="aws-osaka")
    assert join_tunnels([aws_snapshot(), other_aws, gcp]) == ()


def test_single_cloud_or_strongswan_gives_no_pairs() -> None:
    onprem = Snapshot("onprem", "strongswan", 0, aws_snapshot().tunnels)
    assert join_tunnels([aws_snapshot()]) == ()
    assert join_tunnels([onprem, gcp_snapshot()]) == ()
