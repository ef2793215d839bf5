"""The whole product on the lab: `watchdog run` watching real strongSwan, FRR and dnsmasq, paging a
real Alertmanager. Cut a tunnel: the path loss shows in /metrics and pages; restore: resolved. Lower
the MTU with the large proposal set and rekey: the live sniffer sees IP-fragmented IKE and pages.

One lab per module (prefix `vwd-`, own ports), always torn down, checked to leave nothing behind.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port, lab_prefix, require_root
from tests.daemon_process import DaemonProcess

pytestmark = [pytest.mark.netns, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
LABCTL = REPO / "deploy" / "lab" / "labctl.py"
PREFIX = lab_prefix("d")


def labctl(lab_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    python = shutil.which("python3") or sys.executable
    return subprocess.run(
        [python, str(LABCTL), "--dir", str(lab_dir), *args], capture_output=True, text=True, timeout=120, check=False
    )


def own_namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(PREFIX)]


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[Path, DaemonProcess, int]]:
    require_root()
    directory = Path(tempfile.mkdtemp(prefix=f"{PREFIX}lab-"))
    directory.chmod(0o755)  # FRR runs as the frr user and must reach its files
    port, am_port = free_port(), free_port()
    daemon: DaemonProcess | None = None
    try:
        result = labctl(
            directory,
            "up",
            "--prefix",
            PREFIX,
            "--prom-port",
            str(free_port()),
            "--am-port",
            str(am_port),
            "--watchdog-addr",
            f"127.0.0.1:{port}",
            "--gcp-port",
            str(free_port()),
            "--gcp-monitoring-port",
            str(free_port()),
            "--aws-port",
            str(free_port()),
        )
        assert result.returncode == 0, f"lab up failed:\n{result.stdout}\n{result.stderr}"
        daemon = DaemonProcess(directory / "watchdog.yaml", port)
        yield directory, daemon, am_port
    finally:
        if daemon is not None:
            assert daemon.stop() == 0
        labctl(directory, "down")
        leftovers = own_namespaces()
        shutil.rmtree(directory, ignore_errors=True)
        assert leftovers == [], f"lab down left namespaces behind: {leftovers}"


def alerts(am_port: int) -> list[dict[str, object]]:
    """Active alerts the daemon sent (its alerts link to its /metrics; the lab's Prometheus evaluates
    the shipped rules but sends nothing)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{am_port}/api/v2/alerts?active=true", timeout=3) as response:
        return [a for a in json.load(response) if str(a.get("generatorURL", "")).endswith("/metrics")]


def wait(check: Callable[[], bool], timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def names(am_port: int) -> set[str]:
    return {str(a["labels"]["alertname"]) for a in alerts(am_port)}  # type: ignore[index]


def test_four_paths_then_cut_pages_and_restore_resolves(lab: tuple[Path, DaemonProcess, int]) -> None:
    lab_dir, daemon, am_port = lab
    for prefix in ("198.18.1.0/24", "198.18.3.0/24"):
        daemon.wait_for(
            f'vpn_watchdog_expected_prefix_paths{{cloud="frr",exporter="gcp-frr",prefix="{prefix}"}} 4.0', timeout=60
        )
    # Under load the other side's first polls can time out (1 s) and back off for a few seconds.
    daemon.wait_for('vpn_watchdog_exporter_up{cloud="frr",exporter="aws-frr"} 1.0', timeout=30)
    page = daemon.wait_for('vpn_watchdog_probe_success{probe="aws-db-dns"', timeout=30)
    assert page.count('vpn_watchdog_bgp_session_up{cloud="frr"') == 8  # 4 sessions seen from each side
    wait(lambda: 'probe="tun1-ping",target="169.254.10.1",type="icmp"} 1.0' in daemon.metrics(), 30, "tun1 ping ok")
    assert not names(am_port), f"alerts before any fault: {names(am_port)}"

    assert labctl(lab_dir, "cut", "1").returncode == 0
    paged = wait(lambda: "VpnRedundancyDegraded" in names(am_port), 60, "VpnRedundancyDegraded in Alertmanager")
    print(f"\ncut tunnel 1 -> VpnRedundancyDegraded in Alertmanager after {paged:.1f}s")
    page = daemon.wait_for('exporter="gcp-frr",prefix="198.18.1.0/24"} 3.0', timeout=30)
    assert 'probe="tun1-ping",target="169.254.10.1",type="icmp"} 0.0' in page
    assert 'probe="tun2-ping",target="169.254.10.5",type="icmp"} 1.0' in page
    degraded = [a for a in alerts(am_port) if a["labels"]["alertname"] == "VpnRedundancyDegraded"]  # type: ignore[index]
    assert "3 of 4" in json.dumps(degraded[0]["annotations"]) or "3" in json.dumps(degraded[0]["annotations"])

    assert labctl(lab_dir, "restore", "1").returncode == 0
    daemon.wait_for('exporter="gcp-frr",prefix="198.18.1.0/24"} 4.0', timeout=60)
    wait(lambda: "VpnRedundancyDegraded" not in names(am_port), 90, "resolution in Alertmanager")


def test_fragmented_rekey_is_seen_by_the_live_sniffer_and_pages(lab: tuple[Path, DaemonProcess, int]) -> None:
    lab_dir, daemon, am_port = lab
    daemon.wait_for('vpn_watchdog_sniffer_up{interface="aws-wan"} 1.0', timeout=30)
    assert labctl(lab_dir, "mtu", "576").returncode == 0
    assert labctl(lab_dir, "proposals", "big").returncode == 0  # re-establishes with the large set
    assert labctl(lab_dir, "rekey", "1", "--from", "aws").returncode == 0
    page = daemon.wait_for("vpn_watchdog_ike_fragmented_messages_total{", timeout=60)
    fragmented = [line for line in page.splitlines() if line.startswith("vpn_watchdog_ike_fragmented_messages_total{")]
    assert any('kind="ip"' in line for line in fragmented), fragmented
    wait(lambda: "VpnIkeFragmentation" in names(am_port), 60, "VpnIkeFragmentation in Alertmanager")
    assert labctl(lab_dir, "proposals", "small").returncode == 0
    assert labctl(lab_dir, "mtu", "1500").returncode == 0


def test_shrunken_tunnel_mtu_pages_path_mtu_low_and_restore_resolves(lab: tuple[Path, DaemonProcess, int]) -> None:
    lab_dir, daemon, am_port = lab
    daemon.wait_for('vpn_watchdog_probe_path_mtu_bytes{probe="tun-pmtu",target="198.18.1.10"} 1400.0', timeout=60)
    assert labctl(lab_dir, "mtu", "1200").returncode == 0
    daemon.wait_for('vpn_watchdog_probe_path_mtu_bytes{probe="tun-pmtu",target="198.18.1.10"} 1100.0', timeout=30)
    paged = wait(lambda: "VpnPathMtuLow" in names(am_port), 60, "VpnPathMtuLow in Alertmanager")
    (alert,) = [a for a in alerts(am_port) if a["labels"]["alertname"] == "VpnPathMtuLow"]  # type: ignore[index]
    print(f"\nmtu 1200 -> VpnPathMtuLow in Alertmanager after {paged:.1f}s: {alert['annotations']}")
    assert "1100 bytes" in json.dumps(alert["annotations"])
    assert labctl(lab_dir, "mtu", "1500").returncode == 0
    daemon.wait_for('vpn_watchdog_probe_path_mtu_bytes{probe="tun-pmtu",target="198.18.1.10"} 1400.0', timeout=30)
    wait(lambda: "VpnPathMtuLow" not in names(am_port), 90, "VpnPathMtuLow resolved in Alertmanager")
