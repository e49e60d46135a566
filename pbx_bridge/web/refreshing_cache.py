"""A keyed cache whose values are recomputed in the background once they are older than
``max_age_s``: a request gets the last value at once (stale while revalidating) and never
waits on a slow query other than its key's very first one, nor sets off a second
computation of a key already being computed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Computed(Generic[T]):
    value: T
    at: datetime  # when the computation started: the numbers are as of then


class RefreshingCache(Generic[K, T]):
    def __init__(
        self,
        compute: Callable[[K, datetime], Awaitable[T]],
        *,
        max_age_s: float,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._compute = compute
        self._max_age_s = max_age_s
        self._clock = clock
        self._entries: dict[K, Computed[T]] = {}
        self._running: dict[K, asyncio.Task[Computed[T]]] = {}
        self._closed = False

    async def get(self, key: K) -> Computed[T]:
        entry = self._entries.get(key)
        if self._closed:
            # Shutting down: no new background task (nothing would cancel it); a request
            # still being answered gets the last value, or computes its own.
            return entry or await self._refresh(key)
        if entry is not None:
            age = (self._clock() - entry.at).total_seconds()
            if age >= self._max_age_s and key not in self._running:
                self._start(key)
            return entry
        task = self._running.get(key) or self._start(key)
        # shield: a client that goes away does not cancel the others' computation.
        return await asyncio.shield(task)

    def _start(self, key: K) -> asyncio.Task[Computed[T]]:
        task = asyncio.create_task(self._refresh(key))
        self._running[key] = task
        task.add_done_callback(lambda done: self._finished(key, done))
        return task

    def _finished(self, key: K, task: asyncio.Task[Computed[T]]) -> None:
        self._running.pop(key, None)
        if not task.cancelled() and task.exception() is not None:
            # The last value stays served; the next request after max_age tries again.
            log.warning("background refresh failed: %s", task.exception())

    async def _refresh(self, key: K) -> Computed[T]:
        at = self._clock()
        entry = Computed(await self._compute(key, at), at)
        self._entries[key] = entry
        return entry

    async def close(self) -> None:
        """Cancel and await the refreshes running; none starts after this."""
        self._closed = True
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
