"""Calls first: storage work waits while the event loop is running late.

The call flow and the recording pipeline share one event loop. A caller waiting for the
disclosure cannot wait; a finished recording can, because Asterisk keeps it until every
copy is verified. Under a burst of calls, each ingest (fetch, checks, copies, clean-up)
takes loop turns a new caller needs, and the disclosure starts late enough that keys
arrive before it (early keys, never consent). So the pipeline asks this monitor before
each step and holds back while the loop is late, for at most ``max_wait_s`` so storage
can never starve: nothing is lost, it is only stored a little later.

The lag is measured the cheap way: a task sleeps a short interval and notes how much
later than asked it woke up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from storage.metrics import LOOP_LAG, STORAGE_DEFERRED

log = logging.getLogger(__name__)

DEFAULT_PROBE_S = 0.05


def smoothed(previous: float, sample: float, *, weight: float = 0.3) -> float:
    """An exponential moving average that rises at once and falls gradually: one late
    wake-up is enough to hold storage back, and it resumes once the loop stays calm."""
    if sample >= previous:
        return sample
    return previous + weight * (sample - previous)


class LoopLagMonitor:
    """Knows how late the event loop is running; ``calm()`` waits for it to catch up."""

    def __init__(
        self, *, busy_lag_s: float, max_wait_s: float, probe_s: float = DEFAULT_PROBE_S
    ) -> None:
        if busy_lag_s <= 0 or max_wait_s <= 0 or probe_s <= 0:
            raise ValueError("busy_lag_s, max_wait_s and probe_s must be positive")
        self._busy_lag_s = busy_lag_s
        self._max_wait_s = max_wait_s
        self._probe_s = probe_s
        self.lag_s = 0.0
        self._calm = asyncio.Event()
        self._calm.set()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopLagMonitor:
        if self._task is None:
            self._task = asyncio.create_task(self._probe(), name="loop lag monitor")
        return self

    async def __aexit__(self, *exc: object) -> None:
        task, self._task = self._task, None
        self._calm.set()  # nobody waits on a monitor that stopped
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def busy(self) -> bool:
        return not self._calm.is_set()

    def note(self, lag_s: float) -> None:
        """Take one measurement (the probe's, or a test's)."""
        self.lag_s = smoothed(self.lag_s, max(lag_s, 0.0))
        LOOP_LAG.set(self.lag_s)
        if self.lag_s > self._busy_lag_s:
            self._calm.clear()
        else:
            self._calm.set()

    async def calm(self) -> None:
        """Return once the loop is on time again, or after ``max_wait_s`` regardless."""
        if self._calm.is_set():
            return
        STORAGE_DEFERRED.inc()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._calm.wait(), self._max_wait_s)

    async def _probe(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + self._probe_s
            await asyncio.sleep(self._probe_s)
            self.note(loop.time() - asked)
