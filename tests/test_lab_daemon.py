"""The whole product on the lab: `watchdog run` watching real strongSwan, FRR and dnsmasq, paging a
real Alertmanager. Cut a tunnel: the path loss shows in /metrics and pages; restore: resolved. Lower
the MTU with the large proposal set and rekey: the live sniffer sees IP-fragmented IKE and pages.

One lab per module (prefix `lab_prefix("d")`, own ports), always torn down, checked to leave nothing behind.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import pytest

from tests.daemon_process import DaemonProcess
from tests.lab_fixture import Lab, running_lab, wait

pytestmark = [pytest.mark.netns, pytest.mark.slow]


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with running_lab("d", timeout=120) as lab:
        yield lab


@pytest.fixture(scope="module")
def daemon(lab: Lab) -> Iterator[DaemonProcess]:
    daemon = DaemonProcess(lab.config, lab.ports["watchdog"])
    try:
        yield daemon
    finally:
        assert daemon.stop() == 0


def alerts(lab: Lab) -> list[dict[str, object]]:
    """Active alerts the daemon sent (its alerts link to its /metrics; the lab's Prometheus evaluates
    the shipped rules but sends nothing)."""
    with urllib.request.urlopen(f"{lab.url('am')}/api/v2/alerts?active=true", timeout=3) as response:
        return [a for a in json.load(response) if str(a.get("generatorURL", "")).endswith("/metrics")]


def names(lab: Lab) -> set[str]:
    return {str(a["labels"]["alertname"]) for a in alerts(lab)}  # type: ignore[index]


def test_four_paths_then_cut_pages_and_restore_resolves(lab: Lab, daemon: DaemonProcess) -> None:
    for prefix in ("198.18.1.0/24", "198.18.3.0/24"):
        daemon.wait_for(
            f'vpn_watchdog_expected_prefix_paths{{cloud="frr",exporter="gcp-frr",prefix="{prefix}"}} 4.0', timeout=60
        )
    # Under load the other side's first polls can time out (1 s) and back off for a few seconds.
    daemon.wait_for('vpn_watchdog_exporter_up{cloud="frr",exporter="aws-frr"} 1.0', timeout=30)
    page = daemon.wait_for('vpn_watchdog_probe_success{probe="aws-db-dns"', timeout=30)
    assert page.count('vpn_watchdog_bgp_session_up{cloud="frr"') == 8  # 4 sessions seen from each side
    wait(lambda: 'probe="tun1-ping",target="169.254.10.1",type="icmp"} 1.0' in daemon.metrics(), 30, "tun1 ping ok")
    assert not names(lab), f"alerts before any fault: {names(lab)}"

    assert lab.labctl("cut", "1").returncode == 0
    paged = wait(lambda: "VpnRedundancyDegraded" in names(lab), 60, "VpnRedundancyDegraded in Alertmanager")
    print(f"\ncut tunnel 1 -> VpnRedundancyDegraded in Alertmanager after {paged:.1f}s")
    page = daemon.wait_for('exporter="gcp-frr",prefix="198.18.1.0/24"} 3.0', timeout=30)
    assert 'probe="tun1-ping",target="169.254.10.1",type="icmp"} 0.0' in page
    assert 'probe="tun2-ping",target="169.254.10.5",type="icmp"} 1.0' in page
    degraded = [a for a in alerts(lab) if a["labels"]["alertname"] == "VpnRedundancyDegraded"]  # type: ignore[index]
    assert "3 of 4" in json.dumps(degraded[0]["annotations"]) or "3" in json.dumps(degraded[0]["annotations"])

    assert lab.labctl("restore", "1").returncode == 0
    daemon.wait_for('exporter="gcp-frr",prefix="198.18.1.0/24"} 4.0', timeout=60)
    wait(lambda: "VpnRedundancyDegraded" not in names(lab), 90, "resolution in Alertmanager")


def test_fragmented_rekey_is_seen_by_the_live_sniffer_and_pages(lab: Lab, daemon: DaemonProcess) -> None:
    daemon.wait_for('vpn_watchdog_sniffer_up{interface="aws-wan"} 1.0', timeout=30)
    assert lab.labctl("mtu", "576").returncode == 0
    assert lab.labctl("proposals", "big").returncode == 0  # re-establishes with the large set
    assert lab.labctl("rekey", "1", "--from", "aws").returncode == 0
    page = daemon.wait_for("vpn_watchdog_ike_fragmented_messages_total{", timeout=60)
    fragmented = [line for line in page.splitlines() if line.startswith("vpn_watchdog_ike_fragmented_messages_total{")]
    assert any('kind="ip"' in line for line in fragmented), fragmented
    wait(lambda: "VpnIkeFragmentation" in names(lab), 60, "VpnIkeFragmentation in Alertmanager")
    assert lab.labctl("proposals", "small").returncode == 0
    assert lab.labctl("mtu", "1500").returncode == 0


def test_shrunken_tunnel_mtu_pages_path_mtu_low_and_restore_resolves(lab: Lab, daemon: DaemonProcess) -> None:
    daemon.wait_for('vpn_watchdog_probe_path_mtu_bytes{probe="tun-pmtu",target="198.18.1.10"} 1400.0', timeout=60)
    assert lab.labctl("mtu", "1200").returncode == 0
    daemon.wait_for('vpn_watchdog_probe_path_mtu_bytes{probe="tun-pmtu",target="198.18.1.10"} 1100.0', timeout=30)
    paged = wait(lambda: "VpnPathMtuLow" in names(lab), 60, "VpnPathMtuLow in Alertmanager")
    (alert,) = [a for a in alerts(lab) if a["labels"]["alertname"] == "VpnPathMtuLow"]  # type: ignore[index]
    print(f"\nmtu 1200 -> VpnPathMtuLow in Alertmanager after {paged:.1f}s: {alert['annotations']}")
    assert "1100 bytes" in json.dumps(alert["annotations"])
    assert lab.labctl("mtu", "1500").returncode == 0
    daemon.wait_for('vpn_watchdog_probe_path_mtu_bytes{probe="tun-pmtu",target="198.18.1.10"} 1400.0', timeout=30)
    wait(lambda: "VpnPathMtuLow" not in names(lab), 90, "VpnPathMtuLow resolved in Alertmanager")
