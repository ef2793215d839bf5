"""Exporter runner semantics: bounded polls, no overlap, last snapshot kept on failure."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from watchdog.errors import ExporterError
from watchdog.model import Snapshot, Tunnel
from watchdog.runners import ExporterRunner


class ScriptedExporter:
    """Plays a script of outcomes: a Snapshot, an ExporterError, or a delay in seconds before a snapshot."""

    cloud = "gcp"

    def __init__(self, script: list[object]) -> None:
        self.name, self.script, self.calls, self.active, self.max_active = "scripted", script, 0, 0, 0
        self._lock = threading.Lock()

    def poll(self) -> Snapshot:
        with self._lock:
            self.calls += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            step = self.script.pop(0) if self.script else snapshot()
        try:
            if isinstance(step, float):
                time.sleep(step)
                return snapshot()
            if isinstance(step, Exception):
                raise step
            assert isinstance(step, Snapshot)
            return step
        finally:
            with self._lock:
                self.active -= 1

    def close(self) -> None:
        pass


def snapshot(up: bool = True) -> Snapshot:
    return Snapshot(
        "scripted", "gcp", 0.0, tunnels=(Tunnel("gw", "t0", "203.0.113.1", "198.51.100.1", up, "ESTABLISHED"),)
    )


def test_failure_keeps_last_snapshot_and_counts_reason() -> None:
    exporter = ScriptedExporter([snapshot(), ExporterError("throttled", "429"), snapshot(up=False)])
    runner = ExporterRunner(exporter, interval=1, timeout=1)

    async def scenario() -> None:
        await runner.poll_once()
        assert runner.health.up and runner.snapshot is not None and runner.snapshot.tunnels[0].up
        first = runner.snapshot
        await runner.poll_once()
        assert not runner.health.up and runner.snapshot is first
        assert runner.health.errors["throttled"] == 1 and runner.health.last_error == "throttled: 429"
        await runner.poll_once()
        assert runner.health.up and runner.snapshot is not None and not runner.snapshot.tunnels[0].up

    asyncio.run(scenario())


def test_slow_poll_times_out_and_never_overlaps() -> None:
    exporter = ScriptedExporter([0.6, snapshot()])
    runner = ExporterRunner(exporter, interval=1, timeout=0.2)

    async def scenario() -> None:
        started = time.monotonic()
        await runner.poll_once()
        assert time.monotonic() - started < 0.5  # bounded by the timeout, not by the slow API
        assert runner.health.errors["timeout"] == 1 and not runner.health.up
        await runner.poll_once()  # the slow worker is still running: skipped, not queued in parallel
        assert runner.health.skipped_overlaps == 1 and exporter.calls == 1
        await asyncio.sleep(0.6)
        await runner.poll_once()
        assert exporter.calls == 2 and runner.health.up

    asyncio.run(scenario())
    assert exporter.max_active == 1


def test_exporter_bug_is_contained() -> None:
    exporter = ScriptedExporter([ZeroDivisionError("bug")])
    runner = ExporterRunner(exporter, interval=1, timeout=1)
    asyncio.run(runner.poll_once())
    assert runner.health.errors["internal"] == 1 and "ZeroDivisionError" in runner.health.last_error


def test_staleness_after_three_intervals() -> None:
    now = [1000.0]
    runner = ExporterRunner(ScriptedExporter([]), interval=10, timeout=1, clock=lambda: now[0])
    assert not runner.is_stale()  # just started: not stale before it had a chance to poll
    assert runner.is_stale(now=1031.0)  # ...but stale when the first poll never succeeds
    asyncio.run(runner.poll_once())
    now[0] += 29
    assert not runner.is_stale()
    now[0] += 2
    assert runner.is_stale()


def test_outage_backs_off_and_honours_retry_after() -> None:
    now = [1000.0]
    failures = [ExporterError("server_error", "503") for _ in range(10)]
    exporter = ScriptedExporter([*failures, snapshot()])
    runner = ExporterRunner(exporter, interval=10, timeout=1, clock=lambda: now[0])

    def tick(seconds: float = 10) -> None:  # one scheduled poll per interval
        asyncio.run(runner.poll_once())
        now[0] += seconds

    for _ in range(12):
        tick()
    # 12 scheduled polls during an outage: polled at 0, 10, 20, 50, 90 (0, 1, 3, then 4 skipped between).
    assert exporter.calls == 5 and runner.health.skipped_backoff == 7
    assert runner.backoff_after(1, None) == 0 and runner.backoff_after(9, None) == 40

    throttled = ScriptedExporter([ExporterError("throttled", "429", retry_after=25.0), snapshot()])
    runner = ExporterRunner(throttled, interval=10, timeout=1, clock=lambda: now[0])
    for _ in range(4):
        tick()
    assert throttled.calls == 2  # at 0 (throttled, Retry-After 25 s), skipped at 10 and 20, then 30
    assert runner.health.up and runner.not_before == 0.0


class LateFailingExporter:
    """Outlives the poll timeout, then fails: the abandoned worker's error must stay quiet."""

    name, cloud = "late", "aws"

    def __init__(self) -> None:
        self.done = threading.Event()

    def poll(self) -> Snapshot:
        try:
            time.sleep(0.4)
            raise ExporterError("api_error", "gave up after the poll's timeout")
        finally:
            self.done.set()

    def close(self) -> None:
        pass


def test_timed_out_poll_logs_one_warning_and_no_unretrieved_future(caplog: pytest.LogCaptureFixture) -> None:
    import gc

    exporter = LateFailingExporter()
    runner = ExporterRunner(exporter, interval=1, timeout=0.1)

    async def scenario() -> None:
        await runner.poll_once()
        assert exporter.done.wait(5)
        await asyncio.sleep(0.1)  # let the worker's outcome reach the loop
        gc.collect()  # unretrieved exceptions are reported when their future is collected
        await asyncio.sleep(0)

    with caplog.at_level(logging.DEBUG):
        asyncio.run(scenario())
        gc.collect()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "exporter late poll failed (timeout): poll did not finish within 0.1s"
    ]
    assert runner.health.errors == {"timeout": 1}
