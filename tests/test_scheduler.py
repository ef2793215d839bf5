"""The scheduler's plan is pure: which jobs stop, start or carry on across a (re)configuration."""

from __future__ import annotations

import math

import pytest

from watchdog.scheduler import JobSpec, Plan, Scheduler, backoff, plan, spread

A = JobSpec("exporter:a", interval=30, timeout=30, key="a-config")
B = JobSpec("probe:b", interval=5, timeout=2, key="b-config")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ({}, [A, B], Plan(start=(A, B))),
        ({"exporter:a": A}, [A], Plan(keep=("exporter:a",))),
        ({"exporter:a": A, "probe:b": B}, [A], Plan(stop=("probe:b",), keep=("exporter:a",))),
        # only the interval changed (e.g. the top-level `interval:`): restarted with the new timing
        (
            {"exporter:a": A},
            [JobSpec("exporter:a", interval=10, timeout=30, key="a-config")],
            Plan(stop=("exporter:a",), start=(JobSpec("exporter:a", interval=10, timeout=30, key="a-config"),)),
        ),
        # what runs changed, same timing
        (
            {"probe:b": B},
            [JobSpec("probe:b", interval=5, timeout=2, key="other")],
            Plan(stop=("probe:b",), start=(JobSpec("probe:b", interval=5, timeout=2, key="other"),)),
        ),
        # a different first-run delay alone does not restart a running job
        (
            {"probe:b": B},
            [JobSpec("probe:b", interval=5, timeout=2, key="b-config", delay=0.5)],
            Plan(keep=("probe:b",)),
        ),
        ({"exporter:a": A}, [], Plan(stop=("exporter:a",))),
    ],
)
def test_plan(old: dict[str, JobSpec], new: list[JobSpec], expected: Plan) -> None:
    assert plan(old, new) == expected


def test_spread_spaces_first_runs_evenly_within_a_second_or_the_interval() -> None:
    specs = [JobSpec(f"probe:{i}", interval=5, timeout=1) for i in range(4)]
    assert [s.delay for s in spread(specs)] == [0.0, 0.25, 0.5, 0.75]
    fast = [JobSpec(f"probe:{i}", interval=0.5, timeout=0.2) for i in range(2)]
    assert [s.delay for s in spread(fast)] == [0.0, 0.25]


@pytest.mark.parametrize("bad", [math.inf, math.nan, 0.0, -1.0, 1e300])
def test_prepare_rejects_unusable_timing_before_anything_changes(bad: float) -> None:
    scheduler = Scheduler()
    good = scheduler.prepare(plan({}, [A]))
    scheduler.jobs = {"exporter:a": A}  # as if `good` had been started
    with pytest.raises((ValueError, OverflowError)):
        scheduler.prepare(plan(scheduler.jobs, [JobSpec("exporter:a", interval=bad, timeout=1, key="a-config")]))
    assert scheduler.jobs == {"exporter:a": A}
    assert set(good.triggers) == {"exporter:a"}


@pytest.mark.parametrize(
    ("failures", "retry_after", "expected"),
    [(1, None, 0.0), (2, None, 10.0), (3, None, 30.0), (4, None, 40.0), (20, None, 40.0), (1, 120.0, 120.0)],
)
def test_backoff_skips_1_3_then_at_most_4_intervals_and_honours_retry_after(
    failures: int, retry_after: float | None, expected: float
) -> None:
    assert backoff(10.0, failures, retry_after) == expected
