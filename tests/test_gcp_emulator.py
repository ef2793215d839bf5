"""The GCP emulator answers what the real Compute API answers: field names and types of compute_v1,
the responses' `kind`, pages of at most 500, paginated aggregated lists."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

from deploy.lab.emulators.gcp import MAX_RESULTS, FakeGcp
from deploy.lab.emulators.gcp_audit import FakeGcpAudit
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
