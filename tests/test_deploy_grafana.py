"""deploy/grafana/vpn-watchdog.json is an importable dashboard over metrics we export."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.deploy_checks import DEPLOY, metric_names, unknown_metrics

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
