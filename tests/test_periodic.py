"""Background jobs survive a failed run (expected or not), are counted, and come back sooner."""

from __future__ import annotations

import asyncio
import errno

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.exc import OperationalError

from storage.database import DatabaseUnavailable
from storage.periodic import (
    UNTIL_WOKEN,
    JobRunner,
    NextRun,
    PeriodicJob,
    backoff,
    failure_kind,
)


class FlakyJob(PeriodicJob[int]):
    name = "flaky test job"

    def __init__(self, failures: int) -> None:
        self.slept: list[float] = []
        self.done = asyncio.Event()
        super().__init__(interval_s=100.0, retry_s=5.0, sleep=self._record_sleep)
        self._failures = failures
        self.calls = 0

    async def _record_sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if len(self.slept) >= 3:
            self.done.set()
            await asyncio.Event().wait()  # park until stopped
        await asyncio.sleep(0)

    async def run_once(self) -> int:
        self.calls += 1
        if self.calls <= self._failures:
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("db down"))
        return self.calls


async def test_a_failed_run_is_retried_after_the_shorter_delay(
    caplog: pytest.LogCaptureFixture,
) -> None:
    job = FlakyJob(failures=2)
    async with job:
        await asyncio.wait_for(job.done.wait(), 5)
    assert job.slept == [5.0, 5.0, 100.0]
    assert job.runs == 1 and job.last_result == 3
    assert "flaky test job failed (will retry in 5 s)" in caplog.text


async def test_an_unexpected_error_is_logged_with_its_traceback_and_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(FlakyJob):
        async def run_once(self) -> int:
            raise TypeError("a bug")

    job = Broken(failures=0)
    async with job:
        await asyncio.wait_for(job.done.wait(), 5)
    assert job.slept == [5.0, 5.0, 5.0] and job.runs == 0
    assert "failed unexpectedly" in caplog.text and "TypeError: a bug" in caplog.text


def test_interval_must_be_positive() -> None:
    class Idle(PeriodicJob[None]):
        async def run_once(self) -> None:
            return None

    with pytest.raises(ValueError, match="interval_s must be positive"):
        Idle(interval_s=0)


# -- the one runner under every background job ---------------------------------------------


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class FakeSleep:
    """Records each pause and returns at once; after ``limit`` pauses it parks, so the
    test reads a fixed history without waiting in real time."""

    def __init__(self, limit: int) -> None:
        self.slept: list[float] = []
        self.limit = limit
        self.parked = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)
        if len(self.slept) >= self.limit:
            self.parked.set()
            await asyncio.Event().wait()
        await asyncio.sleep(0)


async def test_an_unexpected_error_does_not_end_the_job_it_runs_on_the_next_tick(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[int] = []

    async def run() -> NextRun:
        runs.append(len(runs) + 1)
        if len(runs) == 2:
            raise KeyError("a bug in the second run")
        return None

    before = metric("pbx_bridge_job_failures_total", job="t_unexpected", kind="unexpected")
    sleep = FakeSleep(limit=4)
    runner = JobRunner("test job", "t_unexpected", run, interval_s=60, retry=5, sleep=sleep)
    runner.start()
    await asyncio.wait_for(sleep.parked.wait(), 5)
    await runner.stop()
    # run 1 ok → 60 s; run 2 raises → 5 s; runs 3 and 4 ok → 60 s each.
    assert runs == [1, 2, 3, 4] and sleep.slept == [60, 5, 60, 60]
    after = metric("pbx_bridge_job_failures_total", job="t_unexpected", kind="unexpected")
    assert after - before == 1
    assert metric("pbx_bridge_job_runs_total", job="t_unexpected") == 3
    assert metric("pbx_bridge_job_last_success_timestamp_seconds", job="t_unexpected") > 0
    assert "test job failed unexpectedly (will retry in 5 s)" in caplog.text
    assert "KeyError: 'a bug in the second run'" in caplog.text  # the traceback
    assert runner.last_error is None and not runner.running


async def test_a_transient_failure_is_one_error_line_and_counted_as_such(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    async def run() -> NextRun:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("db down"))
        return None

    sleep = FakeSleep(limit=2)
    runner = JobRunner("test job", "t_transient", run, interval_s=60, retry=5, sleep=sleep)
    runner.start()
    await asyncio.wait_for(sleep.parked.wait(), 5)
    await runner.stop()
    assert sleep.slept == [5, 60]
    assert metric("pbx_bridge_job_failures_total", job="t_transient", kind="transient") == 1
    assert "test job failed (will retry in 5 s): db down" in caplog.text
    assert "Traceback" not in caplog.text


async def test_a_job_asks_for_its_next_run_backs_off_and_is_woken() -> None:
    outcomes: list[str] = ["fail", "fail", "fail", "ok-idle"]
    ran = asyncio.Event()

    async def run() -> NextRun:
        ran.set()
        outcome = outcomes.pop(0) if outcomes else "ok-idle"
        if outcome == "fail":
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("db down"))
        return UNTIL_WOKEN

    sleep = FakeSleep(limit=100)
    runner = JobRunner("test job", "t_backoff", run, interval_s=60, retry=backoff(2, 5),
                       first_delay_s=UNTIL_WOKEN, sleep=sleep)
    runner.start()
    await asyncio.sleep(0.05)
    assert not ran.is_set()  # waits to be woken, however long
    runner.wake(after_s=1)
    for _ in range(100):
        if not outcomes:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert sleep.slept == [1, 2, 4, 5]  # the wake's delay, then the backoff, then idle
    ran.clear()
    runner.wake()
    await asyncio.wait_for(ran.wait(), 5)
    await runner.stop()
    await runner.stop()  # twice is harmless


def test_backoff_doubles_up_to_its_ceiling() -> None:
    retry = backoff(2, 30)
    assert [retry(n) for n in range(1, 7)] == [2, 4, 8, 16, 30, 30]
    with pytest.raises(ValueError):
        backoff(0, 1)


def test_what_waiting_cures_is_transient_and_anything_else_a_bug() -> None:
    assert failure_kind(DatabaseUnavailable("cannot connect")) == "transient"
    assert failure_kind(OperationalError("SELECT 1", {}, OSError("gone"))) == "transient"
    assert failure_kind(OSError(errno.ENOSPC, "No space left on device")) == "transient"
    assert failure_kind(KeyError("x")) == "unexpected"
    assert failure_kind(RuntimeError("x")) == "unexpected"
