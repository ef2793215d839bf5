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

# AWS (pre-shared keys, the customer gateway configuration XML) and GCP (shared secrets, keys,
# OAuth tokens) alike: one pattern, so neither cloud's messages can leak what the other's would not.
_SECRETISH = re.compile(
    r"pre_?shared_?key|customer_?gateway_?configuration|shared_?secret|secret|private_?key"
    r"|access_?token|refresh_?token|bearer",
    re.IGNORECASE,
)
MAX_MESSAGE = 300


class PollBudget:
    """The time and call accounting of one poll (thread-safe call count: GCP fans calls out)."""

    def __init__(self, timeout: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self._clock = clock
        self.deadline = clock() + timeout
        self.calls = 0
        self._count_lock = threading.Lock()

    def remaining(self) -> float:
        return self.deadline - self._clock()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def count(self) -> None:
        with self._count_lock:
            self.calls += 1


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
