"""When things run: the one place that owns every job's interval, timeout, first-run spacing and jitter.

What a job does (poll one exporter, run one probe) knows nothing about time, as in cloudprober: the
runner is handed its timeout, and the scheduler decides when it is called. `plan(old, new)` is pure and
says which jobs stop, start or carry on; `Scheduler.prepare(plan)` builds every trigger (so a value
APScheduler cannot take fails before anything running is touched) and `Scheduler.start(prepared)` only
applies it. This module must not build runners or read the config.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

log = logging.getLogger(__name__)

# First runs of a group of jobs (e.g. every probe) are spread over at most this long (or their interval
# when shorter), so a hundred probes do not fire in the same millisecond after a start or a reload.
SPREAD_WINDOW = 1.0

MAX_BACKOFF_INTERVALS = 4  # during an outage, run at least every 5th interval to notice recovery

JobFunc = Callable[[], Awaitable[object]]


def backoff(interval: float, failures: int, retry_after: float | None) -> float:
    """Seconds a failing job holds off after `failures` consecutive failures: the next scheduled run
    goes ahead after the first, then 1, 3, then at most MAX_BACKOFF_INTERVALS intervals are skipped,
    so an API outage is not hammered; a server's Retry-After is always honoured."""
    skipped = min(interval * ((1 << max(failures - 1, 0)) - 1), MAX_BACKOFF_INTERVALS * interval)
    return max(skipped, retry_after or 0.0)


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One recurring job. `key` names what runs (equal key and timing: the running job carries on)."""

    id: str
    interval: float
    timeout: float
    key: Hashable = None
    delay: float = 0.0  # first run this long after (re)scheduling
    jitter: float = 0.0  # seconds of random delay APScheduler adds to each run


@dataclass(frozen=True, slots=True)
class Plan:
    """What a (re)configuration changes: jobs to stop, to start (new or changed), and kept as they run."""

    stop: tuple[str, ...] = ()
    start: tuple[JobSpec, ...] = ()
    keep: tuple[str, ...] = ()


def spread(specs: Sequence[JobSpec], window: float = SPREAD_WINDOW) -> tuple[JobSpec, ...]:
    """Space the first runs of `specs` evenly over `window` (or each one's interval when shorter),
    in the given order, so the spacing is deterministic (the old `i*37 ms` stagger was not even)."""
    n = len(specs)
    return tuple(replace(spec, delay=spec.delay + i * min(window, spec.interval) / n) for i, spec in enumerate(specs))


def plan(old: Mapping[str, JobSpec], new: Iterable[JobSpec]) -> Plan:
    """Pure: compare the running jobs with the wanted ones. A job whose key or timing changed is
    stopped and started again; one that is identical carries on untouched (its next run stays due)."""
    wanted = {spec.id: spec for spec in new}
    keep = tuple(i for i, spec in wanted.items() if _same(old.get(i), spec))
    stop = tuple(i for i in old if i not in keep)
    start = tuple(spec for i, spec in wanted.items() if i not in keep)
    return Plan(stop=stop, start=start, keep=keep)


def _same(running: JobSpec | None, wanted: JobSpec) -> bool:
    return running is not None and (running.key, running.interval, running.timeout, running.jitter) == (
        wanted.key,
        wanted.interval,
        wanted.timeout,
        wanted.jitter,
    )


def check(spec: JobSpec) -> None:
    """Raise ValueError for timing no scheduler can honour (non-finite, not positive, overflowing)."""
    for what, value in (("interval", spec.interval), ("timeout", spec.timeout), ("delay", spec.delay)):
        if not math.isfinite(value) or value < 0 or (what != "delay" and value <= 0):
            raise ValueError(f"{spec.id}: {what} {value!r} is not a usable duration")


@dataclass(frozen=True, slots=True)
class Prepared:
    """A plan with every trigger built: applying it cannot fail on a bad value any more."""

    plan: Plan
    triggers: Mapping[str, tuple[JobSpec, IntervalTrigger, datetime]]


class Scheduler:
    """A thin owner of APScheduler: one job per spec, never overlapping, misfires coalesced."""

    def __init__(self) -> None:
        self._aps = AsyncIOScheduler(timezone=UTC)
        self.jobs: dict[str, JobSpec] = {}

    def run(self) -> None:
        self._aps.start()

    def prepare(self, p: Plan, now: datetime | None = None) -> Prepared:
        """Build the triggers of the jobs `p` starts; raises ValueError/OverflowError on bad timing."""
        now = now or datetime.now(UTC)
        triggers: dict[str, tuple[JobSpec, IntervalTrigger, datetime]] = {}
        for spec in p.start:
            check(spec)
            trigger = IntervalTrigger(seconds=spec.interval, jitter=spec.jitter or None)
            first = now + timedelta(seconds=spec.delay)
            triggers[spec.id] = (spec, trigger, first)
        return Prepared(p, triggers)

    def start(self, prepared: Prepared, funcs: Mapping[str, JobFunc]) -> None:
        """Apply a prepared plan: stop what it stops, start what it starts (`funcs` by job id)."""
        for job_id in prepared.plan.stop:
            self.jobs.pop(job_id, None)
            if self._aps.get_job(job_id) is not None:
                self._aps.remove_job(job_id)
        for job_id, (spec, trigger, first) in prepared.triggers.items():
            self._aps.add_job(
                funcs[job_id],
                trigger,
                id=job_id,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(spec.interval)),
                next_run_time=first,
                replace_existing=True,
            )
            self.jobs[job_id] = spec

    def shutdown(self) -> None:
        if self._aps.running:
            self._aps.shutdown(wait=False)
