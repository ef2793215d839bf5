"""The runners (one per exporter, one per probe, one per probe sweep) and the live state the collector renders.

Runners own "run once, into an immutable snapshot": a failed poll keeps the last good snapshot (an API
outage must never look like a VPN outage) and says so in the health fields. When they run is the
scheduler's business (`watchdog.scheduler`), which hands them their timeout.

The rule for shared state: each producer (an exporter runner, a probe runner, the alert engine, the
daemon) publishes a frozen view and swaps it in whole, with one attribute assignment on the event
loop; readers (`collect()` in the scrape thread, the alert engine) take the reference once and read
only that view. Nothing published is mutated afterwards, so no reader needs a lock and none sees half
an update. Nothing here renders metrics; `watchdog.metrics` reads these views at scrape time.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from typing import Any

from watchdog.errors import ExporterError, ProbeFailure
from watchdog.exposition import Rendered, RouteLines, render_snapshot
from watchdog.interfaces import Exporter, IkeSource, Probe, Sweep
from watchdog.memory import release_freed_memory
from watchdog.model import IkeSnapshot, ProbeResult, Snapshot, TargetStatus
from watchdog.netns import shared_loop
from watchdog.paths import expected_paths
from watchdog.scheduler import backoff

log = logging.getLogger(__name__)

# Latency buckets for DNS queries and ICMP echoes over a VPN: sub-ms loopback to multi-second stalls.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


# A probe run gets its own timeout plus this much before the runner gives up on it.
PROBE_GRACE = 1.0
DEFAULT_PROBE_TIMEOUT = 2.0

Paths = Mapping[str, frozenset[str]]


@dataclass(frozen=True, slots=True)
class ExporterHealth:
    """Published, never mutated: `errors` is a fresh Counter in every published view."""

    up: bool = False
    last_success: float | None = None
    last_poll_duration: float | None = None
    last_error: str = ""
    errors: Counter[str] = field(default_factory=Counter)
    api_calls: int = 0
    polls: int = 0
    consecutive_failures: int = 0
    skipped_overlaps: int = 0
    skipped_backoff: int = 0
    # A fanned-out exporter's targets (account|project, region) as of its last poll, good or failed.
    targets: tuple[TargetStatus, ...] = ()


@dataclass(frozen=True, slots=True)
class ExporterStatus:
    """One exporter's published view: health, last good snapshot, its expected-prefix paths and lines."""

    health: ExporterHealth = field(default_factory=ExporterHealth)
    snapshot: Snapshot | None = None
    paths: Paths = field(default_factory=dict)
    rendered: Rendered = field(default_factory=dict)


class ExporterRunner:
    """Runs one exporter's polls in a worker thread, bounded by its timeout, never overlapping."""

    def __init__(
        self,
        exporter: Exporter,
        *,
        interval: float,
        timeout: float,
        expected_prefixes: tuple[str, ...] = (),
        executor: Executor | None = None,
        clock: Callable[[], float] = time.time,
        on_update: Callable[[ExporterRunner], None] | None = None,
    ) -> None:
        self.exporter = exporter
        self.name = exporter.name
        self.cloud = exporter.cloud
        self.interval = interval
        self.timeout = timeout
        self.expected_prefixes = expected_prefixes
        self.executor = executor
        self.clock = clock
        self.on_update = on_update
        self.status = ExporterStatus()
        self._busy = False
        self._again = False
        self.created_at = clock()
        self.not_before = 0.0  # no poll before this time (backoff after failures)
        self._route_lines = RouteLines()  # the last render's route lines, reused by the next

    # Read-only shortcuts into the published view.
    @property
    def health(self) -> ExporterHealth:
        return self.status.health

    @property
    def snapshot(self) -> Snapshot | None:
        return self.status.snapshot

    @property
    def paths(self) -> Paths:
        return self.status.paths

    @property
    def rendered(self) -> Rendered:
        return self.status.rendered

    def _publish_health(self, health: ExporterHealth) -> None:
        self.status = replace(self.status, health=health)

    @property
    def stale_after(self) -> float:
        return 3 * self.interval

    async def poll_once(self) -> None:
        """One poll; skipped (and repeated once afterwards) when the previous one is still running,
        and skipped while backing off after failures (or while the API's Retry-After lasts)."""
        if self.clock() < self.not_before:
            self._publish_health(replace(self.health, skipped_backoff=self.health.skipped_backoff + 1))
            return
        if self._busy:
            self._publish_health(replace(self.health, skipped_overlaps=self.health.skipped_overlaps + 1))
            self._again = True
            return
        self._busy = True
        worker_done = True
        try:
            while True:
                self._again = False
                worker_done = await self._poll()
                if not (worker_done and self._again):
                    break
        except asyncio.CancelledError:
            # The daemon is stopping mid-poll: end quietly (the scheduler would log it as a crash).
            log.debug("poll of exporter %s cancelled by shutdown", self.name)
        finally:
            if worker_done:
                self._busy = False
            # else: a timed-out worker thread is still running; `_release` clears busy when it ends.

    async def _poll(self) -> bool:
        """Poll once; False when the worker thread outlived the timeout (and is still running)."""
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        log.debug("polling exporter %s", self.name)
        future = loop.run_in_executor(self.executor, self._fetch)
        try:
            snapshot, paths, rendered = await asyncio.wait_for(asyncio.shield(future), self.timeout)
        except TimeoutError:
            # The worker outlives the timeout; whatever it ends with was already counted as this
            # timeout, so take its outcome quietly (else asyncio logs "Future exception was never
            # retrieved" with two tracebacks when the abandoned poll finally fails).
            future.add_done_callback(self._release)
            self._record_failure(ExporterError("timeout", f"poll did not finish within {self.timeout:g}s"), started)
            return future.done()
        except ExporterError as exc:
            self._record_failure(exc, started)
            return True
        except Exception as exc:  # a bug in an exporter must not kill the loop
            log.exception("exporter %s crashed", self.name)
            self._record_failure(ExporterError("internal", f"{type(exc).__name__}: {exc}"), started)
            return True
        self.apply(snapshot, time.monotonic() - started, paths=paths, rendered=rendered)
        return True

    def _fetch(self) -> tuple[Snapshot, Paths, Rendered]:
        """Worker thread: poll, then do the per-snapshot work (paths, exposition) off the event loop."""
        try:
            snapshot = self.exporter.poll()
            paths = expected_paths(snapshot, self.expected_prefixes)
            rendered = render_snapshot(self.name, self.cloud, snapshot, paths, route_lines=self._route_lines)
            return snapshot, paths, rendered
        finally:
            release_freed_memory()  # what the poll allocated and dropped goes back to the system

    def _release(self, future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is not None:
            log.debug("abandoned poll of exporter %s ended with: %s", self.name, future.exception())
        self._busy = False

    def apply(
        self,
        snapshot: Snapshot,
        duration: float,
        *,
        paths: Paths | None = None,
        rendered: Rendered | None = None,
    ) -> None:
        """Publish a new snapshot (one swap: readers see the old view or the new one, never a mix)."""
        if paths is None:
            paths = expected_paths(snapshot, self.expected_prefixes)
        if rendered is None:
            rendered = render_snapshot(self.name, self.cloud, snapshot, paths, route_lines=self._route_lines)
        health = self.health
        errors, last_error = Counter(health.errors), ""
        log_error = snapshot.logs.error if snapshot.logs is not None else None
        if log_error is not None:
            # The log read failed inside a good poll: counted and said, the tunnels stay fresh.
            reason, message = log_error
            errors[reason] += 1
            last_error = f"{reason}: {message}"
            log.warning("exporter %s: %s", self.name, message)
        for target in snapshot.targets:
            if not target.up and target.polled:  # one account's or project's poll failed; the others' are fresh
                errors[target.last_error.partition(":")[0] or "internal"] += 1
                last_error = last_error or f"{target.scope.key}: {target.last_error}"
        self.status = ExporterStatus(
            replace(
                health,
                up=True,
                last_success=self.clock(),
                last_poll_duration=duration,
                api_calls=health.api_calls + snapshot.api_calls,
                polls=health.polls + 1,
                consecutive_failures=0,
                last_error=last_error,
                errors=errors,
                targets=snapshot.targets,
            ),
            snapshot,
            paths,
            rendered,
        )
        self.not_before = 0.0
        log.debug(
            "exporter %s: %d tunnels (%d up), %d BGP sessions (%d up), %d routes in %.2fs",
            self.name,
            len(snapshot.tunnels),
            sum(t.up for t in snapshot.tunnels),
            len(snapshot.bgp_sessions),
            sum(s.up for s in snapshot.bgp_sessions),
            len(snapshot.routes),
            duration,
        )
        self._notify()

    def backoff_after(self, failures: int, retry_after: float | None) -> float:
        """Seconds to hold off after `failures` consecutive failures (the scheduler's policy)."""
        return backoff(self.interval, failures, retry_after)

    def _record_failure(self, exc: ExporterError, started: float) -> None:
        health = self.health
        errors = Counter(health.errors)
        errors[exc.reason] += 1
        health = replace(
            health,
            up=False,
            last_poll_duration=time.monotonic() - started,
            errors=errors,
            polls=health.polls + 1,
            consecutive_failures=health.consecutive_failures + 1,
            last_error=f"{exc.reason}: {exc}",
            targets=getattr(exc, "targets", None) or tuple(replace(t, up=False) for t in health.targets),
        )
        self._publish_health(health)
        delay = self.backoff_after(health.consecutive_failures, exc.retry_after)
        # A little early, so the scheduled poll that falls due exactly then is not skipped too.
        self.not_before = self.clock() + delay - 0.25 * min(self.interval, 1.0) if delay else 0.0
        log.warning("exporter %s poll failed (%s): %s", self.name, exc.reason, exc)
        self._notify()

    def _notify(self) -> None:
        if self.on_update is not None:
            try:
                self.on_update(self)
            except Exception:
                log.exception("update listener failed for exporter %s", self.name)

    def close(self, wait: float = 1.0) -> None:
        """Close the exporter without letting a poll stuck in its SDK (which may hold the exporter's
        lock) hold up a reload or a shutdown: the close runs on a daemon thread, waited on briefly."""

        def close() -> None:
            try:
                self.exporter.close()
            except Exception:
                log.debug("closing exporter %s failed", self.name, exc_info=True)

        thread = threading.Thread(target=close, name=f"close-{self.name}", daemon=True)
        thread.start()
        thread.join(wait)
        if thread.is_alive():
            log.info("exporter %s is still busy in an API call; not waiting for it to close", self.name)

    def is_stale(self, now: float | None = None) -> bool:
        """No successful poll for 3 intervals (counted from start-up before the first success)."""
        now = self.clock() if now is None else now
        last = self.health.last_success if self.health.last_success is not None else self.created_at
        return now - last > self.stale_after


@dataclass(frozen=True, slots=True)
class Histogram:
    """Latency histogram, published like everything else: `observed()` returns a new one."""

    buckets: tuple[float, ...] = LATENCY_BUCKETS
    counts: tuple[int, ...] = (0,) * (len(LATENCY_BUCKETS) + 1)
    total: float = 0.0
    count: int = 0

    def observed(self, values: Iterable[float]) -> Histogram:
        counts, total, count = list(self.counts), self.total, self.count
        for value in values:
            counts[bisect_left(self.buckets, value)] += 1
            total += value
            count += 1
        return Histogram(self.buckets, tuple(counts), total, count)

    def cumulative(self) -> list[tuple[str, int]]:
        out, running = [], 0
        for bound, n in zip(self.buckets, self.counts, strict=False):
            running += n
            out.append((repr(bound), running))
        out.append(("+Inf", running + self.counts[-1]))
        return out


@dataclass(frozen=True, slots=True)
class ProbeStatus:
    """One probe's published view: its last result, failures by reason, latency histogram."""

    last: ProbeResult | None = None
    failures: Counter[str] = field(default_factory=Counter)
    latency: Histogram = field(default_factory=Histogram)
    changed: bool = False  # the last result was an edge (ok <-> failing, or another reason)


class ProbeRunner:
    """Runs one probe once, bounded by the timeout the scheduler grants, and publishes its status.

    A runner that is a member of a `ProbeSweep` does not run on its own: the sweep runs it with the
    others and publishes every member's status in one view, which `status` then reads."""

    def __init__(
        self,
        probe: Probe,
        on_result: Callable[[ProbeRunner], None] | None = None,
        *,
        netns: str | None = None,
        timeout: float = DEFAULT_PROBE_TIMEOUT,
    ) -> None:
        self.probe = probe
        self.netns = netns
        self.timeout = timeout
        self.name = probe.name
        self._status = ProbeStatus()
        self.sweep: ProbeSweep | None = None
        self.on_result = on_result

    @property
    def status(self) -> ProbeStatus:
        """The published view: the runner's own, or its entry in its sweep's view."""
        sweep = self.sweep
        if sweep is None:
            return self._status
        return sweep.view.get(self.name, self._status)

    @status.setter
    def status(self, status: ProbeStatus) -> None:
        sweep = self.sweep
        if sweep is None:
            self._status = status
        else:
            sweep.view = {**sweep.view, self.name: status}

    def leave_sweep(self) -> None:
        """Publish its own view again, starting from the one its sweep published last."""
        status = self.status
        self.sweep = None
        self._status = status

    # Read-only shortcuts into the published view.
    @property
    def last(self) -> ProbeResult | None:
        return self.status.last

    @property
    def failures(self) -> Counter[str]:
        return self.status.failures

    @property
    def latency(self) -> Histogram:
        return self.status.latency

    @property
    def changed(self) -> bool:
        return self.status.changed

    async def run_once(self) -> ProbeResult:
        started = time.monotonic()
        try:
            result = await asyncio.wait_for(self._run(), self.timeout + PROBE_GRACE)
        except asyncio.CancelledError:
            # The daemon is stopping mid-run: report a failure rather than a scheduler crash.
            return ProbeResult.failed(self.probe, started, "cancelled", "stopped during shutdown")
        except ProbeFailure as exc:
            result = ProbeResult.failed(self.probe, started, exc.reason, exc.detail)
        except TimeoutError:
            result = ProbeResult.failed(self.probe, started, "timeout", "probe did not finish in time")
        except Exception as exc:  # a probe bug must not stop its schedule
            log.exception("probe %s crashed", self.name)
            result = ProbeResult.failed(self.probe, started, "internal", f"{type(exc).__name__}: {exc}")
        self.record(result)
        return result

    async def _run(self) -> ProbeResult:
        if self.netns is None:
            return await self.probe.run()
        # Sockets must be created inside the namespace: run the whole probe on its loop thread.
        return await shared_loop(self.netns).run(self.probe.run())

    def carry_over(self, previous: ProbeRunner) -> None:
        """Keep the counters and last result of the runner this one replaces (same probe, new settings)."""
        self.status = replace(previous.status, changed=False)

    def next_status(self, result: ProbeResult) -> ProbeStatus:
        """The view after `result` (pure: nothing is published)."""
        status = self.status
        previous = status.last
        failures = status.failures
        if not result.success:
            failures = Counter(failures)
            failures[result.reason or "unknown"] += 1
        return ProbeStatus(
            last=result,
            failures=failures,
            latency=status.latency.observed(result.latencies) if result.latencies else status.latency,
            # An edge is what alerting must see at once; steady results are picked up by its tick.
            changed=previous is None or (previous.success, previous.reason) != (result.success, result.reason),
        )

    def record(self, result: ProbeResult) -> None:
        self.status = self.next_status(result)
        log_result(result)
        if self.on_result is not None:
            self.on_result(self)


def log_result(result: ProbeResult) -> None:
    level = logging.DEBUG if result.success else logging.WARNING
    if log.isEnabledFor(level):
        log.log(
            level,
            "probe %s (%s %s): %s%s",
            result.probe,
            result.type,
            result.target,
            "ok" if result.success else f"FAIL {result.reason}",
            f" ({result.detail})" if result.detail else "",
        )


class ProbeSweep:
    """Runs a group of probes as one sweep (`Sweep`: one round of packets for all of them), bounded
    like one probe run, and publishes every member's status as ONE view: `view` is replaced whole,
    so a reader sees all members before the sweep or all after it. `on_sweep` is told once per sweep
    (not once per member), with `changed` saying whether any member's result was an edge."""

    def __init__(
        self,
        members: Sequence[ProbeRunner],
        sweep: Sweep,
        *,
        netns: str | None = None,
        timeout: float = DEFAULT_PROBE_TIMEOUT,
        on_sweep: Callable[[ProbeSweep], None] | None = None,
    ) -> None:
        self.members = tuple(members)
        self.sweep = sweep
        self.netns = netns
        self.timeout = timeout
        self.on_sweep = on_sweep
        self.view: Mapping[str, ProbeStatus] = {}
        self.changed = False

    def attach(self) -> None:
        """Take over publishing the members' statuses (each keeps the view it has now)."""
        self.view = {r.name: r.status for r in self.members}
        for runner in self.members:
            runner.sweep = self

    async def run_once(self) -> list[ProbeResult]:
        started = time.monotonic()
        probes = [r.probe for r in self.members]
        try:
            results = await asyncio.wait_for(self._run(probes), self.timeout + PROBE_GRACE)
        except asyncio.CancelledError:
            return []  # the daemon is stopping mid-sweep
        except ProbeFailure as exc:
            results = [ProbeResult.failed(p, started, exc.reason, exc.detail) for p in probes]
        except TimeoutError:
            results = [ProbeResult.failed(p, started, "timeout", "probe did not finish in time") for p in probes]
        except Exception as exc:  # a probe bug must not stop the schedule
            log.exception("sweep of %d %s probes crashed", len(probes), probes[0].type if probes else "")
            results = [ProbeResult.failed(p, started, "internal", f"{type(exc).__name__}: {exc}") for p in probes]
        self.publish(results)
        return results

    async def _run(self, probes: list[Probe]) -> list[ProbeResult]:
        if self.netns is None:
            return await self.sweep(probes)
        return await shared_loop(self.netns).run(_awaited(self.sweep(probes)))

    def publish(self, results: Sequence[ProbeResult]) -> None:
        view = dict(self.view)
        changed = False
        for runner, result in zip(self.members, results, strict=True):
            status = runner.next_status(result)
            changed = changed or status.changed
            if runner.sweep is self:
                view[runner.name] = status
            else:  # a reload moved it meanwhile: its result still counts, where it is now
                runner.status = status
            log_result(result)
        self.view = view
        self.changed = changed
        if self.on_sweep is not None:
            self.on_sweep(self)


async def _awaited(work: Awaitable[list[ProbeResult]]) -> list[ProbeResult]:
    return await work


@dataclass(frozen=True, slots=True)
class ReloadStatus:
    """Published by the daemon after every reload attempt (Prometheus' own reload metrics)."""

    failures: int = 0
    last_success: float | None = None


@dataclass
class WatchdogState:
    """Everything `/metrics` renders. Each field is one producer's published view, replaced whole
    (the daemon: runners, sniffer, min paths, audit findings; the alert engine: failovers, pairs,
    sends) and read by the collector and the alert engine without locks."""

    exporters: dict[str, ExporterRunner] = field(default_factory=dict)
    probes: dict[str, ProbeRunner] = field(default_factory=dict)
    ike: IkeSource | None = None
    failovers: Counter[tuple[str, str]] = field(default_factory=Counter)
    alerts_sent: Counter[str] = field(default_factory=Counter)
    tunnel_pairs: tuple[tuple[tuple[str, str], ...], ...] = ()  # label sets of tunnel_pair_info
    audit_findings: Counter[tuple[str, str]] = field(default_factory=Counter)
    expected_min_paths: dict[tuple[str, str], int] = field(default_factory=dict)  # (exporter, prefix)
    reloads: ReloadStatus = field(default_factory=ReloadStatus)
    web_tls_failures: Counter[str] = field(default_factory=Counter)  # the web server's, by reason
    shard: tuple[int, int] = (0, 1)  # (index, total) of this replica (watchdog.sharding)

    def ike_snapshot(self) -> IkeSnapshot | None:
        if self.ike is None:
            return None
        try:
            return self.ike.snapshot()
        except Exception:
            log.exception("IKE sniffer snapshot failed")
            return None
