"""One configured exporter, many targets: one child poll per (account|project, region), one view.

`FanoutExporter` polls its targets concurrently, each account's (or project's) targets within that
account's budget (`concurrency` at once, `calls_per_second` shared through a `RateLimit`), and
merges their snapshots into one `Snapshot` whose objects carry their target's `Scope` (the
`account`/`project` and `region` labels). A target that fails keeps its last good part (its objects
keep their last known values, never zero) and is marked down in `Snapshot.targets`; the others are
untouched. Only when every target failed does the poll fail. The cloud modules build the targets
(`exporters.aws_accounts`, `exporters.gcp_projects`); this module knows no SDK.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Protocol

from exporters.client_common import RateLimit
from watchdog.config import TargetBudget
from watchdog.errors import ExporterError
from watchdog.model import LogEvent, LogView, Scope, Snapshot, TargetStatus

log = logging.getLogger(__name__)

MAX_WORKERS = 32
RECENT_EVENTS = 50


class Target(Protocol):
    """One (account|project, region) poll. `scope` may change once (an account id learnt at the
    first poll); `calls` is the API calls of its last poll, counted even when it failed."""

    @property
    def scope(self) -> Scope: ...

    @property
    def group(self) -> str: ...

    @property
    def calls(self) -> int: ...

    def poll(self) -> Snapshot: ...

    def close(self) -> None: ...


class TargetSource(Protocol):
    """The targets of one exporter at this poll (fixed, or found by discovery).

    `targets()` returns them plus the error of a failed discovery (the last known targets are then
    returned); it raises only when no target can be known at all."""

    def targets(self) -> tuple[Sequence[Target], ExporterError | None]: ...

    def close(self) -> None: ...


@dataclass
class Group:
    """The budget of one account or project, shared by all its targets."""

    slots: threading.BoundedSemaphore
    rate: RateLimit | None

    @classmethod
    def of(cls, budget: TargetBudget) -> Group:
        rate = RateLimit(budget.calls_per_second) if budget.calls_per_second else None
        return cls(threading.BoundedSemaphore(budget.concurrency), rate)


@dataclass
class _State:
    part: Snapshot | None = None
    last_success: float | None = None
    api_calls: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    last_error: str = ""
    not_before: float = 0.0  # monotonic: the API asked for a pause (Retry-After); not polled before


@dataclass(frozen=True)
class _Skipped:
    """A target left out of this poll: its API's Retry-After has not passed yet."""

    error: ExporterError


def waves(count_by_group: Iterable[int], budget: TargetBudget) -> int:
    """How many rounds of targets one poll runs: the largest group's at its concurrency, or all the
    targets' on the pool's workers. Each target gets that share of the poll's timeout, so a target
    of the last round still ends before the poll's deadline."""
    counts = list(count_by_group)
    by_group = max((math.ceil(n / budget.concurrency) for n in counts), default=1)
    return max(1, by_group, math.ceil(sum(counts) / MAX_WORKERS))


class FanoutExporter:
    """The exporter the daemon sees for an `aws`/`gcp` entry, whatever its number of targets."""

    def __init__(
        self,
        name: str,
        cloud: str,
        source: TargetSource,
        groups: Callable[[str], Group],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.cloud = cloud
        self.source = source
        self._groups = groups
        self._clock = clock
        self._states: dict[int, _State] = {}  # id(target) -> its state
        self._lock = threading.Lock()

    def poll(self) -> Snapshot:
        with self._lock:
            targets, discovery_error = self.source.targets()
            if not targets:
                if discovery_error is not None:
                    raise discovery_error
                raise ExporterError("not_found", f"{self.name}: no account/project and region to poll")
            results = self._poll_all(targets)
            return self._merge(targets, results, discovery_error)

    def _poll_all(self, targets: Sequence[Target]) -> list[Snapshot | ExporterError | _Skipped]:
        if len(targets) == 1:
            return [self._poll_one(targets[0])]
        workers = min(MAX_WORKERS, len(targets))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"fanout-{self.name}") as pool:
            return list(pool.map(self._poll_one, targets))

    def _poll_one(self, target: Target) -> Snapshot | ExporterError | _Skipped:
        state = self._states.get(id(target))
        if state is not None and state.not_before > time.monotonic():
            wait = state.not_before - time.monotonic()
            return _Skipped(ExporterError("throttled", f"waiting {wait:.0f}s more, as the API asked", retry_after=wait))
        group = self._groups(target.group)
        with group.slots:
            try:
                return target.poll()
            except ExporterError as exc:
                return exc
            except Exception as exc:  # a bug in one target must not hide the others
                log.exception("%s: target %s crashed", self.name, target.scope.key)
                return ExporterError("internal", f"{type(exc).__name__}: {exc}")

    def _merge(
        self,
        targets: Sequence[Target],
        results: list[Snapshot | ExporterError | _Skipped],
        discovery_error: ExporterError | None,
    ) -> Snapshot:
        now = self._clock()
        live = {id(t) for t in targets}
        self._states = {k: v for k, v in self._states.items() if k in live}
        statuses: list[TargetStatus] = []
        parts: list[Snapshot] = []
        failures: list[tuple[Target, ExporterError]] = []
        log_error = (discovery_error.reason, str(discovery_error)) if discovery_error is not None else None
        calls = 0
        for target, result in zip(targets, results, strict=True):
            state = self._states.setdefault(id(target), _State())
            scope = target.scope
            polled = not isinstance(result, _Skipped)
            if polled:
                state.api_calls += target.calls
                calls += target.calls
            if isinstance(result, _Skipped):
                failures.append((target, result.error))
                last_error, up = state.last_error, False  # as last seen: no call, no new error
            elif isinstance(result, ExporterError):
                state.errors[result.reason] += 1
                failures.append((target, result))
                last_error = state.last_error = f"{result.reason}: {result}"
                up = False
                if result.retry_after:
                    state.not_before = time.monotonic() + result.retry_after
            else:
                if log_error is None and result.logs is not None and result.logs.error is not None:
                    log_error = result.logs.error  # only this poll's own read failures count
                state.part = stamp(result, scope)
                state.last_success = now
                last_error, up = "", True
            if state.part is not None:
                parts.append(state.part)
            statuses.append(
                TargetStatus(
                    scope=scope,
                    up=up,
                    last_success=state.last_success,
                    api_calls=state.api_calls,
                    errors=tuple(sorted(state.errors.items())),
                    last_error=last_error,
                    polled=polled,
                )
            )
        skipped = {id(t) for t, r in zip(targets, results, strict=True) if isinstance(r, _Skipped)}
        for target, error in failures:
            if id(target) in skipped:
                continue
            log.warning(
                "%s: %s %s poll failed (%s): %s", self.name, target.scope.kind, target.scope.key, error.reason, error
            )
        if len(failures) == len(targets):
            first = failures[0][1]
            summary = "; ".join(f"{t.scope.key}: {e.reason}" for t, e in failures)
            error = ExporterError(
                first.reason,
                str(first) if len(failures) == 1 else f"every target failed ({summary}); first: {first}",
                retry_after=first.retry_after,
            )
            error.targets = tuple(statuses)  # type: ignore[attr-defined]
            raise error
        parts.sort(key=lambda p: p.scope or Scope("", "", ""))
        statuses.sort(key=lambda s: s.scope)
        return Snapshot(
            exporter=self.name,
            cloud=self.cloud,
            taken_at=now,
            tunnels=tuple(t for p in parts for t in p.tunnels),
            bgp_sessions=tuple(s for p in parts for s in p.bgp_sessions),
            routes=tuple(r for p in parts for r in p.routes),
            gateways=tuple(g for p in parts for g in p.gateways),
            packet_counts=tuple(c for p in parts for c in p.packet_counts),
            api_calls=calls,
            logs=merge_logs([p.logs for p in parts], log_error),
            scope=parts[0].scope if len(parts) == 1 else None,
            parts=tuple(parts),
            targets=tuple(statuses),
        )

    def close(self) -> None:
        self.source.close()


def stamp(part: Snapshot, scope: Scope) -> Snapshot:
    """`part` with `scope` on it and on every object it holds.

    The objects are this poll's own, built by the target a moment ago and seen by no one else yet,
    so they are completed in place (50,000 routes: milliseconds, where copies would cost a second).
    """
    for group in (part.tunnels, part.bgp_sessions, part.routes, part.gateways, part.packet_counts):
        for item in group:
            object.__setattr__(item, "scope", scope)
    return replace(part, scope=scope)


def merge_logs(views: Sequence[LogView | None], error: tuple[str, str] | None) -> LogView | None:
    """One LogView of the targets' (counts added up per key; the newest events first), with `error`
    the failure this poll counts (a log read or a discovery that failed)."""
    present = [v for v in views if v is not None]
    if not present:
        return LogView(error=error) if error is not None else None
    if len(present) == 1 and error == present[0].error:
        return present[0]
    entries: Counter[str] = Counter()
    events: Counter[tuple[str, str]] = Counter()
    downs: Counter[tuple[str, str, str]] = Counter()
    for view in present:
        entries.update(dict(view.entries))
        for tunnel, event, n in view.events:
            events[(tunnel, event)] += n
        for router, peer, reason, n in view.bgp_downs:
            downs[(router, peer, reason)] += n
    lags = [v.lag_seconds for v in present if v.lag_seconds is not None]
    recent: list[LogEvent] = sorted((e for v in present for e in v.recent), key=lambda e: -e.at)
    return LogView(
        lag_seconds=max(lags) if lags else None,
        entries=tuple(sorted(entries.items())),
        events=tuple((t, e, n) for (t, e), n in sorted(events.items())),
        bgp_downs=tuple((r, p, why, n) for (r, p, why), n in sorted(downs.items())),
        ike_states=tuple(s for v in present for s in v.ike_states),
        recent=tuple(recent[:RECENT_EVENTS]),
        error=error,
    )
