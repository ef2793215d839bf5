"""The cursor and the running tallies of one managed-log source (CloudWatch Logs group, Cloud Logging).

Cloud logs are read by time window: each read starts `overlap` seconds before the newest entry
already read (entries can be ingested late) and skips the entries whose id it has seen, so an
entry counts once however often windows overlap, a read is retried or a poll fails half way.
Entries older than the book (read by the first window, to learn the current IKE states) set
states and the recent list but count no events: they happened before this watchdog watched.
No I/O; one reader thread at a time.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

from exporters.log_patterns import shape
from watchdog.model import IkeState, LogEvent, LogView

log = logging.getLogger(__name__)

OUTCOMES = ("classified", "unclassified", "malformed")
LOOKBACK_SECONDS = 900.0  # the first read: long enough to see each tunnel's latest state entry
MAX_RECENT = 20
MAX_SHAPES = 1000


@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry as a reader parsed it; `event` empty for a state-only entry."""

    id: str
    at: float
    outcome: str
    message: str = ""
    event: str = ""
    connection: str = ""
    tunnel: str = ""
    router: str = ""
    peer: str = ""
    reason: str = ""
    phase1: str = ""
    phase2: str = ""


class LogBook:
    """Cursor plus cumulative counts of one source; `view()` publishes them as a frozen `LogView`."""

    def __init__(
        self,
        name: str,
        *,
        overlap: float,
        lookback: float = LOOKBACK_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.overlap = overlap
        self._clock = clock
        self.started_at = clock()
        self._lookback = lookback
        self.newest: float | None = None
        self._seen: dict[str, float] = {}
        self._entries: Counter[str] = Counter(dict.fromkeys(OUTCOMES, 0))
        self._events: Counter[tuple[str, str]] = Counter()
        self._bgp_downs: Counter[tuple[str, str, str]] = Counter()
        self._states: dict[tuple[str, str], IkeState] = {}
        self._recent: deque[LogEvent] = deque(maxlen=MAX_RECENT)
        self._shapes: set[str] = set()

    def window_start(self) -> float:
        """Where the next read starts (epoch seconds)."""
        if self.newest is None:
            return self.started_at - self._lookback
        return self.newest - self.overlap

    def add(self, entry: Entry) -> bool:
        """Count one entry unless already counted; False for a duplicate."""
        if entry.id in self._seen:
            return False
        self._seen[entry.id] = entry.at
        self.newest = entry.at if self.newest is None else max(self.newest, entry.at)
        self._entries[entry.outcome] += 1
        if entry.outcome == "unclassified":
            self._note_unclassified(entry.message)
        if entry.tunnel and (entry.phase1 or entry.phase2):
            key = (entry.connection, entry.tunnel)
            old = self._states.get(key)
            if old is None or old.at <= entry.at:
                self._states[key] = IkeState(
                    entry.connection,
                    entry.tunnel,
                    entry.phase1 or (old.phase1 if old else ""),
                    entry.phase2 or (old.phase2 if old else ""),
                    entry.at,
                )
        if entry.event:
            self._count_event(entry)
        return True

    def _count_event(self, entry: Entry) -> None:
        counts = entry.at >= self.started_at
        if entry.event == "bgp_down":
            if counts and entry.router and entry.peer:
                self._bgp_downs[(entry.router, entry.peer, entry.reason or "UNKNOWN")] += 1
        elif entry.event != "bgp_up" and entry.tunnel and counts:
            self._events[(entry.tunnel, entry.event)] += 1
        if entry.event != "other":
            self._recent.append(
                LogEvent(
                    entry.at,
                    entry.event,
                    entry.message,
                    entry.connection,
                    entry.tunnel,
                    entry.router,
                    entry.peer,
                    entry.reason,
                )
            )

    def _note_unclassified(self, message: str) -> None:
        pattern = shape(message)
        if pattern not in self._shapes and len(self._shapes) < MAX_SHAPES:
            self._shapes.add(pattern)
            log.debug("%s: unclassified log message (first of its shape): %s", self.name, pattern)

    def settle(self) -> None:
        """Forget ids no later window can return (bounded memory)."""
        start = self.window_start()
        self._seen = {k: at for k, at in self._seen.items() if at >= start}

    def view(self, error: tuple[str, str] | None = None) -> LogView:
        lag = None if error is not None or self.newest is None else max(0.0, self._clock() - self.newest)
        return LogView(
            lag_seconds=lag,
            entries=tuple(sorted(self._entries.items())),
            events=tuple((t, e, n) for (t, e), n in sorted(self._events.items())),
            bgp_downs=tuple((r, p, why, n) for (r, p, why), n in sorted(self._bgp_downs.items())),
            ike_states=tuple(v for _, v in sorted(self._states.items())),
            recent=tuple(sorted(self._recent, key=lambda e: e.at)),
            error=error,
        )
