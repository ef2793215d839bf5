"""deploy/prometheus and deploy/alertmanager prove themselves: promtool/amtool checks, rule unit
tests, the same alert names and severities as the daemon, and only metrics we export."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml

from tests.deploy_checks import DEPLOY, metric_names, tool, unknown_metrics
from watchdog.health import ALERT_NAMES, SEVERITY

RULES = DEPLOY / "prometheus" / "vpn-watchdog.rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "tests" / "vpn-watchdog.rules.test.yml"
ALERTMANAGER = DEPLOY / "alertmanager" / "alertmanager.yml"


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_promtool_check_rules() -> None:
    out = run(tool("promtool"), "check", "rules", str(RULES)).stdout
    assert f"SUCCESS: {len(rules())} rules found" in out


def test_promtool_rule_unit_tests_pass() -> None:
    assert "SUCCESS" in run(tool("promtool"), "test", "rules", str(RULE_TESTS)).stdout


@pytest.mark.parametrize("name", ["prometheus.yml", "federation.yml"])
def test_scrape_config_examples_are_valid(name: str) -> None:
    run(tool("promtool"), "check", "config", str(DEPLOY / "prometheus" / name))


def test_amtool_check_config() -> None:
    out = run(tool("amtool"), "check-config", str(ALERTMANAGER)).stdout
    assert "SUCCESS" in out and "2 receivers" in out


def test_rules_cover_every_alert_with_the_daemons_severity() -> None:
    alerts = [r for r in rules() if "alert" in r]
    assert {r["alert"] for r in alerts} == set(ALERT_NAMES)
    for rule in alerts:
        assert rule["labels"]["severity"] == SEVERITY[rule["alert"]], rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]


def test_rules_query_only_metrics_we_export() -> None:
    used = set()
    for rule in rules():
        used |= metric_names(rule["expr"]) | metric_names(str(rule.get("annotations", "")))
    assert used and not unknown_metrics(used)
    used_by_tests = metric_names(RULE_TESTS.read_text())
    assert not unknown_metrics(used_by_tests)


def test_alertmanager_routes_pages_to_the_pager_and_inhibits_failover_noise() -> None:
    doc = yaml.safe_load(ALERTMANAGER.read_text())
    routes = {r["receiver"]: r["matchers"] for r in doc["route"]["routes"]}
    assert routes["pager"] == ['severity = "page"']
    for receiver in doc["receivers"]:
        for hook in receiver["webhook_configs"]:
            assert hook["url"].startswith("http://127.0.0.1:")
    unreachable = next(r for r in doc["inhibit_rules"] if "VpnPrefixUnreachable" in r["source_matchers"][0])
    assert "VpnPathFailover" in unreachable["target_matchers"][0]
    assert "VpnRedundancyDegraded" in unreachable["target_matchers"][0]
    assert unreachable["equal"] == ["exporter", "prefix"]


def test_metric_check_catches_names_we_do_not_export() -> None:
    names = {"vpn_watchdog_tunnel_upp", "vpn_watchdog_tunnel_up_bucket", "vpn_watchdog_probe_latency_seconds_bucket"}
    assert unknown_metrics(names) == {"vpn_watchdog_tunnel_upp", "vpn_watchdog_tunnel_up_bucket"}


def test_every_alert_links_its_runbook_section() -> None:
    from tests.test_docs import anchors

    sections = anchors((DEPLOY.parent / "docs" / "alerts.md").read_text())
    for rule in rules():
        if "alert" not in rule:
            continue
        url = rule["annotations"].get("runbook_url", "")
        page, _, anchor = url.partition("#")
        assert page == "docs/alerts.md" and anchor == rule["alert"].lower(), (rule["alert"], url)
        assert anchor in sections, f"{rule['alert']}: docs/alerts.md has no section #{anchor}"
