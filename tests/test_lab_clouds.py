"""The product's own job on live tunnels: `watchdog run -c .lab/watchdog.yaml` watching the lab through
the clouds' APIs (the lab's EC2/CloudWatch Logs and Compute/Monitoring/Logging endpoints, every value
read from the running strongSwan and FRR), paging the lab's real Alertmanager; `watchdog audit` on
the same config. Each "Done means" scenario of the lab issue: healthy, a cut, one cloud's view down,
fragmenting proposals fixed by `audit --fix-ipsec --apply`, a withdrawn spoke advertisement, a
missing DNS return route.

One lab per module (prefix from `lab_prefix("c")`, own ports, BGP 1/3, cloud polls every 2 s),
always torn down and checked to leave no namespace behind. Scenarios undo what they break.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deploy.lab import topology as topo
from tests.conftest import free_port, lab_prefix, require_root
from tests.daemon_process import DaemonProcess

pytestmark = [pytest.mark.netns, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
LABCTL = REPO / "deploy" / "lab" / "labctl.py"
PREFIX = lab_prefix("c")
AWS, GCP = topo.AWS_EXPORTER, topo.GCP_EXPORTER


def labctl(lab_dir: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    python = shutil.which("python3") or sys.executable
    result = subprocess.run(
        [python, str(LABCTL), "--dir", str(lab_dir), *args], capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"labctl {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def own_namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(PREFIX)]


@dataclass
class Lab:
    dir: Path
    config: Path
    daemon: DaemonProcess
    am_url: str

    def alerts(self, env: str = "lab") -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.am_url}/api/v2/alerts?active=true", timeout=3) as response:
            return [a for a in json.load(response) if a["labels"].get("env") == env]

    def firing(self, name: str, env: str = "lab", **labels: str) -> list[dict[str, Any]]:
        return [
            a
            for a in self.alerts(env)
            if a["labels"]["alertname"] == name and all(a["labels"].get(k) == v for k, v in labels.items())
        ]

    def audit(self, *extra: str) -> tuple[int, dict[str, Any]]:
        result = subprocess.run(
            [sys.executable, "-m", "watchdog", "audit", "-c", str(self.config), "--format", "json", *extra],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert result.returncode in (0, 1), result.stderr
        return result.returncode, json.loads(result.stdout)


def wait(check: Callable[[], object], timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def metric(page: str, name: str, **labels: str) -> list[float]:
    """Values of the series of `name` whose labels include `labels`."""
    values = []
    for line in page.splitlines():
        if not line.startswith(f"vpn_watchdog_{name}{{"):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            values.append(float(value))
    return values


def findings(report: dict[str, Any], rule: str) -> list[dict[str, Any]]:
    return [f for f in report["findings"] if f["rule"] == rule]


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    require_root()
    directory = Path(tempfile.mkdtemp(prefix=f"{PREFIX}lab-"))
    directory.chmod(0o755)  # FRR runs as the frr user and must reach its files
    port, am_port = free_port(), free_port()
    daemon: DaemonProcess | None = None
    try:
        labctl(
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
            timeout=120,
        )
        daemon = DaemonProcess(directory / "watchdog.yaml", port)
        yield Lab(directory, directory / "watchdog.yaml", daemon, f"http://127.0.0.1:{am_port}")
    finally:
        if daemon is not None:
            assert daemon.stop() == 0
        subprocess.run(
            [shutil.which("python3") or sys.executable, str(LABCTL), "--dir", str(directory), "down"],
            capture_output=True,
            timeout=60,
        )
        leftovers = own_namespaces()
        shutil.rmtree(directory, ignore_errors=True)
        assert leftovers == [], f"lab down left namespaces behind: {leftovers}"


def test_healthy_lab_seen_through_both_clouds_and_audited_clean(lab: Lab) -> None:
    for prefix in topo.AWS_VPC:
        lab.daemon.wait_for(
            f'vpn_watchdog_expected_prefix_paths{{cloud="gcp",exporter="{GCP}",prefix="{prefix}"}} 4.0', timeout=60
        )
    page = lab.daemon.metrics()
    assert metric(page, "tunnel_up", exporter=GCP) == [1.0] * 4
    assert metric(page, "bgp_session_up", exporter=GCP) == [1.0] * 4
    assert metric(page, "exporter_up", exporter=GCP) == [1.0]
    wait(lambda: metric(lab.daemon.metrics(), "probe_success", probe="aws-db-dns") == [1.0], 30, "the DNS probe")
    assert lab.alerts() == [], [a["labels"] for a in lab.alerts()]

    rc, report = lab.audit()
    errors = [f for f in report["findings"] if f["severity"] == "error"]
    assert (rc, errors) == (0, []), errors


def test_cut_pages_tunnel_down_and_degraded_and_restore_resolves(lab: Lab) -> None:
    labctl(lab.dir, "cut", "2")
    took = wait(lambda: lab.firing("VpnTunnelDown", tunnel="tun2"), 60, "VpnTunnelDown for tun2 in Alertmanager")
    print(f"\ncut 2 -> VpnTunnelDown in Alertmanager after {took:.1f} s")
    wait(lambda: lab.firing("VpnRedundancyDegraded", exporter=GCP), 30, "VpnRedundancyDegraded from the GCP view")
    page = lab.daemon.metrics()
    assert metric(page, "tunnel_up", exporter=GCP, tunnel="tun2") == [0.0]
    assert metric(page, "tunnel_up", exporter=GCP, tunnel="tun1") == [1.0]
    assert metric(page, "expected_prefix_paths", exporter=GCP) == [3.0, 3.0]

    labctl(lab.dir, "restore", "2")
    wait(
        lambda: not lab.firing("VpnTunnelDown") and not lab.firing("VpnRedundancyDegraded"),
        90,
        "VpnTunnelDown and VpnRedundancyDegraded resolved",
    )


def test_withdrawn_spoke_advertisement_is_a_missing_prefix_and_an_audit_error(lab: Lab) -> None:
    out = labctl(lab.dir, "advertise", "no-spoke").stdout
    assert "VpnExpectedPrefixMissing" in out and "routing.spoke-not-advertised" in out  # what to look at
    try:
        wait(
            lambda: lab.firing("VpnExpectedPrefixMissing", prefix=topo.SPOKE_RANGE),
            30,
            f"VpnExpectedPrefixMissing for {topo.SPOKE_RANGE}",
        )
        assert not lab.firing("VpnPrefixUnreachable")  # the paths are up: it is not advertised, not lost
        rc, report = lab.audit()
        (finding,) = findings(report, "routing.spoke-not-advertised")
        assert rc == 1 and topo.SPOKE_RANGE in finding["message"]
    finally:
        labctl(lab.dir, "advertise", "spoke")
    wait(lambda: not lab.firing("VpnExpectedPrefixMissing"), 60, "VpnExpectedPrefixMissing resolved")


def test_missing_dns_return_route_times_the_dns_probe_out(lab: Lab) -> None:
    out = labctl(lab.dir, "dns-return", "off").stdout
    assert "timeout" in out and "dns.return-route" in out
    try:
        wait(
            lambda: (
                metric(lab.daemon.metrics(), "probe_failures_total", probe="aws-db-dns", reason="timeout")
                not in ([], [0.0])
            ),
            30,
            "the DNS probe timing out",
        )
        wait(lambda: lab.firing("VpnProbeFailing", probe="aws-db-dns"), 30, "VpnProbeFailing for the DNS probe")
    finally:
        labctl(lab.dir, "dns-return", "on")
    wait(lambda: not lab.firing("VpnProbeFailing"), 60, "VpnProbeFailing resolved")


def test_fragmenting_proposals_page_from_the_gcp_log_with_the_sniffer_off(lab: Lab) -> None:
    # The same lab config without the IKE sniffer and without Cloud Monitoring: only the Cloud VPN
    # log can tell. Its alerts carry env=nosniff to keep them apart from the main daemon's.
    text = lab.config.read_text()
    text = text[: text.index("\nike:\n")] + text[text.index("\nalertmanager:") :]
    text = text.replace("env: lab}", "env: nosniff}").replace("    logs: true", "    logs: true\n    monitoring: false")
    config = lab.dir / "nosniff.yaml"
    config.write_text(text)
    daemon = DaemonProcess(config, free_port())
    try:
        daemon.wait_for(f'vpn_watchdog_exporter_up{{cloud="gcp",exporter="{GCP}"}} 1.0', timeout=30)
        assert "vpn_watchdog_sniffer_up" not in daemon.metrics()
        labctl(lab.dir, "mtu", "1000")
        start = time.monotonic()
        labctl(lab.dir, "proposals", "big")  # re-established from AWS: IKE_SA_INIT gets IP-fragmented
        labctl(lab.dir, "rekey", "1", "--from", "aws")
        wait(
            lambda: lab.firing("VpnIkeFragmentation", env="nosniff", exporter=GCP),
            30,
            "VpnIkeFragmentation from the GCP log",
        )
        print(f"\nproposals big -> VpnIkeFragmentation from the Cloud VPN log after {time.monotonic() - start:.1f} s")
        page = daemon.metrics()
        assert metric(page, "tunnel_log_events_total", exporter=GCP, event="fragment_dropped")
    finally:
        assert daemon.stop() == 0
        labctl(lab.dir, "proposals", "small")
        labctl(lab.dir, "mtu", "1500")
