"""The alerting engine the daemon drives: observations in, counters and Alertmanager pushes out.

`observe()` (after every exporter poll and probe run) and `tick()` (every second) build an
`Observation` from the views published in `WatchdogState` (never the runners' innards nor the whole
config: what it needs of the config is `AlertOptions`), run the pure `health.step`, and apply its events: failover
counts into `state.failovers`, joined tunnels into `state.tunnel_pairs`, firing/resolved alerts into
the set the `AlertmanagerClient` pushes (outcomes counted in `state.alerts_sent`). It never blocks
the event loop (HTTP runs in worker threads) and never decides what is wrong (that is `health`).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from watchdog.alertmanager import RESOLVED_RETENTION, AlertmanagerClient
from watchdog.config import AlertmanagerConfig, Config, parse_host_port
from watchdog.health import Alert, AlertKey, ExporterView, HealthState, Observation, ProbeView, step
from watchdog.join import join_tunnels
from watchdog.model import Snapshot
from watchdog.paths import path_qualifier
from watchdog.runners import ExporterRunner, WatchdogState

log = logging.getLogger(__name__)


def probed_dead_paths(snapshot: Snapshot | None, failing_targets: frozenset[str]) -> frozenset[str]:
    """Paths a per-path ICMP probe proves dead: a probe aimed at a BGP peer's inside address that
    gets no answer means that tunnel carries nothing, long before BGP's hold timer (minutes) says so.
    Path ids as `watchdog.paths` makes them: the peer, and `connection/tunnel` of its tunnel."""
    if snapshot is None or not failing_targets:
        return frozenset()
    dead: set[str] = set()
    for part in snapshot.scoped_parts():
        q = path_qualifier(snapshot, part.scope)
        tunnels = {t.name: t for t in part.tunnels}
        for session in part.bgp_sessions:
            if session.peer_ip in failing_targets:
                dead.add(q + session.peer)
                tunnel = tunnels.get(session.tunnel) if session.tunnel else None
                if tunnel is not None:
                    dead.add(f"{q}{tunnel.connection}/{tunnel.name}")
    return frozenset(dead)


def generator_url(listen: str) -> str:
    """Where a person finds the numbers behind an alert: the daemon's own /metrics."""
    host, port = parse_host_port(listen)
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/metrics"


DEFAULT_HOLD = 10.0  # `alertmanager.for` when there is no alertmanager section


@dataclass(frozen=True)
class AlertOptions:
    """The little of the config the alert engine needs."""

    labels: Mapping[str, str] = field(default_factory=dict)
    expected: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # exporter -> prefix -> min_paths
    alertmanager: AlertmanagerConfig | None = None
    listen: str = ""  # where our /metrics is served (generatorURL)

    @property
    def hold(self) -> float:
        return self.alertmanager.for_ if self.alertmanager else DEFAULT_HOLD

    @classmethod
    def from_config(cls, config: Config, *, listen: str | None = None) -> AlertOptions:
        """`listen` is `run --listen`, which overrides `config.listen`."""
        return cls(dict(config.labels), config.expected_min_paths(), config.alertmanager, listen or config.listen)


class AlertEngine:
    def __init__(
        self,
        options: AlertOptions,
        state: WatchdogState,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state = state
        self.clock = clock
        self.health = HealthState()
        self.client: AlertmanagerClient | None = None
        self.generation = 0
        self._signature: tuple[object, ...] = ()
        self._resolved: dict[AlertKey, Alert] = {}
        self._learned_cache: dict[str, tuple[Snapshot, ExporterView]] = {}
        self._probe_cache: dict[str, tuple[tuple[object, ...], ProbeView]] = {}
        self.options = options
        self._configure_client(options)

    # ---- daemon interface -------------------------------------------------------------------

    def reconfigure(self, options: AlertOptions) -> None:
        old = self.options
        self.options = options
        if (options.alertmanager, options.listen) != (old.alertmanager, old.listen) or self.client is None:
            self._retire_client()
            self._configure_client(options)
        self.generation += 1  # config labels may have changed: push the set again

    def observe(self) -> None:
        """Run one health step now (sync, on the event loop)."""
        try:
            self._step()
        except Exception:  # a bug here must not break polling
            log.exception("alert evaluation failed")

    async def tick(self) -> None:
        self.observe()
        if self.client is not None:
            alerts = self.alerts()
            signature = tuple((a.labels, a.summary, a.description, a.starts_at, a.ends_at) for a in alerts)
            if signature != self._signature:  # new, resolved or re-described alerts: push now
                self._signature = signature
                self.generation += 1
            try:
                self.client.pump(alerts, self.generation)
            except RuntimeError:  # executor already shut down: we are stopping
                log.debug("alert push skipped during shutdown")

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()

    # ---- evaluation -------------------------------------------------------------------------

    def alerts(self) -> list[Alert]:
        """The set to push: firing alerts plus recently resolved ones."""
        now = self.clock()
        self._resolved = {
            k: a for k, a in self._resolved.items() if a.ends_at is not None and now - a.ends_at < RESOLVED_RETENTION
        }
        labels = dict(self.options.labels)
        firing = self.health.firing(labels)
        firing_keys = {a.labels for a in firing}
        resolved = [a for a in self._resolved.values() if a.labels not in firing_keys]
        return firing + sorted(resolved, key=lambda a: a.labels)

    def observation(self, now: float) -> Observation:
        expected = self.options.expected
        runners = sorted(self.state.exporters.items())
        probes = self._probe_views()
        failing = frozenset(p.target for p in probes if p.type == "icmp" and not p.success)
        views = tuple(self._view(runner, expected.get(name, {}), now, failing) for name, runner in runners)
        snapshots = [v.snapshot for v in views if v.snapshot is not None]
        return Observation(views, probes, join_tunnels(snapshots), self.state.ike_snapshot(), self.options.hold)

    def _probe_views(self) -> tuple[ProbeView, ...]:
        """Every probe's last result as health sees it, by name. Run every tick over hundreds of
        probes, so a view whose content would be the same is reused: health reads a success's
        detail nowhere, so a success carries none and a steady one stays the same object."""
        runners = self.state.probes
        cache: dict[str, tuple[tuple[object, ...], ProbeView]] = self._probe_cache
        fresh: dict[str, tuple[tuple[object, ...], ProbeView]] = {}
        views = []
        for name in sorted(runners):
            result = runners[name].status.last
            if result is None:
                continue
            key: tuple[object, ...] = (
                result.type,
                result.target,
                result.success,
                result.path_mtu_bytes,
                result.expect_min_mtu_bytes,
            )
            if not result.success:
                key += (result.reason, result.detail)
            cached = cache.get(name)
            if cached is None or cached[0] != key:
                detail = "" if result.success else result.detail
                view = ProbeView(
                    name,
                    result.type,
                    result.target,
                    result.success,
                    result.reason,
                    detail,
                    result.path_mtu_bytes,
                    result.expect_min_mtu_bytes,
                )
                cached = (key, view)
            fresh[name] = cached
            views.append(cached[1])
        self._probe_cache = fresh
        return tuple(views)

    def _view(
        self, runner: ExporterRunner, expected: Mapping[str, int], now: float, failing: frozenset[str]
    ) -> ExporterView:
        status = runner.status  # the runner's published view, read once
        snapshot, health = status.snapshot, status.health
        cached = self._learned_cache.get(runner.name)
        if cached is not None and cached[0] is snapshot and dict(cached[1].expected) == dict(expected):
            base = cached[1]
        else:
            # The expected prefixes' paths are the runner's (the metric's); only probes refine them below.
            base = ExporterView.build(runner.name, runner.cloud, snapshot, expected, paths=status.paths)
            if snapshot is not None:
                self._learned_cache[runner.name] = (snapshot, base)
        paths, learned = base.paths, base.learned
        dead = probed_dead_paths(snapshot, failing)
        if dead:
            paths = {prefix: found - dead for prefix, found in paths.items()}
            learned = {prefix: found - dead for prefix, found in learned.items()}
        return ExporterView(
            name=runner.name,
            cloud=runner.cloud,
            up=health.up,
            stale=runner.is_stale(now),
            snapshot=snapshot,
            expected=base.expected,
            paths=paths,
            learned=learned,
            last_success=health.last_success,
            last_error=health.last_error,
            down_targets=frozenset(t.scope.key for t in health.targets if not t.up),
            stale_targets=tuple(
                t
                for t in health.targets
                if not t.up and now - (t.last_success or runner.created_at) > runner.stale_after
            ),
        )

    def _step(self) -> None:
        now = self.clock()
        obs = self.observation(now)
        self.state.tunnel_pairs = tuple(p.labels() for p in obs.pairs)
        self.health, events = step(self.health, obs, now)
        for event in events:
            if event.kind == "failover":
                # Swap in a new Counter: the scrape thread may be iterating the old one.
                failovers = self.state.failovers.copy()
                failovers[(event.exporter, event.prefix)] += 1
                self.state.failovers = failovers
                log.warning(
                    "failover on %s: %s now on %s",
                    event.exporter,
                    event.prefix,
                    ", ".join(sorted(event.paths)),
                )
            elif event.kind == "path_lost":
                log.warning("%s: %s lost path(s) %s", event.exporter, event.prefix, ", ".join(sorted(event.paths)))
            elif event.kind == "path_restored":
                log.info("%s: %s regained path(s) %s", event.exporter, event.prefix, ", ".join(sorted(event.paths)))
            elif event.alert is not None:
                self._alert_event(event.kind, event.alert)
        names = {r.name for r in self.state.exporters.values()}
        self._learned_cache = {k: v for k, v in self._learned_cache.items() if k in names}

    def _alert_event(self, kind: str, alert: Alert) -> None:
        full = Alert(
            tuple(sorted({**self.options.labels, **dict(alert.labels)}.items())),
            alert.summary,
            alert.description,
            alert.starts_at,
            alert.ends_at,
        )
        key: AlertKey = (alert.name, full.labels)
        if kind == "firing":
            self._resolved.pop(key, None)
            log.warning("alert firing: %s %s: %s", alert.name, _ident(alert), alert.summary)
        else:
            self._resolved[key] = full
            log.info("alert resolved: %s %s", alert.name, _ident(alert))

    # ---- Alertmanager -----------------------------------------------------------------------

    def _configure_client(self, options: AlertOptions) -> None:
        am = options.alertmanager
        if am is None:
            self.client = None
            return
        self.client = AlertmanagerClient(
            am.urls,
            resend_interval=am.resend_interval,
            timeout=am.timeout,
            generator_url=generator_url(options.listen),
            on_outcome=self._count,
            clock=self.clock,
        )

    def _retire_client(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            client.shutdown()

    def _count(self, url: str, outcome: str) -> None:
        sent = self.state.alerts_sent.copy()  # swapped, not mutated: see failovers
        sent[outcome] += 1
        self.state.alerts_sent = sent


def _ident(alert: Alert) -> str:
    skip = {"alertname", "severity"}
    return "{" + ", ".join(f"{k}={v}" for k, v in alert.labels if k not in skip) + "}"
