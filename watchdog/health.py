"""Failover detection and alert conditions: a pure state machine `step(state, observation, now)`.

Each step derives the conditions that hold now (tunnel down, prefix unreachable, probe failing, ...)
from one `Observation`, merges them with the tracked ones in `HealthState` and returns the new state
plus `Event`s (path lost/restored, failover, alert firing/resolved). The alerting engine applies the
events (counters, Alertmanager pushes); this module must not do I/O, read the clock or log.

Damping (`Observation.hold` = `alertmanager.for`): a condition fires once it has held for `hold`,
where gaps shorter than `hold` do not restart the count, and a firing alert resolves only after the
condition has been absent for `hold`. So a tunnel bouncing every few seconds raises ONE alert that
stays firing, and a single short blip raises none. `VpnWatchdogExporterStale` and
`VpnIkeFragmentation` are facts, not states to debounce: they fire and resolve at once.

An exporter that is down or stale is frozen: conditions built from its objects neither start, fire
nor resolve until it polls again, so an API outage raises only `VpnWatchdogExporterStale`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType

from watchdog.join import TunnelPair
from watchdog.model import (
    REKEY_FAILURE_EVENTS,
    BgpSession,
    IkeSnapshot,
    LogView,
    Scope,
    Snapshot,
    TargetStatus,
    Tunnel,
)
from watchdog.paths import PathIndex, covers, path_qualifier

ALERT_NAMES = (
    "VpnTunnelDown",
    "VpnTunnelAsymmetric",
    "VpnBgpSessionDown",
    "VpnRedundancyDegraded",
    "VpnPathFailover",
    "VpnPrefixUnreachable",
    "VpnExpectedPrefixMissing",
    "VpnProbeFailing",
    "VpnIkeFragmentation",
    "VpnWatchdogExporterStale",
    "VpnPathMtuLow",
    "VpnRekeyFailing",
)

# page: traffic to a prefix we promised is gone; warning: lost redundancy or a broken part that
# something else still covers; info: traffic moved and still flows.
SEVERITY = {
    "VpnPrefixUnreachable": "page",
    "VpnExpectedPrefixMissing": "page",
    "VpnTunnelDown": "warning",
    "VpnTunnelAsymmetric": "warning",
    "VpnBgpSessionDown": "warning",
    "VpnRedundancyDegraded": "warning",
    "VpnProbeFailing": "warning",
    "VpnIkeFragmentation": "warning",
    "VpnWatchdogExporterStale": "warning",
    "VpnPathMtuLow": "warning",
    "VpnRekeyFailing": "warning",
    "VpnPathFailover": "info",
}

# How long a fragmentation sighting keeps VpnIkeFragmentation firing (rekeys are hours apart);
# the same window holds a logged rekey/negotiation failure (VpnRekeyFailing).
DEFAULT_FRAGMENT_WINDOW = 900.0
# Retransmits of one tunnel within the window that make VpnRekeyFailing (one can be a lost packet).
REPEATED_RETRANSMITS = 3

Labels = tuple[tuple[str, str], ...]
AlertKey = tuple[str, Labels]


def _labels(scope: Scope | None = None, **values: str) -> Labels:
    """Sorted label pairs; a cloud object's scope adds `account`/`project` and `region`."""
    if scope is not None:
        values.update(scope.labels())
    return tuple(sorted(values.items()))


def _scope_key(scope: Scope | None) -> tuple[str, str, str]:
    """A scope as the tail of a counter key (the keys stay plain strings); empty when unscoped."""
    return (scope.kind, scope.id, scope.region) if scope is not None else ("", "", "")


def _key_scope(where: Sequence[str]) -> Scope | None:
    kind, id_, region = where
    return Scope(kind, id_, region) if kind else None


def _where(scope: Scope | None) -> str:
    """` in project p/region` for a summary line, so two targets' same-named tunnels read apart."""
    return f" in {scope.kind} {scope.key}" if scope is not None else ""


def target_owner(exporter: str, scope: Scope | None) -> str:
    return f"{exporter}@{scope.key}" if scope is not None else exporter


def _scoped(prefix: str, scope: Scope | None) -> Labels:
    """`aws_account`/`aws_region` (prefix `aws`) ... for the two ends of a tunnel pair."""
    return tuple((f"{prefix}_{name}", value) for name, value in scope.labels()) if scope is not None else ()


# ---- observation --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExporterView:
    """One exporter as the daemon sees it now: health plus its last good snapshot and paths."""

    name: str
    cloud: str
    up: bool
    stale: bool
    snapshot: Snapshot | None
    expected: Mapping[str, int] = field(default_factory=dict)  # prefix -> min_paths
    paths: Mapping[str, frozenset[str]] = field(default_factory=dict)  # expected prefix -> usable paths
    learned: Mapping[str, frozenset[str]] = field(default_factory=dict)  # learned prefix -> usable paths
    last_success: float | None = None
    last_error: str = ""
    # A fanned-out exporter's targets that are down now (scope keys), and those down for 3 intervals.
    down_targets: frozenset[str] = frozenset()
    stale_targets: tuple[TargetStatus, ...] = ()

    @property
    def frozen(self) -> bool:
        return self.stale or not self.up

    def owners(self, scope: Scope | None) -> frozenset[str]:
        """Whose poll an object's condition depends on: the exporter, and its target if it has one."""
        return frozenset({self.name, target_owner(self.name, scope)}) if scope else frozenset({self.name})

    @classmethod
    def build(
        cls,
        name: str,
        cloud: str,
        snapshot: Snapshot | None,
        expected: Mapping[str, int] | None = None,
        *,
        up: bool = True,
        stale: bool = False,
        last_success: float | None = None,
        last_error: str = "",
        paths: Mapping[str, frozenset[str]] | None = None,
    ) -> ExporterView:
        """Compute usable paths (expected and learned prefixes) from the snapshot. `paths`, when given,
        are the expected prefixes' paths the exporter's runner already worked out for this snapshot."""
        expected = dict(expected or {})
        learned: dict[str, frozenset[str]] = {}
        if snapshot is None:
            paths = {}
        else:
            index = PathIndex(snapshot)
            if paths is None or set(paths) != set(expected):
                paths = {prefix: index.paths_to(prefix) for prefix in expected}
            learned = {prefix: index.paths_to(prefix) for prefix in sorted({r.prefix for r in snapshot.routes})}
        return cls(name, cloud, up, stale, snapshot, expected, paths, learned, last_success, last_error)


@dataclass(frozen=True)
class ProbeView:
    name: str
    type: str
    target: str
    success: bool
    reason: str = ""
    detail: str = ""
    path_mtu: int = 0  # pmtu probes: last measured path MTU (0: not measured)
    expect_min_mtu: int = 0


@dataclass(frozen=True)
class Observation:
    exporters: tuple[ExporterView, ...] = ()
    probes: tuple[ProbeView, ...] = ()
    pairs: tuple[TunnelPair, ...] = ()
    ike: IkeSnapshot | None = None
    hold: float = 10.0
    fragment_window: float = DEFAULT_FRAGMENT_WINDOW


# ---- state and events ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    """Something wrong now. `ident` names the object (stable); `labels` may add volatile labels."""

    name: str
    ident: Labels
    labels: Labels
    summary: str
    description: str
    owners: frozenset[str] = frozenset()
    immediate: bool = False

    @property
    def key(self) -> AlertKey:
        return (self.name, self.ident)


@dataclass(frozen=True)
class Tracked:
    condition: Condition
    pending_since: float
    last_active: float
    active: bool = True
    fired_at: float | None = None


@dataclass(frozen=True)
class Alert:
    """One alert as Alertmanager's v2 API wants it (times in Unix seconds)."""

    labels: Labels
    summary: str
    description: str
    starts_at: float
    ends_at: float | None = None

    @property
    def name(self) -> str:
        return dict(self.labels)["alertname"]


@dataclass(frozen=True)
class Event:
    """kind: path_lost | path_restored | failover | firing | resolved."""

    kind: str
    exporter: str = ""
    prefix: str = ""
    paths: frozenset[str] = frozenset()
    alert: Alert | None = None


def _frozen_map(data: Mapping) -> Mapping:  # type: ignore[type-arg]
    return MappingProxyType(dict(data))


@dataclass(frozen=True)
class HealthState:
    tracked: Mapping[AlertKey, Tracked] = field(default_factory=lambda: _frozen_map({}))
    # (exporter, prefix) -> usable paths at the last live observation
    paths: Mapping[tuple[str, str], frozenset[str]] = field(default_factory=lambda: _frozen_map({}))
    # (exporter, prefix) -> paths that carried the prefix and whose tunnel/session still exists
    baseline: Mapping[tuple[str, str], frozenset[str]] = field(default_factory=lambda: _frozen_map({}))
    # fragmentation counter key -> last value, and key -> time of the last increase
    counters: Mapping[tuple[str, ...], float] = field(default_factory=lambda: _frozen_map({}))
    fragments_seen: Mapping[tuple[str, ...], float] = field(default_factory=lambda: _frozen_map({}))
    # (kind, exporter, tunnel) of a logged rekey failure or retransmit -> (time, increase) within the window
    log_marks: Mapping[tuple[str, ...], tuple[tuple[float, float], ...]] = field(
        default_factory=lambda: _frozen_map({})
    )
    # exporter -> `taken_at` of the snapshot whose paths were tracked last (unchanged = skip the work)
    tracked_snapshots: Mapping[str, float] = field(default_factory=lambda: _frozen_map({}))

    def firing(self, extra_labels: Mapping[str, str] | None = None) -> list[Alert]:
        """Alerts firing now, sorted by name and labels."""
        alerts = [
            to_alert(t.condition, t.fired_at, None, extra_labels)
            for t in self.tracked.values()
            if t.fired_at is not None
        ]
        return sorted(alerts, key=lambda a: a.labels)


def to_alert(
    condition: Condition, starts_at: float, ends_at: float | None, extra: Mapping[str, str] | None = None
) -> Alert:
    """Config labels first; ours win on a clash so routing and inhibition keep working."""
    labels = dict(extra or {})
    labels.update(condition.labels)
    labels["alertname"] = condition.name
    labels["severity"] = SEVERITY[condition.name]
    return Alert(tuple(sorted(labels.items())), condition.summary, condition.description, starts_at, ends_at)


# ---- the step -----------------------------------------------------------------------------------


def step(state: HealthState, obs: Observation, now: float) -> tuple[HealthState, list[Event]]:
    """Advance the health state by one observation taken at `now`."""
    events: list[Event] = []
    paths, baseline, snapshots = _track_paths(state, obs, events)
    counters, fragments_seen = _track_fragments(state, obs, now)
    log_marks = _track_log_events(state, obs, now, counters)
    conditions: dict[AlertKey, Condition] = {}
    views = {v.name: v for v in obs.exporters}
    for condition in _conditions(obs, views, baseline, fragments_seen, now):
        conditions.setdefault(condition.key, condition)
    for condition in _rekey_failing(views, log_marks):
        conditions.setdefault(condition.key, condition)
    frozen = {e.name for e in obs.exporters if e.frozen}
    frozen |= {f"{e.name}@{key}" for e in obs.exporters for key in e.down_targets}
    tracked = _merge(state.tracked, conditions, frozen, obs.hold, now, events)
    new = HealthState(
        tracked=_frozen_map(tracked),
        paths=_frozen_map(paths),
        baseline=_frozen_map(baseline),
        counters=_frozen_map(counters),
        fragments_seen=_frozen_map(fragments_seen),
        tracked_snapshots=_frozen_map(snapshots),
        log_marks=_frozen_map(log_marks),
    )
    return new, events


def _merge(
    previous: Mapping[AlertKey, Tracked],
    conditions: Mapping[AlertKey, Condition],
    frozen: set[str],
    hold: float,
    now: float,
    events: list[Event],
) -> dict[AlertKey, Tracked]:
    tracked: dict[AlertKey, Tracked] = {}
    for key in sorted(set(previous) | set(conditions)):
        prev = previous.get(key)
        cond = conditions.get(key)
        owners = (cond.owners if cond else frozenset()) | (prev.condition.owners if prev else frozenset())
        if owners & frozen:
            if prev is not None:
                tracked[key] = prev  # last known state: nothing starts, fires or resolves
            continue
        if cond is not None:
            if prev is None:
                item = Tracked(cond, pending_since=now, last_active=now)
            else:
                kept = cond if prev.fired_at is None else replace(cond, labels=prev.condition.labels)
                item = replace(prev, condition=kept, active=True, last_active=now)
            if item.fired_at is None and (cond.immediate or now - item.pending_since >= hold):
                item = replace(item, fired_at=now)
                events.append(Event("firing", alert=to_alert(item.condition, now, None)))
            tracked[key] = item
            continue
        assert prev is not None
        item = replace(prev, active=False) if prev.active else prev
        gone = prev.condition.immediate or now - prev.last_active >= hold
        if item.fired_at is not None and gone:
            events.append(Event("resolved", alert=to_alert(item.condition, item.fired_at, now)))
        elif not gone:
            tracked[key] = item
    return tracked


# ---- paths and failovers ------------------------------------------------------------------------


def _existing_paths(snapshot: Snapshot) -> set[str]:
    """Path ids that still name an object in the snapshot (a deleted tunnel is no lost path)."""
    ids: set[str] = set()
    for part in snapshot.scoped_parts():
        q = path_qualifier(snapshot, part.scope)
        ids |= {f"{q}{t.connection}/{t.name}" for t in part.tunnels}
        ids |= {q + s.peer for s in part.bgp_sessions}
        ids |= {q + r.next_hop for r in part.routes}
    return ids


def _track_paths(
    state: HealthState, obs: Observation, events: list[Event]
) -> tuple[dict[tuple[str, str], frozenset[str]], dict[tuple[str, str], frozenset[str]], dict[str, float]]:
    paths = dict(state.paths)
    baseline = dict(state.baseline)
    snapshots = dict(state.tracked_snapshots)
    for view in obs.exporters:
        if view.frozen or view.snapshot is None:
            continue  # keep last known paths; an outage is not a failover
        if snapshots.get(view.name) == view.snapshot.taken_at:
            continue  # the same poll as last step: nothing moved
        snapshots[view.name] = view.snapshot.taken_at
        existing = _existing_paths(view.snapshot)
        current = dict(view.learned)
        current.update(view.paths)
        for key in [k for k in paths if k[0] == view.name and k[1] not in current]:
            del paths[key]
            baseline.pop(key, None)
        for prefix, now_paths in sorted(current.items()):
            key = (view.name, prefix)
            before = paths.get(key)
            paths[key] = now_paths
            baseline[key] = frozenset((baseline.get(key, frozenset()) | now_paths) & existing)
            if before is None:
                continue
            lost, gained = before - now_paths, now_paths - before
            if lost:
                events.append(Event("path_lost", view.name, prefix, frozenset(lost)))
                if now_paths:
                    events.append(Event("failover", view.name, prefix, frozenset(now_paths)))
            if gained:
                events.append(Event("path_restored", view.name, prefix, frozenset(gained)))
    return paths, baseline, snapshots


def _track_fragments(
    state: HealthState, obs: Observation, now: float
) -> tuple[dict[tuple[str, ...], float], dict[tuple[str, ...], float]]:
    """Remember when each fragmentation counter last went up (counters start at 0 with the daemon)."""
    counters = dict(state.counters)
    seen = {k: t for k, t in state.fragments_seen.items() if now - t < obs.fragment_window}
    values: dict[tuple[str, ...], float] = {}
    key: tuple[str, ...]
    if obs.ike is not None:
        for (interface, peer, _exchange, _kind), n in obs.ike.fragmented.items():
            key = ("ike", interface, peer)
            values[key] = values.get(key, 0.0) + n
    for view in obs.exporters:
        if view.cloud != "gcp" or view.snapshot is None or view.frozen:
            continue
        for count in view.snapshot.packet_counts:
            if count.status == "fragment_received":
                key = ("gcp", view.name, count.tunnel, *_scope_key(count.scope))
                values[key] = values.get(key, 0.0) + count.count
    for view, scope, logs in _scoped_logs(obs):
        for tunnel, event, n in logs.events:
            if event == "fragment_dropped":
                key = ("log", view.name, tunnel, *_scope_key(scope))
                values[key] = values.get(key, 0.0) + n
    for key, value in values.items():
        if value > counters.get(key, 0.0):
            seen[key] = now
        counters[key] = value
    return counters, seen


def _scoped_logs(obs: Observation) -> Iterator[tuple[ExporterView, Scope | None, LogView]]:
    """Each fresh exporter's log views per target: two projects' same-named tunnels stay apart."""
    for view in obs.exporters:
        if view.snapshot is None or view.frozen:
            continue
        for part in view.snapshot.scoped_parts():
            if part.logs is not None:
                yield view, part.scope, part.logs


def _track_log_events(
    state: HealthState, obs: Observation, now: float, counters: dict[tuple[str, ...], float]
) -> dict[tuple[str, ...], tuple[tuple[float, float], ...]]:
    """Increases of the logged failure and retransmit counters, kept for the window (`counters`
    gets the last values, as for fragments: counters start at 0 with the readers)."""
    marks: dict[tuple[str, ...], tuple[tuple[float, float], ...]] = {}
    for old_key, old_marks in state.log_marks.items():
        kept = tuple(m for m in old_marks if now - m[0] < obs.fragment_window)
        if kept:
            marks[old_key] = kept
    values: dict[tuple[str, ...], float] = {}
    for view, scope, logs in _scoped_logs(obs):
        for tunnel, event, n in logs.events:
            kind = "failure" if event in REKEY_FAILURE_EVENTS else "retransmit" if event == "retransmit" else ""
            if kind:
                mark = (f"log_{kind}", view.name, tunnel, *_scope_key(scope))
                values[mark] = values.get(mark, 0.0) + n
    for key, value in values.items():
        before = counters.get(key, 0.0)
        if value > before:
            marks[key] = (*marks.get(key, ()), (now, value - before))
        counters[key] = value
    return marks


def _rekey_failing(
    views: Mapping[str, ExporterView], marks: Mapping[tuple[str, ...], tuple[tuple[float, float], ...]]
) -> Iterable[Condition]:
    tunnels = sorted({key[1:] for key in marks})  # (exporter, tunnel, *scope key)
    for exporter, tunnel, *where in tunnels:
        failure, retransmit = ("log_failure", exporter, tunnel, *where), ("log_retransmit", exporter, tunnel, *where)
        failures = sum(n for _, n in marks.get(failure, ()))
        retransmits = sum(n for _, n in marks.get(retransmit, ()))
        if not failures and retransmits < REPEATED_RETRANSMITS:
            continue
        last = max(t for key in (failure, retransmit) for t, _ in marks.get(key, ()))
        scope = _key_scope(where)
        what = []
        if failures:
            what.append(f"{failures:g} failed negotiation(s)")
        if retransmits:
            what.append(f"{retransmits:g} retransmit(s)")
        ident = _labels(scope, exporter=exporter, tunnel=tunnel)
        view = views.get(exporter)
        yield Condition(
            "VpnRekeyFailing",
            ident,
            ident,
            f"tunnel {tunnel}{_where(scope)} is failing to rekey ({exporter})",
            f"The managed endpoint's log for {tunnel} ({exporter}) shows {' and '.join(what)} in the last"
            f" 15 minutes (last at {_utc(last)}): a rekey or negotiation is failing. See"
            " vpn_watchdog_tunnel_log_events_total and the endpoint's log; large proposals that get"
            " IP-fragmented are the usual cause (watchdog audit --fix-ipsec).",
            view.owners(scope) if view is not None else frozenset({exporter}),
            immediate=True,
        )


# ---- conditions ---------------------------------------------------------------------------------


def _conditions(
    obs: Observation,
    views: Mapping[str, ExporterView],
    baseline: Mapping[tuple[str, str], frozenset[str]],
    fragments_seen: Mapping[tuple[str, ...], float],
    now: float,
) -> Iterable[Condition]:
    yield from _stale(obs.exporters, now)
    yield from _tunnels(views, obs.pairs)
    yield from _sessions(obs.exporters)
    yield from _prefixes(obs.exporters, baseline)
    yield from _probes(obs.probes)
    yield from _fragments(views, obs.ike, fragments_seen, now)


def _stale(views: Iterable[ExporterView], now: float) -> Iterable[Condition]:
    for view in views:
        if not view.stale:
            continue
        since = (
            f"no successful poll since {_utc(view.last_success)}"
            if view.last_success is not None
            else "no successful poll since the watchdog started"
        )
        error = f" (last error: {view.last_error})" if view.last_error else ""
        yield Condition(
            "VpnWatchdogExporterStale",
            _labels(exporter=view.name),
            _labels(exporter=view.name),
            f"exporter {view.name} ({view.cloud}) is stale",
            f"{since}{error}. Its tunnels, BGP sessions and prefixes keep their last known state;"
            " no VPN alerts are raised or resolved from it until it polls again.",
            immediate=True,
        )
    for view in views:
        if view.stale:
            continue  # the whole exporter's alert says it
        for target in view.stale_targets:
            scope = target.scope
            since = (
                f"no successful poll since {_utc(target.last_success)}"
                if target.last_success is not None
                else "no successful poll since the watchdog started"
            )
            error = f" (last error: {target.last_error})" if target.last_error else ""
            ident = _labels(scope, exporter=view.name)
            yield Condition(
                "VpnWatchdogExporterStale",
                ident,
                ident,
                f"exporter {view.name} ({view.cloud}) is stale for {scope.kind} {scope.key}",
                f"{since}{error}. The tunnels, BGP sessions and prefixes of {scope.kind} {scope.id or '?'} in"
                f" {scope.region} keep their last known state; the exporter's other targets poll on.",
                immediate=True,
            )


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _tunnel_text(exporter: str, tunnel: Tunnel) -> str:
    detail = f", {tunnel.detail}" if tunnel.detail else ""
    where = f"{tunnel.connection}/{tunnel.name} {tunnel.local_ip} -> {tunnel.peer_ip}"
    return f"{exporter}: {where} is {tunnel.status}{detail}"


def _still_up(views: Iterable[ExporterView]) -> str:
    parts = []
    for view in views:
        if view.snapshot is None:
            continue
        up = [t for t in view.snapshot.tunnels if t.up]
        names = ", ".join(f"{t.connection}/{t.name}" for t in up) or "none"
        parts.append(f"{view.name} has {len(up)} of {len(view.snapshot.tunnels)} tunnels up ({names})")
    return "; ".join(parts)


def _find_tunnel(view: ExporterView | None, name: str, scope: Scope | None = None) -> Tunnel | None:
    if view is None or view.snapshot is None:
        return None
    return next((t for t in view.snapshot.tunnels if t.name == name and t.scope == scope), None)


def _tunnels(views: Mapping[str, ExporterView], pairs: tuple[TunnelPair, ...]) -> Iterable[Condition]:
    paired: set[tuple[str, Scope | None, str]] = set()
    peers_of_gcp = {t.peer_ip for v in views.values() if v.cloud == "gcp" and v.snapshot for t in v.snapshot.tunnels}
    gcp_known = any(v.cloud == "gcp" and v.snapshot is not None for v in views.values())
    # A cloud exporter that has not polled yet (and is not stale) may still pair these tunnels:
    # judging them single-ended now would raise an alert that the join withdraws a moment later.
    joining = any(v.cloud in ("aws", "gcp") and v.snapshot is None and not v.stale for v in views.values())
    for pair in pairs:
        aws_view, gcp_view = views.get(pair.aws_exporter), views.get(pair.gcp_exporter)
        aws_t = _find_tunnel(aws_view, pair.aws_tunnel, pair.aws_scope)
        gcp_t = _find_tunnel(gcp_view, pair.gcp_tunnel, pair.gcp_scope)
        if aws_t is None or gcp_t is None or aws_view is None or gcp_view is None:
            continue
        paired |= {
            (pair.aws_exporter, pair.aws_scope, pair.aws_tunnel),
            (pair.gcp_exporter, pair.gcp_scope, pair.gcp_tunnel),
        }
        down = [(v, t) for v, t in ((aws_view, aws_t), (gcp_view, gcp_t)) if not t.up]
        if not down:
            continue
        ident = tuple(
            sorted(
                (
                    *_labels(
                        aws_exporter=pair.aws_exporter,
                        aws_connection=pair.aws_connection,
                        aws_tunnel=pair.aws_tunnel,
                        gcp_exporter=pair.gcp_exporter,
                        gcp_tunnel=pair.gcp_tunnel,
                    ),
                    *_scoped("aws", pair.aws_scope),
                    *_scoped("gcp", pair.gcp_scope),
                )
            )
        )
        reporters = "+".join(v.name for v, _ in down)
        labels = tuple(sorted((*ident, ("exporter", reporters), ("tunnel", pair.gcp_tunnel))))
        owners = frozenset().union(*(v.owners(t.scope) for v, t in down))
        what = "; ".join(_tunnel_text(v.name, t) for v, t in down)
        still = _still_up([aws_view, gcp_view])
        if len(down) == 2:
            yield Condition(
                "VpnTunnelDown",
                ident,
                labels,
                f"tunnel {pair.aws_tunnel} <-> {pair.gcp_tunnel} is down as seen from both clouds",
                f"{what}. Still carrying traffic: {still}.",
                owners,
            )
        else:
            up_view, up_t = (gcp_view, gcp_t) if aws_t is down[0][1] else (aws_view, aws_t)
            yield Condition(
                "VpnTunnelAsymmetric",
                ident,
                labels,
                f"tunnel {pair.aws_tunnel} <-> {pair.gcp_tunnel}: {reporters} sees it down,"
                f" {up_view.name} sees it {up_t.status}",
                f"{what}; but {_tunnel_text(up_view.name, up_t)}. The two ends disagree"
                " (half-open SA, stale API view or one-sided rekey failure)."
                f" Still carrying traffic: {still}.",
                owners,
            )
    for view in views.values():
        if view.snapshot is None:
            continue
        for tunnel in view.snapshot.tunnels:
            if tunnel.up or (view.name, tunnel.scope, tunnel.name) in paired:
                continue
            if joining and view.cloud in ("aws", "gcp"):
                continue
            if view.cloud == "aws" and gcp_known and tunnel.local_ip not in peers_of_gcp:
                continue  # no GCP tunnel uses this AWS end: the idle second tunnel of a cheap setup
            ident = _labels(tunnel.scope, exporter=view.name, connection=tunnel.connection, tunnel=tunnel.name)
            where = f" in {tunnel.scope.key}" if tunnel.scope is not None else ""
            yield Condition(
                "VpnTunnelDown",
                ident,
                ident,
                f"tunnel {tunnel.connection}/{tunnel.name} is down ({view.name}{where})",
                f"{_tunnel_text(view.name, tunnel)}. Still carrying traffic: {_still_up([view])}.",
                view.owners(tunnel.scope),
            )


def _sessions(views: Iterable[ExporterView]) -> Iterable[Condition]:
    for view in views:
        if view.snapshot is None:
            continue
        tunnels = {(t.scope, t.name): t for t in view.snapshot.tunnels}
        sessions = view.snapshot.bgp_sessions
        up = [s for s in sessions if s.up]
        for session in sessions:
            if session.up or _tunnel_explains(session, tunnels):
                continue
            others = ", ".join(f"{s.peer} ({s.peer_ip})" for s in up) or "none"
            ident = _labels(session.scope, exporter=view.name, router=session.router, peer=session.peer)
            yield Condition(
                "VpnBgpSessionDown",
                ident,
                ident,
                f"BGP session {session.router}/{session.peer} is {session.state} ({view.name})",
                f"{view.name}: BGP {session.local_ip} -> {session.peer_ip} on router {session.router} is"
                f" {session.state} while its tunnel is up; routes over it are withdrawn."
                f" {len(up)} of {len(sessions)} sessions still Established: {others}.",
                view.owners(session.scope),
            )


def _tunnel_explains(session: BgpSession, tunnels: Mapping[tuple[Scope | None, str], Tunnel]) -> bool:
    """A session down because its tunnel is down is covered by the tunnel alert."""
    tunnel = tunnels.get((session.scope, session.tunnel)) if session.tunnel else None
    return tunnel is not None and not tunnel.up


def _plural(n: int) -> str:
    return "path" if n == 1 else "paths"


def _prefixes(views: Iterable[ExporterView], baseline: Mapping[tuple[str, str], frozenset[str]]) -> Iterable[Condition]:
    for view in views:
        if view.snapshot is None:
            continue
        for prefix, min_paths in sorted(view.expected.items()):
            paths = view.paths.get(prefix, frozenset())
            known = baseline.get((view.name, prefix), frozenset()) | paths
            lost = sorted(known - paths)
            ident = _labels(exporter=view.name, prefix=prefix)
            owners = frozenset({view.name})
            carried = ", ".join(sorted(paths))
            lost_text = f"; lost: {', '.join(lost)}" if lost else ""
            if paths:
                routes = []  # only the no-path cases need to know which routes cover it
            else:
                routes = sorted({r.prefix for r in view.snapshot.routes if covers(r.prefix, prefix)})
            if not paths and not routes and (not known or _carriers_up(view.snapshot, known)):
                # Never learned, or withdrawn while a path that carried it is still up: the far side
                # stopped advertising it (a dead path would make it unreachable instead).
                learned = sorted({r.prefix for r in view.snapshot.routes})
                yield Condition(
                    "VpnExpectedPrefixMissing",
                    ident,
                    ident,
                    f"{prefix} is not learned at all on {view.name}",
                    f"No learned route equals or contains {prefix} on {view.name}"
                    f" (learned: {', '.join(learned) or 'none'}). The far side does not advertise it"
                    " (missing custom advertised range?) or every session carrying it is gone.",
                    owners,
                )
            elif not paths:
                learned_as = f"learned as {', '.join(routes)}" if routes else "its routes were withdrawn"
                yield Condition(
                    "VpnPrefixUnreachable",
                    ident,
                    ident,
                    f"{prefix} has no usable path on {view.name}",
                    f"{prefix} ({learned_as}) has 0 usable paths on {view.name}"
                    f"{lost_text}. Nothing carries traffic to it. {_still_up([view])}.",
                    owners,
                )
            else:
                if len(paths) < min_paths:
                    yield Condition(
                        "VpnRedundancyDegraded",
                        ident,
                        ident,
                        f"{prefix} has {len(paths)} of min {min_paths} usable paths on {view.name}",
                        f"{prefix} now on {len(paths)} {_plural(len(paths))} (min_paths {min_paths}):"
                        f" still carried by {carried}{lost_text}.",
                        owners,
                    )
                if lost:
                    yield Condition(
                        "VpnPathFailover",
                        ident,
                        ident,
                        f"{prefix} failed over: {len(paths)} of {len(known)} paths usable on {view.name}",
                        f"{prefix} now on {len(paths)} of {len(known)} paths: still carried by {carried}{lost_text}.",
                        owners,
                    )


def _carriers_up(snapshot: Snapshot, path_ids: Iterable[str]) -> bool:
    """Whether any of these path ids (`connection/tunnel`, a BGP peer or a next hop) is still up: a
    tunnel path counts while the tunnel and the BGP sessions over it are up."""
    down_sessions = {s.tunnel for s in snapshot.bgp_sessions if s.tunnel and not s.up}
    up = {f"{t.connection}/{t.name}" for t in snapshot.tunnels if t.up and t.name not in down_sessions}
    up |= {s.peer for s in snapshot.bgp_sessions if s.up}
    up |= {s.peer_ip for s in snapshot.bgp_sessions if s.up and s.peer_ip}
    return any(path in up for path in path_ids)


def _probes(probes: Iterable[ProbeView]) -> Iterable[Condition]:
    for probe in probes:
        if probe.success and probe.path_mtu and probe.path_mtu < probe.expect_min_mtu:
            yield Condition(
                "VpnPathMtuLow",
                _labels(probe=probe.name),
                _labels(probe=probe.name, target=probe.target),
                f"path MTU to {probe.target} is {probe.path_mtu} bytes, below {probe.expect_min_mtu}",
                f"probe {probe.name}: the largest DF packet that reaches {probe.target} is {probe.path_mtu} "
                f"bytes, below the expected {probe.expect_min_mtu}; larger packets are dropped or must be "
                "fragmented (check the tunnel MTU and the MSS clamp).",
            )
        if probe.success:
            continue
        detail = f" ({probe.detail})" if probe.detail else ""
        ident = _labels(probe=probe.name)
        yield Condition(
            "VpnProbeFailing",
            ident,
            _labels(probe=probe.name, type=probe.type, target=probe.target),
            f"{probe.type} probe {probe.name} to {probe.target} is failing: {probe.reason or 'failed'}",
            f"probe {probe.name} ({probe.type} {probe.target}) failed: {probe.reason or 'failed'}{detail}.",
        )


def _fragments(
    views: Mapping[str, ExporterView],
    ike: IkeSnapshot | None,
    seen: Mapping[tuple[str, ...], float],
    now: float,
) -> Iterable[Condition]:
    for key, at in sorted(seen.items()):
        ago = _utc(at)
        if key[0] == "ike":
            _, interface, peer = key
            by_exchange = sorted(
                f"{exchange} {kind} x{n}"
                for (i, p, exchange, kind), n in (ike.fragmented.items() if ike else ())
                if i == interface and p == peer
            )
            unanswered = ike.unanswered_fragmented_requests.get((interface, peer), 0) if ike else 0
            lost = f" {unanswered} fragmented rekey request(s) were never answered." if unanswered else ""
            ident = _labels(interface=interface, peer=peer)
            yield Condition(
                "VpnIkeFragmentation",
                ident,
                ident,
                f"fragmented IKE with {peer} on {interface}",
                f"IKE messages to/from {peer} on {interface} arrived fragmented (last at {ago}):"
                f" {', '.join(by_exchange) or 'fragmented'}.{lost} Cloud VPN drops IP fragments, so"
                " rekeys can fail; narrow the proposals (watchdog audit --fix-ipsec).",
                immediate=True,
            )
        elif key[0] == "log":
            _, exporter, tunnel, *where = key
            scope = _key_scope(where)
            log_view = views.get(exporter)
            owners = log_view.owners(scope) if log_view is not None else frozenset()
            ident = _labels(scope, exporter=exporter, tunnel=tunnel)
            yield Condition(
                "VpnIkeFragmentation",
                ident,
                ident,
                f"tunnel {tunnel}{_where(scope)} dropped IKE fragments ({exporter})",
                f"The managed endpoint's log for {tunnel} ({exporter}) reports dropped fragments (last at {ago});"
                " the peer's IKE messages arrive IP-fragmented and are lost: narrow the IKE proposals"
                " (watchdog audit --fix-ipsec) or enable IKEv2 fragmentation on the peer.",
                owners,
                immediate=True,
            )
        else:
            _, exporter, tunnel, *where = key
            scope = _key_scope(where)
            view = views.get(exporter)
            owners = view.owners(scope) if view is not None else frozenset()
            ident = _labels(scope, exporter=exporter, tunnel=tunnel)
            yield Condition(
                "VpnIkeFragmentation",
                ident,
                ident,
                f"GCP tunnel {tunnel}{_where(scope)} received fragmented packets ({exporter})",
                f"Cloud Monitoring counts fragment_received packets on {tunnel} (last increase at {ago});"
                " Cloud VPN does not reassemble them: lower the MTU/MSS or narrow IKE proposals.",
                owners,
                immediate=True,
            )
