"""The catalogue of every metric vpn-watchdog exports: name -> (type, help), and the name prefix.

The single source from which the collector's help strings, docs/metrics.md (docs/generate.py) and the
deploy/ checks are derived. Data only: no rendering, no I/O.
"""

from __future__ import annotations

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
    "expected_prefix_min_paths": ("gauge", "Configured min_paths of an expected prefix (fewer = degraded)."),
    "ha_redundancy_met": ("gauge", "GCP HA VPN gateway SLA redundancy state, 1 when met."),
    "tunnel_packets_total": (
        "counter",
        "Cloud Monitoring packet counts by direction and delivery status; status=dropped is the total of"
        " the drops that the other non-successful statuses count by reason (never add the two).",
    ),
    "tunnel_ike_state": (
        "gauge",
        "1 for the IKE phase state (Established, Rekeying, Negotiating, Down) the tunnel's latest log entry reports.",
    ),
    "tunnel_log_events_total": (
        "counter",
        "Events the managed endpoint logged for the tunnel (rekey, dpd_timeout, no_proposal_chosen, ...).",
    ),
    "bgp_session_down_total": ("counter", "BGP session down events the cloud logged, by reason."),
    "log_lag_seconds": (
        "gauge",
        "Age of the newest cloud log entry read (absent while the log cannot be read).",
    ),
    "log_entries_total": ("counter", "Cloud log entries read, by outcome (classified, unclassified, malformed)."),
    "probe_success": ("gauge", "1 when the last probe run succeeded."),
    "probe_duration_seconds": ("gauge", "Duration of the last probe run."),
    "probe_failures_total": ("counter", "Failed probe runs by reason."),
    "probe_latency_seconds": ("histogram", "Round trips of DNS queries and ICMP echoes."),
    "probe_icmp_loss_ratio": ("gauge", "Lost / sent echoes in the last ICMP probe run."),
    "probe_path_mtu_bytes": ("gauge", "Largest packet (bytes, IP header included) that crossed the path with DF set."),
    "probe_path_mtu_expected_min_bytes": ("gauge", "Configured expect_min_mtu of a pmtu probe (below it = too low)."),
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
    "exporter_target_up": (
        "gauge",
        "1 when the last poll of this account (or project) and region of the exporter succeeded.",
    ),
    "exporter_target_last_success_timestamp_seconds": (
        "gauge",
        "Unix time of the last successful poll of this account (or project) and region.",
    ),
    "exporter_target_api_calls_total": ("counter", "Cloud API calls made for this account (or project) and region."),
    "exporter_target_errors_total": ("counter", "Failed polls of this account (or project) and region, by reason."),
    "alerts_sent_total": ("counter", "Pushes to Alertmanager by outcome."),
    "audit_findings": ("gauge", "Findings of the last audit by rule and severity."),
    "shard_info": (
        "gauge",
        "Always 1; which shard of how many this replica is (it owns the exporters hashmod assigns it).",
    ),
    "config_reload_failures_total": ("counter", "Reloads rejected (the running configuration was kept)."),
    "build_info": ("gauge", "Always 1; the version, source revision and Python version of this build."),
    "web_tls_handshake_failures_total": (
        "counter",
        "TLS handshakes on the metrics port that failed, by reason (plain HTTP, no client certificate, ...).",
    ),
    "config_last_reload_success_timestamp_seconds": (
        "gauge",
        "Unix time the configuration was last loaded successfully (at start or on reload).",
    ),
}

# Label values known before anything happened: their counters are exported at 0 from the start, so
# `rate()` and `increase()` see the first event (a series that appears at 1 looks like no change).
EXPORTER_ERROR_REASONS = ("api_error", "auth", "malformed", "network", "throttled", "timeout")
PROBE_FAILURE_REASONS = ("timeout",)
ALERT_OUTCOMES = ("error", "success")
