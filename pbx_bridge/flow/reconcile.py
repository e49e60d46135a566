"""When the database goes away for a while, calls go on and the records catch up after.

Asterisk keeps the calls and the recordings; what an outage costs is the rows that could
not be written meanwhile: a call's end, a recording's finish. Instead of crashing (which
would drop the handling of every live call) the service notes that it owes the database a
reconciliation and runs the resync, which derives those rows from Asterisk's state, as
soon as the database answers again: calls that ended are closed, calls still live are
adopted, and recordings Asterisk finished are taken into the pipeline.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from storage.database import database_unavailable, error_reason
from storage.periodic import UNTIL_WOKEN, JobRunner, NextRun, backoff

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
        self._owed = False
        # Idle until something is owed; then with backoff until a run succeeds.
        self._runner = JobRunner(
            "reconciliation after the database outage", "reconcile", self._reconcile_once,
            interval_s=UNTIL_WOKEN, retry=backoff(initial_delay_s, max_delay_s),
            first_delay_s=UNTIL_WOKEN,
        )

    @property
    def owed(self) -> bool:
        return self._owed

    def owe(self, what: str, exc: BaseException) -> None:
        """``what`` could not be written because the database is away: reconcile later."""
        first = not self._owed
        self._owed = True
        log.warning("database unavailable, %s left for the resync when it is back: %s",
                    what, error_reason(exc))
        if first:
            self._runner.start()
            self._runner.wake(after_s=self._initial_delay_s)

    async def run_resync(self, why: str) -> bool:
        """The resync now, or owed if the database is away (then False)."""
        try:
            await self._resync()
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            self.owe(f"the resync ({why})", exc)
            return False
        return True

    async def close(self) -> None:
        await self._runner.stop()

    async def _reconcile_once(self) -> NextRun:
        if not self._owed:
            return UNTIL_WOKEN
        # Cleared first: whatever fails during this run owes another one.
        self._owed = False
        try:
            await self._resync()
        except Exception:
            self._owed = True
            raise
        if self._owed:
            return self._initial_delay_s
        log.info("database back: calls and recordings reconciled with Asterisk")
        return UNTIL_WOKEN


__all__ = ["Reconciler"]
