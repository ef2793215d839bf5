"""AWS Site-to-Site VPN tunnel activity and BGP logs, read from their CloudWatch Logs group.

`AwsTunnelLogReader.read()` runs inside the exporter's poll, on the exporter's `AwsClient` (same
budget, retries, translation): FilterLogEvents over the group from the book's window start,
following nextToken for at most `max_pages` pages (the next poll resumes at the token: bounded
work per poll, and the lag it leaves shows in `log_lag_seconds`). Each event is parsed as the
documented JSON (tunnel activity: `details`, `ike_phase1_state`, `ike_phase2_state`,
`dpd_enabled`, `nat_t_detected`; BGP: `type`, `status`, `resource_id`, `message.details`),
joined to its tunnel by VPN connection id and outside IP (from the record, else the log stream
name), and classified with `log_patterns`. A failed read is returned as the view's error; it
never fails the poll.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from exporters.aws_client import AwsClient
from exporters.log_book import Entry, LogBook
from exporters.log_patterns import AWS_BGP, AWS_TUNNEL, classify
from watchdog.errors import ExporterError
from watchdog.model import BgpSession, LogView, Tunnel

OVERLAP_SECONDS = 120.0  # CloudWatch Logs ingestion is seconds late, rarely more
PAGE_LIMIT = 1000
MAX_PAGES = 20
PENDING_REASON_SECONDS = 60.0  # a BGP notification explains a session leaving Established this soon after
_STATES = {s.lower(): s for s in ("Established", "Rekeying", "Negotiating", "Down")}
_RESOURCE = re.compile(r"(?P<vpn>vpn-[0-9a-zA-Z]+)[-_/](?P<ip>[0-9a-fA-F.:]+)")
_CONNECTION_KEYS = ("VpnConnectionId", "vpn_connection_id", "vpnConnectionId")
_OUTSIDE_IP_KEYS = ("TunnelOutsideIPAddress", "tunnel_outside_ip_address", "tunnelOutsideIpAddress")


def state_name(value: Any) -> str:
    """`established` / `ESTABLISHED` -> `Established` (the docs do not promise a casing)."""
    text = str(value or "").strip()
    return _STATES.get(text.lower(), text)


class AwsTunnelLogReader:
    """One exporter's reader of one log group; `read()` from the exporter's poll thread only."""

    def __init__(
        self,
        client: AwsClient,
        log_group: str,
        *,
        clock: Callable[[], float] = time.time,
        page_limit: int = PAGE_LIMIT,
        max_pages: int = MAX_PAGES,
    ) -> None:
        self.client = client
        self.log_group = log_group
        self.book = LogBook(f"{client.name} {log_group}", overlap=OVERLAP_SECONDS, clock=clock)
        self._page_limit = page_limit
        self._max_pages = max_pages
        self._pending: dict[str, tuple[str, float]] = {}  # tunnel -> (BGP notification reason, at)
        self._resume: tuple[int, str | None] | None = None  # (startTime ms, nextToken) of a cut-off read

    def read(self, tunnels: Iterable[Tunnel], sessions: Iterable[BgpSession]) -> LogView:
        known = {(t.connection, t.name) for t in tunnels}
        by_tunnel = {s.tunnel: s for s in sessions if s.tunnel}
        logs = self.client.client("logs")
        error: tuple[str, str] | None = None
        # A read cut off after max_pages resumes at its page token (same startTime): the events are
        # interleaved across streams, not strictly in time order, so a new window could skip some.
        start, token = self._resume or (int(self.book.window_start() * 1000), None)
        try:
            for _ in range(self._max_pages):
                params: dict[str, Any] = {"logGroupName": self.log_group, "startTime": start, "limit": self._page_limit}
                if token:
                    params["nextToken"] = token
                page = self.client.call("FilterLogEvents", logs.filter_log_events, **params)
                for event in page.get("events") or []:
                    self.book.add(self._entry(event, known, by_tunnel))
                token = page.get("nextToken") or None
                self._resume = (start, token) if token else None
                if not token:
                    break
        except ExporterError as exc:
            error = (exc.reason, f"tunnel logs {self.log_group}: {exc}")
        if self._resume is None:
            self.book.settle()
        return self.book.view(error)

    def _entry(self, event: dict[str, Any], known: set[tuple[str, str]], by_tunnel: dict[str, BgpSession]) -> Entry:
        event_id = str(event.get("eventId") or f"{event.get('logStreamName')}/{event.get('timestamp')}")
        at = float(event.get("timestamp") or 0) / 1000.0
        text = str(event.get("message") or "")
        stream = str(event.get("logStreamName") or "")
        try:
            record = json.loads(text)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            # LogOutputFormat `text`: the details line alone; the stream names the tunnel.
            match = classify(AWS_TUNNEL, text) if text.strip() else None
            connection, tunnel = _join(_resource(stream), known)
            if match is None:
                return Entry(event_id, at, "malformed", text)
            return Entry(event_id, at, "classified", text, match.event, connection, tunnel)
        if record.get("type") in ("BGPStatus", "RouteStatus"):
            return self._bgp_entry(event_id, at, record, stream, known, by_tunnel)
        details = record.get("details")
        phase1 = state_name(record.get("ike_phase1_state"))
        phase2 = state_name(record.get("ike_phase2_state"))
        if not isinstance(details, str) and not (phase1 or phase2):
            return Entry(event_id, at, "malformed", text)
        resource = _record_resource(record) or _resource(stream)
        connection, tunnel = _join(resource, known)
        message = details if isinstance(details, str) else ""
        if not message.strip():
            return Entry(event_id, at, "classified", "", "", connection, tunnel, phase1=phase1, phase2=phase2)
        match = classify(AWS_TUNNEL, message)
        if match is None:
            return Entry(event_id, at, "unclassified", message, "", connection, tunnel, phase1=phase1, phase2=phase2)
        return Entry(event_id, at, "classified", message, match.event, connection, tunnel, phase1=phase1, phase2=phase2)

    def _bgp_entry(
        self,
        event_id: str,
        at: float,
        record: dict[str, Any],
        stream: str,
        known: set[tuple[str, str]],
        by_tunnel: dict[str, BgpSession],
    ) -> Entry:
        body = record.get("message")
        details = body.get("details") if isinstance(body, dict) else body
        resource = _resource(str(record.get("resource_id") or "")) or _resource(stream)
        connection, tunnel = _join(resource, known)
        session = by_tunnel.get(tunnel)
        router, peer = (session.router, session.peer) if session else ("", "")
        if not isinstance(details, str) or not details.strip():
            # RouteStatus records carry `details` only on errors; a bare status is still a known record.
            if record.get("type") == "RouteStatus" and isinstance(body, dict):
                return Entry(event_id, at, "classified", "", "", connection, tunnel, router, peer)
            return Entry(event_id, at, "malformed", json.dumps(record)[:200])
        match = classify(AWS_BGP, details)
        if match is None:
            return Entry(event_id, at, "unclassified", details, "", connection, tunnel, router, peer)
        reason = match.reason
        if match.event == "other" and reason and tunnel:
            self._pending[tunnel] = (reason, at)
        if match.event == "bgp_down":
            pending = self._pending.pop(tunnel, None)
            recent = pending is not None and 0 <= at - pending[1] <= PENDING_REASON_SECONDS
            reason = pending[0] if pending is not None and recent else "UNKNOWN"
        return Entry(event_id, at, "classified", details, match.event, connection, tunnel, router, peer, reason)


def _resource(text: str) -> tuple[str, str] | None:
    found = _RESOURCE.search(text)
    return (found["vpn"], found["ip"].strip(".:")) if found else None


def _record_resource(record: dict[str, Any]) -> tuple[str, str] | None:
    connection = next((str(record[k]) for k in _CONNECTION_KEYS if record.get(k)), "")
    outside = next((str(record[k]) for k in _OUTSIDE_IP_KEYS if record.get(k)), "")
    if connection and outside:
        return connection, outside
    if record.get("resource_id"):
        return _resource(str(record["resource_id"]))
    return None


def _join(resource: tuple[str, str] | None, known: set[tuple[str, str]]) -> tuple[str, str]:
    """(connection, tunnel) of a monitored tunnel, or empty: the group may hold other connections' logs."""
    if resource is not None and resource in known:
        return resource
    return "", ""
