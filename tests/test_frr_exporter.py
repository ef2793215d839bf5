"""FRR exporter against a fake vtysh (a script printing JSON recorded from the lab's FRR 8.4).

The recording is the gcp side while tunnel 1 was cut: neighbor 169.254.10.1 in `Connect`,
169.254.10.5 `Established` with 2 prefixes.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from exporters.frr import FrrExporter
from watchdog.config import FrrExporterConfig
from watchdog.errors import ExporterError
from watchdog.model import BgpSession, LearnedRoute

SUMMARY: dict = {
    "ipv4Unicast": {
        "routerId": "169.254.10.2",
        "as": 64514,
        "vrfId": 0,
        "vrfName": "default",
        "peerCount": 4,
        "peers": {
            "169.254.10.1": {
                "hostname": "aws-bgpd",
                "remoteAs": 64512,
                "localAs": 64514,
                "peerUptime": "00:00:03",
                "peerUptimeMsec": 3000,
                "peerUptimeEstablishedEpoch": 1795696868,
                "pfxRcd": 0,
                "pfxSnt": 0,
                "state": "Connect",
                "connectionsEstablished": 1,
                "connectionsDropped": 1,
            },
            "169.254.10.5": {
                "hostname": "aws-bgpd",
                "remoteAs": 64512,
                "localAs": 64514,
                "peerUptime": "00:00:19",
                "peerUptimeMsec": 19000,
                "peerUptimeEstablishedEpoch": 1795696852,
                "pfxRcd": 2,
                "pfxSnt": 4,
                "state": "Established",
                "connectionsEstablished": 1,
                "connectionsDropped": 0,
            },
        },
        "failedPeers": 1,
        "displayedPeers": 4,
        "totalPeers": 4,
        "dynamicPeers": 0,
        "bestPath": {"multiPathRelax": "False"},
    }
}
ROUTES: dict = {
    "vrfId": 0,
    "vrfName": "default",
    "tableVersion": 6,
    "routerId": "169.254.10.2",
    "defaultLocPrf": 100,
    "localAS": 64514,
    "routes": {
        "198.18.0.0/24": [
            {
                "valid": True,
                "bestpath": True,
                "selectionReason": "First path received",
                "pathFrom": "external",
                "prefix": "198.18.0.0",
                "prefixLen": 24,
                "network": "198.18.0.0/24",
                "version": 1,
                "metric": 0,
                "weight": 32768,
                "peerId": "(unspec)",
                "path": "",
                "origin": "IGP",
                "nexthops": [{"ip": "0.0.0.0", "hostname": "gcp-bgpd", "afi": "ipv4", "used": True}],
            }
        ],
        "198.18.1.0/24": [
            {
                "valid": True,
                "bestpath": True,
                "selectionReason": "Neighbor IP",
                "pathFrom": "external",
                "prefix": "198.18.1.0",
                "prefixLen": 24,
                "network": "198.18.1.0/24",
                "version": 5,
                "metric": 0,
                "weight": 0,
                "peerId": "169.254.10.5",
                "path": "64512",
                "origin": "IGP",
                "nexthops": [{"ip": "169.254.10.5", "hostname": "aws-bgpd", "afi": "ipv4", "used": True}],
            }
        ],
    },
}
NEIGHBORS: dict = {
    "169.254.10.1": {
        "remoteAs": 64512,
        "localAs": 64514,
        "hostname": "aws-bgpd",
        "remoteRouterId": "0.0.0.0",
        "localRouterId": "169.254.10.2",
        "bgpState": "Connect",
        "lastResetDueTo": "BGP Notification send",
        "hostLocal": "Unknown",
        "portLocal": -1,
        "hostForeign": "Unknown",
        "portForeign": -1,
    },
    "169.254.10.5": {
        "remoteAs": 64512,
        "localAs": 64514,
        "hostname": "aws-bgpd",
        "remoteRouterId": "169.254.10.1",
        "localRouterId": "169.254.10.2",
        "bgpState": "Established",
        "bgpTimerUpMsec": 19000,
        "lastResetDueTo": "Waiting for peer OPEN",
        "hostLocal": "169.254.10.6",
        "portLocal": 41144,
        "hostForeign": "169.254.10.5",
        "portForeign": 179,
    },
}

FAKE_VTYSH = """
import json, pathlib, sys, time
data = pathlib.Path(sys.argv[1])
command = sys.argv[sys.argv.index("-c") + 1]
mode = (data / "mode").read_text().strip() if (data / "mode").exists() else "ok"
if mode == "garbage":
    print("% Unknown command: " + command)
elif mode == "fail":
    print("% BGP instance not found", file=sys.stderr)
    sys.exit(1)
elif mode == "down":
    print("Exiting: failed to connect to any daemons.", file=sys.stderr)
    sys.exit(1)
elif mode == "hang":
    time.sleep(30)
elif mode == "list":
    print("[]")
else:
    print((data / (command.replace(" ", "_") + ".out")).read_text())
"""


@pytest.fixture
def fake_vtysh(tmp_path: Path) -> tuple[list[str], Path]:
    script = tmp_path / "vtysh.py"
    script.write_text(FAKE_VTYSH)
    for command, data in (
        ("show bgp summary json", SUMMARY),
        ("show bgp neighbors json", NEIGHBORS),
        ("show ip bgp json", ROUTES),
    ):
        (tmp_path / (command.replace(" ", "_") + ".out")).write_text(json.dumps(data))
    return [sys.executable, str(script), str(tmp_path)], tmp_path


def exporter(vtysh: list[str], timeout: float = 5.0) -> FrrExporter:
    return FrrExporter(FrrExporterConfig(name="gcp-frr", type="frr", vtysh=tuple(vtysh)), timeout=timeout)


def test_sessions_report_state_uptime_prefixes_and_local_address(fake_vtysh: tuple[list[str], Path]) -> None:
    snapshot = exporter(fake_vtysh[0]).poll()
    assert snapshot.cloud == "frr" and snapshot.exporter == "gcp-frr"
    assert snapshot.bgp_sessions == (
        BgpSession(
            router="169.254.10.2",
            peer="169.254.10.1",
            local_ip="",
            peer_ip="169.254.10.1",
            up=False,
            state="Connect",
            uptime_seconds=None,
            received_prefixes=0,
        ),
        BgpSession(
            router="169.254.10.2",
            peer="169.254.10.5",
            local_ip="169.254.10.6",
            peer_ip="169.254.10.5",
            up=True,
            state="Established",
            uptime_seconds=19.0,
            received_prefixes=2,
        ),
    )


def test_learned_routes_name_their_neighbor_and_skip_local_networks(fake_vtysh: tuple[list[str], Path]) -> None:
    routes = exporter(fake_vtysh[0]).poll().routes
    # 198.18.0.0/24 is gcp's own `network` (peerId "(unspec)", next hop 0.0.0.0): not learned.
    assert routes == (
        LearnedRoute(router="169.254.10.2", prefix="198.18.1.0/24", next_hop="169.254.10.5", peer="169.254.10.5"),
    )


def test_invalid_paths_are_not_learned(fake_vtysh: tuple[list[str], Path]) -> None:
    vtysh, data = fake_vtysh
    routes = json.loads(json.dumps(ROUTES))
    routes["routes"]["198.18.1.0/24"][0]["valid"] = False
    (data / "show_ip_bgp_json.out").write_text(json.dumps(routes))
    assert exporter(vtysh).poll().routes == ()


@pytest.mark.parametrize(
    ("mode", "reason", "text"),
    [
        ("garbage", "malformed", "not JSON"),
        ("list", "malformed", "expected a JSON object"),
        ("fail", "api_error", "BGP instance not found"),
        ("down", "network", "failed to connect"),
    ],
)
def test_bad_vtysh_output_is_an_exporter_error(
    fake_vtysh: tuple[list[str], Path], mode: str, reason: str, text: str
) -> None:
    vtysh, data = fake_vtysh
    (data / "mode").write_text(mode)
    with pytest.raises(ExporterError) as caught:
        exporter(vtysh).poll()
    assert caught.value.reason == reason
    assert text in str(caught.value)


def test_unexpected_json_shape_is_malformed(fake_vtysh: tuple[list[str], Path]) -> None:
    vtysh, data = fake_vtysh
    (data / "show_ip_bgp_json.out").write_text(json.dumps({"routes": {"198.18.1.0/24": 7}}))
    with pytest.raises(ExporterError) as caught:
        exporter(vtysh).poll()
    assert caught.value.reason == "malformed"


def test_missing_vtysh_binary_is_a_network_error(tmp_path: Path) -> None:
    with pytest.raises(ExporterError) as caught:
        exporter([str(tmp_path / "no-such-vtysh")]).poll()
    assert caught.value.reason == "network"
    assert "no-such-vtysh" in str(caught.value)


def test_a_hanging_vtysh_times_out_within_the_poll_timeout(fake_vtysh: tuple[list[str], Path]) -> None:
    vtysh, data = fake_vtysh
    (data / "mode").write_text("hang")
    start = time.monotonic()
    with pytest.raises(ExporterError) as caught:
        exporter(vtysh, timeout=0.5).poll()
    assert caught.value.reason == "timeout"
    assert time.monotonic() - start < 3
