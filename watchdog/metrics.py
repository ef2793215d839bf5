"""Render `WatchdogState` as the /metrics page at scrape time.

Snapshot-derived families (tunnels, sessions, routes, ...) come pre-rendered from each exporter's latest
snapshot (`watchdog.exposition`), so a deleted tunnel's series vanish by themselves; the rest comes from a
custom collector, as prometheus/client_python recommends, rebuilt at every scrape. `collect()` does no I/O and
must not raise (one exception would fail the whole page), so each section is guarded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

from prometheus_client import ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector, CollectorRegistry

from watchdog import buildinfo
from watchdog.catalogue import ALERT_OUTCOMES, EXPORTER_ERROR_REASONS, METRICS, PREFIX, PROBE_FAILURE_REASONS
from watchdog.exposition import Rendered, join_families
from watchdog.runners import ExporterRunner, WatchdogState

__all__ = ["PageRenderer", "WatchdogCollector", "build_registry", "render_page"]

log = logging.getLogger(__name__)


def _name(metric: str) -> str:
    return PREFIX + metric


def _gauge(metric: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(_name(metric), METRICS[metric][1], labels=labels)


def _counter(metric: str, labels: list[str]) -> CounterMetricFamily:
    # CounterMetricFamily appends `_total` itself.
    return CounterMetricFamily(_name(metric).removesuffix("_total"), METRICS[metric][1], labels=labels)


class WatchdogCollector(Collector):
    """Prometheus collector over the daemon state."""

    def __init__(self, state: WatchdogState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        sections = (self._exporter_health, self._probes, self._ike, self._alerting, self._config, self._self)
        for section in sections:
            try:
                yield from section()
            except Exception:  # never fail the whole page
                log.exception("rendering %s failed", section.__name__)

    def _runners(self) -> list[ExporterRunner]:
        return sorted(self.state.exporters.values(), key=lambda r: r.name)

    def _exporter_health(self) -> Iterator[Metric]:
        up = _gauge("exporter_up", ["exporter", "cloud"])
        last = _gauge("exporter_last_success_timestamp_seconds", ["exporter", "cloud"])
        duration = _gauge("exporter_poll_duration_seconds", ["exporter", "cloud"])
        errors = _counter("exporter_errors_total", ["exporter", "cloud", "reason"])
        calls = _counter("exporter_api_calls_total", ["exporter", "cloud"])
        min_paths = _gauge("expected_prefix_min_paths", ["exporter", "cloud", "prefix"])
        clouds = {r.name: r.cloud for r in self.state.exporters.values()}
        for (exporter, prefix), n in sorted(self.state.expected_min_paths.items()):
            min_paths.add_metric([exporter, clouds.get(exporter, ""), prefix], n)
        for runner in self._runners():
            h, labels = runner.health, [runner.name, runner.cloud]
            up.add_metric(labels, 1.0 if h.up else 0.0)
            if h.last_success is not None:
                last.add_metric(labels, h.last_success)
            if h.last_poll_duration is not None:
                duration.add_metric(labels, h.last_poll_duration)
            counts = dict.fromkeys(EXPORTER_ERROR_REASONS, 0) | dict(h.errors)
            for reason, n in sorted(counts.items()):
                errors.add_metric([*labels, reason], n)
            calls.add_metric(labels, h.api_calls)
        yield from (up, last, duration, errors, calls, min_paths)
        yield from self._targets()

    def _targets(self) -> Iterator[Metric]:
        """Per (account|project, region) health of fanned-out exporters: label sets differ by cloud
        (`account` or `project`), so these families are built sample by sample."""
        # Declared names (docs): `account` (aws) or `project` (gcp); samples carry the one that applies.
        names = ["exporter", "cloud", "account", "project", "region"]
        families = {
            "exporter_target_up": _gauge("exporter_target_up", names),
            "exporter_target_last_success_timestamp_seconds": _gauge(
                "exporter_target_last_success_timestamp_seconds", names
            ),
            "exporter_target_api_calls_total": _counter("exporter_target_api_calls_total", names),
            "exporter_target_errors_total": _counter("exporter_target_errors_total", [*names, "reason"]),
        }
        up, last, calls, errors = families.values()
        for runner in self._runners():
            for target in runner.health.targets:
                labels = {"exporter": runner.name, "cloud": runner.cloud, **dict(target.scope.labels())}
                up.add_sample(up.name, labels, 1.0 if target.up else 0.0)
                if target.last_success is not None:
                    last.add_sample(last.name, labels, target.last_success)
                calls.add_sample(calls.name + "_total", labels, target.api_calls)
                for reason, n in target.errors:
                    errors.add_sample(errors.name + "_total", {**labels, "reason": reason}, n)
        yield from families.values()

    def _probes(self) -> Iterator[Metric]:
        labels = ["probe", "type", "target"]
        success = _gauge("probe_success", labels)
        duration = _gauge("probe_duration_seconds", labels)
        failures = _counter("probe_failures_total", [*labels, "reason"])
        latency = HistogramMetricFamily(
            _name("probe_latency_seconds"), METRICS["probe_latency_seconds"][1], labels=labels
        )
        loss = _gauge("probe_icmp_loss_ratio", ["probe", "target"])
        path_mtu = _gauge("probe_path_mtu_bytes", ["probe", "target"])
        expected_mtu = _gauge("probe_path_mtu_expected_min_bytes", ["probe", "target"])
        runners = self.state.probes  # each published view is read once (see watchdog.runners)
        for name in sorted(runners):
            runner = runners[name]
            status = runner.status
            p = runner.probe
            ident = [p.name, p.type, p.target]
            result = status.last
            if result is not None:
                success.add_metric(ident, 1.0 if result.success else 0.0)
                duration.add_metric(ident, result.duration_seconds)
                if p.type == "icmp" and result.sent:
                    loss.add_metric([p.name, p.target], (result.sent - result.received) / result.sent)
                if result.path_mtu_bytes:
                    path_mtu.add_metric([p.name, p.target], result.path_mtu_bytes)
                if result.expect_min_mtu_bytes:
                    expected_mtu.add_metric([p.name, p.target], result.expect_min_mtu_bytes)
            counts = dict.fromkeys(PROBE_FAILURE_REASONS, 0) | dict(status.failures)
            for reason, n in sorted(counts.items()):
                failures.add_metric([*ident, reason], n)
            if status.latency.count:
                latency.add_metric(ident, status.latency.cumulative(), status.latency.total)
        yield from (success, duration, failures, latency, loss, path_mtu, expected_mtu)

    def _ike(self) -> Iterator[Metric]:
        snap = self.state.ike_snapshot()
        if snap is None:
            return
        messages = _counter("ike_messages_total", ["interface", "peer", "exchange"])
        fragmented = _counter("ike_fragmented_messages_total", ["interface", "peer", "exchange", "kind"])
        rekeys = _counter("ike_rekeys_total", ["interface", "peer", "sa"])
        largest = _gauge("ike_largest_message_bytes", ["interface", "peer", "exchange"])
        unanswered = _counter("ike_unanswered_fragmented_requests_total", ["interface", "peer"])
        malformed = _counter("ike_malformed_packets_total", ["interface"])
        up = _gauge("sniffer_up", ["interface"])
        drops = _counter("sniffer_kernel_drops_total", ["interface"])
        for key, n in sorted(snap.messages.items()):
            messages.add_metric(list(key), n)
        for fkey, n in sorted(snap.fragmented.items()):
            fragmented.add_metric(list(fkey), n)
        for key, n in sorted(snap.rekeys.items()):
            rekeys.add_metric(list(key), n)
        for key, n in sorted(snap.largest.items()):
            largest.add_metric(list(key), n)
        for ukey, n in sorted(snap.unanswered_fragmented_requests.items()):
            unanswered.add_metric(list(ukey), n)
        for iface, n in sorted(snap.malformed.items()):
            malformed.add_metric([iface], n)
        for iface, is_up in sorted(snap.sniffer_up.items()):
            up.add_metric([iface], 1.0 if is_up else 0.0)
        for iface, n in sorted(snap.kernel_drops.items()):
            drops.add_metric([iface], n)
        yield from (messages, fragmented, rekeys, largest, unanswered, malformed, up, drops)

    def _alerting(self) -> Iterator[Metric]:
        state = self.state
        clouds = {r.name: r.cloud for r in state.exporters.values()}
        failovers = _counter("failovers_total", ["exporter", "cloud", "prefix"])
        for (exporter, prefix), n in sorted(state.failovers.items()):
            failovers.add_metric([exporter, clouds.get(exporter, ""), prefix], n)
        # Label sets differ (account/project and region where known): built sample by sample.
        pairs = _gauge(
            "tunnel_pair_info",
            ["aws_exporter", "aws_connection", "aws_tunnel", "gcp_exporter", "gcp_tunnel"]
            + ["aws_account", "aws_region", "gcp_project", "gcp_region"],
        )
        for labels in state.tunnel_pairs:
            pairs.add_sample(pairs.name, dict(labels), 1.0)
        sent = _counter("alerts_sent_total", ["outcome"])
        for outcome, n in sorted((dict.fromkeys(ALERT_OUTCOMES, 0) | dict(state.alerts_sent)).items()):
            sent.add_metric([outcome], n)
        findings = _gauge("audit_findings", ["rule", "severity"])
        for (rule, severity), n in sorted(state.audit_findings.items()):
            findings.add_metric([rule, severity], n)
        yield from (failovers, pairs, sent, findings)

    def _config(self) -> Iterator[Metric]:
        reloads = self.state.reloads
        failures = _counter("config_reload_failures_total", [])
        failures.add_metric([], reloads.failures)
        last = _gauge("config_last_reload_success_timestamp_seconds", [])
        if reloads.last_success is not None:
            last.add_metric([], reloads.last_success)
        index, total = self.state.shard
        shard = _gauge("shard_info", ["shard", "shards"])
        shard.add_metric([str(index), str(total)], 1.0)
        yield from (failures, last, shard)

    def _self(self) -> Iterator[Metric]:
        info = _gauge("build_info", ["version", "revision", "python_version"])
        info.add_metric([buildinfo.__version__, buildinfo.revision(), buildinfo.python_version()], 1.0)
        tls = _counter("web_tls_handshake_failures_total", ["reason"])
        for reason, n in sorted(self.state.web_tls_failures.items()):
            tls.add_metric([reason], n)
        yield from (info, tls)


def build_registry(state: WatchdogState, *, process: bool = False) -> CollectorRegistry:
    """A fresh registry holding only our collector (never the global default registry); with
    `process`, also the standard `process_*` metrics of this process (the daemon's page)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WatchdogCollector(state))
    if process:
        ProcessCollector(registry=registry)
    return registry


class PageRenderer:
    """The /metrics page in two parts: the snapshot families (large, the same bytes object until an
    exporter publishes a new snapshot, so the web server can cache its gzip) and the collector's
    families (small, rendered at every scrape). Thread-safe; one rendering at a time per format."""

    def __init__(self, state: WatchdogState, registry: CollectorRegistry) -> None:
        self.state = state
        self.registry = registry
        self._lock = threading.Lock()
        self._key: tuple[tuple[str, str, Rendered], ...] = ()
        self._objects: dict[bool, bytes] = {}

    def parts(self, *, openmetrics: bool = False) -> tuple[bytes, bytes]:
        runners = sorted(self.state.exporters.values(), key=lambda r: r.name)
        key = tuple((r.name, r.cloud, r.rendered) for r in runners)
        with self._lock:
            if not _same(key, self._key):
                self._key, self._objects = key, {}
            objects = self._objects.get(openmetrics)
            if objects is None:
                objects = join_families((k[2] for k in key), openmetrics=openmetrics).encode()
                self._objects[openmetrics] = objects
        generate = generate_openmetrics if openmetrics else generate_latest
        return objects, generate(self.registry)


def _same(a: tuple[tuple[str, str, Rendered], ...], b: tuple[tuple[str, str, Rendered], ...]) -> bool:
    # Published views are never mutated, so identity says "unchanged" without comparing 50,000 lines.
    return len(a) == len(b) and all(x[0] == y[0] and x[1] == y[1] and x[2] is y[2] for x, y in zip(a, b, strict=True))


def render_page(state: WatchdogState, registry: CollectorRegistry | None = None, *, openmetrics: bool = False) -> bytes:
    """The whole /metrics page: pre-rendered snapshot families, then the collector's families."""
    objects, rest = PageRenderer(state, registry or build_registry(state)).parts(openmetrics=openmetrics)
    return objects + rest
