"""One runner for every background job of the service: the retention purge, the pipeline
sweep, the reconciliation a database outage leaves owing, the due report, expiring
exports and the audit-trail watch.

A background loop that dies says nothing: recordings outlive their retention, an outage is
never reconciled, until someone restarts the service. So every job runs here, and only
cancellation (the service stopping) ends one. A run that fails is logged, counted
(``JOB_FAILURES``) and tried again: a transient failure (the database away, a disk full or
unwritable, a backend unreachable) with one ERROR line, anything else (a bug) with its
traceback. A job says when it wants to run next (a fixed interval, a backoff, or only
when woken), so the reconciler's backoff and the purger's "run now" need no loop of their
own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Generic, Literal, Self, TypeVar

from storage.database import database_unavailable, error_reason
from storage.errors import TransientStorageError
from storage.metrics import JOB_FAILURES, JOB_LAST_SUCCESS, JOB_RUNS

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
# Consecutive failures so far (1, 2, ...) → seconds until the next try.
Retry = Callable[[int], float]
# What a run returns: seconds until the next run; None for the job's interval.
NextRun = float | None
ResultT = TypeVar("ResultT")

UNTIL_WOKEN = math.inf
FailureKind = Literal["transient", "unexpected"]


def failure_kind(exc: BaseException) -> FailureKind:
    """``transient`` for what waiting cures (the database away, a disk full or unwritable,
    a backend unreachable); ``unexpected`` for anything else, a bug until shown otherwise.

    Not the same question as ``database_unavailable``: a disk error is transient for a job
    (free the space and it succeeds) but it is not the database away.
    """
    if database_unavailable(exc) or isinstance(exc, TransientStorageError | OSError):
        return "transient"
    return "unexpected"


def backoff(initial_s: float, max_s: float) -> Retry:
    """Doubling from ``initial_s`` up to ``max_s``."""
    if initial_s <= 0 or max_s < initial_s:
        raise ValueError("backoff needs 0 < initial_s <= max_s")
    return lambda failures: min(max_s, initial_s * 2 ** min(failures - 1, 30))


class JobRunner:
    """Runs ``run`` after ``first_delay_s`` (0: at start), then again after what it
    returns (None: ``interval_s``), or after ``retry`` when it failed. ``wake()`` runs it
    sooner; a delay of ``UNTIL_WOKEN`` waits only for that."""

    def __init__(
        self,
        name: str,
        job: str,
        run: Callable[[], Awaitable[NextRun]],
        *,
        interval_s: float,
        retry: float | Retry | None = None,
        first_delay_s: float = 0.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.name = name
        self.job = job
        self._run = run
        self._interval_s = interval_s
        retry_s = interval_s if retry is None else retry
        self._retry: Retry = retry_s if callable(retry_s) else (lambda _failures: retry_s)
        self._first_delay_s = first_delay_s
        self._sleep = sleep
        self._woken = asyncio.Event()
        self._wake_after_s = 0.0
        self._task: asyncio.Task[None] | None = None
        self.last_error: str | None = None
        # Every series exists (at 0) from the start, so an alert has something to compare.
        JOB_RUNS.labels(job)
        JOB_LAST_SUCCESS.labels(job)
        for kind in ("transient", "unexpected"):
            JOB_FAILURES.labels(job, kind)

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def wake(self, after_s: float = 0.0) -> None:
        """Run once more soon: ``after_s`` from now rather than when the job asked."""
        self._wake_after_s = after_s
        self._woken.set()

    async def _loop(self) -> None:
        delay = self._first_delay_s
        failures = 0
        while True:
            await self._pause(delay)
            self._woken.clear()  # a wake during the run asks for another run after it
            try:
                asked = await self._run()
            except Exception as exc:  # the task boundary: only cancellation ends a job
                failures += 1
                delay = self._retry(failures)
                self._failed(exc, delay)
                continue
            failures = 0
            self.last_error = None
            JOB_RUNS.labels(self.job).inc()
            JOB_LAST_SUCCESS.labels(self.job).set_to_current_time()
            delay = self._interval_s if asked is None else asked

    def _failed(self, exc: Exception, delay: float) -> None:
        kind = failure_kind(exc)
        JOB_FAILURES.labels(self.job, kind).inc()
        self.last_error = error_reason(exc)
        if kind == "transient":
            log.error("%s failed (will retry in %.0f s): %s", self.name, delay, self.last_error)
        else:
            log.error("%s failed unexpectedly (will retry in %.0f s)", self.name, delay,
                      exc_info=exc)

    async def _pause(self, delay: float) -> None:
        if delay > 0 and not self._woken.is_set():
            await self._sleep_unless_woken(delay)
        after_s, self._wake_after_s = self._wake_after_s, 0.0
        if self._woken.is_set() and after_s > 0:
            await self._sleep(after_s)

    async def _sleep_unless_woken(self, delay: float) -> None:
        if delay == UNTIL_WOKEN:
            await self._woken.wait()
            return
        sleeper = asyncio.ensure_future(self._sleep(delay))
        woken = asyncio.ensure_future(self._woken.wait())
        try:
            await asyncio.wait({sleeper, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            woken.cancel()


class PeriodicJob(ABC, Generic[ResultT]):
    """A job run at start and then every ``interval_s``; a failed run is tried again after
    ``retry_s`` (at most the interval). Subclasses name it and say what one run does."""

    name = "periodic job"
    job = "periodic"  # the metrics' job label

    def __init__(
        self, *, interval_s: float, retry_s: float | None = None, sleep: Sleep = asyncio.sleep
    ) -> None:
        retry = interval_s if retry_s is None else min(retry_s, interval_s)
        self._runner = JobRunner(
            self.name, self.job, self._run, interval_s=interval_s, retry=retry, sleep=sleep
        )
        self.runs = 0
        self.last_result: ResultT | None = None

    @abstractmethod
    async def run_once(self) -> ResultT: ...

    async def _run(self) -> NextRun:
        self.last_result = await self.run_once()
        self.runs += 1
        return None

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def start(self) -> None:
        self._runner.start()

    async def stop(self) -> None:
        await self._runner.stop()


__all__ = [
    "UNTIL_WOKEN",
    "JobRunner",
    "NextRun",
    "PeriodicJob",
    "Retry",
    "Sleep",
    "backoff",
    "failure_kind",
]
