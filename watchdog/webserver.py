"""The daemon's HTTP endpoint: /metrics, the status page, health, readiness and the lifecycle reload.

HTTP/1.1 with keep-alive, `HEAD`, gzip when asked, OpenMetrics when the `Accept` header prefers it;
served by the standard library's threaded HTTP server (one thread per connection, so a slow client
never delays another scrape). Scrapes only read what is already in memory: the large snapshot part of
the page comes pre-rendered and its gzip is cached until a snapshot changes (`PageRenderer` returns
the same bytes object until then), so a scrape compresses only the small collector part.

TLS handshakes happen in the connection's thread with the web config current at that moment
(`WebConfigSource`); a failed handshake or a malformed request is one log line and, for TLS, one count
in `vpn_watchdog_web_tls_handshake_failures_total`, never a traceback.
"""

from __future__ import annotations

import errno
import gzip
import json
import logging
import math
import socket
import socketserver
import ssl
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as CONTENT_TYPE_OPENMETRICS

from watchdog import __version__, statuspage
from watchdog.webconfig import WebConfig, WebConfigSource

log = logging.getLogger(__name__)

LISTEN_BACKLOG = 128
IDLE_TIMEOUT_SECONDS = 60.0  # a keep-alive connection with no request for this long is closed
HANDSHAKE_TIMEOUT_SECONDS = 10.0
_GZIP_MIN_BYTES = 1024

_INDEX = f"""<html><head><title>vpn-watchdog</title></head><body><h1>vpn-watchdog {__version__}</h1>
<p><a href="/metrics">/metrics</a> &middot; <a href="/status">/status</a> &middot;
<a href="/-/healthy">/-/healthy</a> &middot; <a href="/-/ready">/-/ready</a> &middot;
<a href="/healthz">/healthz</a></p></body></html>
""".encode()

# Orchestrator probes carry no credentials; these say nothing about the VPN, only about the process.
_OPEN_PATHS = frozenset({"/healthz", "/-/healthy", "/-/ready"})


class NotReady(Exception):
    """Raised by an endpoint callable that cannot answer yet (the daemon is starting): a 503."""


@dataclass
class Endpoints:
    """What the server serves, as callables into the daemon (each cheap and thread-safe)."""

    metrics: Callable[[bool], tuple[bytes, bytes]]  # openmetrics? -> (cached snapshot part, the rest)
    health: Callable[[], dict[str, Any]]  # /healthz body
    ready: Callable[[], tuple[bool, str]] = lambda: (True, "")
    status: Callable[[], dict[str, Any]] | None = None  # status page and /status.json
    reload: Callable[[], str | None] | None = None  # None: lifecycle disabled; an error or None; NotReady
    on_tls_failure: Callable[[Counter[str]], None] | None = None  # TLS failures by reason so far


def _without_error_texts(body: dict[str, Any]) -> dict[str, Any]:
    exporters = body.get("exporters")
    if not isinstance(exporters, dict):
        return body
    redacted = {
        name: {key: value for key, value in info.items() if key != "last_error"} if isinstance(info, dict) else info
        for name, info in exporters.items()
    }
    return {**body, "exporters": redacted}


def wants_openmetrics(accept: str | None) -> bool:
    """True when the Accept header prefers OpenMetrics text (by q-value, then by order) over the text
    format; version 1.0.0 or 0.0.1 (both answered as 1.0.0), never an unknown major version."""
    best_om, best_text = -1.0, -1.0
    for position, item in enumerate((accept or "").split(",")):
        parts = [p.strip() for p in item.split(";")]
        media, params = parts[0].lower(), dict(p.partition("=")[::2] for p in parts[1:] if "=" in p)
        try:
            q = float(params.get("q", "1"))
        except ValueError:
            q = 0.0
        rank = q - position * 1e-6  # equal q: the earlier one wins
        if media == "application/openmetrics-text" and params.get("version", "1.0.0") in ("1.0.0", "0.0.1"):
            best_om = max(best_om, rank) if q > 0 else best_om
        elif media in ("text/plain", "*/*", "text/*") and q > 0:
            best_text = max(best_text, rank)
    return best_om > best_text


def accepts_gzip(header: str | None) -> bool:
    for item in (header or "").split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            q = params.strip().removeprefix("q=") if params.strip().startswith("q=") else "1"
            try:
                return float(q) > 0
            except ValueError:
                return False
    return False


class _GzipCache:
    """gzip of `cached + rest` where `cached` repeats between scrapes: the compressor's state after
    `cached` is kept (sync-flushed), and each scrape continues a copy of it with `rest`. One valid
    gzip member, byte-for-byte what a fresh compression of the same page would decompress to."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: bytes | None = None
        self._head = b""
        self._state: Any = None

    def compress(self, cached: bytes, rest: bytes) -> tuple[bytes, bytes]:
        with self._lock:  # concurrent scrapes after a change wait for one compression, not eight
            if self._key is not cached:
                compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
                self._head = compressor.compress(cached) + compressor.flush(zlib.Z_SYNC_FLUSH)
                self._key, self._state = cached, compressor
            head, compressor = self._head, self._state.copy()
        return head, compressor.compress(rest) + compressor.flush()


class _LogLimiter:
    """At most one line a second per kind of client error (a port scanner must not flood the log);
    the next line of that kind says how many were left out. The metric still counts every one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def admit(self, kind: str) -> int | None:
        """None: skip this line; else the number of lines of this kind left out since the last one."""
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(kind, -math.inf) < 1.0:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return None
            self._last[kind] = now
            return self._suppressed.pop(kind, 0)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for kept-alive connections to go idle
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], family: int) -> None:
        self.address_family = family
        self.limiter = _LogLimiter()
        super().__init__(address, handler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6 and self.server_address[0] == "::":
            # `[::]:PORT` and `:PORT` take IPv4 too (dual stack), like Go's net.Listen("tcp", ":PORT").
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        socketserver.TCPServer.server_bind(self)  # not HTTPServer's: it resolves its own name (DNS)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver would print a traceback to stderr: one line in the configured format instead.
        exc = sys.exc_info()[1]
        kind = type(exc).__name__ if exc is not None else "unknown"
        skipped = self.limiter.admit(kind)
        if skipped is None:
            return
        fields: dict[str, Any] = {"remote": _remote(client_address), "err": f"{kind}: {exc}"}
        if skipped:
            fields["suppressed"] = skipped
        client_left = isinstance(exc, _CLIENT_LEFT)
        log.log(logging.DEBUG if client_left else logging.WARNING, "http connection failed", extra={"fields": fields})


# What a write to a client that has gone raises: not a handler fault, so no traceback and no 500.
_CLIENT_LEFT = (ConnectionError, TimeoutError, ssl.SSLEOFError, ssl.SSLZeroReturnError)


def _remote(address: Any) -> str:
    try:
        host, port = address[:2]
    except (TypeError, ValueError):
        return str(address)
    host = str(host).removeprefix("::ffff:")  # an IPv4 client of the dual-stack socket
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _bind_family(host: str) -> tuple[str, int]:
    """(address, family) for a listen host: "" and "::" mean every address, IPv6 included when the
    machine has IPv6 (else every IPv4 address); "0.0.0.0" and IPv4 literals stay IPv4."""
    if host in ("", "::"):
        if socket.has_ipv6:
            try:
                with socket.socket(socket.AF_INET6, socket.SOCK_STREAM):
                    return "::", socket.AF_INET6
            except OSError:
                pass
        return "0.0.0.0", socket.AF_INET
    return host, socket.AF_INET6 if ":" in host else socket.AF_INET


class MetricsServer:
    def __init__(self, host: str, port: int, endpoints: Endpoints, web: WebConfigSource | None = None) -> None:
        self.endpoints = endpoints
        self.web = web or WebConfigSource(None)
        self._gzip = {False: _GzipCache(), True: _GzipCache()}
        self._tls_lock = threading.Lock()
        self.tls_failures: Counter[str] = Counter()
        handler = _handler_class(self)
        address, family = _bind_family(host)
        self.httpd = _Server((address, port), handler, family)
        self.scheme = "https" if self.web.current().ssl_context is not None else "http"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="metrics-http", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()
        host, port = self.address
        log.info(
            "serving /metrics and /healthz on %s://%s:%d%s",
            self.scheme,
            f"[{host}]" if ":" in host else host,
            port,
            " (basic auth)" if self.web.current().auth_required else "",
        )

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def metrics_body(self, openmetrics: bool, gzipped: bool) -> tuple[bytes, bytes]:
        cached, rest = self.endpoints.metrics(openmetrics)
        return self._gzip[openmetrics].compress(cached, rest) if gzipped else (cached, rest)

    def count_tls_failure(self, reason: str) -> None:
        with self._tls_lock:
            self.tls_failures[reason] += 1
            if self.endpoints.on_tls_failure is not None:
                self.endpoints.on_tls_failure(Counter(self.tls_failures))  # a fresh view each time


def _tls_reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timeout"
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).lower()
    if isinstance(exc, ssl.SSLEOFError | ConnectionResetError | BrokenPipeError) or (
        isinstance(exc, OSError) and exc.errno in (errno.ECONNRESET, errno.EPIPE)
    ):
        return "eof"
    return "other"


def _answer_plain_http(tls: ssl.SSLSocket) -> None:
    """What Go's server answers a plain HTTP request on a TLS port, written past the TLS layer (the
    handshake never happened), then a graceful close so the client reads it instead of a reset."""
    raw = socket.socket.send  # the socket's own send, not SSLSocket's
    try:
        raw(tls, b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
        socket.socket.shutdown(tls, socket.SHUT_WR)
        tls.settimeout(0.5)
        while socket.socket.recv(tls, 4096):
            pass
    except OSError:
        pass


def _handler_class(server: MetricsServer) -> type[BaseHTTPRequestHandler]:
    endpoints = server.endpoints

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        default_request_version = "HTTP/1.0"  # a garbled request line still gets a status line back
        error_content_type = "text/plain; charset=utf-8"
        error_message_format = "%(code)d %(message)s\n"
        server_version = f"vpn-watchdog/{__version__}"

        def version_string(self) -> str:
            return self.server_version

        timeout = IDLE_TIMEOUT_SECONDS
        web: WebConfig

        def setup(self) -> None:
            # Headers, the cached page and its tail are separate writes: without NODELAY, Nagle holds
            # the last small one until the client's delayed ACK (40 ms per scrape).
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.web = server.web.current()
            self.broken = False
            context = self.web.ssl_context
            if context is not None:
                self.request.settimeout(HANDSHAKE_TIMEOUT_SECONDS)
                tls = context.wrap_socket(self.request, server_side=True, do_handshake_on_connect=False)
                self.request = tls
                try:
                    tls.do_handshake()
                except (OSError, ValueError) as exc:
                    reason = _tls_reason(exc)
                    self._tls_failed(reason, exc)
                    if reason == "http_request":
                        _answer_plain_http(tls)
                else:
                    if not self.web.client_allowed(tls.getpeercert()):
                        self._tls_failed("client_san_not_allowed", None)
                    tls.settimeout(self.timeout)
            super().setup()

        def _tls_failed(self, reason: str, exc: BaseException | None) -> None:
            self.broken = True
            server.count_tls_failure(reason)
            skipped = server.httpd.limiter.admit(f"tls:{reason}")
            if skipped is None:
                return
            fields: dict[str, Any] = {
                "remote": _remote(self.client_address),
                "reason": reason,
                "err": f"{type(exc).__name__}: {exc}" if exc is not None else reason,
            }
            if skipped:
                fields["suppressed"] = skipped
            log.warning("TLS handshake failed", extra={"fields": fields})

        def handle(self) -> None:
            if not self.broken:
                super().handle()

        def do_GET(self) -> None:  # noqa: N802 (stdlib name)
            self._route("GET")

        def do_HEAD(self) -> None:  # noqa: N802
            self._route("HEAD")

        def do_POST(self) -> None:  # noqa: N802
            self._route("POST")

        def do_PUT(self) -> None:  # noqa: N802
            self._route("PUT")

        def _route(self, method: str) -> None:
            try:
                self._dispatch(method)
            except _CLIENT_LEFT:
                raise  # the client left mid-response (over TLS an SSLEOFError): the server logs it at debug
            except Exception as exc:
                log.error(
                    "http handler failed",
                    exc_info=True,
                    extra={"fields": {"remote": _remote(self.client_address), "request": self.requestline}},
                )
                self.close_connection = True
                try:
                    self.send_error(500, f"internal error: {type(exc).__name__}")
                except OSError:
                    pass

        def _dispatch(self, method: str) -> None:
            # Each request sees the web config current now: a changed password applies on a kept-alive
            # connection too (the TLS context of a connection is the one it was accepted with).
            web = server.web.current()
            path = self.path.split("?", 1)[0]
            body_read = self._drain_body()
            if not body_read:
                return
            authorized = web.check_authorization(self.headers.get("Authorization"))
            if path not in _OPEN_PATHS and not authorized:
                self._send(
                    401,
                    "text/plain; charset=utf-8",
                    b"Unauthorized\n",
                    web,
                    method,
                    extra=(("WWW-Authenticate", 'Basic realm="vpn-watchdog"'),),
                )
                return
            if path == "/-/reload":
                self._reload(method, web)
                return
            if method not in ("GET", "HEAD"):
                self._send(
                    405,
                    "text/plain; charset=utf-8",
                    b"Method Not Allowed\n",
                    web,
                    method,
                    extra=(("Allow", "GET, HEAD"),),
                )
                return
            if path == "/metrics":
                self._metrics(method, web)
            elif path == "/-/healthy":
                self._send(200, "text/plain; charset=utf-8", b"vpn-watchdog is Healthy.\n", web, method)
            elif path == "/-/ready":
                ready, why = endpoints.ready()
                text = "vpn-watchdog is Ready.\n" if ready else f"vpn-watchdog is not ready: {why}\n"
                self._send(200 if ready else 503, "text/plain; charset=utf-8", text.encode(), web, method)
            elif path == "/healthz":
                body = endpoints.health()
                if not authorized:  # open for orchestrators, but error texts name endpoints and accounts
                    body = _without_error_texts(body)
                code = 200 if body.get("status") == "ok" else 503
                self._send(code, "application/json", json.dumps(body, sort_keys=True).encode(), web, method)
            elif path in ("/", "/status") and endpoints.status is not None:
                page = statuspage.render(endpoints.status(), version=f"vpn-watchdog {__version__}")
                self._send(200, "text/html; charset=utf-8", page.encode(), web, method)
            elif path == "/status.json" and endpoints.status is not None:
                report = json.dumps(endpoints.status(), sort_keys=True).encode()
                self._send(200, "application/json", report, web, method)
            elif path == "/":
                self._send(200, "text/html; charset=utf-8", _INDEX, web, method)
            else:
                self._send(404, "text/plain; charset=utf-8", b"Not Found\n", web, method)

        def _drain_body(self) -> bool:
            """Read (and drop) a request body so the next request on the connection starts cleanly."""
            length = self.headers.get("Content-Length")
            if not length:
                return True
            try:
                n = int(length)
            except ValueError:
                n = -1
            if not 0 <= n <= 65536:
                self.send_error(413 if n > 0 else 400, "request body not accepted")
                return False
            self.rfile.read(n)
            return True

        def _reload(self, method: str, web: WebConfig) -> None:
            if method not in ("POST", "PUT"):
                self._send(
                    405,
                    "text/plain; charset=utf-8",
                    b"Only POST or PUT requests allowed\n",
                    web,
                    method,
                    extra=(("Allow", "POST, PUT"),),
                )
            elif endpoints.reload is None:
                self._send(403, "text/plain; charset=utf-8", b"Lifecycle API is not enabled.\n", web, method)
            else:
                try:
                    error = endpoints.reload()
                except NotReady as exc:  # retry later: nothing was read or refused
                    self._send(503, "text/plain; charset=utf-8", f"{exc}\n".encode(), web, method)
                    return
                if error is None:
                    self._send(200, "text/plain; charset=utf-8", b"configuration reloaded\n", web, method)
                else:
                    body = f"failed to reload config: {error}\n".encode()
                    self._send(400, "text/plain; charset=utf-8", body, web, method)

        def _metrics(self, method: str, web: WebConfig) -> None:
            openmetrics = wants_openmetrics(self.headers.get("Accept"))
            gzipped = accepts_gzip(self.headers.get("Accept-Encoding"))
            head, tail = server.metrics_body(openmetrics, gzipped)
            content_type = CONTENT_TYPE_OPENMETRICS if openmetrics else CONTENT_TYPE_PLAIN_0_0_4
            self._start(200, content_type, len(head) + len(tail), web, gzipped=gzipped)
            if method != "HEAD":
                # Two writes, no join: the cached part is megabytes and stays shared.
                self.wfile.write(head)
                self.wfile.write(tail)

        def _send(
            self,
            code: int,
            content_type: str,
            body: bytes,
            web: WebConfig,
            method: str,
            extra: tuple[tuple[str, str], ...] = (),
        ) -> None:
            gzipped = len(body) >= _GZIP_MIN_BYTES and accepts_gzip(self.headers.get("Accept-Encoding"))
            if gzipped:
                body = gzip.compress(body, 6, mtime=0)
            self._start(code, content_type, len(body), web, gzipped=gzipped, extra=extra)
            if method != "HEAD":
                self.wfile.write(body)

        def _start(
            self,
            code: int,
            content_type: str,
            length: int,
            web: WebConfig,
            *,
            gzipped: bool,
            extra: tuple[tuple[str, str], ...] = (),
        ) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(length))
            self.send_header("Vary", "Accept-Encoding")
            if gzipped:
                self.send_header("Content-Encoding", "gzip")
            for name, value in (*web.headers, *extra):
                self.send_header(name, value)
            self.end_headers()

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            log.debug(
                "http request",
                extra={"fields": {"remote": _remote(self.client_address), "request": self.requestline, "code": code}},
            )

        def log_error(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib name)
            # Malformed requests: one line each, in the configured format. An idle keep-alive
            # connection timing out is normal and only debug.
            idle = format.startswith("Request timed out")
            log.log(
                logging.DEBUG if idle else logging.WARNING,
                "http request error",
                extra={
                    "fields": {
                        "remote": _remote(self.client_address),
                        "request": getattr(self, "requestline", ""),
                        "err": format % args,
                    }
                },
            )

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.debug("http %s", format % args, extra={"fields": {"remote": _remote(self.client_address)}})

    return Handler
