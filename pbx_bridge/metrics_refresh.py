"""The gauges read from the database, refreshed by the service on an interval.

Prometheus may scrape every few seconds from several servers; a query per scrape would
let them load the database. One refresh per ``[metrics] refresh_interval_s`` runs the few
index-backed queries of ``storage/backlog.py`` (and the overdue requests) and sets the
gauges, which every scrape then reads for free.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.metrics import (
    COPIES,
    DSARS_OVERDUE,
    METRICS_REFRESHED,
    OLDEST_UNSTORED_AGE,
    PURGE_LAG,
    RECORDINGS,
)
from pbx_bridge.subjects.register import count_overdue
from storage.backlog import WAITING_COPIES, Backlog, read_backlog
from storage.database import database_unavailable, error_reason
from storage.models import utcnow
from storage.periodic import PeriodicJob, Sleep


class MetricsRefresh(PeriodicJob[Backlog]):
    name = "metrics refresh"
    job = "metrics_refresh"

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        backends: Iterable[str],
        interval_s: float,
        clock: Callable[[], datetime] = utcnow,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        super().__init__(interval_s=interval_s, sleep=sleep)
        self._sessions = sessions
        self._clock = clock
        # Every backend shows its pending and dead copies, 0 included, so an alert on
        # the series has something to compare from the first scrape on.
        self._backends = set(backends)
        self.database_error: str | None = None
        """Why the last refresh could not reach the database; None once it could."""

    async def run_once(self) -> Backlog:
        now = self._clock()
        try:
            async with self._sessions() as session:
                backlog = await read_backlog(session, now)
                overdue = await count_overdue(session, now)
        except Exception as exc:  # classified, then re-raised for the job's own logging
            if database_unavailable(exc):
                self.database_error = error_reason(exc)
            raise
        self.database_error = None
        self._publish(backlog, overdue, now)
        return backlog

    def _publish(self, backlog: Backlog, overdue: int, now: datetime) -> None:
        for status, count in backlog.recordings.items():
            RECORDINGS.labels(status).set(count)
        self._backends.update(backend for backend, _ in backlog.copies)
        for backend in self._backends:
            for status in WAITING_COPIES:
                COPIES.labels(backend, status.value).set(
                    backlog.copies.get((backend, status.value), 0)
                )
        OLDEST_UNSTORED_AGE.set(_age(backlog.oldest_unstored_at, now))
        PURGE_LAG.set(_age(backlog.oldest_overdue_until, now))
        DSARS_OVERDUE.set(overdue)
        METRICS_REFRESHED.set(now.timestamp())


def _age(moment: datetime | None, now: datetime) -> float:
    return 0.0 if moment is None else max(0.0, (now - moment).total_seconds())

