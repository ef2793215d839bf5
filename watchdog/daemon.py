"""`watchdog run`: the composition root of the long-running daemon.

Builds exporters, probes, the IKE sniffer and the alerting engine from the config (`watchdog.wiring`),
hands their jobs to the one scheduler (`watchdog.scheduler`), serves /metrics and /healthz, and stops
gracefully on SIGTERM/SIGINT within a bounded time. A reload (SIGHUP) is a transaction: the whole new
runtime is built and checked first, then swapped in; when anything fails nothing running was touched,
and `config_reload_failures_total` and a log line say so.
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
from dataclasses import dataclass, field
from typing import Any

from watchdog import signals
from watchdog.alerting import AlertEngine, AlertOptions
from watchdog.config import Config, IkeConfig, load_config, parse_host_port
from watchdog.errors import ConfigError, WatchdogError
from watchdog.interfaces import IkeSource
from watchdog.memory import configure_allocator
from watchdog.metrics import PageRenderer, build_registry
from watchdog.oneshot import build_report, ike_rows
from watchdog.runners import ExporterRunner, ProbeRunner, ProbeSweep, ReloadStatus, WatchdogState
from watchdog.scheduler import JobFunc, Prepared, Scheduler, plan
from watchdog.sharding import config_shard, owned
from watchdog.webconfig import WebConfigSource
from watchdog.webserver import Endpoints, MetricsServer, NotReady
from watchdog.wiring import Built, build_runners, build_sniffer, build_sweeps, exporter_key, job_specs

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 5.0


@dataclass
class Transaction:
    """A new runtime, built and checked but not yet running. `_commit()` swaps it in; `abort()` drops it."""

    config: Config
    prepared: Prepared
    built: Built
    exporters: dict[str, ExporterRunner]
    probes: dict[str, ProbeRunner]
    sweeps: dict[str, ProbeSweep]  # job id -> the sweep running those probes (kept ones included)
    intervals: dict[str, float]  # kept exporter runners whose interval changes
    sniffer: IkeSource | None  # the running one when `ike:` did not change
    unbuilt: dict[str, object]  # job id -> key of what is left out because it cannot start
    retired: list[ExporterRunner] = field(default_factory=list)

    def abort(self) -> None:
        self.built.close()


class Daemon:
    """Owns every running part; `run()` returns when a stop signal arrives."""

    def __init__(
        self,
        config: Config,
        config_path: str | None,
        listen: str | None = None,
        shard: str | None = None,
        *,
        web_config_file: str | None = None,
        enable_lifecycle: bool = False,
    ) -> None:
        self.shard_override = shard
        self.shard = config_shard(config, shard)
        config = owned(config, self.shard)
        self.config = config
        self.config_path = config_path
        self.listen_override = listen
        self.web_config_override = web_config_file
        self.enable_lifecycle = enable_lifecycle
        self.state = WatchdogState(shard=(self.shard.index, self.shard.total))
        self.registry = build_registry(self.state, process=True)
        self.page = PageRenderer(self.state, self.registry)
        self.executor = ThreadPoolExecutor(max_workers=max(4, 2 * len(config.exporters) + 2), thread_name_prefix="poll")
        self.scheduler = Scheduler()
        self.server: MetricsServer | None = None
        self.alerts: AlertEngine | None = None
        self._sweeps: dict[str, ProbeSweep] = {}
        self._keys: dict[str, object] = {}  # exporter name -> what its running runner was built from
        self._unbuilt: dict[str, object] = {}  # job id -> key of a plug-in left out because it cannot start
        self._ike: IkeConfig | None = None
        self._stop = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self.started_at = time.time()

    # ---- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._install_signals()  # before anything else starts
        held = signals.take()
        self.scheduler.run()
        self._start_server()
        try:
            txn = self._prepare(self.config, initial=True)
        except (ValueError, OverflowError) as exc:
            raise ConfigError(str(exc)) from None
        self._commit(txn)
        self.state.reloads = ReloadStatus(last_success=time.time())
        self._started = True
        log.info(
            "vpn-watchdog running%s: %d exporters, %d probes, IKE sniffer %s, alertmanager %s",
            f" as shard {self.shard}" if self.shard.total > 1 else "",
            len(self.config.exporters),
            len(self.config.probes),
            "on" if self.config.ike else "off",
            ", ".join(self.config.alertmanager.urls) if self.config.alertmanager else "off",
        )
        for sig in held:  # signals that came during start-up, replayed in order
            if sig == signal.SIGTERM:
                self.request_stop()
            elif sig == signal.SIGHUP:
                self.reload()
        await self._stop.wait()
        await self.shutdown()

    def request_stop(self) -> None:
        self._stop.set()

    async def shutdown(self) -> None:
        log.info("stopping")
        started = time.monotonic()
        self.scheduler.shutdown()
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
        # Handlers run only once `run()` first awaits, i.e. after the first runtime is in place.
        self._loop.add_signal_handler(signal.SIGHUP, self.reload)

    def _start_server(self) -> None:
        listen = self.listen_override or self.config.listen
        host, port = parse_host_port(listen)
        web = WebConfigSource(self.web_config_override or self.config.web_config_file)
        endpoints = Endpoints(
            metrics=lambda openmetrics: self.page.parts(openmetrics=openmetrics),
            health=self.health,
            ready=self.ready,
            status=self.status_report,
            reload=self.reload_from_http if self.enable_lifecycle else None,
            on_tls_failure=self._count_tls_failures,
        )
        try:
            self.server = MetricsServer(host, port, endpoints, web)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {listen}: {exc.strerror or exc}") from None
        self.server.start()

    def _count_tls_failures(self, counts: Any) -> None:
        self.state.web_tls_failures = counts  # a fresh Counter from the server: swapped, never mutated

    def ready(self) -> tuple[bool, str]:
        """/-/ready: every exporter has finished its first poll, successful or not."""
        if not self._started:
            return False, "starting"
        waiting = sorted(name for name, r in self.state.exporters.copy().items() if r.health.polls == 0)
        if waiting:
            return False, "waiting for the first poll of " + ", ".join(waiting)
        return True, ""

    def reload_from_http(self) -> str | None:
        """`POST /-/reload` (from an HTTP thread): the SIGHUP reload, run on the event loop."""
        loop = self._loop
        if loop is None or not self._started:
            raise NotReady("the daemon is still starting; try again")

        async def reload() -> str | None:
            return self.reload()

        try:
            return asyncio.run_coroutine_threadsafe(reload(), loop).result(timeout=60)
        except TimeoutError:
            return "the reload did not finish within 60 s"

    # ---- configuration ---------------------------------------------------------------------

    def reload(self) -> str | None:
        """SIGHUP: re-read the config and apply it as one transaction. Returns None when applied,
        else the reason it was rejected (the running configuration then carries on untouched)."""
        try:
            new = load_config(self.config_path)
            shard = config_shard(new, self.shard_override)
            new = owned(new, shard)
            txn = self._prepare(new)
        except (WatchdogError, ValueError, OverflowError) as exc:
            status = self.state.reloads
            self.state.reloads = ReloadStatus(status.failures + 1, status.last_success)
            log.error("reload rejected, keeping the running configuration: %s", exc)
            return str(exc)
        log.info("reloading configuration from %s", self.config_path)
        if (self.listen_override or new.listen) != (self.listen_override or self.config.listen):
            log.warning("listen address changes need a restart; keeping %s", self.config.listen)
        if not self.web_config_override and new.web_config_file != self.config.web_config_file:
            log.warning("web_config_file changes need a restart (the file itself is re-read when it changes)")
        self._commit(txn)
        if shard != self.shard:
            log.info("this replica is now shard %s (was %s)", shard, self.shard)
            self.shard = shard
            self.state.shard = (shard.index, shard.total)
        self.state.reloads = ReloadStatus(self.state.reloads.failures, time.time())
        return None

    def _prepare(self, config: Config, *, initial: bool = False) -> Transaction:
        """Build and check everything `config` needs without touching what runs. At start-up a
        plug-in that cannot be built is logged and left out; on reload it rejects the whole reload,
        unless it is one already left out with the same settings (nothing about it would change)."""
        old = self.state.exporters
        keys = {e.name: exporter_key(config, e) for e in config.exporters}
        keep = {n for n in keys if n in old and self._keys.get(n) == keys[n]}
        old_probes = self.state.probes
        old_probe_configs = {p.name: p for p in self.config.probes} if self._started else {}
        keep_probes = {p.name for p in config.probes if p.name in old_probes and old_probe_configs.get(p.name) == p}
        built = build_runners(
            config,
            executor=self.executor,
            exporters=[n for n in keys if n not in keep],
            probes=[p.name for p in config.probes if p.name not in keep_probes],
            on_exporter_update=self._on_exporter_update,
            on_probe_result=self._on_probe_result,
        )
        unbuilt: dict[str, object] = {f"exporter:{n}": keys[n] for n in keys if n in built.errors}
        unbuilt |= {f"probe:{p.name}": p for p in config.probes if p.name in built.errors}
        new_failures = [i for i, key in unbuilt.items() if initial or self._unbuilt.get(i) != key]
        if new_failures and not initial:
            built.close()
            raise WatchdogError(
                "; ".join(
                    f"{i.partition(':')[2]} cannot start: {built.errors[i.partition(':')[2]]}" for i in new_failures
                )
            )
        for job_id in new_failures:
            name = job_id.partition(":")[2]
            log.error("%s cannot start: %s", name, built.errors[name])
        left_out = set(unbuilt)
        try:
            specs = [s for s in job_specs(config) if s.id not in left_out]
            prepared = self.scheduler.prepare(plan(self.scheduler.jobs, specs))
        except (ValueError, OverflowError):
            built.close()
            raise
        exporters = {n: old[n] if n in keep else built.exporters[n] for n in keys if n in keep or n in built.exporters}
        intervals = {n: config.exporter_interval(config.exporter(n)) for n in keep}
        probes: dict[str, ProbeRunner] = {}
        for pc in config.probes:
            if pc.name in keep_probes:
                probes[pc.name] = old_probes[pc.name]
            elif pc.name in built.probes:
                probes[pc.name] = runner = built.probes[pc.name]
                previous = old_probes.get(pc.name)
                if previous is not None and previous.probe.target == runner.probe.target:
                    runner.carry_over(previous)
        # A sweep job that carries on keeps its sweep (same members, same runners); the others get new ones.
        kept_sweeps = {i: self._sweeps[i] for i in prepared.plan.keep if i in self._sweeps}
        sweeps = kept_sweeps | build_sweeps(
            config, probes, self._on_sweep, only={s.id for s in prepared.plan.start if s.id.startswith("sweep:")}
        )
        same_ike = self._started and config.ike == self._ike
        sniffer = self.state.ike if same_ike else build_sniffer(config.ike)
        retired = [r for n, r in old.items() if n not in keep]
        return Transaction(config, prepared, built, exporters, probes, sweeps, intervals, sniffer, unbuilt, retired)

    def _commit(self, txn: Transaction) -> None:
        """Swap a prepared runtime in. Nothing here may fail on the new config's values."""
        config = txn.config
        for name, interval in txn.intervals.items():
            txn.exporters[name].interval = interval
        funcs: dict[str, JobFunc] = {"alerts:tick": self._tick}
        if config.audit is not None:
            funcs["audit"] = self._audit
        funcs.update({f"exporter:{n}": r.poll_once for n, r in txn.exporters.items()})
        swept = {r.name for sweep in txn.sweeps.values() for r in sweep.members}
        funcs.update({f"probe:{n}": r.run_once for n, r in txn.probes.items() if n not in swept})
        funcs.update({job_id: sweep.run_once for job_id, sweep in txn.sweeps.items()})
        # A new exporter's "no successful poll for 3 intervals" counts from when it can first poll,
        # not from when it was built: building the others (SDK clients) can take longer than that.
        for runner in txn.built.exporters.values():
            runner.created_at = runner.clock()
        self.scheduler.start(txn.prepared, funcs)
        for job_id, sweep in txn.sweeps.items():
            if self._sweeps.get(job_id) is not sweep:
                sweep.attach()
        for probe_runner in txn.probes.values():
            if probe_runner.name not in swept and probe_runner.sweep is not None:
                probe_runner.leave_sweep()
        self._sweeps = txn.sweeps
        for runner in txn.retired:
            runner.close()
        self.state.expected_min_paths = {
            (exporter, prefix): n for exporter, m in config.expected_min_paths().items() for prefix, n in m.items()
        }
        self.state.exporters = txn.exporters
        self.state.probes = txn.probes
        for runner in txn.built.exporters.values():
            self._subscribe_events(runner)
        self._keys = {e.name: exporter_key(config, e) for e in config.exporters if e.name in txn.exporters}
        if txn.sniffer is not self.state.ike:
            if self.state.ike is not None:
                self.state.ike.stop()
            if txn.sniffer is not None:
                txn.sniffer.start()
            self.state.ike = txn.sniffer
        self._ike = config.ike
        self._unbuilt = txn.unbuilt
        options = AlertOptions.from_config(config, listen=self.listen_override)
        if self.alerts is None:
            self.alerts = AlertEngine(options, self.state)
        else:
            self.alerts.reconfigure(options)
        self.config = config

    async def _tick(self) -> None:
        if self.alerts is not None:
            await self.alerts.tick()

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

    def _on_sweep(self, sweep: ProbeSweep) -> None:
        # Once per sweep, and only when some member's result was an edge (see `_on_probe_result`).
        if self.alerts is not None and sweep.changed:
            self.alerts.observe()

    def status_report(self) -> dict[str, Any]:
        """`/status.json` and the status page: the `probe --once` report of the live state, plus the
        firing alerts and the sniffer's IKE counters (read in the HTTP thread; no I/O)."""
        config, exporters, probe_runners = self.config, self.state.exporters, self.state.probes
        runners = [exporters[e.name] for e in config.exporters if e.name in exporters]
        probes = [probe_runners[p.name] for p in config.probes if p.name in probe_runners]
        report = build_report(config.exporters, runners, {}, probes, config.expected_min_paths())
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
            for name, r in sorted(self.state.exporters.copy().items())
        }
        return {"status": "ok", "uptime_seconds": round(time.time() - self.started_at, 3), "exporters": exporters}


def run_daemon(
    config_path: str | None,
    listen: str | None = None,
    shard: str | None = None,
    *,
    web_config_file: str | None = None,
    enable_lifecycle: bool = False,
) -> int:
    """Load the config and run until SIGTERM/SIGINT; 0 after a graceful stop."""
    allocator = configure_allocator()  # before any thread allocates (watchdog.memory says why)
    if allocator:
        log.debug("glibc malloc: %s", ", ".join(f"{k}={v}" for k, v in allocator.items()))
    config = load_config(config_path)
    try:
        daemon = Daemon(
            config, config_path, listen, shard, web_config_file=web_config_file, enable_lifecycle=enable_lifecycle
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
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
