"""The alert engine and Alertmanager client against a real prometheus-alertmanager and a faulty HTTP server."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.alertmanager_process import AlertmanagerProcess
from tests.conftest import free_port
from tests.health_lab import AWS, AWS_PREFIX, GCP, GCP_PREFIX, aws_snapshot, gcp_snapshot
from watchdog.alerting import AlertEngine, AlertOptions
from watchdog.alertmanager import alert_json
from watchdog.config import Config, parse_config
from watchdog.health import Alert
from watchdog.model import Snapshot
from watchdog.runners import ExporterRunner, WatchdogState


class _Source:
    """The runner's exporter slot; snapshots are fed with `ExporterRunner.apply` as a poll would."""

    def __init__(self, name: str, cloud: str) -> None:
        self.name, self.cloud = name, cloud

    def poll(self) -> Snapshot:
        raise AssertionError("not polled in these tests")

    def close(self) -> None:
        return None


def config(urls: list[str], resend: str = "1s", hold: str = "100ms", timeout: str = "2s") -> Config:
    return parse_config(
        json.dumps(
            {
                "listen": "127.0.0.1:9687",
                "labels": {"env": "test"},
                "exporters": [
                    {"name": AWS, "type": "aws", "region": "ap-northeast-1"},
                    {"name": GCP, "type": "gcp", "project": "p", "region": "asia-northeast1"},
                ],
                "expected_prefixes": [
                    {"exporter": AWS, "prefixes": [AWS_PREFIX], "min_paths": 2},
                    {"exporter": GCP, "prefixes": [GCP_PREFIX], "min_paths": 2},
                ],
                "alertmanager": {"urls": urls, "resend_interval": resend, "for": hold, "timeout": timeout},
            }
        )
    )


def lab_state() -> WatchdogState:
    state = WatchdogState()
    state.exporters = {
        AWS: ExporterRunner(_Source(AWS, "aws"), interval=30, timeout=5, expected_prefixes=(AWS_PREFIX,)),
        GCP: ExporterRunner(_Source(GCP, "gcp"), interval=30, timeout=5, expected_prefixes=(GCP_PREFIX,)),
    }
    return state


def feed(state: WatchdogState, down: set[int]) -> None:
    state.exporters[AWS].apply(aws_snapshot(down, at=time.time()), 0.01)
    state.exporters[GCP].apply(gcp_snapshot(down, at=time.time()), 0.01)


async def ticks(engine: AlertEngine, seconds: float, until: Callable[[], bool] | None = None) -> bool:
    """Tick like the daemon does (faster, to keep tests short) until `until()` or time is up."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await engine.tick()
        if until is not None and until():
            return True
        await asyncio.sleep(0.05)
    return until is None


def names(alerts: list[dict[str, Any]]) -> list[str]:
    return sorted(a["labels"]["alertname"] for a in alerts)


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[AlertmanagerProcess]:
    am = AlertmanagerProcess(tmp_path / "am")
    try:
        yield am.start()
    finally:
        am.stop()


def test_alerts_reach_alertmanager_survive_its_restart_and_resolve(alertmanager: AlertmanagerProcess) -> None:
    state = lab_state()
    engine = AlertEngine(AlertOptions.from_config(config([alertmanager.url])), state)

    async def scenario() -> None:
        feed(state, set())
        await ticks(engine, 0.3)
        assert alertmanager.alerts() == []
        feed(state, {1})
        expected = ["VpnPathFailover", "VpnPathFailover", "VpnTunnelDown"]
        assert await ticks(engine, 5, lambda: names(alertmanager.alerts()) == expected)
        first = {a["labels"]["alertname"] + a["labels"]["exporter"]: a for a in alertmanager.alerts()}
        down = first["VpnTunnelDown" + f"{AWS}+{GCP}"]
        assert down["labels"] == {
            "alertname": "VpnTunnelDown",
            "severity": "warning",
            "env": "test",
            "exporter": f"{AWS}+{GCP}",
            "aws_exporter": AWS,
            "aws_connection": "vpn-1",
            "aws_tunnel": "198.51.100.1",
            "gcp_exporter": GCP,
            "gcp_tunnel": "tun1",
            "tunnel": "tun1",
        }
        assert down["generatorURL"] == "http://127.0.0.1:9687/metrics"
        assert "3 of 4 tunnels up" in down["annotations"]["description"]
        failover = first["VpnPathFailover" + GCP]
        assert failover["annotations"]["description"].startswith(f"{GCP_PREFIX} now on 3 of 4 paths")
        assert state.failovers[(AWS, AWS_PREFIX)] == 1 and state.failovers[(GCP, GCP_PREFIX)] == 1
        assert len(state.tunnel_pairs) == 4

        # Alertmanager keeps alerts only in memory: after a restart the next resend restores them,
        # with the same startsAt.
        alertmanager.stop()
        await ticks(engine, 1.2)  # a resend falls due and fails
        alertmanager.start()
        assert alertmanager.alerts() == []
        assert await ticks(engine, 5, lambda: names(alertmanager.alerts()) == expected)
        again = {a["labels"]["alertname"] + a["labels"]["exporter"]: a for a in alertmanager.alerts()}
        assert again["VpnTunnelDown" + f"{AWS}+{GCP}"]["startsAt"] == down["startsAt"]
        assert state.alerts_sent["error"] >= 1

        feed(state, set())  # recovery: resolved alerts vanish from Alertmanager's active list
        assert await ticks(engine, 5, lambda: alertmanager.alerts() == [])
        await ticks(engine, 0.2)  # let the push's completion reach the loop
        assert state.alerts_sent["success"] >= 3

    try:
        asyncio.run(scenario())
    finally:
        asyncio.run(engine.close())


class _FaultyAlertmanager:
    """Answers POST /api/v2/alerts with a settable status after a settable delay; records bodies."""

    def __init__(self) -> None:
        self.status, self.delay = 500, 0.0
        self.bodies: list[list[dict[str, Any]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (stdlib name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.bodies.append(body)
                time.sleep(outer.delay)
                self.send_response(outer.status)
                self.end_headers()
                self.wfile.write(b"boom" if outer.status >= 400 else b"")

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def faulty() -> Iterator[_FaultyAlertmanager]:
    server = _FaultyAlertmanager()
    try:
        yield server
    finally:
        server.close()


def test_500s_back_off_and_recovery_is_one_push_not_a_storm(faulty: _FaultyAlertmanager) -> None:
    state = lab_state()
    engine = AlertEngine(AlertOptions.from_config(config([faulty.url], resend="8s")), state)

    async def scenario() -> None:
        feed(state, {1, 2})
        await ticks(engine, 0.3)  # alerts fire; first push fails
        await ticks(engine, 3.5)  # retries at ~+1 s and ~+3 s: backoff, not one per tick
        failed = len(faulty.bodies)
        assert 2 <= failed <= 4, failed
        assert state.alerts_sent["error"] == failed and state.alerts_sent["success"] == 0
        faulty.status = 200
        before = len(faulty.bodies)
        await ticks(engine, 5)  # next retry (<= 4 s) succeeds; then quiet until the 8 s resend
        assert len(faulty.bodies) - before == 1
        assert state.alerts_sent["success"] == 1
        pushed = faulty.bodies[-1]
        assert sorted(a["labels"]["alertname"] for a in pushed).count("VpnTunnelDown") == 2
        # The active set was kept through the outage: startsAt is from before the failures.
        assert {a["startsAt"] for a in pushed} == {a["startsAt"] for a in faulty.bodies[0]}

    try:
        asyncio.run(scenario())
    finally:
        asyncio.run(engine.close())


def test_slow_alertmanager_never_blocks_the_event_loop(faulty: _FaultyAlertmanager) -> None:
    faulty.status, faulty.delay = 200, 1.5
    state = lab_state()
    engine = AlertEngine(AlertOptions.from_config(config([faulty.url], timeout="500ms")), state)

    async def scenario() -> None:
        feed(state, {1})
        await ticks(engine, 0.3)
        assert len(faulty.bodies) == 1  # in flight, not repeated while it hangs
        worst = 0.0
        for _ in range(10):
            started = time.monotonic()
            await engine.tick()
            worst = max(worst, time.monotonic() - started)
            await asyncio.sleep(0.05)
        assert worst < 0.1, worst
        await ticks(engine, 1.0, lambda: state.alerts_sent["error"] >= 1)
        assert state.alerts_sent["error"] == 1  # the timeout counts as an error

    try:
        asyncio.run(scenario())
    finally:
        asyncio.run(engine.close())


def test_ha_pair_gets_every_alert_even_when_one_member_is_down(
    alertmanager: AlertmanagerProcess, faulty: _FaultyAlertmanager
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    state = lab_state()
    engine = AlertEngine(AlertOptions.from_config(config([alertmanager.url, dead])), state)

    async def scenario() -> None:
        feed(state, {1, 2, 3, 4})
        assert await ticks(engine, 5, lambda: "VpnPrefixUnreachable" in names(alertmanager.alerts()))
        await ticks(engine, 0.2)
        assert state.alerts_sent["success"] >= 1 and state.alerts_sent["error"] >= 1
        page = [a for a in alertmanager.alerts() if a["labels"]["severity"] == "page"]
        assert sorted(a["labels"]["prefix"] for a in page) == [AWS_PREFIX, GCP_PREFIX]

    try:
        asyncio.run(scenario())
    finally:
        asyncio.run(engine.close())


def test_firing_alert_is_valid_a_few_resends_ahead_and_resolved_ends_now() -> None:
    firing = Alert((("alertname", "VpnTunnelDown"),), "s", "d", 1_800_000_000.0)
    body = alert_json(firing, "http://h:9687/metrics", 1_800_000_100.0, 60.0)
    assert body["startsAt"] == "2027-01-15T08:00:00.000Z"
    assert body["endsAt"] == "2027-01-15T08:05:40.000Z"  # now + 4 x 60 s
    resolved = Alert(firing.labels, "s", "d", firing.starts_at, 1_800_000_100.0)
    assert alert_json(resolved, "u", 1_800_000_200.0, 60.0)["endsAt"] == "2027-01-15T08:01:40.000Z"


def test_no_alertmanager_configured_still_counts_failovers_and_pairs() -> None:
    state = lab_state()
    cfg = config(["http://127.0.0.1:1"]).model_copy(update={"alertmanager": None})
    engine = AlertEngine(AlertOptions.from_config(cfg), state)
    feed(state, set())
    engine.observe()
    feed(state, {4})
    engine.observe()
    assert engine.client is None
    assert state.failovers[(GCP, GCP_PREFIX)] == 1 and len(state.tunnel_pairs) == 4
