"""A job the service runs at start and then on an interval, until it stops.

The service's housekeeping (the due-request report, expiring exports) must outlive a
database or disk hiccup: a failed run is logged and retried sooner, never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Generic, Self, TypeVar

from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
ResultT = TypeVar("ResultT")

# What a run may fail with and still be worth trying again later.
TRANSIENT: tuple[type[BaseException], ...] = (SQLAlchemyError, OSError)


class PeriodicJob(ABC, Generic[ResultT]):
    name = "periodic job"

    def __init__(
        self, *, interval_s: float, retry_s: float | None = None, sleep: Sleep = asyncio.sleep
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self._interval_s = interval_s
        self._retry_s = interval_s if retry_s is None else min(retry_s, interval_s)
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None
        self.runs = 0
        self.last_result: ResultT | None = None

    @abstractmethod
    async def run_once(self) -> ResultT: ...

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

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

    async def _loop(self) -> None:
        while True:
            wait_s = self._interval_s
            try:
                self.last_result = await self.run_once()
                self.runs += 1
            except TRANSIENT as exc:
                log.error("%s failed (will retry in %.0f s): %s", self.name, self._retry_s, exc)
                wait_s = self._retry_s
            except Exception:  # a task boundary: a bug must not end the job for good
                log.exception("%s failed unexpectedly (will retry in %.0f s)", self.name,
                              self._retry_s)
                wait_s = self._retry_s
            await self._sleep(wait_s)
