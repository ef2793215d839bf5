#!/usr/bin/env python3
"""Generate docs/metrics.md, the metric reference, from watchdog.catalogue.METRICS and the collector.

Names, types and help strings come from `METRICS`; label names from the code that renders /metrics
(so the docs cannot drift from it); the operator notes below say how to use each one.
A metric added to `METRICS` without a note here, or a stale docs/metrics.md, fails the tests:

    python docs/generate.py           # rewrite docs/metrics.md
    python docs/generate.py --check   # exit 1 if it is stale

It must not import anything but the core (`watchdog`): no cloud SDKs, no I/O beyond the one file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from watchdog.catalogue import METRICS, PREFIX  # noqa: E402
from watchdog.metrics import WatchdogCollector  # noqa: E402
from watchdog.model import IkeSnapshot  # noqa: E402
from watchdog.runners import WatchdogState  # noqa: E402

OUTPUT = HERE / "metrics.md"

GROUPS: dict[str, tuple[str, ...]] = {
    "Tunnels, BGP and routes (per exporter)": (
        "tunnel_up",
        "tunnel_info",
        "tunnel_status_change_timestamp_seconds",
        "bgp_session_up",
        "bgp_session_uptime_seconds",
        "bgp_received_prefixes",
        "learned_prefix",
        "expected_prefix_paths",
        "expected_prefix_min_paths",
        "failovers_total",
        "ha_redundancy_met",
        "tunnel_packets_total",
        "tunnel_pair_info",
    ),
    "Managed endpoints' own logs (AWS tunnel/BGP logs, Cloud VPN and Cloud Router logs)": (
        "tunnel_ike_state",
        "tunnel_log_events_total",
        "bgp_session_down_total",
        "log_lag_seconds",
        "log_entries_total",
    ),
    "Exporter health": (
        "exporter_up",
        "exporter_last_success_timestamp_seconds",
        "exporter_poll_duration_seconds",
        "exporter_errors_total",
        "exporter_api_calls_total",
        "exporter_target_up",
        "exporter_target_last_success_timestamp_seconds",
        "exporter_target_api_calls_total",
        "exporter_target_errors_total",
    ),
    "Probes (DNS, ICMP)": (
        "probe_success",
        "probe_duration_seconds",
        "probe_failures_total",
        "probe_latency_seconds",
        "probe_icmp_loss_ratio",
        "probe_path_mtu_bytes",
        "probe_path_mtu_expected_min_bytes",
    ),
    "IKE sniffer": (
        "ike_messages_total",
        "ike_fragmented_messages_total",
        "ike_rekeys_total",
        "ike_largest_message_bytes",
        "ike_unanswered_fragmented_requests_total",
        "ike_malformed_packets_total",
        "sniffer_up",
        "sniffer_kernel_drops_total",
    ),
    "Alerting and audit": (
        "alerts_sent_total",
        "audit_findings",
    ),
    "Configuration": (
        "config_reload_failures_total",
        "config_last_reload_success_timestamp_seconds",
        "shard_info",
    ),
    "The daemon itself": (
        "build_info",
        "web_tls_handshake_failures_total",
    ),
}

# How to read or query each metric: what the help string cannot say.
NOTES: dict[str, str] = {
    "tunnel_up": "`sum by (exporter) (vpn_watchdog_tunnel_up)` = tunnels up per side; AWS `tunnel` is the outside IP, "
    "GCP's the tunnel name. Cheap mode's unused AWS tunnel is 0 by design.",
    "tunnel_info": "Join on `tunnel` for the reason behind a 0: e.g. GCP `NO_INCOMING_PACKETS`, AWS `IPSEC IS DOWN`.",
    "tunnel_status_change_timestamp_seconds": "`time() - ...` = seconds in the current state; absent where the "
    "API gives no time (GCP).",
    "bgp_session_up": "AWS has no BGP state API: its sessions mirror the tunnel telemetry (UP only with BGP "
    "established). `local_ip`/`peer_ip` are the inside (169.254.x.x) addresses.",
    "bgp_session_uptime_seconds": "A value that drops back to near 0 is a session reset (flap) even if no scrape "
    "saw it down.",
    "bgp_received_prefixes": "AWS accepts at most 100 prefixes per VPN connection from the customer gateway; "
    "alert well before that.",
    "learned_prefix": "One series per (router, prefix, next_hop): `count by (prefix)` shows ECMP width. A spoke "
    "range missing here on the AWS side is a missing Cloud Router custom advertisement.",
    "expected_prefix_paths": "The alerting input: 0 = `VpnPrefixUnreachable`, below `min_paths` = "
    "`VpnRedundancyDegraded`. Kept at the last known value while its exporter is stale.",
    "expected_prefix_min_paths": "The configured `min_paths`, so Prometheus rules can compare "
    "`vpn_watchdog_expected_prefix_paths < on (exporter, cloud, prefix) vpn_watchdog_expected_prefix_min_paths`.",
    "failovers_total": "`increase(...[1h]) > 0` = traffic moved to another tunnel this hour while still reachable.",
    "ha_redundancy_met": "0 = GCP says the gateway's tunnels do not give the 99.99% SLA redundancy (e.g. no "
    "tunnel on one of its two interfaces); `watchdog audit` names what is missing.",
    "tunnel_packets_total": '`rate(...{status="fragment_received"}[5m]) > 0` = fragments reach Cloud VPN, which '
    "drops them: lower MTU/MSS. Counted since the daemon started.",
    "tunnel_pair_info": "Join AWS and GCP views of one tunnel: `... * on (aws_tunnel) group_left ...`.",
    "tunnel_ike_state": 'AWS `tunnel_logs`: `...{phase="2",state="Down"} == 1` = Phase 2 is down as AWS logs it, '
    "often before the tunnel telemetry says so. One series per tunnel and phase (the latest state).",
    "tunnel_log_events_total": '`increase(...{event="rekey"}[1h])` = rekeys the cloud endpoint did; '
    "`no_proposal_chosen`, `auth_failed`, `negotiation_timeout`, `negotiation_failed`, `fragment_dropped` or 3+ "
    "`retransmit` in 15 min = `VpnRekeyFailing`. Counted since the daemon started.",
    "bgp_session_down_total": "`reason` as the cloud logs it (`HOLD_TIMER_EXPIRED`, `LINK_DOWN`, ...; AWS: the "
    "notification logged just before the session left Established, else `UNKNOWN`).",
    "log_lag_seconds": "How far behind the cloud's log the watchdog is (plus the cloud's own ingestion delay). "
    "Absent = that log could not be read this poll: see `exporter_errors_total{reason}` (`auth`, `not_found`).",
    "log_entries_total": '`outcome="unclassified"` growing = messages no documented pattern knows (logged once per '
    "shape at debug); `malformed` = entries without the documented fields.",
    "exporter_up": "0 = the last poll failed (see `exporter_errors_total{reason}`); the exporter's objects keep "
    "their last values, they are not zeroed.",
    "exporter_last_success_timestamp_seconds": "`time() - ...` = staleness; `VpnWatchdogExporterStale` fires "
    "after 3 missed intervals.",
    "exporter_poll_duration_seconds": "Close to the exporter's `timeout` = the API is slow; polls never overlap.",
    "exporter_errors_total": "`reason`: `timeout`, `throttled`, `auth`, `not_found`, `network`, `server_error`, "
    "`malformed`, `api_error`, `internal` (the log line of the failed poll has the details).",
    "exporter_api_calls_total": "`rate(...[1h]) * 3600` = calls per hour, to size API quotas and cost.",
    "exporter_target_up": "One series per (account or project, region) of an `aws`/`gcp` entry; 0 = that target's"
    " last poll failed, its objects keep their last values and the entry's other targets are unaffected.",
    "exporter_target_last_success_timestamp_seconds": "`time() - ...` = how stale one account's or project's view is.",
    "exporter_target_api_calls_total": "`sum by (account) (rate(...[1h])) * 3600` = calls per hour per account"
    " (or `project`), to size each one's API quota.",
    "exporter_target_errors_total": "By `reason` (throttled, auth, timeout, ...): which account or project fails.",
    "probe_success": "Always emitted after the first run, also on timeout.",
    "probe_duration_seconds": "Wall time of the whole run (all ICMP echoes of it, or the DNS query).",
    "probe_failures_total": "DNS reasons: `timeout`, `nxdomain`, `servfail`, `refused`, `wrong_answer`, "
    "`network_error`; ICMP: `timeout` (every echo lost), `unreachable`, `network_error`, `permission` (no ping "
    "socket and no CAP_NET_RAW).",
    "probe_latency_seconds": "`histogram_quantile(0.95, rate(..._bucket[5m]))` per probe.",
    "probe_icmp_loss_ratio": "Partial loss (0 < ratio < 1) on one path is an early sign of a dying tunnel.",
    "probe_path_mtu_bytes": "`type: pmtu` probes; absent while no DF packet of `min_mtu` bytes crosses. "
    "`VpnPathMtuLow` compares it with the next one.",
    "probe_path_mtu_expected_min_bytes": "A pmtu probe's `expect_min_mtu`, so rules compare against the "
    "configured value.",
    "ike_messages_total": "Each IKE message counted once however many fragments carried it.",
    "ike_fragmented_messages_total": '`kind="ip"` is the dangerous one (Cloud VPN drops IP fragments: rekeys '
    'fail); `kind="ikev2"` is RFC 7383 fragmentation, which Cloud VPN supports.',
    "ike_rekeys_total": '`sa="child"` every Phase 2 lifetime (AWS max 1 h), `sa="ike"` every Phase 1 lifetime.',
    "ike_largest_message_bytes": "Compare with the path MTU (`ike.mtu`): close to it = next proposal change may "
    "fragment.",
    "ike_unanswered_fragmented_requests_total": "The rekey failure as the wire shows it: a fragmented "
    "CREATE_CHILD_SA that never got a response.",
    "ike_malformed_packets_total": "Non-zero usually means non-IKE traffic on UDP 500/4500 or truncated captures.",
    "sniffer_up": "0 = not capturing (missing CAP_NET_RAW, interface gone): fragmentation would go unseen.",
    "sniffer_kernel_drops_total": "Non-zero = the sniffer was blind for a moment (CPU starved); counts are a lower "
    "bound.",
    "alerts_sent_total": "`outcome` is `success` or `error`; `error` increasing = an Alertmanager is unreachable "
    "and pages may not be delivered.",
    "audit_findings": 'From the periodic audit (`audit.interval`); `severity="error"` > 0 = a known pitfall '
    "is present, run `watchdog audit` for the fix.",
    "config_reload_failures_total": "`increase(...[15m]) > 0` = a SIGHUP brought a config that was rejected; the "
    "log line says why. Nothing of the running configuration changed.",
    "config_last_reload_success_timestamp_seconds": "Compare with the config file's mtime: older = the file on "
    "disk is not what runs.",
    "build_info": "`count by (version, revision) (vpn_watchdog_build_info)` = which builds run where (a rollout "
    "half done). Beside it, the standard `process_*` metrics of the daemon's process (CPU, memory, open files).",
    "web_tls_handshake_failures_total": "`reason` is OpenSSL's, lower case: `http_request` (plain HTTP to the TLS "
    "port), `peer_did_not_return_a_certificate`, `certificate_verify_failed`, `wrong_version_number`, ..., or "
    "`timeout`, `eof`, `client_san_not_allowed`. Each failure is also one WARN log line with the client's address.",
    "shard_info": "`count(vpn_watchdog_shard_info) by (shards)` below `shards` = a replica is missing and its "
    "exporters are not polled; `0`/`1` when unsharded.",
}


class _QuietIke:
    """An IKE source with no traffic, so the collector renders the IKE families (and their labels)."""

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def snapshot(self) -> IkeSnapshot:
        return IkeSnapshot()


def label_names() -> dict[str, tuple[str, ...]]:
    """METRICS key -> label names, as the code declares them.

    Families rendered from exporter snapshots are declared in `watchdog.exposition.OBJECT_FAMILIES`
    (where that module exists); the rest come from the families the real collector yields.
    """
    labels: dict[str, tuple[str, ...]] = {}
    try:
        from watchdog.exposition import OBJECT_FAMILIES
    except ImportError:  # the collector renders every family itself
        OBJECT_FAMILIES = ()
    for metric, names in OBJECT_FAMILIES:
        labels[metric] = tuple(names)
    for family in WatchdogCollector(WatchdogState(ike=_QuietIke())).collect():
        short = family.name.removeprefix(PREFIX)
        key = short if short in METRICS else f"{short}_total"
        labels[key] = tuple(getattr(family, "_labelnames", ()))
    return labels


def exposed_name(key: str, kind: str) -> str:
    name = PREFIX + key
    return f"{name}_bucket / _sum / _count" if kind == "histogram" else name


def render() -> str:
    grouped = [key for keys in GROUPS.values() for key in keys]
    problems = [f"{key}: in METRICS but in no group of docs/generate.py" for key in METRICS if key not in grouped]
    problems += [f"{key}: in METRICS but has no note in docs/generate.py NOTES" for key in METRICS if key not in NOTES]
    problems += [f"{key}: documented but not in METRICS" for key in [*grouped, *NOTES] if key not in METRICS]
    labels = label_names()
    problems += [f"{key}: in METRICS but the collector never renders it" for key in METRICS if key not in labels]
    if problems:
        raise SystemExit("docs/generate.py:\n  " + "\n  ".join(problems))
    lines = [
        "<!-- GENERATED by docs/generate.py from watchdog.catalogue.METRICS: do not edit. -->",
        "# Metric reference",
        "",
        f"Every metric vpn-watchdog serves on `/metrics` ({len(METRICS)} families, prefix `{PREFIX}`). Series are "
        "rebuilt from the latest snapshot at every scrape: a deleted tunnel's series disappear, and while an exporter "
        "is down its objects keep their last known values (never zero) and `exporter_up` says so.",
        "",
        "Label values: AWS `connection` is the VPN connection id, `tunnel` and `local_ip` the AWS outside IP, "
        "`peer_ip` the customer gateway IP; GCP `connection` is the HA VPN gateway, `tunnel` the tunnel name, "
        "`local_ip` the gateway interface IP, `peer_ip` the tunnel's peer IP. `cloud` is `aws`, `gcp`, "
        "`strongswan` or `frr`; `direction` is `sent` or `received`. Every series taken from an `aws` or `gcp` "
        "exporter also carries `account` (the AWS account id, where known) or `project`, and `region`.",
        "",
    ]
    for title, keys in GROUPS.items():
        lines += [f"## {title}", "", "| metric | type | labels | meaning | how to use it |", "|---|---|---|---|---|"]
        for key in keys:
            kind, help_text = METRICS[key]
            label_text = ", ".join(f"`{n}`" for n in labels[key]) or "none"
            lines.append(f"| `{exposed_name(key, kind)}` | {kind} | {label_text} | {help_text} | {NOTES[key]} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/metrics.md is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text(encoding="utf-8") != text:
            print(f"{OUTPUT} is stale: run python docs/generate.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
