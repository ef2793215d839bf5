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

import contextlib
import io
import json
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deploy.lab import topology as topo
from tests.conftest import free_port
from tests.daemon_process import DaemonProcess
from tests.lab_fixture import Lab, running_lab, wait
from tests.test_status_page import browser, look  # noqa: F401 (browser is a fixture)
from watchdog import cli

pytestmark = [pytest.mark.netns, pytest.mark.slow]

AWS, GCP = topo.AWS_EXPORTER, topo.GCP_EXPORTER


@dataclass
class Watched:
    """The lab with `watchdog run` on the config `labctl up` wrote, paging the lab's Alertmanager."""

    lab: Lab
    daemon: DaemonProcess

    @property
    def dir(self) -> Path:
        return self.lab.dir

    @property
    def config(self) -> Path:
        return self.lab.config

    def labctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`labctl ARGS` on this lab; it must succeed."""
        return self.lab.labctl(*args, check=True)

    def alerts(self, env: str = "lab") -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.lab.url('am')}/api/v2/alerts?active=true", timeout=3) as response:
            return [a for a in json.load(response) if a["labels"].get("env") == env]

    def firing(self, name: str, env: str = "lab", **labels: str) -> list[dict[str, Any]]:
        return [
            a
            for a in self.alerts(env)
            if a["labels"]["alertname"] == name and all(a["labels"].get(k) == v for k, v in labels.items())
        ]

    def audit(self, *extra: str) -> tuple[int, dict[str, Any]]:
        """`watchdog audit -c <lab config> --format json ...` (in this process: the SDK imports are paid once)."""
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = cli.main(["audit", "-c", str(self.config), "--format", "json", *extra])
        assert rc in (0, 1), out.getvalue()
        return rc, json.loads(out.getvalue())


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
def lab() -> Iterator[Watched]:
    with running_lab("c") as lab:
        daemon = DaemonProcess(lab.config, lab.ports["watchdog"])
        try:
            yield Watched(lab, daemon)
        finally:
            assert daemon.stop() == 0


def pair_labels(n: int) -> dict[str, str]:
    spec = topo.tunnel(n)
    return {"aws_exporter": AWS, "aws_tunnel": spec.aws_outside, "gcp_exporter": GCP, "gcp_tunnel": spec.name}


def test_healthy_lab_seen_through_both_clouds_and_audited_clean(lab: Watched) -> None:
    for cloud, name, prefixes in (("gcp", GCP, topo.AWS_VPC), ("aws", AWS, topo.GCP_VPC)):
        for prefix in prefixes:
            lab.daemon.wait_for(
                f'vpn_watchdog_expected_prefix_paths{{cloud="{cloud}",exporter="{name}",prefix="{prefix}"}} 4.0', 60
            )
    page = lab.daemon.metrics()
    for name in (AWS, GCP):
        assert metric(page, "exporter_up", exporter=name) == [1.0]
        assert metric(page, "tunnel_up", exporter=name) == [1.0] * 4, name
        assert metric(page, "bgp_session_up", exporter=name) == [1.0] * 4, name
    # Each AWS outside IP joined to the GCP tunnel that peers with it.
    pairs = {
        (line.split('aws_tunnel="')[1].split('"')[0], line.split('gcp_tunnel="')[1].split('"')[0])
        for line in page.splitlines()
        if line.startswith("vpn_watchdog_tunnel_pair_info{")
    }
    assert pairs == {(spec.aws_outside, spec.name) for spec in topo.TUNNELS}
    wait(lambda: metric(lab.daemon.metrics(), "probe_success", probe="aws-db-dns") == [1.0], 30, "the DNS probe")
    assert lab.alerts() == [], [a["labels"] for a in lab.alerts()]

    rc, report = lab.audit()
    assert (rc, report["findings"]) == (0, []), report["findings"]


def test_cut_pages_the_joined_tunnel_down_and_degraded_and_restore_resolves(lab: Watched) -> None:
    lab.labctl("cut", "2")
    joined = {**pair_labels(2), "exporter": f"{AWS}+{GCP}"}
    took = wait(lambda: lab.firing("VpnTunnelDown", **joined), 60, "the joined VpnTunnelDown of tunnel 2")
    print(f"\ncut 2 -> joined VpnTunnelDown in Alertmanager after {took:.1f} s")
    for name in (AWS, GCP):
        wait(lambda n=name: lab.firing("VpnRedundancyDegraded", exporter=n), 30, f"VpnRedundancyDegraded on {name}")
    page = lab.daemon.metrics()
    assert metric(page, "tunnel_up", exporter=GCP, tunnel="tun2") == [0.0]
    assert metric(page, "tunnel_up", exporter=AWS, tunnel=topo.tunnel(2).aws_outside) == [0.0]
    assert sorted(metric(page, "tunnel_up", exporter=AWS)) == [0.0, 1.0, 1.0, 1.0]
    assert metric(page, "expected_prefix_paths", exporter=GCP) == [3.0, 3.0]
    # One problem, one alert set: nothing from the lab's Prometheus, one VpnTunnelDown for the pair.
    assert {a["labels"]["exporter"] for a in lab.firing("VpnTunnelDown") if "gcp_tunnel" in a["labels"]} == {
        f"{AWS}+{GCP}"
    }

    lab.labctl("restore", "2")
    wait(
        lambda: not lab.firing("VpnTunnelDown", gcp_tunnel="tun2") and not lab.firing("VpnRedundancyDegraded"),
        90,
        "VpnTunnelDown and VpnRedundancyDegraded resolved",
    )


def test_status_page_draws_the_lab_in_chromium(lab: Watched, browser: Any) -> None:  # noqa: F811
    """The 3 a.m. page on the live lab: four tunnels between their exact endpoints, all up; with
    AWS's view of tunnel 3 down, that line (and only it) is drawn asymmetric."""
    port = int(lab.daemon.url.rsplit(":", 1)[1])
    seen: dict[str, str] = {}

    def drawn(name: str, expect: Callable[[dict[str, str]], bool]) -> bool:
        seen.clear()
        seen.update(look(browser, port, name))
        return expect(seen)

    wait(lambda: drawn("lab-healthy", lambda s: len(s) == 4 and set(s.values()) == {"up"}), 60, "4 drawn up")
    assert sorted(seen) == sorted(spec.name for spec in topo.TUNNELS), seen
    three = topo.tunnel(3).name
    lab.labctl("aws-view", "3", "down")
    try:
        wait(lambda: drawn("lab-aws-view-3-down", lambda s: s.get(three) == "asymmetric"), 60, "3 asymmetric")
        assert sorted(state for name, state in seen.items() if name != three) == ["up"] * 3, seen
    finally:
        lab.labctl("aws-view", "3", "up")


def test_the_aws_view_alone_down_is_asymmetric(lab: Watched) -> None:
    wait(lambda: not lab.firing("VpnTunnelAsymmetric"), 60, "no VpnTunnelAsymmetric left from before")
    out = lab.labctl("aws-view", "3", "down").stdout
    assert "VpnTunnelAsymmetric" in out and "aws-view 3 up" in out
    try:
        took = wait(
            lambda: lab.firing("VpnTunnelAsymmetric", **pair_labels(3), exporter=AWS),
            30,
            "VpnTunnelAsymmetric for tunnel 3, reported by the AWS view",
        )
        print(f"\naws-view 3 down -> VpnTunnelAsymmetric after {took:.1f} s")
        assert not lab.firing("VpnTunnelDown", gcp_tunnel="tun3")
        assert metric(lab.daemon.metrics(), "tunnel_up", exporter=GCP, tunnel="tun3") == [1.0]
    finally:
        lab.labctl("aws-view", "3", "up")
    wait(lambda: not lab.firing("VpnTunnelAsymmetric"), 60, "VpnTunnelAsymmetric resolved")


def test_fragmenting_proposals_page_are_audited_and_fixed_and_rekeys_fit_again(lab: Watched) -> None:
    # Beside the main daemon, the same lab config without the IKE sniffer and without Cloud
    # Monitoring: only the Cloud VPN log can tell (its alerts carry env=nosniff).
    text = lab.config.read_text()
    text = text[: text.index("\nike:\n")] + text[text.index("\nalertmanager:") :]
    text = text.replace("env: lab}", "env: nosniff}").replace("    logs: true", "    logs: true\n    monitoring: false")
    config = lab.dir / "nosniff.yaml"
    config.write_text(text)
    nosniff = DaemonProcess(config, free_port())
    try:
        nosniff.wait_for(f'vpn_watchdog_exporter_up{{cloud="gcp",exporter="{GCP}"}} 1.0', timeout=30)
        assert "vpn_watchdog_sniffer_up" not in nosniff.metrics()
        lab.daemon.wait_for('vpn_watchdog_sniffer_up{interface="aws-wan"} 1.0', timeout=30)
        lab.labctl("mtu", "1000")
        start = time.monotonic()
        lab.labctl("proposals", "big")  # re-established from AWS: IKE_SA_INIT gets IP-fragmented
        lab.labctl("rekey", "1", "--from", "aws")
        wait(
            lambda: lab.firing("VpnIkeFragmentation", env="nosniff", exporter=GCP),
            30,
            "VpnIkeFragmentation from the Cloud VPN log",
        )
        print(f"\nproposals big -> VpnIkeFragmentation from the Cloud VPN log after {time.monotonic() - start:.1f} s")
        assert metric(nosniff.metrics(), "tunnel_log_events_total", exporter=GCP, event="fragment_dropped")
        wait(lambda: lab.firing("VpnIkeFragmentation", interface="aws-wan"), 30, "VpnIkeFragmentation from the sniffer")
    finally:
        assert nosniff.stop() == 0

    try:
        rc, report = lab.audit()
        single = findings(report, "ipsec.single-transform")
        assert rc == 1 and sorted(f["object"].rsplit(" ", 1)[1] for f in single) == list(topo.AWS_OUTSIDE)
        rc, plan = lab.audit("--fix-ipsec", "--apply")  # ModifyVpnTunnelOptions, one tunnel at a time
        assert rc == 0 and sorted(a["outside_ip"] for a in plan["applied"] if a["result"] == "applied") == list(
            topo.AWS_OUTSIDE
        ), plan

        def fragmented() -> float:
            return sum(metric(lab.daemon.metrics(), "ike_fragmented_messages_total"))

        def rekeys() -> float:
            return sum(metric(lab.daemon.metrics(), "ike_rekeys_total"))

        time.sleep(1)  # the sniffer has seen the re-established tunnels
        before, rekeys_before = fragmented(), rekeys()
        for n in (1, 3):
            lab.labctl("rekey", str(n), "--from", "aws")
        wait(lambda: rekeys() >= rekeys_before + 2, 30, "the sniffer to see both rekeys")
        assert fragmented() == before  # the narrowed proposals fit in one packet at MTU 1000
    finally:
        lab.labctl("proposals", "small")
        lab.labctl("mtu", "1500")


def test_withdrawn_spoke_advertisement_is_a_missing_prefix_and_an_audit_error(lab: Watched) -> None:
    out = lab.labctl("advertise", "no-spoke").stdout
    assert "VpnExpectedPrefixMissing" in out and "routing.spoke-not-advertised" in out  # what to look at
    try:
        wait(
            lambda: lab.firing("VpnExpectedPrefixMissing", exporter=AWS, prefix=topo.SPOKE_RANGE),
            30,
            f"VpnExpectedPrefixMissing for {topo.SPOKE_RANGE} on the AWS view",
        )
        assert not lab.firing("VpnPrefixUnreachable")  # the paths are up: it is not advertised, not lost
        rc, report = lab.audit()
        (finding,) = findings(report, "routing.spoke-not-advertised")
        assert rc == 1 and topo.SPOKE_RANGE in finding["message"]
    finally:
        lab.labctl("advertise", "spoke")
    wait(lambda: not lab.firing("VpnExpectedPrefixMissing"), 60, "VpnExpectedPrefixMissing resolved")


def test_missing_dns_return_route_times_the_dns_probe_out_and_is_an_audit_error(lab: Watched) -> None:
    out = lab.labctl("dns-return", "off").stdout
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
        rc, report = lab.audit()
        assert rc == 1 and findings(report, "dns.return-route"), report["findings"]
    finally:
        lab.labctl("dns-return", "on")
    wait(lambda: not lab.firing("VpnProbeFailing"), 60, "VpnProbeFailing resolved")
