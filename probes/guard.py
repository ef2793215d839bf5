"""The one place where a probe run's exception becomes a failed result: probes never raise.

A `ProbeFailure` carries its own reason; anything else is a bug or an unforeseen OS error, logged once
and reported as reason `error`. No I/O of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from watchdog.errors import ProbeFailure
from watchdog.model import ProbeIdentity, ProbeResult

log = logging.getLogger(__name__)

Failed = Callable[[ProbeIdentity, float, str, str], ProbeResult]


async def guarded(probe: ProbeIdentity, started: float, work: Awaitable[ProbeResult], failed: Failed) -> ProbeResult:
    """`work`'s result, or `failed(probe, started, reason, detail)` when it raises."""
    try:
        return await work
    except ProbeFailure as exc:
        return failed(probe, started, exc.reason, exc.detail)
    except Exception as exc:  # never raise: an unexpected failure is still a result
        log.warning("probe %s: unexpected error: %r", probe.name, exc)
        return failed(probe, started, "error", str(exc) or type(exc).__name__)
