"""The AWS client layer: one boto3 session per exporter entry, its clients, and the call boundary.

Held by the exporter, the audit's inventory reader and the tunnel-log reader alike. It owns what
every AWS call needs: the retry budget sized from the poll timeout, the deadline checked before
every call and every HTTP attempt (retries included), pagination, error translation to
`ExporterError` (`aws_errors`), the API call count, and redaction: pre-shared keys and the
customer gateway configuration XML are stripped from every response, and botocore's own debug log
of response bodies is withheld when it carries them. boto3 types and exceptions never leave it.

An attempt already in flight when the deadline passes may still finish, so the worst case is the
timeout plus one read timeout (timeout / attempts); a server's Retry-After can stretch botocore's
backoff the same way.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import botocore.loaders
from botocore.config import Config as BotoConfig
from botocore.credentials import SharedCredentialProvider
from botocore.exceptions import BotoCoreError, ClientError, ProfileNotFound
from botocore.parsers import ResponseParserError

from exporters.aws_errors import DeadlineExceeded, translate
from exporters.client_common import PollBudget
from watchdog.errors import ConfigError, ExporterError

log = logging.getLogger(__name__)

_SECRET_KEYS = frozenset({"PreSharedKey", "CustomerGatewayConfiguration"})


def retry_budget(timeout: float) -> tuple[int, float, float]:
    """(total attempts, connect timeout, read timeout) so that one call's retries fit in `timeout`.

    Each attempt gets an equal share of the poll; botocore's standard-mode backoff between them is
    short for non-throttling errors, and the before-send deadline check stops any attempt that
    would start after the poll ran out.
    """
    attempts = 3 if timeout >= 10 else 2 if timeout >= 2 else 1
    read = max(0.2, timeout / attempts)
    return attempts, min(read, 10.0), read


class _SecretRedactingFilter(logging.Filter):
    """botocore logs raw response bodies at DEBUG; EC2 VPN responses carry pre-shared keys, STS
    AssumeRole responses temporary credentials."""

    _MARKERS = (
        "PreSharedKey",
        "preSharedKey",
        "pre_shared_key",
        "customerGatewayConfiguration",
        # STS AssumeRole answers carry the temporary credentials.
        "SecretAccessKey",
        "SessionToken",
        # Requests signed with them carry the session token in a header (and its canonical form).
        "X-Amz-Security-Token",
        "x-amz-security-token",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a broken record is not ours to fix; drop its arguments
            text = str(record.msg)
        if any(marker in text for marker in self._MARKERS):
            record.msg = "(botocore log record withheld: it contains VPN secrets)"
            record.args = None
        return True


_REDACTOR = _SecretRedactingFilter()
_REDACT_LOCK = threading.Lock()


def _install_redactor() -> None:
    # Logger filters only see records created on that very logger, so each body-logging one.
    with _REDACT_LOCK:
        for name in (
            "botocore.parsers",
            "botocore.endpoint",
            "botocore.hooks",
            "botocore.retries.standard",
            "botocore.auth",
            "botocore.credentials",
        ):
            logger = logging.getLogger(name)
            if _REDACTOR not in logger.filters:
                logger.addFilter(_REDACTOR)


def strip_secrets(value: Any) -> Any:
    """A copy of a parsed response without any secret-bearing key, at any depth."""
    if isinstance(value, dict):
        return {k: strip_secrets(v) for k, v in value.items() if k not in _SECRET_KEYS}
    if isinstance(value, list):
        return [strip_secrets(v) for v in value]
    return value


def _file_session(name: str, path: str, profile: str | None, region: str) -> boto3.session.Session:
    """A session with the keys of one section of a shared credentials file, and nothing else of the
    default chain (no environment keys, no instance metadata)."""
    section = profile or "default"
    try:
        with open(path, encoding="utf-8"):
            pass
    except OSError as exc:
        raise ConfigError(f"exporter {name!r}: credentials_file {path}: {exc.strerror}") from None
    found = SharedCredentialProvider(creds_filename=path, profile_name=section).load()
    if found is None:
        raise ConfigError(f"exporter {name!r}: credentials_file {path} has no keys in section [{section}]")
    return boto3.session.Session(
        aws_access_key_id=found.access_key,
        aws_secret_access_key=found.secret_key,
        aws_session_token=found.token,
        region_name=region,
    )


class AwsClient:
    """boto3 clients of one exporter entry (`name`, region, profile, endpoint) behind one boundary.

    Use one budget at a time: `with client.budget(): client.call(...)`. Outside a budget the
    deadline is infinite (calls are still counted and translated).
    """

    def __init__(
        self,
        name: str,
        region: str,
        *,
        profile: str | None,
        endpoint_url: str | None,
        timeout: float,
        credentials_file: str | None = None,
        session: Any = None,
    ) -> None:
        self.name = name
        self.region = region
        self.timeout = float(timeout)
        self._endpoint_url = endpoint_url
        self._attempts, self._connect_timeout, self._read_timeout = retry_budget(self.timeout)
        self._budget: PollBudget | None = None
        self._last_attempt: dict[str, Any] | None = None
        self._clients: dict[str, Any] = {}
        self.calls = 0
        self.pace: Callable[[float], None] | None = None  # an account's shared rate limit (exporters.fanout)
        _install_redactor()
        if session is not None:
            self._session = session  # e.g. an assumed role's (exporters.aws_accounts)
        else:
            self._session = base_session(name, profile, region, credentials_file)
        self.ec2 = self.client("ec2")
        self.where = f"region {region} at {self.ec2.meta.endpoint_url}"

    def client(self, service: str) -> Any:
        """The boto3 client of `service` (built once, with the deadline and attempt hooks)."""
        if service not in self._clients:
            client = self._session.client(
                service,
                endpoint_url=self._endpoint_url,
                config=BotoConfig(
                    region_name=self.region,
                    connect_timeout=self._connect_timeout,
                    read_timeout=self._read_timeout,
                    retries={"mode": "standard", "total_max_attempts": self._attempts},
                    user_agent_extra="vpn-watchdog",
                ),
            )
            event = client.meta.service_model.service_id.hyphenize()
            client.meta.events.register(f"before-send.{event}", self._check_deadline)
            client.meta.events.register(f"needs-retry.{event}", self._note_attempt)
            self._clients[service] = client
        return self._clients[service]

    @contextmanager
    def budget(self, timeout: float | None = None) -> Iterator[PollBudget]:
        """One poll's deadline and call count (`calls` restarts at 0)."""
        budget = PollBudget(self.timeout if timeout is None else timeout, pace=self.pace)
        self._budget, self.calls = budget, 0
        try:
            yield budget
        finally:
            self._budget = None

    def close(self) -> None:
        for client in self._clients.values():
            client.close()

    # -- the boundary -------------------------------------------------------------------------

    def _expired(self) -> bool:
        return self._budget is not None and self._budget.expired()

    def _check_deadline(self, **_: Any) -> None:
        """Runs before every HTTP attempt, retries included."""
        if self._expired():
            raise DeadlineExceeded(f"the poll ran past its {self.timeout:g}s timeout")

    def _note_attempt(self, response: Any = None, **_: Any) -> None:
        """Remembers the last failed attempt, so a deadline hit while backing off says why."""
        # Only error documents are kept: a successful parsed response may carry pre-shared keys.
        if isinstance(response, tuple) and len(response) == 2 and isinstance(response[1], dict):
            if response[1].get("Error"):
                self._last_attempt = {k: response[1].get(k) for k in ("Error", "ResponseMetadata")}
        return None

    def call(self, operation: str, method: Callable[..., dict[str, Any]], **params: Any) -> dict[str, Any]:
        """One API call: counted, bounded by the budget, translated, secrets stripped."""
        if self._expired():
            raise ExporterError(
                "timeout",
                f"poll of {self.name} ran past its {self.timeout:g}s timeout before {operation} ({self.where})",
            )
        self.calls += 1
        if self._budget is not None:
            self._budget.count()
        self._last_attempt = None
        unparseable: ExporterError | None = None
        try:
            response = method(**params)
        except ResponseParserError as exc:
            unparseable = translate(exc, operation=operation, where=self.where)
        except DeadlineExceeded as exc:
            raise self._deadline_error(operation, exc) from exc
        except (ClientError, BotoCoreError, OSError) as exc:
            raise translate(exc, operation=operation, where=self.where) from exc
        if unparseable is not None:
            # Raised outside the handler so neither __cause__ nor __context__ keeps botocore's
            # exception: its message embeds the raw body, which may hold a pre-shared key.
            raise unparseable
        return strip_secrets(response)  # type: ignore[no-any-return]

    def _deadline_error(self, operation: str, exc: DeadlineExceeded) -> ExporterError:
        """Out of time while retrying: a still-throttled API is `throttled`, anything else `timeout`."""
        last = self._last_attempt or {}
        if last.get("Error"):
            previous = ClientError(last, operation)
            error = translate(previous, operation=operation, where=self.where)
            if error.reason == "throttled":
                return ExporterError(
                    "throttled",
                    f"{error} (still throttled when the poll ran out of time)",
                    retry_after=error.retry_after,
                )
        return translate(exc, operation=operation, where=self.where)

    def pages(
        self,
        operation: str,
        method: Callable[..., dict[str, Any]],
        key: str,
        *,
        token: str = "NextToken",
        **params: Any,
    ) -> Iterator[dict[str, Any]]:
        """Every item under `key` of every page, following `token` (`NextToken`, `nextToken`, ...)."""
        for page in self.page_responses(operation, method, token=token, **params):
            yield from page.get(key) or []

    def page_responses(
        self, operation: str, method: Callable[..., dict[str, Any]], *, token: str = "NextToken", **params: Any
    ) -> Iterator[dict[str, Any]]:
        """Each whole page (for callers that read more than the item list, e.g. a truncation flag)."""
        next_token: str | None = None
        while True:
            page = self.call(operation, method, **params, **({token: next_token} if next_token else {}))
            yield page
            next_token = page.get(token)
            if not next_token:
                return


_LOADER_LOCK = threading.Lock()
_LOADER: Any = None


def shared_loader() -> Any:
    """One botocore data loader for every session of the process: the EC2 service model (megabytes
    of JSON) is then parsed once, not once per account and region (60 targets: seconds at start)."""
    global _LOADER
    with _LOADER_LOCK:
        if _LOADER is None:
            _LOADER = botocore.loaders.create_loader()
        return _LOADER


def base_session(name: str, profile: str | None, region: str, credentials_file: str | None = None) -> Any:
    """A boto3 session on the default credential chain (or `profile`), or on `credentials_file` alone."""
    try:
        if credentials_file is not None:
            session = _file_session(name, credentials_file, profile, region)
        else:
            session = boto3.session.Session(profile_name=profile, region_name=region)
    except ProfileNotFound:
        raise ConfigError(f"exporter {name!r}: AWS profile {profile!r} is not in the shared config") from None
    session._session.register_component("data_loader", shared_loader())
    return session


def search_routes(client: AwsClient, table: str, **params: Any) -> Iterator[dict[str, Any]]:
    """SearchTransitGatewayRoutes of one route table, every page.

    Older EC2 models (and servers) have no NextToken here: a page then only says
    `AdditionalRoutesAvailable`. Routes cut off that way are said in the log, never silently lost.
    """
    last: dict[str, Any] = {}
    for page in client.page_responses(
        "SearchTransitGatewayRoutes",
        client.ec2.search_transit_gateway_routes,
        TransitGatewayRouteTableId=table,
        **params,
    ):
        last = page
        yield from page.get("Routes") or []
    if last.get("AdditionalRoutesAvailable") and not last.get("NextToken"):
        log.warning(
            "%s: SearchTransitGatewayRoutes on %s returned %d routes and says more are available, with no"
            " page token to read them: the routes of that table are cut off (narrow its filters or upgrade boto3)",
            client.name,
            table,
            len(last.get("Routes") or []),
        )
