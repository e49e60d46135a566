"""When the database goes away for a while, calls go on and the records catch up after.

Asterisk keeps the calls and the recordings; what an outage costs is the rows that could
not be written meanwhile: a call's end, a recording's finish. Instead of crashing (which
would drop the handling of every live call) the service notes that it owes the database a
reconciliation and runs the resync, which derives those rows from Asterisk's state, as
soon as the database answers again: calls that ended are closed, calls still live are
adopted, and recordings Asterisk finished are taken into the pipeline.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from storage.database import database_unavailable

log = logging.getLogger(__name__)

INITIAL_DELAY_S = 2.0
MAX_DELAY_S = 30.0


class Reconciler:
    def __init__(
        self,
        resync: Callable[[], Awaitable[None]],
        *,
        initial_delay_s: float = INITIAL_DELAY_S,
        max_delay_s: float = MAX_DELAY_S,
    ) -> None:
        self._resync = resync
        self._initial_delay_s = initial_delay_s
        self._max_delay_s = max_delay_s
        self._owed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def owed(self) -> bool:
        return self._owed.is_set()

    def owe(self, what: str, exc: BaseException) -> None:
        """``what`` could not be written because the database is away: reconcile later."""
        first = not self._owed.is_set()
        self._owed.set()
        log.warning("database unavailable, %s left for the resync when it is back: %s",
                    what, _reason(exc))
        if first and self._task is None:
            self._task = asyncio.create_task(self._until_reconciled(), name="reconcile")

    async def run_resync(self, why: str) -> None:
        """The resync now, or owed if the database is away."""
        try:
            await self._resync()
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            self.owe(f"the resync ({why})", exc)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _until_reconciled(self) -> None:
        delay = self._initial_delay_s
        try:
            while self._owed.is_set():
                await asyncio.sleep(delay)
                # Cleared first: whatever fails during this run owes another one.
                self._owed.clear()
                try:
                    await self._resync()
                except Exception as exc:
                    if not database_unavailable(exc):
                        log.exception("resync after the database outage failed; trying again")
                    self._owed.set()
                    delay = min(delay * 2, self._max_delay_s)
                    continue
                log.info("database back: calls and recordings reconciled with Asterisk")
        finally:
            self._task = None


def _reason(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).strip().splitlines()
    return text[0] if text else type(cause).__name__


__all__ = ["Reconciler"]
