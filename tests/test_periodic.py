"""The service's housekeeping jobs survive a failed run and come back sooner."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import OperationalError

from pbx_bridge.periodic import PeriodicJob


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
