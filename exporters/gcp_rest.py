"""The Compute REST reads of the GCP exporter's poll: pooled keep-alive HTTP/1.1 and `json.loads`.

Why not the compute_v1 client here: its REST transport parses every response into protobuf through
`json_format` (parsing 250 router statuses cost 28-48x `json.loads`), each call costs milliseconds
of requests/google-auth machinery, and importing it costs ~94 MB. A poll reads a few fields of
documented JSON, so it reads that JSON itself (the field names are checked against compute_v1's
message types in the tests). The audit's reads keep the client (`gcp_client.GcpClient.compute`).

What it keeps from the client: the same credentials (service accounts sign their own JWT with the
Compute audience, as the client's transport does; others refresh through google-auth as needed,
and once more after a 401), the same endpoint rules (`endpoint` = `ClientOptions.api_endpoint`),
proxies and CA bundle from the environment as `requests` reads them, and failures as the
`google.api_core` exceptions the client raises, so `gcp_errors.translate` maps them unchanged.
It must not log or return the Authorization header.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

from exporters.gcp_errors import PollBudget

DEFAULT_HOST = "compute.googleapis.com"
API_PATH = "/compute/v1/"
MAX_IDLE = 32  # idle keep-alive connections kept (the exporter fans out over 32 threads)
USER_AGENT = "vpn-watchdog"


class _Answer:
    """What `google.api_core.exceptions.format_http_response_error` reads of a response."""

    def __init__(self, status: int, headers: http.client.HTTPMessage) -> None:
        self.status_code = status
        self.headers = headers


class ComputeRest:
    """GETs of Compute v1 resources as parsed JSON; thread-safe, connections pooled and reused.

    `get("projects/p/regions/r/vpnTunnels", {"pageToken": t}, timeout=2.0)`. A stale pooled
    connection (the server closed it while idle) is retried once on a fresh one.
    """

    def __init__(self, endpoint: str | None, credentials: Any) -> None:
        target = (endpoint or f"https://{DEFAULT_HOST}").rstrip("/")
        if "://" not in target:
            target = f"https://{target}"  # an api_endpoint without a scheme is a host for HTTPS
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"endpoint must be http(s)://host[:port], not {endpoint!r}")
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._prefix = parts.path.rstrip("/") + API_PATH
        self._credentials = _prepared(credentials)
        self._auth_lock = threading.Lock()
        self._auth_request: Any = None
        self._pool: list[http.client.HTTPConnection] = []
        self._pool_lock = threading.Lock()
        self._proxy = _proxy_for(self._scheme, self._host)
        self._tls: ssl.SSLContext | None = _tls_context() if self._scheme == "https" else None

    def get(self, path: str, params: dict[str, str] | None = None, *, timeout: float) -> Any:
        """The parsed JSON of `GET {endpoint}/compute/v1/{path}`; HTTP errors raise GoogleAPICallError."""
        target = self._prefix + quote(path) + (f"?{urlencode(params)}" if params else "")
        url = self._origin + target
        status, headers, body = self._exchange(target, url, timeout, self._headers(url))
        if status == 401 and self._refreshable():
            self._refresh()
            status, headers, body = self._exchange(target, url, timeout, self._headers(url))
        if status >= 400:
            raise _api_error(status, headers, body, url)
        return json.loads(body)

    def list_all(self, budget: PollBudget, operation: str, path: str) -> list[Any]:
        """Every item of a list, following nextPageToken; each page is one counted call."""
        items: list[Any] = []
        token = ""
        while True:

            def fetch(left: float, token: str = token) -> Any:
                return self.get(path, {"pageToken": token} if token else None, timeout=left)

            page = budget.call(operation, fetch)
            if not isinstance(page, dict):
                raise ValueError(f"{operation}: a page is {type(page).__name__}, not an object")
            page_items = page.get("items", [])
            if not isinstance(page_items, list):
                raise ValueError(f"{operation}: items is {type(page_items).__name__}, not a list")
            items.extend(page_items)
            token = page.get("nextPageToken") or ""
            if not token:
                return items

    def close(self) -> None:
        with self._pool_lock:
            idle, self._pool = self._pool, []
        for connection in idle:
            connection.close()

    # -- HTTP --------------------------------------------------------------------------------------
    def _exchange(
        self, target: str, url: str, timeout: float, headers: dict[str, str]
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        for attempt in (0, 1):
            with self._connection(timeout, fresh=attempt > 0) as (connection, reused):
                try:
                    # Through a plain HTTP proxy the request line carries the absolute URL.
                    connection.request("GET", url if self._forward_proxy() else target, headers=headers)
                    response = connection.getresponse()
                    body = response.read()
                except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                    if reused and attempt == 0:
                        connection.close()  # the server closed it while idle: once more on a fresh one
                        continue
                    raise
                except http.client.HTTPException as exc:  # a broken response is a network failure
                    raise ConnectionError(f"bad HTTP response: {type(exc).__name__}") from exc
                if response.will_close:
                    connection.close()
                return response.status, response.headers, body
        raise AssertionError("unreachable")

    @contextmanager
    def _connection(self, timeout: float, *, fresh: bool) -> Iterator[tuple[http.client.HTTPConnection, bool]]:
        """A pooled connection (a new one if `fresh` or none is idle) with `timeout`; back to the pool
        only if the exchange ended well."""
        connection = None
        if not fresh:
            with self._pool_lock:
                connection = self._pool.pop() if self._pool else None
        reused = connection is not None
        if connection is None:
            connection = self._new_connection(timeout)
        connection.timeout = timeout
        if connection.sock is not None:
            connection.sock.settimeout(timeout)
        try:
            yield connection, reused
        except BaseException:
            connection.close()
            raise
        if connection.sock is None:
            return  # closed (the server asked for it)
        with self._pool_lock:
            if len(self._pool) < MAX_IDLE:
                self._pool.append(connection)
                return
        connection.close()

    def _new_connection(self, timeout: float) -> http.client.HTTPConnection:
        if self._proxy is None:
            if self._tls is not None:
                return http.client.HTTPSConnection(self._host, self._port, timeout=timeout, context=self._tls)
            return http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        proxy_host, proxy_port, proxy_auth = self._proxy
        if self._tls is None:
            return http.client.HTTPConnection(proxy_host, proxy_port, timeout=timeout)
        connection = http.client.HTTPSConnection(proxy_host, proxy_port, timeout=timeout, context=self._tls)
        connection.set_tunnel(self._host, self._port, headers=proxy_auth)
        return connection

    def _forward_proxy(self) -> bool:
        return self._proxy is not None and self._tls is None

    # -- credentials -------------------------------------------------------------------------------
    def _headers(self, url: str) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if self._forward_proxy():
            assert self._proxy is not None
            headers.update(self._proxy[2])
        with self._auth_lock:  # google-auth credentials are not thread-safe while refreshing
            self._credentials.before_request(self._transport(), "GET", url, headers)
        return headers

    def _refreshable(self) -> bool:
        from google.auth.credentials import AnonymousCredentials

        return not isinstance(self._credentials, AnonymousCredentials)

    def _refresh(self) -> None:
        with self._auth_lock:
            self._credentials.refresh(self._transport())

    def _transport(self) -> Any:
        """google-auth's own HTTP transport, for token refreshes (not for the API calls)."""
        if self._auth_request is None:
            from google.auth.transport.requests import Request

            self._auth_request = Request()
        return self._auth_request


def _prepared(credentials: Any) -> Any:
    """A service account signs its own JWT for the Compute audience, as the client's transport does
    (`always_use_jwt_access` and `AuthorizedSession(default_host=...)`): no token request."""
    from google.oauth2 import service_account

    if isinstance(credentials, service_account.Credentials):
        credentials = credentials.with_always_use_jwt_access(True)
        credentials._create_self_signed_jwt(f"https://{DEFAULT_HOST}/")  # noqa: SLF001 - as AuthorizedSession
    return credentials


def _api_error(status: int, headers: http.client.HTTPMessage, body: bytes, url: str) -> Exception:
    """The google.api_core exception the client raises for this HTTP error (message, errors, details)."""
    from google.api_core import exceptions as gexc

    text = body.decode("utf-8", "replace")
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    if not isinstance(payload, dict) or not isinstance(payload.get("error"), dict):
        payload = {"error": {"message": text or "unknown error"}}
    error: Exception = gexc.format_http_response_error(_Answer(status, headers), "GET", url, payload)
    return error


def _proxy_for(scheme: str, host: str) -> tuple[str, int, dict[str, str]] | None:
    """(host, port, Proxy-Authorization header) of the environment's proxy for this URL, as requests
    reads it (`https_proxy`/`http_proxy`, `no_proxy`); None: connect directly."""
    proxy = urllib.request.getproxies().get(scheme)
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if not parts.hostname:
        return None
    auth: dict[str, str] = {}
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        auth["Proxy-Authorization"] = "Basic " + base64.b64encode(pair).decode()
    return parts.hostname, parts.port or 80, auth


def _tls_context() -> ssl.SSLContext:
    """Verify with the CA bundle requests would use (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, certifi)."""
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if not bundle:
        try:
            import certifi

            bundle = certifi.where()
        except ImportError:
            bundle = None
    return ssl.create_default_context(cafile=bundle)
