"""The lab's GCP API emulator, read by our real GcpExporter: every value comes from the live lab.

One lab per module (namespace prefix from `lab_prefix("g")`), always torn down; BGP 1/3 and DPD 2 s,
so a cut shows within seconds. The emulator is the one `labctl up` starts (Compute REST on
--gcp-port, Cloud Monitoring gRPC on --gcp-monitoring-port).
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.cloud import compute_v1

from deploy.lab import topology as topo
from exporters.gcp import GcpExporter, monitoring_client
from tests.compute_shapes import shape_errors
from tests.conftest import lab_prefix
from tests.lab_fixture import Lab, poll_until, running_lab
from watchdog.config import GcpExporterConfig
from watchdog.model import Snapshot

pytestmark = [pytest.mark.netns, pytest.mark.slow]

PREFIX = lab_prefix("g")
REGIONAL = f"/compute/v1/projects/{topo.GCP_PROJECT}/regions/{topo.GCP_REGION}"


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with running_lab("g") as lab:
        state = json.loads((lab.dir / "state.json").read_text())
        assert (state["gcp_api_port"], state["gcp_monitoring_port"]) == (lab.ports["gcp"], lab.ports["monitoring"])
        yield lab


@pytest.fixture(scope="module")
def exporter(lab: Lab) -> Iterator[GcpExporter]:
    config = GcpExporterConfig(
        name="gcp-lab",
        type="gcp",
        project=topo.GCP_PROJECT,
        region=topo.GCP_REGION,
        endpoint=lab.url("gcp"),
        monitoring_endpoint=lab.url("monitoring"),
    )  # no credentials: anonymous over plain http
    built = GcpExporter(config, timeout=5.0)
    yield built
    built.close()


def get(lab: Lab, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"{lab.url('gcp')}{path}", timeout=5) as response:  # loopback only
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_healthy_lab_seen_through_the_gcp_api(lab: Lab, exporter: GcpExporter) -> None:
    snapshot = exporter.poll()

    assert [(t.name, t.status, t.local_ip, t.peer_ip, t.router) for t in snapshot.tunnels] == [
        (spec.name, "ESTABLISHED", spec.gcp_outside, spec.aws_outside, topo.CLOUD_ROUTER) for spec in topo.TUNNELS
    ]
    assert [(s.peer, s.up, s.local_ip, s.peer_ip, s.tunnel, s.received_prefixes) for s in snapshot.bgp_sessions] == [
        (f"peer-{spec.name}", True, spec.gcp_inside, spec.aws_inside, spec.name, 2) for spec in topo.TUNNELS
    ]
    assert all(s.uptime_seconds is not None for s in snapshot.bgp_sessions)
    paths = {prefix: {r.tunnel for r in snapshot.routes if r.prefix == prefix} for prefix in topo.AWS_VPC}
    assert paths == {prefix: {spec.name for spec in topo.TUNNELS} for prefix in topo.AWS_VPC}
    assert [(g.name, g.redundancy_met) for g in snapshot.gateways] == [(topo.HA_VPN_GATEWAY, True)]


def test_lab_responses_fit_compute_v1(lab: Lab) -> None:
    project = f"/compute/v1/projects/{topo.GCP_PROJECT}"
    documents = {
        f"{REGIONAL}/vpnTunnels": compute_v1.VpnTunnelList,
        f"{REGIONAL}/vpnGateways": compute_v1.VpnGatewayList,
        f"{REGIONAL}/vpnGateways/{topo.HA_VPN_GATEWAY}/getStatus": compute_v1.VpnGatewaysGetStatusResponse,
        f"{REGIONAL}/routers": compute_v1.RouterList,
        f"{REGIONAL}/routers/{topo.CLOUD_ROUTER}/getRouterStatus": compute_v1.RouterStatusResponse,
        f"{project}/global/externalVpnGateways/{topo.EXTERNAL_VPN_GATEWAY}": compute_v1.ExternalVpnGateway,
        f"{project}/global/networks/{topo.HUB_NETWORK}": compute_v1.Network,
        f"{project}/global/networks/{topo.SPOKE_NETWORK}": compute_v1.Network,
        f"{project}/aggregated/subnetworks": compute_v1.SubnetworkAggregatedList,
    }
    for path, message in documents.items():
        status, document = get(lab, path)
        assert status == 200 and shape_errors(document, message) == [], path

    _, zones = get(lab, f"/dns/v1/projects/{topo.GCP_PROJECT}/managedZones")
    assert sorted((z["name"], z.get("forwardingConfig", z.get("peeringConfig"))) for z in zones["managedZones"]) == [
        ("aws-internal", {"targetNameServers": [{"ipv4Address": topo.DNS_ADDRESS, "forwardingPath": "private"}]}),
        (
            "aws-internal-peer",
            {"targetNetwork": {"networkUrl": compute(f"global/networks/{topo.HUB_NETWORK}")}},
        ),
    ]
    _, hub = get(lab, f"{project}/global/networks/{topo.HUB_NETWORK}")
    assert [(p["name"], p["exportCustomRoutes"]) for p in hub["peerings"]] == [("hub-to-spoke", True)]


def compute(rest: str) -> str:
    return f"https://www.googleapis.com/compute/v1/projects/{topo.GCP_PROJECT}/{rest}"


def test_cut_shows_in_the_gcp_api_and_restore_brings_it_back(lab: Lab, exporter: GcpExporter) -> None:
    def tunnel3_down(s: Snapshot) -> bool:
        tunnel = next(t for t in s.tunnels if t.name == "tun3")
        session = next(x for x in s.bgp_sessions if x.peer == "peer-tun3")
        return not tunnel.up and not session.up

    assert lab.labctl("cut", "3").returncode == 0
    snapshot, took = poll_until(exporter, tunnel3_down, 30)
    print(f"\ncut 3 -> tunnel and peer down in the GCP API after {took:.2f} s")
    tun3 = next(t for t in snapshot.tunnels if t.name == "tun3")
    assert tun3.status in ("NO_INCOMING_PACKETS", "NEGOTIATION_FAILURE", "FIRST_HANDSHAKE")
    assert [t.name for t in snapshot.tunnels if t.up] == ["tun1", "tun2", "tun4"]
    assert not any(r.tunnel == "tun3" for r in snapshot.routes)
    assert snapshot.gateways[0].redundancy_met is False

    assert lab.labctl("restore", "3").returncode == 0
    _, took = poll_until(exporter, lambda s: all(t.up for t in s.tunnels) and all(x.up for x in s.bgp_sessions), 60)
    print(f"restore 3 -> all up again in the GCP API after {took:.2f} s")


def test_removing_the_spoke_network_drops_it_from_the_advertisements(lab: Lab) -> None:
    def advertised() -> list[str]:
        _, router = get(lab, f"{REGIONAL}/routers/{topo.CLOUD_ROUTER}")
        return [r["range"] for r in router["bgp"]["advertisedIpRanges"]]

    # The DNS forwarders' stand-in range is advertised as the real one.
    every = [topo.GCP_VPC[0], topo.SPOKE_RANGE, topo.DNS_FORWARDING_RANGE]
    assert advertised() == every
    assert lab.labctl("advertise", "no-spoke").returncode == 0
    try:
        deadline = time.monotonic() + 15
        while advertised() != [topo.GCP_VPC[0], topo.DNS_FORWARDING_RANGE] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert advertised() == [topo.GCP_VPC[0], topo.DNS_FORWARDING_RANGE]
    finally:
        assert lab.labctl("advertise", "spoke").returncode == 0
    deadline = time.monotonic() + 15
    while advertised() != every and time.monotonic() < deadline:
        time.sleep(0.2)
    assert advertised() == every


def test_what_the_emulator_does_not_implement_answers_at_once(lab: Lab) -> None:
    start = time.monotonic()
    status, body = get(lab, f"{REGIONAL}/forwardingRules")
    assert status == 404 and body["error"]["errors"][0]["reason"] == "notFound"
    log = (lab.dir / "gcp" / "api.log").read_text()
    assert f"404 notFound: GET {REGIONAL}/forwardingRules" in log

    client = monitoring_client(lab.url("monitoring"), None)
    with pytest.raises(Exception) as info:
        client.list_metric_descriptors(name=f"projects/{topo.GCP_PROJECT}", timeout=5)
    assert getattr(info.value, "grpc_status_code", None) == grpc.StatusCode.UNIMPLEMENTED
    assert time.monotonic() - start < 5


def test_packet_counters_rise_while_a_ping_runs_across_a_tunnel(lab: Lab, exporter: GcpExporter) -> None:
    def counts(s: Snapshot) -> dict[tuple[str, str], int]:
        return {(c.tunnel, c.direction): int(c.count) for c in s.packet_counts if c.status == "successful"}

    before = counts(exporter.poll())
    ping = subprocess.run(
        ["ip", "netns", "exec", f"{PREFIX}gcp", "fping", "-q", "-c", "60", "-p", "50", topo.TUNNELS[1].aws_inside],
        capture_output=True,
        text=True,
        timeout=30,
    )
    # "169.254.10.5 : xmt/rcv/%loss = 60/58/3%, ...": every answered echo went out and came back over tun2
    answered = int(ping.stderr.split("=")[1].split("/")[1])
    assert answered >= 30, ping.stderr

    def risen(s: Snapshot) -> bool:
        now = counts(s)
        return all(now.get(("tun2", d), 0) - before.get(("tun2", d), 0) >= answered for d in ("sent", "received"))

    snapshot, _ = poll_until(exporter, risen, 10)
    quiet = counts(snapshot)
    # The other tunnels carry only BGP keepalives (one a second each way) meanwhile.
    assert quiet.get(("tun1", "sent"), 0) - before.get(("tun1", "sent"), 0) < 30
