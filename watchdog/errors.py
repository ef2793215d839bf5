"""One exception hierarchy for the whole project.

Foreign exceptions (botocore, google.api_core, OSError, ...) are translated into these at the
adapter boundary with `raise ... from`, so loops and the CLI only ever handle `WatchdogError`.
Messages must never contain secrets (pre-shared keys, credentials).
"""

from __future__ import annotations


class WatchdogError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(WatchdogError):
    """The configuration (file or command line) is invalid; the CLI exits 2."""


class InputError(WatchdogError):
    """An input file (e.g. a capture) cannot be read; the CLI exits 2."""


class ExporterError(WatchdogError):
    """A poll of one exporter failed.

    `reason` is a short, stable, low-cardinality label value for
    `vpn_watchdog_exporter_errors_total{reason}` (throttled, timeout, auth, api_error, ...).
    """

    def __init__(self, reason: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after


class ProbeFailure(WatchdogError):
    """A probe run ended without a usable answer, or could not even be attempted (no such network
    namespace, missing privilege). `reason` is the `probe_failures_total{reason}` label, `detail`
    the short human text; probes turn it into a failed `ProbeResult`, the runner catches the rest."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
