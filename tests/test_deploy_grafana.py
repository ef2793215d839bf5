"""deploy/grafana/vpn-watchdog.json is an importable dashboard over metrics we export."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from tests.deploy_checks import DEPLOY, metric_names, tool, unknown_metrics

DASHBOARD = DEPLOY / "grafana" / "vpn-watchdog.json"


def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def panels(doc: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in doc["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # collapsed rows nest theirs
    return out


def test_dashboard_model_basics() -> None:
    doc = dashboard()
    assert doc["uid"] == "vpn-watchdog" and doc["title"]
    assert isinstance(doc["schemaVersion"], int) and doc["schemaVersion"] >= 36
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in panels(doc)]
    assert len(ids) == len(set(ids))


def test_every_panel_queries_through_the_datasource_variable() -> None:
    for panel in panels(dashboard()):
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["refId"], panel["title"]
            assert target["datasource"]["uid"] == "${datasource}"
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]


def test_dashboard_queries_only_metrics_we_export() -> None:
    doc = dashboard()
    used = set()
    for panel in panels(doc):
        for target in panel.get("targets", []):
            used |= metric_names(target["expr"])
    for variable in doc["templating"]["list"]:
        used |= metric_names(json.dumps(variable.get("query", "")))
    assert not unknown_metrics(used)
    # The sections the dashboard promises.
    for metric in (
        "vpn_watchdog_tunnel_pair_info",
        "vpn_watchdog_bgp_session_up",
        "vpn_watchdog_expected_prefix_paths",
        "vpn_watchdog_learned_prefix",
        "vpn_watchdog_probe_latency_seconds_bucket",
        "vpn_watchdog_probe_icmp_loss_ratio",
        "vpn_watchdog_ike_fragmented_messages_total",
        "vpn_watchdog_exporter_up",
    ):
        assert metric in used, metric


def test_tunnel_table_shows_both_clouds_side_by_side() -> None:
    table = next(p for p in panels(dashboard()) if p["title"].startswith("Joined tunnels"))
    exprs = [t["expr"] for t in table["targets"]]
    assert any('cloud="aws"' in e for e in exprs) and any('cloud="gcp"' in e for e in exprs)
    assert {t["format"] for t in table["targets"]} == {"table"}


def test_no_panel_adds_the_drop_total_to_the_drops_by_reason() -> None:
    """status="dropped" (dropped_*_packets_count) already counts the packets the other
    non-successful statuses count by reason: a panel that sums both shows every drop twice."""
    exprs = [
        t["expr"]
        for p in panels(dashboard())
        for t in p.get("targets", [])
        if "tunnel_packets_total" in t.get("expr", "")
    ]
    assert exprs
    for expr in exprs:
        statuses = re.search(r'status(=~|!~|!=|=)"([^"]*)"', expr)
        assert statuses is not None, expr
        op, values = statuses.groups()
        chosen = set(values.split("|"))
        if op in ("=~", "="):
            assert not ("dropped" in chosen and chosen - {"dropped", "successful"}), expr
        else:
            assert "dropped" in chosen, expr


# -- importable on grafana.com, and right with two replicas scraped ---------------------------------


def test_importable_with_inputs_and_requires() -> None:
    doc = dashboard()
    (source,) = doc["__inputs"]
    assert (source["type"], source["pluginId"]) == ("datasource", "prometheus")
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["datasource"]["current"]["value"] == "${" + source["name"] + "}"
    required = {r["id"] for r in doc["__requires"]}
    assert {"grafana", "prometheus"} | {p["type"] for p in panels(doc) if p["type"] != "row"} <= required
    assert doc.get("id") is None  # an exported dashboard carries no database id


def test_job_and_instance_variables_scope_every_query() -> None:
    doc = dashboard()
    variables = [v["name"] for v in doc["templating"]["list"]]
    assert variables[:3] == ["datasource", "job", "instance"]
    for panel in panels(doc):
        for target in panel.get("targets", []):
            for name in metric_names(target["expr"]):
                for use in re.finditer(re.escape(name) + r"(\{[^}]*\})?", target["expr"]):
                    assert use.group(1) and 'job=~"$job",instance=~"$instance"' in use.group(1), target["expr"]


def panel_expr(title: str, index: int = 0) -> str:
    panel = next(p for p in panels(dashboard()) if p["title"] == title or p["title"].startswith(title))
    expr = str(panel["targets"][index]["expr"])
    for variable, value in (("$__rate_interval", "5m"), ("$job", ".*"), ("$instance", ".*")):
        expr = expr.replace(variable, value)
    return expr.replace("$exporter", ".*").replace("$probe", ".*")


def test_two_replicas_scraped_are_not_counted_twice(tmp_path: Path) -> None:
    """Real PromQL (promtool's evaluator) over the series two replicas expose: the panels that add
    things up show one replica's numbers, and the joined table does not fail on duplicate series."""
    promtool = tool("promtool")
    series = []
    for instance in ("10.0.0.1:9687", "10.0.0.2:9687"):
        base = f'job="vpn-watchdog",instance="{instance}"'
        for tunnel, up in (("198.51.100.1", 1), ("198.51.100.2", 0), ("198.51.100.3", 1)):
            series.append(
                {
                    "series": f'vpn_watchdog_tunnel_up{{{base},exporter="aws",cloud="aws",connection="vpn-1",'
                    f'tunnel="{tunnel}",local_ip="{tunnel}",peer_ip="203.0.113.1"}}',
                    "values": f"{up}x10",
                }
            )
        series.append(
            {
                "series": f'vpn_watchdog_tunnel_pair_info{{{base},aws_exporter="aws",aws_connection="vpn-1",'
                'aws_tunnel="198.51.100.1",gcp_exporter="gcp",gcp_tunnel="tun-0"}',
                "values": "1x10",
            }
        )
        series.append(
            {
                "series": f'vpn_watchdog_failovers_total{{{base},exporter="gcp",cloud="gcp",prefix="10.1.0.0/16"}}',
                "values": "0 0 0 0 1 1 1 1 1 1 1",
            }
        )
    tests = [
        (panel_expr("Tunnels up per exporter", 0), [{"labels": '{exporter="aws"}', "value": 2}]),
        (panel_expr("Tunnels up per exporter", 1), [{"labels": '{exporter="aws"}', "value": 3}]),
        (
            panel_expr("Joined tunnels", 0),
            [
                {
                    "labels": '{aws_connection="vpn-1",aws_exporter="aws",aws_tunnel="198.51.100.1",'
                    'gcp_exporter="gcp",gcp_tunnel="tun-0"}',
                    "value": 1,
                }
            ],
        ),
        (panel_expr("Failovers"), [{"labels": '{exporter="gcp",prefix="10.1.0.0/16"}', "value": 1}]),
    ]
    (tmp_path / "none.rules.yml").write_text("groups: []\n")
    unit = {
        "rule_files": ["none.rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [{"expr": expr, "eval_time": "8m", "exp_samples": exp} for expr, exp in tests],
            }
        ],
    }
    (tmp_path / "panels.test.yml").write_text(json.dumps(unit))
    result = subprocess.run([promtool, "test", "rules", "panels.test.yml"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
