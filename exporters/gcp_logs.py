"""Cloud VPN (`vpn_gateway`) and Cloud Router (`gce_router`) entries, read from Cloud Logging.

Read with the Logging REST API `entries:list` through the exporter's `GcpClient` and poll budget
(google-cloud-logging is not used: its list call takes no per-call timeout, so the poll deadline
could not bound it, and it would be one more SDK for one call). One read asks for the project's
entries of the exporter's region, gateways and routers from the book's window start, oldest
first, following nextPageToken for at most `max_pages` pages (a cut-off read resumes at its
token). Entries join to tunnels by the `tunnel_id` label (tunnel id or name), to routers by
`router_id`, to BGP sessions by the peer name in the message; `log_patterns` classifies them. A
failed read is returned as the view's error; it never fails the poll.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from exporters.gcp_client import GcpClient
from exporters.gcp_errors import PollBudget
from exporters.log_book import Entry, LogBook
from exporters.log_patterns import GCP_ROUTER, GCP_VPN, classify
from watchdog.errors import ExporterError
from watchdog.model import BgpSession, LogView, Tunnel

LOGGING_ENDPOINT = "https://logging.googleapis.com"
OVERLAP_SECONDS = 300.0  # Cloud Logging entries can become visible minutes after their timestamp
PAGE_SIZE = 1000
MAX_PAGES = 10


def rfc3339(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", re.IGNORECASE)


def parse_rfc3339(text: str) -> float:
    """`2026-12-03T12:00:00.123456789Z` -> epoch seconds (nanosecond fractions kept as far as a float can)."""
    match = _TIME.match(text.strip())
    if match is None:
        raise ValueError(f"not an RFC 3339 timestamp: {text[:40]!r}")
    base, fraction, zone = match.groups()
    zone = "+00:00" if zone.upper() == "Z" else zone
    return dt.datetime.fromisoformat(base + zone).timestamp() + (float(fraction) if fraction else 0.0)


def _quoted(values: Iterable[str]) -> str:
    return "(" + " OR ".join(f'"{v}"' for v in values) + ")"


class GcpLogReader:
    """One exporter's reader; `read()` from the exporter's poll (under its lock) only."""

    def __init__(
        self,
        client: GcpClient,
        *,
        clock: Callable[[], float] = time.time,
        page_size: int = PAGE_SIZE,
        max_pages: int = MAX_PAGES,
    ) -> None:
        self.client = client
        config = client.config
        self.project, self.region = config.project, config.region
        self.url = f"{(config.endpoint or LOGGING_ENDPOINT).rstrip('/')}/v2/entries:list"
        self.book = LogBook(f"{config.name} Cloud Logging", overlap=OVERLAP_SECONDS, clock=clock)
        self._page_size = page_size
        self._max_pages = max_pages
        self._resume: tuple[str, str | None] | None = None  # (filter, pageToken) of a cut-off read

    def filter(self, start: float, gateway_ids: Iterable[str], router_ids: Iterable[str]) -> str:
        """The entries of this project's region: its gateways' Cloud VPN logs and its routers' logs."""
        sources = []
        gateways = sorted(set(gateway_ids))
        if gateways:
            sources.append(f'(resource.type="vpn_gateway" AND resource.labels.gateway_id={_quoted(gateways)})')
        routers = sorted(set(router_ids))
        router_term = f" AND resource.labels.router_id={_quoted(routers)}" if routers else ""
        sources.append(f'(resource.type="gce_router"{router_term})')
        return f'timestamp>="{rfc3339(start)}" AND resource.labels.region="{self.region}" AND ({" OR ".join(sources)})'

    def read(
        self,
        budget: PollBudget,
        tunnels: Iterable[Tunnel],
        sessions: Iterable[BgpSession],
        *,
        gateway_ids: Mapping[str, str],
        tunnel_ids: Mapping[str, str],
        router_ids: Mapping[str, str],
    ) -> LogView:
        """`*_ids`: Compute id -> name of the exporter's gateways, tunnels and (when listed) routers."""
        by_name = {t.name: t for t in tunnels}
        peers = {s.peer: s for s in sessions}
        error: tuple[str, str] | None = None
        query, token = self._resume or (self.filter(self.book.window_start(), gateway_ids, router_ids), None)
        try:
            for _ in range(self._max_pages):
                body: dict[str, Any] = {
                    "resourceNames": [f"projects/{self.project}"],
                    "filter": query,
                    "orderBy": "timestamp asc",
                    "pageSize": self._page_size,
                }
                if token:
                    body["pageToken"] = token
                page = self.client.rest(budget, f"logging.entries.list region {self.region}", self.url, body=body)
                if not isinstance(page, dict):
                    raise ExporterError("malformed", f"logging.entries.list region {self.region}: not a JSON object")
                for raw in page.get("entries") or []:
                    self.book.add(self._entry(raw, by_name, peers, gateway_ids, tunnel_ids, router_ids))
                token = str(page.get("nextPageToken") or "") or None
                self._resume = (query, token) if token else None
                if not token:
                    break
        except ExporterError as exc:
            error = (exc.reason, f"Cloud Logging: {exc}")
        if self._resume is None:
            self.book.settle()
        return self.book.view(error)

    def _entry(
        self,
        raw: Any,
        tunnels: Mapping[str, Tunnel],
        peers: Mapping[str, BgpSession],
        gateway_ids: Mapping[str, str],
        tunnel_ids: Mapping[str, str],
        router_ids: Mapping[str, str],
    ) -> Entry:
        if not isinstance(raw, dict):
            return Entry(f"malformed:{hash(repr(raw))}", 0.0, "malformed")
        try:
            at = parse_rfc3339(str(raw.get("timestamp") or raw.get("receiveTimestamp") or ""))
        except ValueError:
            at = None
        entry_id = str(raw.get("insertId") or f"{raw.get('logName')}/{raw.get('timestamp')}")
        resource = _mapping(raw.get("resource"))
        labels = _mapping(resource.get("labels"))
        message = _message(raw)
        if at is None or message is None:
            return Entry(entry_id, at or 0.0, "malformed")
        kind = resource.get("type")
        if kind == "vpn_gateway":
            tunnel_label = str(_mapping(raw.get("labels")).get("tunnel_id") or "")
            tunnel = tunnels.get(tunnel_ids.get(tunnel_label, tunnel_label))
            gateway = gateway_ids.get(str(labels.get("gateway_id") or ""), "")
            if tunnel is not None and gateway and tunnel.connection != gateway:
                tunnel = None  # the label names a tunnel of another gateway
            connection, name = (tunnel.connection, tunnel.name) if tunnel is not None else ("", "")
            match = classify(GCP_VPN, message)
            if match is None:
                return Entry(entry_id, at, "unclassified", message, "", connection, name)
            return Entry(entry_id, at, "classified", message, match.event, connection, name)
        if kind == "gce_router":
            router_label = str(labels.get("router_id") or "")
            router = router_ids.get(router_label, "")
            match = classify(GCP_ROUTER, message)
            if match is None:
                return Entry(entry_id, at, "unclassified", message, router=router)
            peer = match.groups.get("peer", "")
            session = peers.get(peer)
            if session is not None and (not router or session.router == router):
                router = session.router
            if match.event == "bgp_down" and session is None:
                peer = ""  # not one of this exporter's sessions: counted as an entry, not as a down
            tunnel = tunnels.get(session.tunnel or "") if session is not None else None
            return Entry(
                entry_id,
                at,
                "classified",
                message,
                match.event,
                tunnel.connection if tunnel else "",
                tunnel.name if tunnel else "",
                router,
                peer,
                match.reason,
            )
        return Entry(entry_id, at, "malformed", message)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _message(raw: dict[str, Any]) -> str | None:
    """textPayload, or jsonPayload.message (the two payload shapes Cloud VPN / Cloud Router use)."""
    text = raw.get("textPayload")
    if isinstance(text, str):
        return text
    payload = raw.get("jsonPayload")
    if isinstance(payload, dict) and isinstance(payload.get("message"), str):
        return str(payload["message"])
    return None
