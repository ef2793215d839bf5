"""What the AWS and GCP client layers share: the poll budget, message redaction, Retry-After.

`PollBudget` is the one budget idea of both clouds: a deadline fixed when a poll (or an audit
read, or a log read) starts, the time left handed to every call, and a count of API calls.
`scrub` shortens a foreign message and withholds it when it may name a secret; it is the only
place a server's text enters one of our messages. No I/O, no SDK imports.
"""

from __future__ import annotations

import email.utils
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from watchdog.errors import ExporterError

# AWS (pre-shared keys, the customer gateway configuration XML) and GCP (shared secrets, keys,
# OAuth tokens) alike: one pattern, so neither cloud's messages can leak what the other's would not.
_SECRETISH = re.compile(
    r"pre_?shared_?key|customer_?gateway_?configuration|shared_?secret|secret|private_?key"
    r"|access_?token|refresh_?token|bearer",
    re.IGNORECASE,
)
MAX_MESSAGE = 300


class PollBudget:
    """The time and call accounting of one poll (thread-safe call count: GCP fans calls out).

    `pace`, when set, is called with the time left before each call is counted: a shared rate
    limit (`RateLimit.wait`) that may sleep, or raise `ExporterError("throttled")`.
    """

    def __init__(
        self,
        timeout: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        pace: Callable[[float], None] | None = None,
    ) -> None:
        self.timeout = timeout
        self._clock = clock
        self._pace = pace
        self.deadline = clock() + timeout
        self.calls = 0
        self._count_lock = threading.Lock()

    def remaining(self) -> float:
        return self.deadline - self._clock()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def count(self) -> None:
        if self._pace is not None:
            self._pace(self.remaining())
        with self._count_lock:
            self.calls += 1


class RateLimit:
    """A token bucket shared by every target of one account or project: at most `rate` calls per
    second on average, bursts of up to `rate` (at least 1). Callers that must wait sleep their
    turn; one whose turn would come after its poll's deadline gives up as `throttled`."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = float(rate)
        self.capacity = max(1.0, self.rate)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.capacity
        self._at = clock()
        self._lock = threading.Lock()

    def wait(self, within: float) -> None:
        """Take one token, sleeping until it is there; `within` is the time the caller has left."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
            self._at = now
            delay = max(0.0, (1.0 - self._tokens) / self.rate)
            if delay > within:
                raise ExporterError(
                    "throttled",
                    f"the budget of {self.rate:g} API calls per second left no call before the poll's deadline",
                )
            self._tokens -= 1.0  # reserved: later callers queue behind this one
        if delay > 0:
            self._sleep(delay)


def scrub(text: str) -> str:
    """A foreign message, on one line and shortened; withheld if it looks like it names a secret."""
    text = " ".join(str(text).split())
    if _SECRETISH.search(text):
        return "(message withheld: it may contain a secret)"
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "..."


def parse_retry_after(value: str, *, now: float | None = None) -> float | None:
    """An HTTP `Retry-After` value (delay seconds or an HTTP date) as seconds from now."""
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def retry_after_header(headers: Mapping[str, Any] | None) -> float | None:
    """`Retry-After` of a header mapping (case-insensitive), if sent and parseable."""
    if not headers:
        return None
    for key, value in headers.items():
        if str(key).lower() == "retry-after" and value is not None:
            return parse_retry_after(str(value))
    return None
