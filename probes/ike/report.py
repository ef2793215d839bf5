"""Render an `Analyzer`'s results as the DESIGN.md JSON object or as text for a person at 3 a.m.

The JSON keys `messages`, `by_exchange`, `ip_fragmented`, `ikev2_fragmented`, `rekeys`,
`largest_message_bytes`, `incomplete_datagrams` and `events` are the contract; everything else is
additional detail. The text leads with a one-line verdict and what to do about it.
This module only formats; it must not change the analyzer's state.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict
from typing import Any

from probes.ike.analyzer import OTHERS, Analyzer, PeerStats
from probes.ike.pcapfile import ReadStats


def problem_found(a: Analyzer) -> bool:
    """Exit-code rule: IP-fragmented IKE (complete or not) is the failure Cloud VPN cannot handle.

    RFC 7383 (IKEv2) fragmentation alone is the cure, not the disease, so it does not count.
    """
    return a.ip_fragmented_total > 0 or any(p.incomplete_datagrams for p in a.peers.values())


def _peer_dict(p: PeerStats) -> dict[str, Any]:
    return {
        "messages": sum(p.messages.values()),
        "by_exchange": dict(sorted(p.messages.items())),
        "ip_fragmented": dict(sorted(p.ip_fragmented.items())),
        "ikev2_fragmented": dict(sorted(p.ikev2_fragmented.items())),
        "rekeys": {"ike": p.rekeys["ike"], "child": p.rekeys["child"]},
        "rekeys_unconfirmed": p.rekeys_unconfirmed,
        "largest_by_exchange": dict(sorted(p.largest.items())),
        "largest_message_bytes": max(p.largest.values(), default=0),
        "over_mtu": dict(sorted(p.over_mtu.items())),
        "incomplete_datagrams": p.incomplete_datagrams,
        "unanswered_fragmented_requests": p.unanswered_fragmented_requests,
    }


def to_json(a: Analyzer, read: ReadStats | None = None, files: list[str] | None = None) -> dict[str, Any]:
    """The `watchdog ike analyze --format json` object."""
    total = PeerStats()
    for p in a.peers.values():
        total.messages.update(p.messages)
        total.ip_fragmented.update(p.ip_fragmented)
        total.ikev2_fragmented.update(p.ikev2_fragmented)
        total.over_mtu.update(p.over_mtu)
        total.rekeys.update(p.rekeys)
        total.rekeys_unconfirmed += p.rekeys_unconfirmed
        total.incomplete_datagrams += p.incomplete_datagrams
        total.unanswered_fragmented_requests += p.unanswered_fragmented_requests
        for k, v in p.largest.items():
            total.largest[k] = max(v, total.largest.get(k, 0))
    out = _peer_dict(total)
    counters = asdict(a.tracker.counters)
    out.update(
        {
            "mtu": a.mtu,
            "fragmentation_found": problem_found(a),
            "packets": a.packets,
            "ike_datagrams": a.ike_datagrams,
            "esp_in_udp": a.esp_in_udp,
            "nat_keepalives": a.keepalives,
            "malformed": dict(sorted(a.malformed.items())),
            "fragment_tracker": counters,
            "peers": {k: _peer_dict(v) for k, v in sorted(a.peers.items(), key=lambda kv: (kv[0] == OTHERS, kv[0]))},
            "peer_pairs": {
                "limit": a.max_peers,
                "tracked": a.tracked_peers,
                "folded": a.peers_folded,
                "folded_exact": a.folded_exact,
            },
            "events": sorted(a.events, key=lambda e: e["time"]),
            "events_dropped": a.events_dropped,
        }
    )
    if read is not None:
        out["capture"] = {
            "files": files or [],
            "records": read.records,
            "truncated_records": read.truncated_records,
            "corrupt_files": read.corrupt_files,
            "skipped_blocks": read.skipped_blocks,
            "first_packet": read.first_ts,
            "last_packet": read.last_ts,
        }
    return out


_YEAR_10000 = 253402300800.0


def _fmt_time(ts: float) -> str:
    """UTC to the millisecond; a timestamp past year 9999 (a pcapng with a coarse if_tsresol can say
    anything up to 2^64 s) as plain seconds, since gmtime() overflows."""
    if not 0 <= ts < _YEAR_10000:
        return f"{ts:.0f} s after 1970"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + f".{int((ts % 1) * 1000):03d}Z"


def _counts(c: Counter[str] | dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))


def _describe(ev: dict[str, Any]) -> str:
    who = f"{ev['exchange']} {'response' if ev['response'] else 'request'} {ev['src']} -> {ev['dst']}"
    sa = f"SPIs {ev['spi_i']}/{ev['spi_r']} msgid {ev['message_id']}"
    t = ev["type"]
    if t == "ip_fragmented":
        state = "all fragments seen" if ev["complete"] else f"INCOMPLETE ({ev['outcome']})"
        return f"IP-fragmented {who}: {ev['datagram_bytes']} B datagram in {ev['fragments']} fragments, {state}; {sa}"
    if t == "unanswered_fragmented_request":
        return (
            f"NO RESPONSE to {ev['fragmentation']}-fragmented {who} ({ev['datagrams']} datagrams incl. "
            f"retransmits); {ev['note']}; {sa}"
        )
    if t == "fragmented_request_pending_at_end":
        return f"unanswered so far: {ev['fragmentation']}-fragmented {who}; {ev['note']}"
    if t == "rekey":
        return f"rekey ({ev['sa']}) inferred from {ev['inferred_from']}: {who}; {sa}"
    if t == "fragmentation_risk":
        return f"over MTU {ev['mtu']}: {who} is a {ev['datagram_bytes']} B datagram (not fragmented here)"
    if t == "ikev2_fragmented":
        return f"RFC 7383 fragmented {who}: {ev['fragments']} IKE fragments"
    return f"{t}: {who}"


_PRIORITY = {
    "unanswered_fragmented_request": 0,
    "ip_fragmented": 2,
    "fragmented_request_pending_at_end": 3,
    "fragmentation_risk": 4,
    "rekey": 5,
}


def _priority(ev: dict[str, Any]) -> tuple[int, float]:
    """What a person should read first when there are too many events to show."""
    rank = _PRIORITY.get(ev["type"], 6)
    if ev["type"] == "ip_fragmented" and not ev.get("complete", True):
        rank = 1
    return rank, ev["time"]


def to_text(doc: dict[str, Any], max_events: int = 25, max_peers: int = 20) -> str:
    """Readable report from the JSON document (so both formats always agree)."""
    lines: list[str] = []
    cap = doc.get("capture") or {}
    if cap:
        span = ""
        if cap.get("first_packet") is not None:
            span = f", {_fmt_time(cap['first_packet'])} .. {_fmt_time(cap['last_packet'])}"
        lines.append(f"IKE fragmentation report: {len(cap['files'])} file(s), {doc['packets']} packets{span}")
    else:
        lines.append(f"IKE fragmentation report: {doc['packets']} packets captured")
    ipf = doc["ip_fragmented"]
    unanswered = doc["unanswered_fragmented_requests"]
    if doc["fragmentation_found"]:
        msg = f"PROBLEM: {sum(ipf.values())} IKE message(s) were IP-fragmented ({_counts(ipf)})"
        if doc["incomplete_datagrams"]:
            msg += f"; {doc['incomplete_datagrams']} never arrived complete"
        if unanswered:
            msg += f"; {unanswered} fragmented rekey request(s) got NO response"
        lines.append(msg + ".")
        lines.append(
            "  Cloud VPN drops IP fragments, so these rekeys can fail. Offer fewer transforms on the AWS "
            "side (ModifyVpnTunnelOptions) or enable IKEv2 fragmentation (RFC 7383)."
        )
    else:
        lines.append(f"OK: no IP-fragmented IKE messages among {doc['messages']} IKE message(s).")
    over = doc["over_mtu"]
    if over:
        lines.append(f"  Risk: {sum(over.values())} message(s) larger than MTU {doc['mtu']} ({_counts(over)}).")
    if doc["ikev2_fragmented"]:
        lines.append(f"  RFC 7383 fragmentation in use: {_counts(doc['ikev2_fragmented'])}.")
    lines.append(
        f"  Rekeys: IKE {doc['rekeys']['ike']}, Child {doc['rekeys']['child']}, "
        f"unconfirmed (IKE rekey or new Child SA) {doc['rekeys_unconfirmed']}. "
        f"Largest IKE message {doc['largest_message_bytes']} B."
    )
    peers = doc["peers"]
    folded = doc.get("peer_pairs", {})
    if folded.get("folded"):
        lines.append(
            f"  {'' if folded['folded_exact'] else 'At least '}{folded['folded']} more peer pair(s) past the first "
            f"{folded['limit']} are summed in '{OTHERS}'."
        )
    busiest = sorted((k for k in peers if k != OTHERS), key=lambda k: (-peers[k]["messages"], k))[:max_peers]
    if len(peers) - (OTHERS in peers) > len(busiest):
        lines.append(
            f"  The {len(busiest)} busiest of {len(peers) - (OTHERS in peers)} peer pairs below; all in --format json."
        )
    for label in sorted(busiest) + ([OTHERS] if OTHERS in peers else []):
        p = peers[label]
        lines.append("")
        lines.append(f"Peers {label}: {p['messages']} IKE message(s)")
        lines.append(f"  {'exchange':<22}{'messages':>9}{'ip-frag':>9}{'ikev2-frag':>11}{'largest':>9}{'>mtu':>6}")
        for name, n in p["by_exchange"].items():
            lines.append(
                f"  {name:<22}{n:>9}{p['ip_fragmented'].get(name, 0):>9}{p['ikev2_fragmented'].get(name, 0):>11}"
                f"{p['largest_by_exchange'].get(name, 0):>9}{p['over_mtu'].get(name, 0):>6}"
            )
        lines.append(
            f"  rekeys: IKE {p['rekeys']['ike']}, Child {p['rekeys']['child']}, unconfirmed "
            f"{p['rekeys_unconfirmed']}; incomplete datagrams {p['incomplete_datagrams']}; unanswered "
            f"fragmented requests {p['unanswered_fragmented_requests']}"
        )
    events = doc["events"]
    important = [e for e in events if e["type"] not in ("ikev2_fragmented",)]
    if important:
        lines.append("")
        shown = sorted(sorted(important, key=_priority)[:max_events], key=lambda e: e["time"])
        dropped = f", {doc['events_dropped']} older ones not kept" if doc["events_dropped"] else ""
        lines.append(f"Events ({len(shown)} of {len(important)}{dropped}):")
        for ev in shown:
            lines.append(f"  {_fmt_time(ev['time'])}  {_describe(ev)}")
    ft = doc["fragment_tracker"]
    notes = []
    if doc["malformed"]:
        notes.append(f"{sum(doc['malformed'].values())} malformed packet(s) skipped ({_counts(doc['malformed'])})")
    if cap.get("truncated_records") or cap.get("corrupt_files"):
        notes.append(
            f"capture damaged: {cap['truncated_records']} truncated record(s), {cap['corrupt_files']} file(s) cut short"
        )
    for k in ("evicted", "overlaps", "duplicates", "rejected_per_source", "too_many_pieces", "orphans_expired"):
        if ft[k]:
            notes.append(f"fragments {k.replace('_', ' ')}: {ft[k]}")
    if notes:
        lines.append("")
        lines.append("Notes: " + "; ".join(notes) + ".")
    return "\n".join(lines)
