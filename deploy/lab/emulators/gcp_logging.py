"""A local Cloud Logging v2 API: `POST /v2/entries:list` and `POST /v2/entries:write` (REST, JSON).

Mount it on the Compute fake's HTTP server (`CloudLogging().mount(fake)` uses FakeGcp's `route()`
hook) so one `endpoint` serves Compute, Cloud DNS and Cloud Logging, as the daemon's config says.
Entries are the documented `LogEntry` shape (logName, resource {type, labels}, timestamp,
receiveTimestamp, severity, insertId, labels, textPayload | jsonPayload). `entries:list` takes
resourceNames, filter, orderBy (`timestamp asc|desc`), pageSize (at most 1000, default 50) and
pageToken; the filter is the subset of the Logging query language a reader sends: comparisons
(`=`, `!=`, `>`, `>=`, `<`, `<=`, `:`) of a field path with a quoted or bare value or a
parenthesised OR-list of values, joined by AND / OR / NOT and parentheses (juxtaposition is AND).
`timestamp` compares as time. Faults: `fail(status, message, times=)` answers the next lists
with a Google JSON error.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

MAX_PAGE = 1000
DEFAULT_PAGE = 50
VPN_LOG = "cloud.googleapis.com%2Fipsec_events"  # Cloud VPN's log (resource vpn_gateway)
ROUTER_LOG = "compute.googleapis.com%2Frouter_events"  # Cloud Router's log (resource gce_router)


class Request(Protocol):
    body: bytes


class Mountable(Protocol):
    def route(self, method: str, path: str, handler: Callable[[Any], tuple[int, Any]]) -> None: ...


def rfc3339(seconds: float) -> str:
    """Epoch seconds -> `2026-12-03T12:00:00.123456Z` (the API's timestamp format)."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> float:
    """RFC 3339 (any fraction, `Z` or offset) -> epoch seconds."""
    value = text.strip().replace("Z", "+00:00").replace("z", "+00:00")
    match = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$", value)
    if match is None:
        return dt.datetime.fromisoformat(value).timestamp()
    base, fraction, zone = match.groups()
    seconds = dt.datetime.fromisoformat(base + (zone or "+00:00")).timestamp()
    return seconds + (float(fraction) if fraction else 0.0)


@dataclass
class _Fault:
    status: int
    message: str
    times: int | None


class CloudLogging:
    """Log entries in memory; thread-safe (the HTTP server answers on several threads)."""

    def __init__(self, project: str = "proj-1") -> None:
        self.project = project
        self.entries: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._counter = 0

    def mount(self, server: Mountable) -> CloudLogging:
        server.route("POST", r"^/v2/entries:list$", self._list)
        server.route("POST", r"^/v2/entries:write$", self._write)
        return self

    # -- writing ------------------------------------------------------------------------------

    def write(self, entries: list[dict[str, Any]], **defaults: Any) -> list[dict[str, Any]]:
        """Store entries as entries:write does (`defaults`: logName, resource, labels of the request)."""
        stored = []
        with self._lock:
            for raw in entries:
                entry = {**{k: v for k, v in defaults.items() if v is not None}, **raw}
                if "labels" in defaults and "labels" in raw:
                    entry["labels"] = {**defaults["labels"], **raw["labels"]}
                now = time.time()
                entry.setdefault("timestamp", rfc3339(now))
                entry["receiveTimestamp"] = rfc3339(now)
                entry.setdefault("severity", "DEFAULT")
                if "insertId" not in entry:
                    self._counter += 1
                    entry["insertId"] = f"{int(now * 1e6):x}{self._counter:06d}"
                self.entries.append(entry)
                stored.append(entry)
        return stored

    def vpn_entry(
        self, gateway_id: str, tunnel_id: str, message: str, *, region: str, at: float | None = None, **extra: Any
    ) -> dict[str, Any]:
        """One Cloud VPN entry (resource vpn_gateway, label tunnel_id, textPayload), stored."""
        entry: dict[str, Any] = {
            "logName": f"projects/{self.project}/logs/{VPN_LOG}",
            "resource": {
                "type": "vpn_gateway",
                "labels": {"project_id": self.project, "region": region, "gateway_id": gateway_id},
            },
            "labels": {"tunnel_id": tunnel_id},
            "severity": "DEBUG",
            "textPayload": message,
            **({"timestamp": rfc3339(at)} if at is not None else {}),
            **extra,
        }
        return self.write([entry])[0]

    def router_entry(
        self, router_id: str, message: str, *, region: str, at: float | None = None, **extra: Any
    ) -> dict[str, Any]:
        """One Cloud Router entry (resource gce_router, textPayload `[Event Type]: [Log Text]`), stored."""
        entry: dict[str, Any] = {
            "logName": f"projects/{self.project}/logs/{ROUTER_LOG}",
            "resource": {
                "type": "gce_router",
                "labels": {"project_id": self.project, "region": region, "router_id": router_id},
            },
            "severity": "NOTICE",
            "textPayload": message,
            **({"timestamp": rfc3339(at)} if at is not None else {}),
            **extra,
        }
        return self.write([entry])[0]

    def fail(self, status: int, message: str = "injected fault", *, times: int | None = None) -> None:
        with self._lock:
            self._faults.append(_Fault(status, message, times))

    # -- the API ------------------------------------------------------------------------------

    def _write(self, request: Request) -> tuple[int, Any]:
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return 400, _error(400, "Invalid JSON payload received.")
        entries = body.get("entries")
        if not isinstance(entries, list) or not entries:
            return 400, _error(400, "entries: at least one entry is required")
        self.write(entries, logName=body.get("logName"), resource=body.get("resource"), labels=body.get("labels"))
        return 200, {}

    def _list(self, request: Request) -> tuple[int, Any]:
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return 400, _error(400, "Invalid JSON payload received.")
        with self._lock:
            self.requests.append(body)
            fault = next((f for f in self._faults if f.times is None or f.times > 0), None)
            if fault is not None and fault.times is not None:
                fault.times -= 1
        if fault is not None:
            return fault.status, _error(fault.status, fault.message)
        names = body.get("resourceNames") or []
        if not names:
            return 400, _error(400, "resourceNames: at least one resource name is required")
        try:
            test = compile_filter(str(body.get("filter") or ""))
        except ValueError as exc:
            return 400, _error(400, f"Invalid filter: {exc}")
        order = str(body.get("orderBy") or "timestamp asc").strip().lower()
        if order not in ("timestamp asc", "timestamp desc"):
            return 400, _error(400, f"orderBy: unsupported {order!r}")
        size = int(body.get("pageSize") or DEFAULT_PAGE)
        if not 0 < size <= MAX_PAGE:
            return 400, _error(400, f"pageSize must be between 1 and {MAX_PAGE}")
        prefixes = tuple(f"{n.rstrip('/')}/logs/" for n in names)
        with self._lock:
            found = [e for e in self.entries if str(e.get("logName", "")).startswith(prefixes) and test(e)]
        found.sort(key=lambda e: (parse_time(e["timestamp"]), e["insertId"]), reverse=order.endswith("desc"))
        offset = int(body.get("pageToken") or 0)
        page = found[offset : offset + size]
        answer: dict[str, Any] = {"entries": page} if page else {}
        if offset + size < len(found):
            answer["nextPageToken"] = str(offset + size)
        return 200, answer


def _error(status: int, message: str) -> dict[str, Any]:
    names = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED"}
    return {"error": {"code": status, "message": message, "status": names.get(status, "INTERNAL")}}


# -- the filter language subset -------------------------------------------------------------------

_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<op>>=|<=|!=|[=<>:()])|(?P<word>[^\s=<>!:()"]+))')
Test = Callable[[dict[str, Any]], bool]


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ValueError(f"cannot parse at {text[pos : pos + 20]!r}")
        pos = match.end()
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "str":
            value = json.loads(value)
        out.append((kind, value))
    return out


def compile_filter(text: str) -> Test:
    """A predicate over one entry; an empty filter matches everything."""
    tokens = _tokens(text)
    if not tokens:
        return lambda entry: True
    parser = _Parser(tokens)
    test = parser.expression()
    if parser.pos != len(tokens):
        raise ValueError(f"unexpected {tokens[parser.pos][1]!r}")
    return test


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise ValueError("unexpected end of filter")
        self.pos += 1
        return token

    def expression(self) -> Test:  # OR binds loosest
        left = self.conjunction()
        while self.peek() == ("word", "OR"):
            self.take()
            right = self.conjunction()
            left = (lambda a, b: lambda e: a(e) or b(e))(left, right)
        return left

    def conjunction(self) -> Test:
        left = self.unary()
        while True:
            token = self.peek()
            if token is None or token == ("op", ")") or token == ("word", "OR"):
                return left
            if token == ("word", "AND"):
                self.take()
            right = self.unary()
            left = (lambda a, b: lambda e: a(e) and b(e))(left, right)

    def unary(self) -> Test:
        if self.peek() == ("word", "NOT"):
            self.take()
            inner = self.unary()
            return lambda e: not inner(e)
        if self.peek() == ("op", "("):
            self.take()
            inner = self.expression()
            if self.take() != ("op", ")"):
                raise ValueError("missing )")
            return inner
        return self.comparison()

    def comparison(self) -> Test:
        kind, field = self.take()
        if kind != "word":
            raise ValueError(f"expected a field, got {field!r}")
        kind, op = self.take()
        if kind != "op" or op in "()":
            raise ValueError(f"expected an operator after {field}, got {op!r}")
        values = self.values()
        return _compare(field, op, values)

    def values(self) -> list[str]:
        if self.peek() == ("op", "("):
            self.take()
            values = [self.take()[1]]
            while self.peek() == ("word", "OR"):
                self.take()
                values.append(self.take()[1])
            if self.take() != ("op", ")"):
                raise ValueError("missing ) after values")
            return values
        kind, value = self.take()
        if kind == "op":
            raise ValueError(f"expected a value, got {value!r}")
        return [value]


def _field(entry: dict[str, Any], path: str) -> Any:
    value: Any = entry
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _compare(field: str, op: str, values: list[str]) -> Test:
    is_time = field in ("timestamp", "receiveTimestamp")

    def one(actual: Any, wanted: str) -> bool:
        if actual is None:
            return op == "!="
        if op == ":":
            return (
                wanted.lower() in json.dumps(actual).lower()
                if not isinstance(actual, str)
                else (wanted.lower() in actual.lower())
            )
        left: Any = str(actual)
        right: Any = wanted
        if is_time:
            left, right = parse_time(left), parse_time(right)
        if op == "=":
            return bool(left == right)
        if op == "!=":
            return bool(left != right)
        if op == ">":
            return bool(left > right)
        if op == ">=":
            return bool(left >= right)
        if op == "<":
            return bool(left < right)
        return bool(left <= right)

    return lambda entry: any(one(_field(entry, field), v) for v in values)
