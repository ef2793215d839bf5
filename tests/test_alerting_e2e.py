"""End to end: `watchdog run` against the GCP fakes pushes its alerts to a real Alertmanager, and a
real Prometheus scraping it evaluates the shipped rules and the dashboard's queries without error."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.lab.emulators.aws import MotoAws
from deploy.lab.emulators.gcp import FakeGcp, FakeMonitoring
from tests.alertmanager_process import AlertmanagerProcess
from tests.conftest import free_port
from tests.daemon_process import DaemonProcess
from tests.deploy_checks import DEPLOY, tool

RULES = DEPLOY / "prometheus" / "vpn-watchdog.rules.yml"
DASHBOARD = DEPLOY / "grafana" / "vpn-watchdog.json"


class PrometheusProcess:
    def __init__(self, workdir: Path, target: str, alertmanager: str) -> None:
        self.binary = tool("prometheus")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "prometheus.yml"
        self.config.write_text(
            json.dumps(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(RULES)],
                    "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
                    "scrape_configs": [{"job_name": "vpn-watchdog", "static_configs": [{"targets": [target]}]}],
                }
            )
        )
        self.log = workdir / "prometheus.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=5) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait(what: str, check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except OSError as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


@pytest.fixture
def fakes() -> Iterator[tuple[FakeGcp, FakeMonitoring]]:
    with FakeGcp() as gcp, FakeMonitoring() as mon:
        yield gcp, mon


def alert_names(am: AlertmanagerProcess) -> set[tuple[str, str]]:
    return {(a["labels"]["alertname"], a["labels"].get("prefix") or a["labels"].get("tunnel", "")) for a in am.alerts()}


@pytest.mark.slow
def test_daemon_alerts_and_shipped_rules_end_to_end(
    tmp_path: Path, port: int, fakes: tuple[FakeGcp, FakeMonitoring]
) -> None:
    gcp, mon = fakes
    am = AlertmanagerProcess(tmp_path / "am").start()
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""
listen: 127.0.0.1:{port}
interval: 500ms
labels: {{env: e2e}}
exporters:
  - name: gcp-hub
    type: gcp
    project: {gcp.project}
    region: {gcp.region}
    endpoint: {gcp.url}
    monitoring_endpoint: {mon.url}
    credentials_file: {gcp.write_credentials(tmp_path)}
    timeout: 2s
expected_prefixes:
  - {{exporter: gcp-hub, prefixes: [10.20.0.0/16, 10.30.0.0/16, 10.99.0.0/16], min_paths: 2}}
alertmanager:
  urls: [{am.url}]
  resend_interval: 1s
  for: 200ms
"""
    )
    daemon = DaemonProcess(config, port)
    prometheus = PrometheusProcess(tmp_path / "prom", f"127.0.0.1:{port}", f"127.0.0.1:{am.port}")
    try:
        # The daemon's own alerts: the fake's down tunnel, a prefix on 1 of min 2 paths, one never learned.
        expected = {
            ("VpnTunnelDown", "aws-tun-2"),
            ("VpnRedundancyDegraded", "10.30.0.0/16"),
            ("VpnExpectedPrefixMissing", "10.99.0.0/16"),
        }
        wait("daemon alerts in Alertmanager", lambda: expected <= alert_names(am))
        missing = next(a for a in am.alerts() if a["labels"]["alertname"] == "VpnExpectedPrefixMissing")
        assert missing["labels"]["severity"] == "page" and missing["labels"]["env"] == "e2e"
        assert missing["generatorURL"] == f"http://127.0.0.1:{port}/metrics"
        sent = 'vpn_watchdog_alerts_sent_total{outcome="success"} '
        wait("a counted push", lambda: float(daemon.metrics().split(sent, 1)[1].split()[0]) >= 1)

        # Prometheus evaluates every shipped rule against the real exposition without error.
        def rules_ok() -> list[dict[str, Any]] | None:
            groups = prometheus.api("rules")["data"]["groups"]
            rules = [r for g in groups for r in g["rules"]]
            if rules and all(r.get("lastEvaluation", "").startswith("20") for r in rules):
                return rules
            return None

        rules = wait("rule evaluation", rules_ok, timeout=30)
        assert [r["name"] for r in rules if r["health"] != "ok"] == [], [r.get("lastError") for r in rules]

        def prom_alerts() -> set[tuple[str, str]]:
            found = prometheus.api("alerts")["data"]["alerts"]
            return {
                (a["labels"]["alertname"], a["labels"].get("prefix") or a["labels"].get("tunnel", "")) for a in found
            }

        wait(
            "shipped rules see the same problems",
            lambda: (
                {
                    ("VpnTunnelDown", "aws-tun-2"),
                    ("VpnRedundancyDegraded", "10.30.0.0/16"),
                    ("VpnExpectedPrefixMissing", "10.99.0.0/16"),
                }
                <= prom_alerts()
            ),
        )

        # Every dashboard query is valid PromQL over the live series.
        dashboard = json.loads(DASHBOARD.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"].replace("$__rate_interval", "1m").replace("$exporter", ".*")
                expr = expr.replace("$probe", ".*")
                result = prometheus.api("query", query=expr)
                assert result["status"] == "success", (panel["title"], expr)

        # API outage: only VpnWatchdogExporterStale is new; the firing VPN alerts stay (last known).
        before = alert_names(am)
        gcp.fault(r".", status=500)
        wait("stale alert", lambda: ("VpnWatchdogExporterStale", "") in alert_names(am))
        time.sleep(1.5)
        assert alert_names(am) - before == {("VpnWatchdogExporterStale", "")}
        assert before <= alert_names(am)
    finally:
        prometheus.stop()
        assert daemon.stop() == 0
        am.stop()


def build_aws_side(aws: MotoAws) -> tuple[str, str]:
    """Two VPN connections whose customer gateways are the GCP fake's HA interfaces and whose outside
    IPs are the GCP fake's peer IPs: the fake GCP tunnels aws-tun-0..3 are their other ends."""
    tgw = aws.create_transit_gateway()
    table = aws.default_route_table(tgw)
    client = aws.client()
    vpns = []
    for i, (gcp_ip, outside) in enumerate(
        (("203.0.113.10", ("198.51.100.1", "198.51.100.2")), ("203.0.113.11", ("198.51.100.3", "198.51.100.4")))
    ):
        cgw = aws.create_customer_gateway(gcp_ip)
        inside = (f"169.254.{10 + 2 * i}.0/30", f"169.254.{11 + 2 * i}.0/30")
        info = aws.create_vpn_connection(cgw, transit_gateway_id=tgw, outside_ips=outside, inside_cidrs=inside)
        client.associate_transit_gateway_route_table(
            TransitGatewayRouteTableId=table, TransitGatewayAttachmentId=info.attachment_id
        )
        client.enable_transit_gateway_route_table_propagation(
            TransitGatewayRouteTableId=table, TransitGatewayAttachmentId=info.attachment_id
        )
        vpns.append(info.vpn_id)
    aws.add_propagated_route(table, "10.40.0.0/16", *vpns)
    return vpns[0], vpns[1]


@pytest.mark.slow
def test_tunnel_seen_from_both_clouds_is_one_alert(
    tmp_path: Path, port: int, fakes: tuple[FakeGcp, FakeMonitoring], monkeypatch: pytest.MonkeyPatch
) -> None:
    gcp, _mon = fakes
    with MotoAws() as aws:
        aws.use_test_credentials(monkeypatch)  # the daemon subprocess inherits them
        _vpn1, vpn2 = build_aws_side(aws)
        # The fake's aws-tun-2 (peer 198.51.100.3) is NO_INCOMING_PACKETS: AWS sees its end down too.
        aws.set_telemetry(vpn2, "198.51.100.3", status="DOWN", message="IPSEC IS DOWN")
        am = AlertmanagerProcess(tmp_path / "am").start()
        config = tmp_path / "config.yaml"
        config.write_text(
            f"""
listen: 127.0.0.1:{port}
interval: 500ms
exporters:
  - {{name: aws-tokyo, type: aws, region: {aws.region}, endpoint_url: "{aws.endpoint_url}", timeout: 3s}}
  - name: gcp-hub
    type: gcp
    project: {gcp.project}
    region: {gcp.region}
    endpoint: {gcp.url}
    monitoring: false
    credentials_file: {gcp.write_credentials(tmp_path)}
    timeout: 3s
expected_prefixes:
  - {{exporter: aws-tokyo, prefixes: [10.40.0.0/16], min_paths: 2}}
alertmanager:
  urls: [{am.url}]
  resend_interval: 1s
  for: 200ms
"""
        )
        daemon = DaemonProcess(config, port)
        try:
            page = daemon.wait_for('vpn_watchdog_tunnel_pair_info{aws_account="', timeout=30)
            pairs = [line for line in page.splitlines() if line.startswith("vpn_watchdog_tunnel_pair_info{")]
            assert len(pairs) == 4, pairs
            assert any('aws_tunnel="198.51.100.3"' in p and 'gcp_tunnel="aws-tun-2"' in p for p in pairs)
            # Each end names its account / project and region.
            assert all('aws_account="123456789012"' in p and f'gcp_project="{gcp.project}"' in p for p in pairs)

            def tunnel_alerts() -> list[dict[str, Any]]:
                return [a for a in am.alerts() if a["labels"]["alertname"].startswith("VpnTunnel")]

            def joined() -> list[dict[str, Any]]:
                found = tunnel_alerts()
                return found if [a["labels"].get("gcp_tunnel") for a in found] == ["aws-tun-2"] else []

            (down,) = wait("one joined tunnel alert", joined)
            assert len(tunnel_alerts()) == 1
            labels = down["labels"]
            assert labels["alertname"] == "VpnTunnelDown"
            assert labels["exporter"] == "aws-tokyo+gcp-hub"
            assert (labels["aws_exporter"], labels["aws_tunnel"]) == ("aws-tokyo", "198.51.100.3")
            assert (labels["gcp_exporter"], labels["gcp_tunnel"]) == ("gcp-hub", "aws-tun-2")
            assert labels["aws_connection"] == vpn2
            assert (labels["aws_account"], labels["gcp_project"], labels["gcp_region"]) == (
                "123456789012",
                gcp.project,
                gcp.region,
            )

            # AWS alone loses 198.51.100.4 while GCP's aws-tun-3 stays up: the ends disagree.
            aws.set_telemetry(vpn2, "198.51.100.4", status="DOWN")

            def asymmetric() -> list[dict[str, Any]]:
                return [a for a in tunnel_alerts() if a["labels"]["alertname"] == "VpnTunnelAsymmetric"]

            (asym,) = wait("asymmetric alert", asymmetric)
            assert asym["labels"]["exporter"] == "aws-tokyo" and asym["labels"]["gcp_tunnel"] == "aws-tun-3"
            # 10.40.0.0/16 is now on vpn-1's two tunnels only: a failover, still at min_paths.
            page = daemon.wait_for(
                'vpn_watchdog_failovers_total{cloud="aws",exporter="aws-tokyo",prefix="10.40.0.0/16"}'
            )
            assert (
                'vpn_watchdog_expected_prefix_paths{cloud="aws",exporter="aws-tokyo",prefix="10.40.0.0/16"} 2.0' in page
            )
        finally:
            assert daemon.stop() == 0
            am.stop()
