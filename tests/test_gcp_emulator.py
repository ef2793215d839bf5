"""The GCP emulator answers what the real Compute API answers: field names and types of compute_v1,
the responses' `kind`, pages of at most 500, paginated aggregated lists."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

from deploy.lab import topology as lab_topo
from deploy.lab.emulators.gcp import MAX_RESULTS, FakeGcp
from deploy.lab.emulators.gcp_audit import FakeGcpAudit
from deploy.lab.emulators.gcp_lab import LabGcp, LabView, PeerState, SaCounters, TunnelState, tunnels_from_sas
from tests.compute_shapes import shape_errors
from tests.fakes import audit_topologies as topo


@pytest.fixture
def gcp() -> Iterator[FakeGcp]:
    with FakeGcp() as fake:
        yield fake


def get(fake: FakeGcp, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"{fake.url}{path}", timeout=5) as response:  # loopback only
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def compute(fake: FakeGcp, rest: str) -> tuple[int, Any]:
    return get(fake, f"/compute/v1/projects/{fake.project}/{rest}")


def every_response(fake: FakeGcp) -> Iterator[tuple[str, Any, Any]]:
    """(path, JSON, compute_v1 type) of every list, get and custom method the fake serves."""
    list_types = {
        "vpnGateways": compute_v1.VpnGatewayList,
        "vpnTunnels": compute_v1.VpnTunnelList,
        "routers": compute_v1.RouterList,
        "externalVpnGateways": compute_v1.ExternalVpnGatewayList,
        "networks": compute_v1.NetworkList,
        "subnetworks": compute_v1.SubnetworkList,
    }
    item_types = {
        "vpnGateways": compute_v1.VpnGateway,
        "vpnTunnels": compute_v1.VpnTunnel,
        "routers": compute_v1.Router,
        "externalVpnGateways": compute_v1.ExternalVpnGateway,
        "networks": compute_v1.Network,
        "subnetworks": compute_v1.Subnetwork,
    }
    aggregated_types = {
        "vpnGateways": compute_v1.VpnGatewayAggregatedList,
        "vpnTunnels": compute_v1.VpnTunnelAggregatedList,
        "routers": compute_v1.RouterAggregatedList,
        "subnetworks": compute_v1.SubnetworkAggregatedList,
    }
    action_types = {
        "getStatus": compute_v1.VpnGatewaysGetStatusResponse,
        "getRouterStatus": compute_v1.RouterStatusResponse,
    }
    for collection in list(fake.collections):
        kind = collection.rsplit("/", 1)[-1]
        status, page = compute(fake, collection)
        assert status == 200, collection
        yield collection, page, list_types[kind]
        for item in fake.collections[collection]:
            path = f"{collection}/{item['name']}"
            yield path, compute(fake, path)[1], item_types[kind]
        if collection.startswith("regions/"):
            path = f"aggregated/{kind}"
            yield path, compute(fake, path)[1], aggregated_types[kind]
    for item_path, action in list(fake.actions):
        path = f"{item_path}/{action}"
        yield path, compute(fake, path)[1], action_types[action]


def test_every_default_response_fits_compute_v1(gcp: FakeGcp) -> None:
    seen = 0
    for path, document, message in every_response(gcp):
        assert shape_errors(document, message) == [], path
        seen += 1
    assert seen >= 18  # 6 lists, 3 aggregated lists, 6 items, 3 custom methods


def test_every_audit_response_fits_compute_v1() -> None:
    with FakeGcpAudit(topo.PROJECT, topo.REGION) as fake:
        fake.seed(topo.four_tunnels().gcp[0])
        checked = [(path, shape_errors(document, message)) for path, document, message in every_response(fake)]
    assert [(path, errors) for path, errors in checked if errors] == [] and len(checked) > 20


def test_the_shape_check_catches_invented_fields_and_enum_values() -> None:
    tunnel = {"name": "t", "status": "UP", "vpnGatewayInterface": "0", "tunnelColour": "red"}

    assert shape_errors(tunnel, compute_v1.VpnTunnel) == [
        "VpnTunnel.status: 'UP' is not a VpnTunnel.Status",
        "VpnTunnel.vpnGatewayInterface: '0' is not an integer",
        "VpnTunnel.tunnelColour: no such field in VpnTunnel",
    ]


def test_custom_methods_carry_the_real_kind(gcp: FakeGcp) -> None:
    _, router_status = compute(gcp, gcp.regional("routers") + "/cr-aws/getRouterStatus")
    _, gateway_status = compute(gcp, gcp.regional("vpnGateways") + "/ha-gw/getStatus")

    assert router_status["kind"] == "compute#routerStatusResponse"
    assert "kind" not in gateway_status and gateway_status["result"]["vpnConnections"]


def test_lists_are_cut_into_pages_of_at_most_500(gcp: FakeGcp) -> None:
    tunnels = gcp.regional("vpnTunnels")
    template = gcp.collections[tunnels][0]
    for i in range(4, 600):
        gcp.add(tunnels, {**template, "name": f"t-{i}", "selfLink": gcp.link(tunnels, f"t-{i}")})

    _, first = compute(gcp, tunnels)
    _, second = compute(gcp, f"{tunnels}?pageToken={first['nextPageToken']}")
    status, error = compute(gcp, f"{tunnels}?maxResults={MAX_RESULTS + 1}")

    assert (len(first["items"]), len(second["items"]), "nextPageToken" in second) == (500, 100, False)
    assert status == 400 and error["error"]["errors"][0]["reason"] == "invalid"
    client = compute_v1.VpnTunnelsClient(
        credentials=AnonymousCredentials(), client_options=ClientOptions(api_endpoint=gcp.url)
    )
    assert len(list(client.list(project=gcp.project, region=gcp.region))) == 600


def test_aggregated_lists_are_paginated_across_regions(gcp: FakeGcp) -> None:
    for region, count in (("us-central1", 3), ("europe-west1", 0)):
        gcp.collections[f"regions/{region}/subnetworks"] = []
        for i in range(count):
            gcp.add(f"regions/{region}/subnetworks", {"name": f"s-{i}", "ipCidrRange": f"198.18.{i}.0/24"})
    gcp.add(gcp.regional("subnetworks"), {"name": "hub-0", "ipCidrRange": "198.18.9.0/24"})
    client = compute_v1.SubnetworksClient(
        credentials=AnonymousCredentials(), client_options=ClientOptions(api_endpoint=gcp.url)
    )

    pages = list(
        client.aggregated_list(
            request=compute_v1.AggregatedListSubnetworksRequest(project=gcp.project, max_results=2)
        ).pages
    )

    names = sorted(s.name for page in pages for scoped in page.items.values() for s in scoped.subnetworks)
    assert len(pages) == 2 and names == ["hub-0", "s-0", "s-1", "s-2"]
    assert pages[0].items["regions/europe-west1"].warning.code == "NO_RESULTS_ON_PAGE"


# -- the lab's emulator off the lab: the same code, fed a reading instead of a running lab ----------


class Reading:
    """Stands in for the lab reader (the I/O boundary): hands out a fixed reading."""

    def __init__(self, view: LabView) -> None:
        self.current = view

    def view(self) -> LabView:
        return self.current

    def close(self) -> None:
        pass


def reading(**changes: Any) -> LabView:
    tunnels = {
        s.name: TunnelState("ESTABLISHED", "Tunnel is up and running.", {"1": SaCounters(10, 20, 1000, 2000)})
        for s in lab_topo.TUNNELS
    }
    peers = {s.aws_inside: PeerState(True, "Established", 42, 2) for s in lab_topo.TUNNELS}
    learned = tuple((p, s.aws_inside) for p in lab_topo.AWS_VPC for s in lab_topo.TUNNELS)
    fields: dict[str, Any] = {
        "taken_at": time.monotonic(),
        "tunnels": tunnels,
        "peers": peers,
        "learned": learned,
        "announced": (lab_topo.GCP_VPC[0], lab_topo.SPOKE_RANGE),
        **changes,
    }
    return LabView(**fields)


def test_sa_states_map_to_the_documented_tunnel_statuses() -> None:
    def ike(state: str, *children: tuple[str, str]) -> dict[str, Any]:
        return {"state": state, "child-sas": {f"c{u}": {"uniqueid": u, "state": s} for u, s in children}}

    sas = [
        {"tun1": ike("ESTABLISHED", ("1", "INSTALLED"))},
        {"tun1": ike("REKEYING", ("2", "INSTALLED"))},  # an IKE rekey: both SAs carry a child
        {"tun2": ike("CONNECTING")},
        {"tun3": ike("ESTABLISHED", ("3", "REKEYED"))},
    ]

    states = tunnels_from_sas(sas)

    assert {name: s.status for name, s in states.items()} == {
        "tun1": "ESTABLISHED",
        "tun2": "NO_INCOMING_PACKETS",
        "tun3": "FIRST_HANDSHAKE",
        "tun4": "NEGOTIATION_FAILURE",
    }
    assert sorted(states["tun1"].children) == ["1", "2"] and states["tun3"].children == {}


def test_lab_emulator_reports_the_dns_stand_in_as_cloud_dns_range_and_fits_compute_v1() -> None:
    view = reading(
        announced=(lab_topo.GCP_VPC[0], lab_topo.DNS_FORWARDING_STANDIN),
        tunnels={**reading().tunnels, "tun2": TunnelState("FIRST_HANDSHAKE", "Handshake with peer broken.")},
        peers={**reading().peers, lab_topo.TUNNELS[1].aws_inside: PeerState(False, "Active", None, 0)},
    )
    emulator = LabGcp(Reading(view))  # type: ignore[arg-type]
    emulator.compute.start()
    try:
        routers = f"{emulator.compute.regional('routers')}/{lab_topo.CLOUD_ROUTER}"
        _, router = compute(emulator.compute, routers)
        _, status = compute(emulator.compute, f"{routers}/getRouterStatus")
        _, gateway = compute(emulator.compute, f"{emulator.compute.regional('vpnGateways')}/ha-vpn-gw/getStatus")
        checked = [(p, shape_errors(d, m)) for p, d, m in every_response(emulator.compute)]
    finally:
        emulator.compute.stop()

    assert [r["range"] for r in router["bgp"]["advertisedIpRanges"]] == [lab_topo.GCP_VPC[0], "35.199.192.0/19"]
    peer2 = status["result"]["bgpPeerStatus"][1]
    assert (peer2["status"], peer2["state"], "uptimeSeconds" in peer2) == ("DOWN", "Active", False)
    assert gateway["result"]["vpnConnections"][0]["state"]["state"] == "CONNECTION_REDUNDANCY_NOT_MET"
    assert [(p, e) for p, e in checked if e] == [] and len(checked) > 20


def test_lab_emulator_packet_points_are_the_counter_deltas() -> None:
    reader = Reading(reading())
    emulator = LabGcp(reader)  # type: ignore[arg-type]
    emulator._sample_packets(100.0)  # the baseline
    grown = {**reader.current.tunnels}
    grown["tun1"] = TunnelState("ESTABLISHED", "", {"1": SaCounters(15, 27, 1500, 2700), "9": SaCounters(1, 1, 1, 1)})
    reader.current = reading(tunnels=grown)

    emulator._sample_packets(160.0)
    emulator._sample_packets(170.0)  # the same reading again: no new point

    points = {
        (s.metric_type.rsplit("/", 1)[-1], s.labels["tunnel_name"]): [(p.start, p.end, p.value) for p in s.points]
        for s in emulator.monitoring.series
    }
    assert points[("received_packets_count", "tun1")] == [(100.0, 160.0, 6)]
    assert points[("sent_packets_count", "tun1")] == [(100.0, 160.0, 8)]
    assert points[("sent_bytes_count", "tun1")] == [(100.0, 160.0, 701)]
    assert points[("sent_packets_count", "tun2")] == [(100.0, 160.0, 0)]
