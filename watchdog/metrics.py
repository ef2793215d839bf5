"""Render `WatchdogState` as Prometheus metric families at scrape time.

A custom collector, as prometheus/client_python recommends: every scrape rebuilds the families from the
latest snapshots, so a deleted tunnel's series vanish by themselves. `collect()` does no I/O and
must not raise (one exception would fail the whole page), so each section is guarded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from watchdog.state import ExporterRunner, WatchdogState

log = logging.getLogger(__name__)

PREFIX = "vpn_watchdog_"

# name -> (type, help); the single source for docs (README metric reference) and deploy/ checks.
METRICS: dict[str, tuple[str, str]] = {
    "tunnel_up": ("gauge", "1 when the IPsec tunnel is established, 0 when not."),
    "tunnel_info": ("gauge", "Always 1; the raw status and detail strings of the tunnel as its API reports them."),
    "tunnel_status_change_timestamp_seconds": ("gauge", "Last tunnel status change, where the API says."),
    "bgp_session_up": ("gauge", "1 when the BGP session is Established, 0 otherwise."),
    "bgp_session_uptime_seconds": ("gauge", "Seconds since the BGP session was established."),
    "bgp_received_prefixes": ("gauge", "Prefixes learned from that BGP peer."),
    "learned_prefix": ("gauge", "1 per route learned over the VPN."),
    "expected_prefix_paths": ("gauge", "Usable paths to an expected prefix (0 = unreachable)."),
    "ha_redundancy_met": ("gauge", "GCP HA VPN gateway SLA redundancy state, 1 when met."),
    "tunnel_packets_total": ("counter", "Cloud Monitoring packet counts by direction and delivery status."),
    "probe_success": ("gauge", "1 when the last probe run succeeded."),
    "probe_duration_seconds": ("gauge", "Duration of the last probe run."),
    "probe_failures_total": ("counter", "Failed probe runs by reason."),
    "probe_latency_seconds": ("histogram", "Round trips of DNS queries and ICMP echoes."),
    "probe_icmp_loss_ratio": ("gauge", "Lost / sent echoes in the last ICMP probe run."),
    "ike_messages_total": ("counter", "IKE messages seen by the sniffer, each counted once."),
    "ike_fragmented_messages_total": (
        "counter",
        "IKE messages that arrived IP-fragmented (ip) or RFC 7383-fragmented (ikev2).",
    ),
    "ike_rekeys_total": ("counter", "Rekeys inferred from the wire by SA kind (ike, child)."),
    "ike_largest_message_bytes": ("gauge", "IKE length field of the largest message per exchange."),
    "ike_unanswered_fragmented_requests_total": (
        "counter",
        "IP-fragmented CREATE_CHILD_SA requests that never got a response.",
    ),
    "ike_malformed_packets_total": ("counter", "Captured packets the IKE parser skipped as malformed."),
    "sniffer_up": ("gauge", "1 while the IKE sniffer is capturing on the interface."),
    "sniffer_kernel_drops_total": (
        "counter",
        "Packets the kernel dropped before the sniffer read them (detector blind).",
    ),
    "failovers_total": ("counter", "Times a prefix lost a usable path while at least one other remained."),
    "tunnel_pair_info": ("gauge", "1 per tunnel seen from both clouds (AWS end joined with GCP end)."),
    "exporter_up": ("gauge", "1 when the exporter's last poll succeeded."),
    "exporter_last_success_timestamp_seconds": ("gauge", "Unix time of the exporter's last successful poll."),
    "exporter_poll_duration_seconds": ("gauge", "Duration of the exporter's last poll."),
    "exporter_errors_total": ("counter", "Failed exporter polls by reason."),
    "exporter_api_calls_total": ("counter", "Cloud API calls made by the exporter."),
    "alerts_sent_total": ("counter", "Pushes to Alertmanager by outcome."),
    "audit_findings": ("gauge", "Findings of the last audit by rule and severity."),
}


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
        sections = (self._exporter_objects, self._exporter_health, self._probes, self._ike, self._alerting)
        for section in sections:
            try:
                yield from section()
            except Exception:  # never fail the whole page
                log.exception("rendering %s failed", section.__name__)

    def _runners(self) -> list[ExporterRunner]:
        return sorted(self.state.exporters.values(), key=lambda r: r.name)

    def _exporter_objects(self) -> Iterator[Metric]:
        tunnel_up = _gauge("tunnel_up", ["exporter", "cloud", "connection", "tunnel", "local_ip", "peer_ip"])
        tunnel_info = _gauge("tunnel_info", ["exporter", "cloud", "connection", "tunnel", "status", "detail"])
        tunnel_change = _gauge("tunnel_status_change_timestamp_seconds", ["exporter", "cloud", "connection", "tunnel"])
        session_labels = ["exporter", "cloud", "router", "peer", "local_ip", "peer_ip"]
        bgp_up = _gauge("bgp_session_up", session_labels)
        bgp_uptime = _gauge("bgp_session_uptime_seconds", session_labels)
        bgp_received = _gauge("bgp_received_prefixes", ["exporter", "cloud", "router", "peer"])
        learned = _gauge("learned_prefix", ["exporter", "cloud", "router", "prefix", "next_hop"])
        expected = _gauge("expected_prefix_paths", ["exporter", "cloud", "prefix"])
        ha = _gauge("ha_redundancy_met", ["exporter", "cloud", "gateway"])
        packets = _counter("tunnel_packets_total", ["exporter", "cloud", "tunnel", "direction", "status"])
        for runner in self._runners():
            snap, ex, cloud = runner.snapshot, runner.name, runner.cloud
            for prefix, paths in sorted(runner.paths.items()):
                expected.add_metric([ex, cloud, prefix], len(paths))
            if snap is None:
                continue
            for t in snap.tunnels:
                tunnel_up.add_metric([ex, cloud, t.connection, t.name, t.local_ip, t.peer_ip], 1.0 if t.up else 0.0)
                tunnel_info.add_metric([ex, cloud, t.connection, t.name, t.status, t.detail], 1.0)
                if t.status_change is not None:
                    tunnel_change.add_metric([ex, cloud, t.connection, t.name], t.status_change)
            for s in snap.bgp_sessions:
                labels = [ex, cloud, s.router, s.peer, s.local_ip, s.peer_ip]
                bgp_up.add_metric(labels, 1.0 if s.up else 0.0)
                if s.uptime_seconds is not None:
                    bgp_uptime.add_metric(labels, s.uptime_seconds)
                if s.received_prefixes is not None:
                    bgp_received.add_metric([ex, cloud, s.router, s.peer], s.received_prefixes)
            seen: set[tuple[str, str, str]] = set()
            for r in snap.routes:
                key = (r.router, r.prefix, r.next_hop)
                if key not in seen:  # one series per route even if the API lists it twice
                    seen.add(key)
                    learned.add_metric([ex, cloud, *key], 1.0)
            for g in snap.gateways:
                ha.add_metric([ex, cloud, g.name], 1.0 if g.redundancy_met else 0.0)
            for p in snap.packet_counts:
                packets.add_metric([ex, cloud, p.tunnel, p.direction, p.status], p.count)
        yield from (
            tunnel_up,
            tunnel_info,
            tunnel_change,
            bgp_up,
            bgp_uptime,
            bgp_received,
            learned,
            expected,
            ha,
            packets,
        )

    def _exporter_health(self) -> Iterator[Metric]:
        up = _gauge("exporter_up", ["exporter", "cloud"])
        last = _gauge("exporter_last_success_timestamp_seconds", ["exporter", "cloud"])
        duration = _gauge("exporter_poll_duration_seconds", ["exporter", "cloud"])
        errors = _counter("exporter_errors_total", ["exporter", "cloud", "reason"])
        calls = _counter("exporter_api_calls_total", ["exporter", "cloud"])
        for runner in self._runners():
            h, labels = runner.health, [runner.name, runner.cloud]
            up.add_metric(labels, 1.0 if h.up else 0.0)
            if h.last_success is not None:
                last.add_metric(labels, h.last_success)
            if h.last_poll_duration is not None:
                duration.add_metric(labels, h.last_poll_duration)
            for reason, n in sorted(h.errors.items()):
                errors.add_metric([*labels, reason], n)
            calls.add_metric(labels, h.api_calls)
        yield from (up, last, duration, errors, calls)

    def _probes(self) -> Iterator[Metric]:
        labels = ["probe", "type", "target"]
        success = _gauge("probe_success", labels)
        duration = _gauge("probe_duration_seconds", labels)
        failures = _counter("probe_failures_total", [*labels, "reason"])
        latency = HistogramMetricFamily(
            _name("probe_latency_seconds"), METRICS["probe_latency_seconds"][1], labels=labels
        )
        loss = _gauge("probe_icmp_loss_ratio", ["probe", "target"])
        for name in sorted(self.state.probes):
            runner = self.state.probes[name]
            p = runner.probe
            ident = [p.name, p.type, p.target]
            result = runner.last
            if result is not None:
                success.add_metric(ident, 1.0 if result.success else 0.0)
                duration.add_metric(ident, result.duration_seconds)
                if p.type == "icmp" and result.sent:
                    loss.add_metric([p.name, p.target], (result.sent - result.received) / result.sent)
            for reason, n in sorted(runner.failures.items()):
                failures.add_metric([*ident, reason], n)
            if runner.latency.count:
                latency.add_metric(ident, runner.latency.cumulative(), runner.latency.total)
        yield from (success, duration, failures, latency, loss)

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
        pairs = _gauge(
            "tunnel_pair_info", ["aws_exporter", "aws_connection", "aws_tunnel", "gcp_exporter", "gcp_tunnel"]
        )
        for pair in state.tunnel_pairs:
            pairs.add_metric(list(pair), 1.0)
        sent = _counter("alerts_sent_total", ["outcome"])
        for outcome, n in sorted(state.alerts_sent.items()):
            sent.add_metric([outcome], n)
        findings = _gauge("audit_findings", ["rule", "severity"])
        for (rule, severity), n in sorted(state.audit_findings.items()):
            findings.add_metric([rule, severity], n)
        yield from (failovers, pairs, sent, findings)


def build_registry(state: WatchdogState) -> CollectorRegistry:
    """A fresh registry holding only our collector (never the global default registry)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WatchdogCollector(state))
    return registry
