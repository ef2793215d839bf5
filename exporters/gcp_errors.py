"""Translate Google client failures into `ExporterError` and bound every call by the poll deadline.

`PollBudget.call` is the only way the GCP exporter reaches the network: it counts API calls,
hands each call the time left, retries transient failures a bounded number of times, and turns
google.api_core / google.auth / requests / grpc / protobuf exceptions into the shared reason
vocabulary (throttled, auth, timeout, network, server_error, not_found, malformed, api_error).
Messages name the operation and resource; foreign text in them is shortened and withheld when it
looks like it could carry a secret (shared secret, key, token).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc
from google.protobuf import json_format
from google.rpc import error_details_pb2

from exporters.client_common import PollBudget as BasePollBudget
from exporters.client_common import parse_retry_after, scrub
from watchdog.errors import ExporterError

__all__ = ["MAX_ATTEMPTS", "RETRYABLE", "PollBudget", "parse_retry_after", "scrub", "translate"]

T = TypeVar("T")

MAX_ATTEMPTS = 3
RETRYABLE = frozenset({"throttled", "server_error", "network"})
# Compute answers quota exhaustion with 403 and one of these reasons; that is throttling, not auth.
_RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED"})
_CONNECT_FAILURE_HINTS = ("failed to connect", "connection refused", "name resolution", "dns resolution")


class PollBudget(BasePollBudget):
    """The shared budget, plus GCP's bounded retries (the Google clients get `retry=None`).

    Every call gets the time left as its own timeout (so the SDK cannot outlive the poll) and
    retries only while a retry still fits before the deadline.
    """

    def __init__(
        self,
        timeout: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        backoff: float = 0.2,
        pace: Callable[[float], None] | None = None,
    ) -> None:
        super().__init__(timeout, clock=clock, pace=pace)
        self._sleep = sleep
        self._backoff = backoff

    def call(self, operation: str, fn: Callable[[float], T]) -> T:
        """Run `fn(timeout_left)`; translate and (boundedly) retry its failures."""
        attempt = 0
        while True:
            left = self.remaining()
            if left <= 0:
                raise ExporterError("timeout", f"{operation}: poll deadline of {self.timeout:g}s passed")
            self.count()
            try:
                return fn(left)
            except Exception as exc:  # noqa: BLE001 - this is the translation boundary
                error = translate(exc, operation, timeout=left)
                attempt += 1
                if error.reason not in RETRYABLE or attempt >= MAX_ATTEMPTS:
                    raise error from exc
                delay = max(self._backoff * 2 ** (attempt - 1), error.retry_after or 0.0)
                # Retry only if the wait plus a minimal call still fits in the poll.
                if delay + 0.05 >= self.remaining():
                    raise error from exc
                self._sleep(delay)


def translate(exc: BaseException, operation: str, *, timeout: float | None = None) -> ExporterError:
    """Map one foreign exception to an ExporterError naming the operation (never credentials)."""
    if isinstance(exc, ExporterError):
        return exc
    if isinstance(exc, gexc.RetryError) and isinstance(exc.cause, BaseException):
        return translate(exc.cause, operation, timeout=timeout)
    if isinstance(exc, auth_exc.DefaultCredentialsError):
        return ExporterError("auth", f"{operation}: no usable credentials ({_first_line(exc)})")
    if isinstance(exc, auth_exc.RefreshError):
        return ExporterError("auth", f"{operation}: credentials could not be refreshed ({_first_line(exc)})")
    if isinstance(exc, auth_exc.TransportError):
        return ExporterError("network", f"{operation}: credential refresh failed: {_first_line(exc)}")
    if isinstance(exc, gexc.GoogleAPICallError):
        return _from_api_error(exc, operation)
    if isinstance(exc, requests.exceptions.Timeout):
        limit = f" after {timeout:.1f}s" if timeout is not None else ""
        return ExporterError("timeout", f"{operation}: timed out{limit}")
    if isinstance(exc, requests.exceptions.RequestException | ConnectionError):
        return ExporterError("network", f"{operation}: {type(exc).__name__}: {_first_line(exc)}")
    if isinstance(exc, json_format.ParseError | json.JSONDecodeError | UnicodeDecodeError):
        return ExporterError("malformed", f"{operation}: unparseable response: {_first_line(exc)}")
    if isinstance(exc, TimeoutError):
        return ExporterError("timeout", f"{operation}: timed out")
    if isinstance(exc, OSError):
        return ExporterError("network", f"{operation}: {type(exc).__name__}: {_first_line(exc)}")
    return ExporterError("api_error", f"{operation}: {type(exc).__name__}: {_first_line(exc)}")


def _from_api_error(exc: gexc.GoogleAPICallError, operation: str) -> ExporterError:
    code = exc.code if exc.code is not None else (exc.grpc_status_code.name if exc.grpc_status_code else "?")
    text = f"{operation}: {code} {scrub(exc.message or '')}".rstrip()
    retry_after = _retry_after(exc)
    reason: str
    if isinstance(exc, gexc.TooManyRequests):  # includes gRPC ResourceExhausted
        reason = "throttled"
    elif isinstance(exc, gexc.Forbidden) and _rate_limited(exc):
        reason = "throttled"
    elif isinstance(exc, gexc.Unauthorized | gexc.Forbidden):  # incl. Unauthenticated, PermissionDenied
        reason = "auth"
    elif isinstance(exc, gexc.NotFound):
        reason = "not_found"
    elif isinstance(exc, gexc.DeadlineExceeded):
        reason = "timeout"
    elif isinstance(exc, gexc.ServiceUnavailable) and _connect_failure(exc):
        reason = "network"  # gRPC reports a refused connection as UNAVAILABLE
    elif isinstance(exc, gexc.ServerError):
        reason = "server_error"
    else:
        reason = "api_error"
    return ExporterError(reason, text, retry_after=retry_after)


def _rate_limited(exc: gexc.GoogleAPICallError) -> bool:
    reasons = {str(e.get("reason", "")) for e in exc.errors if isinstance(e, dict)}
    if exc.reason:
        reasons.add(exc.reason)
    return bool(reasons & _RATE_LIMIT_REASONS)


def _connect_failure(exc: gexc.GoogleAPICallError) -> bool:
    message = (exc.message or "").lower()
    return any(hint in message for hint in _CONNECT_FAILURE_HINTS)


def _retry_after(exc: gexc.GoogleAPICallError) -> float | None:
    """Retry-After header (seconds or HTTP date) of a REST error, or RetryInfo of a gRPC one."""
    response: Any = exc.response
    headers = getattr(response, "headers", None)
    if headers is not None:
        value = headers.get("Retry-After")
        if value:
            return parse_retry_after(str(value))
    for detail in exc.details or ():
        if isinstance(detail, error_details_pb2.RetryInfo):
            delay = detail.retry_delay
            return float(delay.seconds) + float(delay.nanos) / 1e9
    return None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return scrub(lines[0]) if lines else type(exc).__name__
