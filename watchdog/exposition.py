"""Exposition of exporter snapshots as Prometheus text, pre-rendered once per snapshot.

A region can hold 50,000 learned routes; building metric objects for them at every scrape costs
seconds. Snapshots are immutable, so their sample lines are rendered once, in the poll's worker
thread, and a scrape only joins strings. Names and help strings come from `watchdog.catalogue`.
Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from prometheus_client.utils import floatToGoString

from watchdog.catalogue import METRICS, PREFIX
from watchdog.model import LearnedRoute, LogView, Scope, Snapshot

# Families rendered from snapshots, in page order, with their label names (sorted on output).
OBJECT_FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("tunnel_up", ("exporter", "cloud", "connection", "tunnel", "local_ip", "peer_ip")),
    ("tunnel_info", ("exporter", "cloud", "connection", "tunnel", "status", "detail")),
    ("tunnel_status_change_timestamp_seconds", ("exporter", "cloud", "connection", "tunnel")),
    ("bgp_session_up", ("exporter", "cloud", "router", "peer", "local_ip", "peer_ip")),
    ("bgp_session_uptime_seconds", ("exporter", "cloud", "router", "peer", "local_ip", "peer_ip")),
    ("bgp_received_prefixes", ("exporter", "cloud", "router", "peer")),
    ("learned_prefix", ("exporter", "cloud", "router", "prefix", "next_hop")),
    ("expected_prefix_paths", ("exporter", "cloud", "prefix")),
    ("ha_redundancy_met", ("exporter", "cloud", "gateway")),
    ("tunnel_packets_total", ("exporter", "cloud", "tunnel", "direction", "status")),
    ("tunnel_ike_state", ("exporter", "cloud", "connection", "tunnel", "phase", "state")),
    ("tunnel_log_events_total", ("exporter", "cloud", "tunnel", "event")),
    ("bgp_session_down_total", ("exporter", "cloud", "router", "peer", "reason")),
    ("log_lag_seconds", ("exporter", "cloud")),
    ("log_entries_total", ("exporter", "cloud", "outcome")),
)

Rendered = dict[str, list[str]]

# AWS's StatusMessage "12 BGP ROUTES" would start a new tunnel_info series at every route count
# change; the count is bgp_received_prefixes already, so the label keeps the words only.
_COUNTED_DETAIL = re.compile(r"^\d+ (BGP ROUTES?)$")


def info_detail(detail: str) -> str:
    """The `detail` label of tunnel_info: the API's text without a churning count."""
    return _COUNTED_DETAIL.sub(r"\1", detail)


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def header(metric: str, *, openmetrics: bool = False) -> str:
    """HELP and TYPE lines; OpenMetrics names a counter family without its `_total` sample suffix."""
    kind, help_text = METRICS[metric]
    name = PREFIX + metric
    if openmetrics and kind == "counter":
        name = name.removesuffix("_total")
    help_text = help_text.replace("\\", "\\\\").replace("\n", "\\n")
    if openmetrics:
        help_text = help_text.replace('"', '\\"')
    return f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"


class _Lines:
    """Sample lines of one family; labels sorted by name as prometheus_client prints them. A cloud
    object's `scope` adds its `account`/`project` and `region` labels."""

    def __init__(self, metric: str, labels: tuple[str, ...]) -> None:
        self.name = PREFIX + metric
        self.labels = labels
        self.order = sorted(range(len(labels)), key=lambda i: labels[i])
        self.names = [labels[i] for i in self.order]
        self.lines: list[str] = []
        self._scoped: dict[tuple[str, ...], tuple[list[str], list[int]]] = {}

    def add(self, values: Iterable[str], value: float, scope: Scope | None = None) -> None:
        self.lines.append(self.format(values, value, scope))

    def format(self, values: Iterable[str], value: float, scope: Scope | None = None) -> str:
        v = list(values)
        names, order = self.names, self.order
        if scope is not None:
            extra = scope.labels()
            v.extend(label_value for _, label_value in extra)
            names, order = self._layout(tuple(n for n, _ in extra))
        pairs = ",".join(f'{n}="{escape(v[i])}"' for n, i in zip(names, order, strict=True))
        return f"{self.name}{{{pairs}}} {floatToGoString(value)}\n"

    def _layout(self, extra: tuple[str, ...]) -> tuple[list[str], list[int]]:
        if extra not in self._scoped:
            labels = (*self.labels, *extra)
            order = sorted(range(len(labels)), key=lambda i: labels[i])
            self._scoped[extra] = ([labels[i] for i in order], order)
        return self._scoped[extra]


class RouteLines:
    """One exporter's `learned_prefix` lines of its last render, by scope and (router, prefix, next hop).

    A region's 50,000 routes hardly change between polls, and formatting their lines was most of a
    render (~0.3 s CPU per poll). A line is a function of those values, the exporter and the cloud
    alone, so a route seen in the last render reuses its line. Held by the exporter's runner, whose
    renders never overlap; the swap at the end of a render is one assignment.
    """

    def __init__(self) -> None:
        self.owner: tuple[str, str] = ("", "")
        self.lines: dict[Scope | None, dict[tuple[str, str, str], str]] = {}


def render_snapshot(
    exporter: str,
    cloud: str,
    snapshot: Snapshot | None,
    paths: Mapping[str, frozenset[str]],
    *,
    route_lines: RouteLines | None = None,
) -> Rendered:
    """Sample lines per family for one exporter's latest snapshot and expected-prefix paths
    (`route_lines`: the last render's route lines to reuse, updated to this render's)."""
    fam = {metric: _Lines(metric, labels) for metric, labels in OBJECT_FAMILIES}
    ex, cl = exporter, cloud
    for prefix, found in sorted(paths.items()):
        fam["expected_prefix_paths"].add((ex, cl, prefix), len(found))
    if snapshot is not None:
        for t in snapshot.tunnels:
            sc = t.scope
            fam["tunnel_up"].add((ex, cl, t.connection, t.name, t.local_ip, t.peer_ip), 1.0 if t.up else 0.0, sc)
            fam["tunnel_info"].add((ex, cl, t.connection, t.name, t.status, info_detail(t.detail)), 1.0, sc)
            if t.status_change is not None:
                fam["tunnel_status_change_timestamp_seconds"].add((ex, cl, t.connection, t.name), t.status_change, sc)
        for s in snapshot.bgp_sessions:
            sc = s.scope
            labels = (ex, cl, s.router, s.peer, s.local_ip, s.peer_ip)
            fam["bgp_session_up"].add(labels, 1.0 if s.up else 0.0, sc)
            if s.uptime_seconds is not None:
                fam["bgp_session_uptime_seconds"].add(labels, s.uptime_seconds, sc)
            if s.received_prefixes is not None:
                fam["bgp_received_prefixes"].add((ex, cl, s.router, s.peer), s.received_prefixes, sc)
        _render_routes(fam["learned_prefix"], ex, cl, snapshot.routes, route_lines)
        for g in snapshot.gateways:
            fam["ha_redundancy_met"].add((ex, cl, g.name), 1.0 if g.redundancy_met else 0.0, g.scope)
        for p in snapshot.packet_counts:
            fam["tunnel_packets_total"].add((ex, cl, p.tunnel, p.direction, p.status), p.count, p.scope)
        for part in snapshot.scoped_parts():
            if part.logs is not None:
                _render_logs(fam, ex, cl, part.logs, part.scope)
    return {metric: lines.lines for metric, lines in fam.items()}


def _render_routes(lines: _Lines, ex: str, cl: str, routes: Iterable[LearnedRoute], cache: RouteLines | None) -> None:
    # Keyed per scope, then by (router, prefix, next_hop): plain string tuples hash in C; a route's
    # scope is hashed only where the scope changes (a fanned-out snapshot lists each target's routes
    # together). The key is also the one-series-per-route rule: an API listing a route twice.
    old = cache.lines if cache is not None and cache.owner == (ex, cl) else {}
    new: dict[Scope | None, dict[tuple[str, str, str], str]] = {}
    scope: Scope | None = None
    was: dict[tuple[str, str, str], str] = old.get(None, {})
    now = new.setdefault(None, {})
    for r in routes:
        if r.scope is not scope:
            scope = r.scope
            was, now = old.get(scope, {}), new.setdefault(scope, {})
        key = (r.router, r.prefix, r.next_hop)
        if key in now:
            continue
        line = was.get(key)
        if line is None:
            line = lines.format((ex, cl, *key), 1.0, scope)
        now[key] = line
        lines.lines.append(line)
    if cache is not None:
        cache.owner, cache.lines = (ex, cl), new


def _render_logs(fam: dict[str, _Lines], ex: str, cl: str, logs: LogView, sc: Scope | None) -> None:
    for state in logs.ike_states:
        for phase, value in (("1", state.phase1), ("2", state.phase2)):
            if value:
                fam["tunnel_ike_state"].add((ex, cl, state.connection, state.tunnel, phase, value), 1.0, sc)
    for tunnel, event, n in logs.events:
        fam["tunnel_log_events_total"].add((ex, cl, tunnel, event), n, sc)
    for router, peer, reason, n in logs.bgp_downs:
        fam["bgp_session_down_total"].add((ex, cl, router, peer, reason), n, sc)
    if logs.lag_seconds is not None:
        fam["log_lag_seconds"].add((ex, cl), logs.lag_seconds, sc)
    for outcome, n in logs.entries:
        fam["log_entries_total"].add((ex, cl, outcome), n, sc)


def join_families(rendered: Iterable[Rendered], *, openmetrics: bool = False) -> str:
    """One page section: each family's header once, then every exporter's lines for it. The sample
    lines are the same in both formats (no timestamps, no exemplars); only counter headers differ."""
    parts: list[str] = []
    blocks = list(rendered)
    for metric, _ in OBJECT_FAMILIES:
        parts.append(header(metric, openmetrics=openmetrics))
        for block in blocks:
            parts.extend(block.get(metric, ()))
    return "".join(parts)
