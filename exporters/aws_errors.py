"""Translate boto3/botocore exceptions into `ExporterError` with a stable `reason`.

The reasons are a fixed vocabulary shared with the GCP exporter (they become the `reason` label of
`vpn_watchdog_exporter_errors_total`): throttled, auth, timeout, network, server_error, not_found,
malformed, api_error. Messages name the operation, region and endpoint. This module must never copy
a response body into a message: botocore's own parser errors embed the raw body, which can carry a
VPN pre-shared key.
"""

from __future__ import annotations

from typing import Any

from botocore import exceptions as bex
from botocore.parsers import ResponseParserError

from exporters.client_common import retry_after_header, scrub
from watchdog.errors import ExporterError

__all__ = ["DeadlineExceeded", "reason_for_api_error", "retry_after_seconds", "scrub", "translate"]

THROTTLED_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "EC2ThrottledException",  # botocore's retry table lists it with the throttling codes
    }
)
AUTH_CODES = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "AuthFailure",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "UnauthorizedOperation",
        "AccessDenied",
        "AccessDeniedException",
        "InvalidAccessKeyId",
        "OptInRequired",
    }
)
SERVER_CODES = frozenset({"InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable"})
TIMEOUT_CODES = frozenset({"RequestTimeout", "RequestTimeoutException"})

_CREDENTIAL_ERRORS: tuple[type[Exception], ...] = (
    bex.NoCredentialsError,
    bex.PartialCredentialsError,
    bex.CredentialRetrievalError,
    bex.TokenRetrievalError,
    bex.SSOError,
)


class DeadlineExceeded(Exception):
    """Raised from inside a botocore call (before-send hook) when the poll ran out of time."""


def retry_after_seconds(headers: Any) -> float | None:
    """`Retry-After` (seconds or HTTP date) or AWS's `x-amz-retry-after` (milliseconds), if sent."""
    if not isinstance(headers, dict):
        return None
    seconds = retry_after_header(headers)
    if seconds is not None:
        return seconds
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    millis = lowered.get("x-amz-retry-after")
    if millis is not None and millis.strip().isdigit():
        return int(millis) / 1000.0
    return None


def reason_for_api_error(code: str, status: int | None) -> str:
    """Map an AWS error code and HTTP status to a reason (the code wins over the status)."""
    if code in THROTTLED_CODES or status == 429:
        return "throttled"
    if code in AUTH_CODES or status in (401, 403):
        return "auth"
    if code in TIMEOUT_CODES:
        return "timeout"
    if code.endswith((".NotFound", "NotFound", "NotFoundException")) or status == 404:
        return "not_found"
    if code in SERVER_CODES or (status is not None and status >= 500):
        return "server_error"
    return "api_error"


def translate(exc: BaseException, *, operation: str, where: str) -> ExporterError:
    """One foreign exception -> one ExporterError. `where` is e.g. `region us-east-1 at https://...`.

    The caller raises the result `from` the original, except for parser errors (see module doc).
    """
    if isinstance(exc, ExporterError):
        return exc
    if isinstance(exc, DeadlineExceeded):
        return ExporterError("timeout", f"{operation} ({where}): {exc}")
    if isinstance(exc, bex.ClientError):
        error = exc.response.get("Error", {}) or {}
        meta = exc.response.get("ResponseMetadata", {}) or {}
        code = str(error.get("Code") or "Unknown")
        status = meta.get("HTTPStatusCode")
        reason = reason_for_api_error(code, status if isinstance(status, int) else None)
        detail = scrub(error.get("Message") or "")
        message = f"{operation} ({where}) failed: {code}" + (f" (HTTP {status})" if status else "")
        if detail:
            message += f": {detail}"
        return ExporterError(reason, message, retry_after=retry_after_seconds(meta.get("HTTPHeaders")))
    if isinstance(exc, ResponseParserError):
        return ExporterError("malformed", f"{operation} ({where}): the response could not be parsed")
    if isinstance(exc, (bex.ConnectTimeoutError, bex.ReadTimeoutError)):
        return ExporterError("timeout", f"{operation} ({where}): {type(exc).__name__}: no answer in time")
    if isinstance(exc, _CREDENTIAL_ERRORS):
        return ExporterError("auth", f"{operation} ({where}): no usable AWS credentials ({type(exc).__name__})")
    if isinstance(exc, (bex.ConnectionError, bex.HTTPClientError, OSError)):
        return ExporterError("network", f"{operation} ({where}): cannot reach the endpoint ({type(exc).__name__})")
    if isinstance(exc, bex.ParamValidationError):
        return ExporterError("api_error", f"{operation} ({where}): invalid request: {scrub(str(exc))}")
    return ExporterError("api_error", f"{operation} ({where}): {type(exc).__name__}")
