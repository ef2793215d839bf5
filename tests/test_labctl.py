"""The lab tool without a lab: what it renders and how it refuses bad input (no root, no namespaces)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.lab import topology as topo
from watchdog.config import parse_config

REPO = Path(__file__).resolve().parents[1]
LABCTL = REPO / "deploy" / "lab" / "labctl.py"


def labctl(*args: str) -> subprocess.CompletedProcess[str]:
    python = shutil.which("python3") or sys.executable
    return subprocess.run([python, str(LABCTL), *args], capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("aws-view", "5", "down"), "'5': tunnels are numbered 1-4"),
        (("aws-view", "2", "sideways"), "invalid choice: 'sideways'"),
        (("advertise", "everything"), "invalid choice: 'everything'"),
        (("dns-return", "maybe"), "invalid choice: 'maybe'"),
    ],
)
def test_bad_verb_arguments_are_usage_errors(args: tuple[str, ...], message: str) -> None:
    result = labctl(*args)
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_verbs_on_a_lab_that_is_not_up_say_so(tmp_path: Path) -> None:
    if shutil.which("ip") is None:
        pytest.skip("iproute2 is not installed")
    # A prefix no lab uses: the default one may be a running demo lab, which this must not touch.
    (tmp_path / "state.json").write_text(json.dumps({"prefix": "vwzq-"}))
    for args in (("advertise", "no-spoke"), ("dns-return", "off"), ("aws-view", "1", "down")):
        result = labctl("--dir", str(tmp_path), *args)
        if result.returncode == 2 and "needs root" in result.stderr:
            pytest.skip("needs root to get past the root check")
        assert (result.returncode, result.stderr.strip()) == (1, "labctl: the lab is not up (run: labctl.py up)")


def test_lab_prometheus_evaluates_the_rules_but_sends_no_alerts() -> None:
    config = json.loads(topo.prometheus_yml(am_port=19093, watchdog_addr="127.0.0.1:9687", rules_glob="/r/*.yml"))
    assert "alerting" not in config  # the daemon is the lab's only alert source
    assert config["rule_files"] == ["/r/*.yml"]


def test_daemon_config_watches_both_cloud_apis_and_asks_dns_from_the_forwarding_range(tmp_path: Path) -> None:
    text = topo.watchdog_yaml(
        topo.Layout(tmp_path),
        watchdog_addr="127.0.0.1:9687",
        am_port=19093,
        netns={"gcp": "vw-gcp", "aws": "vw-aws", "inet": "vw-inet"},
        gcp_endpoint="http://127.0.0.1:19095",
        gcp_monitoring_endpoint="http://127.0.0.1:19096",
        aws_endpoint="http://127.0.0.1:19097",
    )
    config = parse_config(text)
    clouds = {e.name: e for e in config.exporters if e.type in ("aws", "gcp")}
    aws, gcp = clouds[topo.AWS_EXPORTER], clouds[topo.GCP_EXPORTER]
    assert (aws.type, aws.region, aws.endpoint_url) == ("aws", topo.AWS_REGION, "http://127.0.0.1:19097")  # type: ignore[union-attr]
    assert aws.tunnel_logs is not None and aws.tunnel_logs.log_group == topo.AWS_TUNNEL_LOG_GROUP  # type: ignore[union-attr]
    assert aws.credentials_file == str(tmp_path / "aws" / "api-credentials")  # type: ignore[union-attr]
    assert (gcp.project, gcp.endpoint, gcp.monitoring_endpoint, gcp.logs) == (  # type: ignore[union-attr]
        topo.GCP_PROJECT,
        "http://127.0.0.1:19095",
        "http://127.0.0.1:19096",
        True,
    )
    expected = {e.exporter: set(e.prefixes) for e in config.expected_prefixes}
    assert expected[topo.AWS_EXPORTER] == set(topo.GCP_VPC) and expected[topo.GCP_EXPORTER] == set(topo.AWS_VPC)
    (dns,) = [p for p in config.probes if p.type == "dns"]
    assert dns.source == topo.DNS_FORWARDER_ADDRESS  # type: ignore[union-attr]
    assert config.ike is not None and config.alertmanager is not None
