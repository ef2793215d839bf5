"""`watchdog run` against the local GCP fakes: DESIGN metric names with the values the API holds,
an API outage that never looks like a VPN outage, and deleted objects vanishing from /metrics."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.lab.emulators.gcp import FakeGcp, FakeMonitoring
from tests.daemon_process import DaemonProcess


@pytest.fixture
def fakes() -> Iterator[tuple[FakeGcp, FakeMonitoring]]:
    with FakeGcp() as gcp, FakeMonitoring() as mon:
        yield gcp, mon


def test_daemon_exports_gcp_state(tmp_path: Path, port: int, fakes: tuple[FakeGcp, FakeMonitoring]) -> None:
    gcp, mon = fakes
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""
interval: 500ms
exporters:
  - name: gcp-hub
    type: gcp
    project: {gcp.project}
    region: {gcp.region}
    endpoint: {gcp.url}
    monitoring_endpoint: {mon.url}
    credentials_file: {gcp.write_credentials(tmp_path)}
    timeout: 3s
expected_prefixes:
  - {{exporter: gcp-hub, prefixes: [10.20.0.0/16, 10.30.0.0/16, 10.99.0.0/16], min_paths: 2}}
"""
    )
    daemon = DaemonProcess(config, port)
    g = 'cloud="gcp",exporter="gcp-hub"'
    try:
        page = daemon.wait_for(f"vpn_watchdog_exporter_up{{{g}}} 1.0")
        lines = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in page.splitlines() if line[:1] != "#"}

        def value(metric: str, **labels: str) -> float:
            matches = [
                v
                for k, v in lines.items()
                if k.startswith(metric + "{") and all(f'{a}="{b}"' in k for a, b in labels.items())
            ]
            assert len(matches) == 1, (metric, labels, matches)
            return matches[0]

        assert value("vpn_watchdog_tunnel_up", tunnel="aws-tun-0") == 1.0
        assert value("vpn_watchdog_tunnel_up", tunnel="aws-tun-2") == 0.0
        assert value("vpn_watchdog_tunnel_info", tunnel="aws-tun-2", status="NO_INCOMING_PACKETS") == 1.0
        assert value("vpn_watchdog_bgp_session_up", peer="aws-peer-2") == 0.0
        assert value("vpn_watchdog_expected_prefix_paths", prefix="10.20.0.0/16") == 2.0
        assert value("vpn_watchdog_expected_prefix_paths", prefix="10.30.0.0/16") == 1.0
        assert value("vpn_watchdog_expected_prefix_paths", prefix="10.99.0.0/16") == 0.0
        assert value("vpn_watchdog_ha_redundancy_met", gateway="ha-gw") == 1.0
        # Cloud Monitoring DELTA points are summed into a counter from the daemon's start on.
        mon.add_packets("aws-tun-0", "received", "fragment_received", 7)
        daemon.wait_for('status="fragment_received",tunnel="aws-tun-0"} 7.0')

        # API outage: throttled. The exporter goes down; the tunnels keep their last values.
        gcp.fault(r"vpnTunnels", status=429, headers={"Retry-After": "1"})
        page = daemon.wait_for(f"vpn_watchdog_exporter_up{{{g}}} 0.0")
        throttled = f'vpn_watchdog_exporter_errors_total{{{g},reason="throttled"}} '
        assert float(page.split(throttled, 1)[1].split()[0]) >= 1.0
        assert 'tunnel="aws-tun-0"} 1.0' in page and 'tunnel="aws-tun-3"} 1.0' in page

        # Recovery, and a tunnel deleted in the API disappears from /metrics.
        gcp.clear_faults()
        gcp.collections[gcp.regional("vpnTunnels")] = [
            t for t in gcp.collections[gcp.regional("vpnTunnels")] if t["name"] != "aws-tun-3"
        ]
        page = daemon.wait_for(f"vpn_watchdog_exporter_up{{{g}}} 1.0")
        deadline = time.monotonic() + 10
        while 'tunnel="aws-tun-3"' in tunnels(page) and time.monotonic() < deadline:
            time.sleep(0.1)
            page = daemon.metrics()
        assert 'tunnel="aws-tun-3"' not in tunnels(page) and 'tunnel="aws-tun-0"' in tunnels(page)
    finally:
        assert daemon.stop() == 0
    log = daemon.log.read_text()
    assert "exporter gcp-hub poll failed (throttled)" in log


def tunnels(page: str) -> str:
    """The tunnel_up lines of a /metrics page."""
    return "\n".join(line for line in page.splitlines() if line.startswith("vpn_watchdog_tunnel_up{"))
