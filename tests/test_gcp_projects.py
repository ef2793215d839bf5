"""One `type: gcp` entry over several projects (listed and found by labels) and regions, on the GCP fake."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.lab.emulators.gcp import FakeGcp
from exporters.registry import build_exporter
from tests.fakes.gcp_projects import MultiProjectGcp
from watchdog.config import GcpExporterConfig
from watchdog.errors import ExporterError
from watchdog.metrics import render_page
from watchdog.oneshot import build_report
from watchdog.paths import expected_paths
from watchdog.runners import ExporterRunner, WatchdogState
from watchdog.topology_view import build_drawing

HUB, STG = "net-hub-prod", "net-hub-stg"
REGIONS = ("asia-northeast1", "us-west1")


@pytest.fixture
def clouds(tmp_path: Path) -> Iterator[tuple[MultiProjectGcp, str]]:
    with FakeGcp(project="front", empty=True) as front:
        multi = MultiProjectGcp(front)
        for project in (HUB, STG):
            for region in REGIONS:
                multi.add(project, region, labels={"vpn-watchdog": "on"})
        yield multi, front.write_credentials(tmp_path)


def entry(multi: MultiProjectGcp, credentials: str, **extra: Any) -> GcpExporterConfig:
    fields: dict[str, Any] = {
        "name": "gcp-prod",
        "type": "gcp",
        "projects": [HUB, STG],
        "regions": list(REGIONS),
        "endpoint": multi.front.url,
        "credentials_file": credentials,
        "monitoring": False,
    }
    fields.update(extra)
    return GcpExporterConfig.model_validate(fields)


def test_every_project_and_region_with_its_labels(clouds: tuple[MultiProjectGcp, str]) -> None:
    multi, credentials = clouds
    runner = ExporterRunner(
        build_exporter(entry(multi, credentials), timeout=10.0),
        interval=30,
        timeout=10,
        expected_prefixes=("10.20.0.0/16",),
    )
    try:
        asyncio.run(runner.poll_once())
    finally:
        runner.close()
    snapshot = runner.snapshot
    assert snapshot is not None and runner.health.up
    # Each target holds the same template topology (4 tunnels): 16 tunnels, told apart by their scope.
    assert len(snapshot.tunnels) == 16
    assert sorted({(t.scope.id, t.scope.region) for t in snapshot.tunnels if t.scope}) == sorted(
        (p, r) for p in (HUB, STG) for r in REGIONS
    )
    # 10.20.0.0/16 rides two tunnels in each of the four targets: eight usable paths, none merged.
    assert len(expected_paths(snapshot, ["10.20.0.0/16"])["10.20.0.0/16"]) == 8
    page = render_page(WatchdogState(exporters={"gcp-prod": runner})).decode()
    assert (
        'vpn_watchdog_tunnel_up{cloud="gcp",connection="ha-gw",exporter="gcp-prod",local_ip="203.0.113.11",'
        f'peer_ip="198.51.100.3",project="{STG}",region="us-west1",tunnel="aws-tun-2"}} 0.0'
    ) in page
    hub = f'exporter="gcp-prod",gateway="ha-gw",project="{HUB}",region="asia-northeast1"'
    assert f'vpn_watchdog_ha_redundancy_met{{cloud="gcp",{hub}}} 1.0' in page
    assert 'vpn_watchdog_expected_prefix_paths{cloud="gcp",exporter="gcp-prod",prefix="10.20.0.0/16"} 8.0' in page
    for project in (HUB, STG):
        target = f'cloud="gcp",exporter="gcp-prod",project="{project}",region="us-west1"'
        assert f"vpn_watchdog_exporter_target_up{{{target}}} 1.0" in page


def test_projects_found_by_labels_come_and_go(clouds: tuple[MultiProjectGcp, str]) -> None:
    multi, credentials = clouds
    multi.labels[STG]["vpn-watchdog"] = "off"
    config = entry(multi, credentials, projects=[], project_labels={"vpn-watchdog": "on"}, regions=[REGIONS[0]])
    assert config.project == ""  # nothing listed: every project comes from the lookup
    exporter = build_exporter(config, timeout=10.0)
    try:
        first = exporter.poll()
        multi.labels[STG]["vpn-watchdog"] = "on"
        second = exporter.poll()
        multi.remove(HUB)
        third = exporter.poll()
    finally:
        exporter.close()
    assert [t.scope.id for t in first.targets] == [HUB]
    assert [t.scope.id for t in second.targets] == [HUB, STG]
    assert [t.scope.id for t in third.targets] == [STG]
    assert multi.filters[0] == "labels.vpn-watchdog:on lifecycleState:ACTIVE"
    assert first.api_calls == 1 + 6  # the projects.list page, then one target's 6 Compute calls


def test_one_projects_denial_downs_only_its_targets(clouds: tuple[MultiProjectGcp, str]) -> None:
    multi, credentials = clouds
    multi.front.fault(rf"/projects/{STG}/", status=403)
    runner = ExporterRunner(build_exporter(entry(multi, credentials), timeout=10.0), interval=30, timeout=10)
    try:
        asyncio.run(runner.poll_once())
    finally:
        runner.close()
    health = runner.health
    assert health.up and health.errors["auth"] == 2
    down = sorted((t.scope.id, t.scope.region) for t in health.targets if not t.up)
    assert down == [(STG, r) for r in REGIONS]
    assert all(t.last_error.startswith("auth") for t in health.targets if not t.up)
    assert runner.snapshot is not None and {t.scope.id for t in runner.snapshot.tunnels if t.scope} == {HUB}


def test_a_failed_project_lookup_keeps_the_listed_projects_polling(clouds: tuple[MultiProjectGcp, str]) -> None:
    multi, credentials = clouds
    multi.front.fault(r"^/v1/projects$", status=500)
    config = entry(multi, credentials, projects=[HUB], project_labels={"vpn-watchdog": "on"}, regions=[REGIONS[0]])
    runner = ExporterRunner(build_exporter(config, timeout=10.0), interval=30, timeout=10)
    try:
        asyncio.run(runner.poll_once())
    finally:
        runner.close()
    assert runner.health.up and runner.health.errors["server_error"] == 1
    assert "finding projects by labels" in runner.health.last_error
    assert [t.scope.id for t in runner.health.targets] == [HUB]


def test_no_project_at_all_is_an_error(clouds: tuple[MultiProjectGcp, str]) -> None:
    multi, credentials = clouds
    config = entry(multi, credentials, projects=[], project_labels={"team": "nobody"}, regions=[REGIONS[0]])
    exporter = build_exporter(config, timeout=10.0)
    try:
        with pytest.raises(ExporterError, match="no account/project") as raised:
            exporter.poll()
    finally:
        exporter.close()
    assert raised.value.reason == "not_found"


def test_status_report_and_drawing_say_where_and_grey_out_only_the_failing_project(
    clouds: tuple[MultiProjectGcp, str],
) -> None:
    multi, credentials = clouds
    config = entry(multi, credentials, regions=[REGIONS[0]])
    runner = ExporterRunner(build_exporter(config, timeout=10.0), interval=30, timeout=10)
    try:
        asyncio.run(runner.poll_once())
        multi.front.fault(rf"/projects/{STG}/", status=403)
        asyncio.run(runner.poll_once())
    finally:
        runner.close()
    report = build_report([config], [runner], {}, [], {})
    rows = {(t["project"], t["region"], t["tunnel"]) for t in report["tunnels"]}
    assert (STG, REGIONS[0], "aws-tun-0") in rows and (HUB, REGIONS[0], "aws-tun-0") in rows
    (exporter,) = report["exporters"]
    assert [(t["project"], t["up"]) for t in exporter["targets"]] == [(HUB, True), (STG, False)]
    states = {line.label: line.gcp_state for line in build_drawing(report).tunnels}
    assert states[f"aws-tun-0 [{STG}/{REGIONS[0]}]"] == "stale"  # last known, greyed: its API is failing
    assert states[f"aws-tun-0 [{HUB}/{REGIONS[0]}]"] == "up"
