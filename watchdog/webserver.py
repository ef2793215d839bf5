"""The metrics and health HTTP endpoint (`/metrics`, `/healthz`), served from a background thread.

Scrapes only render the state already in memory (no I/O toward clouds), so a slow API or probe never
delays a scrape.
"""

from __future__ import annotations

import json
import logging
import math
import ssl
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from watchdog import __version__, statuspage
from watchdog.webconfig import WebConfig

log = logging.getLogger(__name__)

_INDEX = b"""<html><head><title>vpn-watchdog</title></head><body><h1>vpn-watchdog</h1>
<p><a href="/metrics">/metrics</a> &middot; <a href="/healthz">/healthz</a></p></body></html>
"""


def _without_error_texts(body: dict[str, Any]) -> dict[str, Any]:
    exporters = body.get("exporters")
    if not isinstance(exporters, dict):
        return body
    redacted = {
        name: {key: value for key, value in info.items() if key != "last_error"} if isinstance(info, dict) else info
        for name, info in exporters.items()
    }
    return {**body, "exporters": redacted}


class _QuietServer(ThreadingHTTPServer):
    """socketserver prints a traceback to stderr for every client that resets, sends plaintext to the
    TLS port or hangs up mid-handshake. Those are the client's problem: one log line each, at most
    one a second per kind of error (the rest counted in the next line), and a listen backlog that
    does not drop SYNs when a few Prometheus replicas scrape at once."""

    allow_reuse_address = True
    request_queue_size = 128
    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last_logged: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._error_lock = threading.Lock()

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        kind = type(exc).__name__ if exc is not None else "unknown"
        now = time.monotonic()
        with self._error_lock:
            if now - self._last_logged.get(kind, -math.inf) < 1.0:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return
            self._last_logged[kind] = now
            suppressed = self._suppressed.pop(kind, 0)
        more = f" ({suppressed} more since the last such line)" if suppressed else ""
        if isinstance(exc, (ConnectionError, TimeoutError, ssl.SSLEOFError)):
            level = logging.DEBUG  # the client went away: routine
        elif isinstance(exc, ssl.SSLError):
            level = logging.INFO  # a TLS handshake that failed: worth seeing when a scraper is misconfigured
        else:
            level = logging.WARNING
        log.log(level, "http client %s: %s: %s%s", client_address[0], kind, exc, more)


class MetricsServer:
    """A small threaded HTTP server; `health()` returns the JSON body of /healthz."""

    def __init__(
        self,
        host: str,
        port: int,
        render: Callable[[], bytes],
        health: Callable[[], dict[str, Any]],
        web: WebConfig | None = None,
        *,
        status: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.render = render
        self.health = health
        self.status = status
        self.web = web or WebConfig()
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 30  # a stuck client must not hold a thread forever

            def setup(self) -> None:
                super().setup()
                # TLS handshakes happen here, in the request thread, never in the accept loop.
                if hasattr(self.request, "do_handshake"):
                    self.request.do_handshake()

            def do_GET(self) -> None:  # noqa: N802 (stdlib name)
                path = self.path.split("?", 1)[0]
                # /healthz stays open so orchestrator liveness probes work behind basic auth; without
                # credentials it says only up/stale per exporter: error texts name endpoints and accounts.
                authorized = server.web.check_authorization(self.headers.get("Authorization"))
                if path != "/healthz" and not authorized:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="vpn-watchdog"')
                    self.send_header("Content-Length", "13")
                    self.end_headers()
                    self.wfile.write(b"unauthorized\n")
                    return
                if path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, server.render())
                elif path == "/healthz":
                    body = server.health()
                    if not authorized:
                        body = _without_error_texts(body)
                    self._send(
                        200 if body.get("status") == "ok" else 503,
                        "application/json",
                        json.dumps(body, sort_keys=True).encode(),
                    )
                elif path in ("/", "/status") and server.status is not None:
                    page = statuspage.render(server.status(), version=f"vpn-watchdog {__version__}")
                    self._send(200, "text/html; charset=utf-8", page.encode())
                elif path == "/status.json" and server.status is not None:
                    self._send(200, "application/json", json.dumps(server.status(), sort_keys=True).encode())
                elif path == "/":
                    self._send(200, "text/html; charset=utf-8", _INDEX)
                else:
                    self._send(404, "text/plain; charset=utf-8", b"not found\n")

            def _send(self, code: int, content_type: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                log.debug("http %s %s", self.address_string(), format % args)

        self.httpd = _QuietServer((host, port), Handler)
        if self.web.ssl_context is not None:
            self.httpd.socket = self.web.ssl_context.wrap_socket(
                self.httpd.socket, server_side=True, do_handshake_on_connect=False
            )
        self.scheme = "https" if self.web.ssl_context is not None else "http"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="metrics-http", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()
        log.info(
            "serving /metrics and /healthz on %s://%s:%d%s",
            self.scheme,
            *self.address,
            " (basic auth)" if self.web.auth_required else "",
        )

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
