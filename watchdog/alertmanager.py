"""Alertmanager v2 client: push the current alert set to every configured Alertmanager.

Like Prometheus' rule manager, each push carries the whole set (firing alerts with `endsAt` a few
resend intervals ahead, resolved ones with their `endsAt` for a retention period), so pushes are
idempotent: a restarted or recovered Alertmanager gets one full push, never a replayed storm. Each
URL (an HA pair = several URLs) has its own schedule: push when the set changed or a resend is due;
after a failure, retry with exponential backoff. HTTP runs in worker threads (stdlib urllib); the
event loop only submits and collects. This module must not decide what alerts exist.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from watchdog.errors import WatchdogError
from watchdog.health import Alert

log = logging.getLogger(__name__)

FIRING_VALIDITY_RESENDS = 4  # firing alerts carry endsAt = now + 4 resend intervals
RESOLVED_RETENTION = 900.0  # resolved alerts are re-sent this long (Prometheus does 15m)
MIN_BACKOFF = 1.0


class AlertmanagerError(WatchdogError):
    """A push to one Alertmanager failed (connection, timeout or non-2xx answer)."""


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alert_json(alert: Alert, generator_url: str, now: float, resend_interval: float) -> dict[str, Any]:
    """One element of the POST /api/v2/alerts body."""
    ends_at = alert.ends_at if alert.ends_at is not None else now + FIRING_VALIDITY_RESENDS * resend_interval
    return {
        "labels": dict(alert.labels),
        "annotations": {"summary": alert.summary, "description": alert.description},
        "startsAt": iso(alert.starts_at),
        "endsAt": iso(ends_at),
        "generatorURL": generator_url,
    }


def post_alerts(url: str, body: Sequence[dict[str, Any]], timeout: float) -> None:
    """Blocking POST of one batch to `{url}/api/v2/alerts`; raises AlertmanagerError."""
    endpoint = url.rstrip("/") + "/api/v2/alerts"
    data = json.dumps(list(body)).encode()
    request = urllib.request.Request(endpoint, data=data, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (configured URL)
            response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read(200).decode(errors="replace").strip()
        raise AlertmanagerError(f"{endpoint}: HTTP {exc.code} {detail}".strip()) from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AlertmanagerError(f"{endpoint}: {reason}") from exc


@dataclass
class _Target:
    url: str
    sent_generation: int = -1
    last_success: float = float("-inf")
    next_attempt: float = float("-inf")
    backoff: float = 0.0
    in_flight: Future[None] | None = None


class AlertmanagerClient:
    """Pushes alert sets to several Alertmanagers from worker threads, one push per URL at a time."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        resend_interval: float,
        timeout: float,
        generator_url: str,
        on_outcome: Callable[[str, str], None] | None = None,
        clock: Callable[[], float] = time.time,
        post: Callable[[str, Sequence[dict[str, Any]], float], None] = post_alerts,
    ) -> None:
        self.resend_interval = resend_interval
        self.timeout = timeout
        self.generator_url = generator_url
        self.on_outcome = on_outcome
        self.clock = clock
        self._post = post
        self.targets = [_Target(url) for url in urls]
        self._executor = ThreadPoolExecutor(max_workers=max(1, len(self.targets)), thread_name_prefix="alertmanager")
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def max_backoff(self) -> float:
        return max(MIN_BACKOFF, self.resend_interval)

    def due(self, target: _Target, generation: int, now: float) -> bool:
        if target.in_flight is not None or now < target.next_attempt:
            return False
        return target.sent_generation != generation or now - target.last_success >= self.resend_interval

    def pump(self, alerts: Sequence[Alert], generation: int) -> list[Future[None]]:
        """Start a push to each due URL; call on the event loop. `generation` changes with the set."""
        now = self.clock()
        started: list[Future[None]] = []
        if not alerts:
            return started  # nothing firing or recently resolved: nothing to say
        body: list[dict[str, Any]] | None = None
        for target in self.targets:
            if not self.due(target, generation, now):
                continue
            if body is None:
                body = [alert_json(a, self.generator_url, now, self.resend_interval) for a in alerts]
            future = self._executor.submit(self._post, target.url, body, self.timeout)
            target.in_flight = future
            future.add_done_callback(self._completion(target, generation))
            started.append(future)
        return started

    def _completion(self, target: _Target, generation: int) -> Callable[[Future[None]], None]:
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None

        def done(future: Future[None]) -> None:  # in the worker thread
            if loop is not None and not loop.is_closed():
                try:
                    loop.call_soon_threadsafe(self._record, target, generation, future)
                    return
                except RuntimeError:  # loop closed meanwhile
                    pass
            self._record(target, generation, future)

        return done

    def _record(self, target: _Target, generation: int, future: Future[None]) -> None:
        now = self.clock()
        target.in_flight = None
        error = future.exception()
        if error is None:
            if target.backoff:
                log.info("alertmanager %s reachable again", target.url)
            target.sent_generation = generation
            target.last_success = now
            target.backoff = 0.0
            target.next_attempt = float("-inf")
            outcome = "success"
        else:
            target.backoff = min(self.max_backoff, max(MIN_BACKOFF, target.backoff * 2))
            target.next_attempt = now + target.backoff
            log.warning("alert push failed, retrying in %.0fs: %s", target.backoff, error)
            outcome = "error"
        if self.on_outcome is not None:
            self.on_outcome(target.url, outcome)

    def shutdown(self) -> None:
        """Stop without waiting (a reload replaced this client)."""
        self._executor.shutdown(wait=False)

    async def close(self, grace: float = 2.0) -> None:
        """Let running pushes finish (bounded), then drop the workers."""
        pending = [asyncio.wrap_future(t.in_flight) for t in self.targets if t.in_flight is not None]
        if pending:
            await asyncio.wait(pending, timeout=grace)
        self._executor.shutdown(wait=False, cancel_futures=True)
