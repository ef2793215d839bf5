"""`watchdog run`: the composition root of the long-running daemon.

Builds exporters, probes, the IKE sniffer and the alerting engine from the config, schedules them
(APScheduler: one job per exporter and probe, no overlapping runs, coalesced misfires, no drift),
serves /metrics and /healthz, reloads on SIGHUP (an invalid new config is logged and the running one
kept) and stops gracefully on SIGTERM/SIGINT within a bounded time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from exporters import build_exporter
from probes import build_probe
from watchdog.alerting import AlertEngine
from watchdog.config import Config, load_config, parse_host_port
from watchdog.errors import ConfigError, WatchdogError
from watchdog.metrics import build_registry, render_page
from watchdog.oneshot import build_report, ike_rows
from watchdog.runners import ExporterRunner, ProbeRunner, WatchdogState
from watchdog.webconfig import load_web_config
from watchdog.webserver import MetricsServer

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 5.0


class Daemon:
    """Owns every running part; `run()` returns when a stop signal arrives."""

    def __init__(self, config: Config, config_path: str | None, listen: str | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.listen_override = listen
        self.state = WatchdogState()
        self.registry = build_registry(self.state)
        self.executor = ThreadPoolExecutor(max_workers=max(4, 2 * len(config.exporters) + 2), thread_name_prefix="poll")
        self.scheduler: AsyncIOScheduler | None = None
        self.server: MetricsServer | None = None
        self.alerts: AlertEngine | None = None
        self._exporter_configs: dict[str, Any] = {}
        self._stop = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.started_at = time.time()

    # ---- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._install_signals()
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.scheduler.start()
        self._start_server()
        self._apply(self.config)
        log.info(
            "vpn-watchdog running: %d exporters, %d probes, IKE sniffer %s, alertmanager %s",
            len(self.config.exporters),
            len(self.config.probes),
            "on" if self.config.ike else "off",
            ", ".join(self.config.alertmanager.urls) if self.config.alertmanager else "off",
        )
        await self._stop.wait()
        await self.shutdown()

    def request_stop(self) -> None:
        self._stop.set()

    async def shutdown(self) -> None:
        log.info("stopping")
        started = time.monotonic()
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            # Jobs still running are cancelled below; the stopped scheduler would report each one as a
            # failed job, which a deliberate stop is not.
            logging.getLogger("apscheduler").setLevel(logging.CRITICAL)
        if self.alerts is not None:
            try:
                await asyncio.wait_for(self.alerts.close(), SHUTDOWN_GRACE_SECONDS / 2)
            except (TimeoutError, Exception):
                log.warning("alert engine did not stop in time")
        if self.state.ike is not None:
            self.state.ike.stop()
        deadline = time.monotonic() + 1.0
        for runner in self.state.exporters.values():
            runner.close(wait=max(0.0, deadline - time.monotonic()))
        if self.server is not None:
            self.server.stop()
        self.executor.shutdown(wait=False, cancel_futures=True)
        log.info("stopped in %.2fs", time.monotonic() - started)

    def _install_signals(self) -> None:
        assert self._loop is not None
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(sig, self.request_stop)
        self._loop.add_signal_handler(signal.SIGHUP, self.reload)

    def _start_server(self) -> None:
        host, port = parse_host_port(self.listen_override or self.config.listen)
        web = load_web_config(self.config.web_config_file) if self.config.web_config_file else None
        try:
            self.server = MetricsServer(
                host,
                port,
                lambda: render_page(self.state, self.registry),
                self.health,
                web,
                status=self.status_report,
            )
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self.server.start()

    # ---- configuration ---------------------------------------------------------------------

    def reload(self) -> None:
        """SIGHUP: re-read the config; keep the running one when the new one is invalid."""
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            log.error("reload rejected, keeping the running configuration: %s", exc)
            return
        log.info("reloading configuration from %s", self.config_path)
        if (self.listen_override or new.listen) != (self.listen_override or self.config.listen):
            log.warning("listen address changes need a restart; keeping %s", self.config.listen)
        self._apply(new)
        self.config = new

    def _apply(self, config: Config) -> None:
        """(Re)build exporters, probes, sniffer and alerting for `config`, keeping unchanged exporters."""
        assert self.scheduler is not None
        self.scheduler.remove_all_jobs()
        expected: dict[str, tuple[str, ...]] = {}
        for entry in config.expected_prefixes:
            expected[entry.exporter] = expected.get(entry.exporter, ()) + tuple(entry.prefixes)
        self.state.expected_min_paths = {
            (entry.exporter, prefix): entry.min_paths for entry in config.expected_prefixes for prefix in entry.prefixes
        }

        old = self.state.exporters
        runners: dict[str, ExporterRunner] = {}
        for exporter_config in config.exporters:
            name = exporter_config.name
            same = self._exporter_configs.get(name) == exporter_config and name in old
            if same and old[name].expected_prefixes == expected.get(name, ()):
                runners[name] = old.pop(name)
                continue
            if name in old:
                old.pop(name).close()
            try:
                exporter = build_exporter(exporter_config, timeout=config.exporter_timeout(exporter_config))
            except WatchdogError as exc:
                log.error("exporter %s cannot start: %s", name, exc)
                continue
            runners[name] = ExporterRunner(
                exporter,
                interval=config.exporter_interval(exporter_config),
                timeout=config.exporter_timeout(exporter_config),
                expected_prefixes=expected.get(name, ()),
                executor=self.executor,
                on_update=self._on_exporter_update,
            )
            self._subscribe_events(runners[name])
        for leftover in old.values():
            leftover.close()
        self.state.exporters = runners
        self._exporter_configs = {e.name: e for e in config.exporters}

        old_probes = self.state.probes
        probes: dict[str, ProbeRunner] = {}
        for probe_config in config.probes:
            try:
                probe = build_probe(probe_config)
            except WatchdogError as exc:
                log.error("probe %s cannot start: %s", probe_config.name, exc)
                continue
            probe_runner = ProbeRunner(probe, on_result=self._on_probe_result, netns=probe_config.netns)
            previous = old_probes.get(probe_config.name)
            if previous is not None and previous.probe.target == probe_runner.probe.target:
                probe_runner.failures, probe_runner.latency = previous.failures, previous.latency
                probe_runner.last = previous.last
            probes[probe_config.name] = probe_runner
        self.state.probes = probes

        self._apply_sniffer(config)
        self._apply_alerting(config)

        now = datetime.now(UTC)
        for exporter_runner in runners.values():
            self.scheduler.add_job(
                exporter_runner.poll_once,
                IntervalTrigger(seconds=exporter_runner.interval),
                id=f"exporter:{exporter_runner.name}",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(exporter_runner.interval)),
                next_run_time=now,
            )
        for i, probe_runner in enumerate(probes.values()):
            interval = probe_runner.probe.interval
            self.scheduler.add_job(
                probe_runner.run_once,
                IntervalTrigger(seconds=interval),
                id=f"probe:{probe_runner.name}",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(interval)),
                # Spread first runs a little so many probes don't fire in the same millisecond.
                next_run_time=now + timedelta(milliseconds=(i * 37) % 1000),
            )
        if config.audit is not None:
            self.scheduler.add_job(
                self._audit,
                IntervalTrigger(seconds=config.audit.interval),
                id="audit",
                max_instances=1,
                coalesce=True,
                next_run_time=now + timedelta(seconds=5),  # let the exporters' first polls go first
            )
        if self.alerts is not None:
            self.scheduler.add_job(
                self.alerts.tick,
                IntervalTrigger(seconds=1),
                id="alerts:tick",
                max_instances=1,
                coalesce=True,
            )

    def _apply_sniffer(self, config: Config) -> None:
        if self.state.ike is not None:
            self.state.ike.stop()
            self.state.ike = None
        if config.ike is None:
            return
        from probes.ike.sniffer import IkeSniffer

        sniffer = IkeSniffer(
            list(config.ike.interfaces), list(config.ike.peers), config.ike.mtu, netns=config.ike.netns
        )
        sniffer.start()
        self.state.ike = sniffer

    def _apply_alerting(self, config: Config) -> None:
        if self.alerts is None:
            self.alerts = AlertEngine(config, self.state, listen=self.listen_override)
        else:
            self.alerts.reconfigure(config)

    def _subscribe_events(self, runner: ExporterRunner) -> None:
        from watchdog.interfaces import EventSource

        exporter = runner.exporter
        if not isinstance(exporter, EventSource):
            return
        loop = self._loop

        def notify() -> None:  # called from the exporter's event thread
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(lambda: loop.create_task(runner.poll_once()))

        try:
            exporter.subscribe(notify)
            log.info("exporter %s: subscribed to change events", runner.name)
        except WatchdogError as exc:
            log.warning("exporter %s: no change events (%s); polling only", runner.name, exc)

    # ---- hooks -----------------------------------------------------------------------------

    async def _audit(self) -> None:
        """Periodic `watchdog audit`: findings become `vpn_watchdog_audit_findings`; a failed read
        keeps the last counts (an API outage must not look like a fixed setup)."""
        from watchdog.audit.command import periodic_audit

        assert self._loop is not None
        config = self.config
        started = time.monotonic()
        try:
            findings = await self._loop.run_in_executor(self.executor, periodic_audit, config)
        except WatchdogError as exc:
            log.warning("periodic audit failed, keeping the last findings: %s", exc)
            return
        self.state.audit_findings = findings
        log.info(
            "periodic audit: %d findings (%d errors) in %.1fs",
            sum(findings.values()),
            sum(n for (_, severity), n in findings.items() if severity == "error"),
            time.monotonic() - started,
        )

    def _on_exporter_update(self, runner: ExporterRunner) -> None:
        if self.alerts is not None:
            self.alerts.observe()

    def _on_probe_result(self, runner: ProbeRunner) -> None:
        # Only edges trigger an evaluation now: with hundreds of probes, evaluating on every result
        # would cost O(probes^2) per second; the 1 s tick sees the rest.
        if self.alerts is not None and runner.changed:
            self.alerts.observe()

    def status_report(self) -> dict[str, Any]:
        """`/status.json` and the status page: the `probe --once` report of the live state, plus the
        firing alerts and the sniffer's IKE counters (read in the HTTP thread; no I/O)."""
        config = self.config
        expected: dict[str, list[Any]] = {}
        for entry in config.expected_prefixes:
            expected.setdefault(entry.exporter, []).append(entry)
        runners = [self.state.exporters[e.name] for e in config.exporters if e.name in self.state.exporters]
        probes = [self.state.probes[p.name] for p in config.probes if p.name in self.state.probes]
        report = build_report(config.exporters, runners, {}, probes, expected)
        firing = self.alerts.health.firing(config.labels) if self.alerts is not None else []
        report["alerts"] = [
            {
                "name": a.name,
                "severity": dict(a.labels).get("severity", ""),
                "summary": a.summary,
                "since": a.starts_at,
                "labels": dict(a.labels),
            }
            for a in firing
        ]
        report["ike"] = ike_rows(self.state.ike_snapshot())
        return report

    def health(self) -> dict[str, Any]:
        exporters = {
            name: {"up": r.health.up, "stale": r.is_stale(), "last_error": r.health.last_error}
            for name, r in sorted(self.state.exporters.items())
        }
        return {"status": "ok", "uptime_seconds": round(time.time() - self.started_at, 3), "exporters": exporters}


def run_daemon(config_path: str | None, listen: str | None = None) -> int:
    """Load the config and run until SIGTERM/SIGINT; 0 after a graceful stop."""
    config = load_config(config_path)
    daemon = Daemon(config, config_path, listen)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(daemon.run())
        _cancel_leftovers(loop)
    finally:
        # Not asyncio.run(): its executor shutdown would wait for threads stuck in SDK or HTTP calls.
        loop.close()
    _exit_without_waiting_for_stuck_threads()
    return 0


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.wait(tasks, timeout=1.0))


def _exit_without_waiting_for_stuck_threads() -> None:
    """A poll or push blocked in a cloud SDK cannot be interrupted; the interpreter would join its
    thread at exit and outlive the grace period. When such threads remain, exit now (logs flushed)."""
    stuck = [t for t in threading.enumerate() if t is not threading.main_thread() and t.is_alive() and not t.daemon]
    if not stuck:
        return
    log.info("exiting with %d worker thread(s) still blocked in API calls", len(stuck))
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
