"""The service's daily reminder of data-subject requests that are late or nearly so.

A request answered after its 30 days is a breach of KVKK art. 13 / GDPR art. 12 even when
the answer is right, and nobody reads a register nobody opens: so the running service
says, at start and once a day, which requests are overdue (WARNING) and which are due
soon (INFO). Only references appear, never a number.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.subjects.register import DueState, due_state, list_requests
from storage.models import utcnow
from storage.periodic import PeriodicJob, Sleep

log = logging.getLogger(__name__)

DAY_S = 86_400.0
RETRY_S = 3_600.0

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class DueReport:
    overdue: list[str]  # references, oldest due first
    due_soon: list[str]


async def due_report(
    sessions: async_sessionmaker[AsyncSession], *, now: datetime, soon_days: int
) -> DueReport:
    async with sessions() as session:
        return await read_due_report(session, now=now, soon_days=soon_days)


async def read_due_report(session: AsyncSession, *, now: datetime, soon_days: int) -> DueReport:
    """The same report in a session the caller holds (the web dashboard and its badge)."""
    pending = await list_requests(session, due_within_days=soon_days, now=now)
    overdue, soon = [], []
    for request in pending:
        state = due_state(request, now, soon_days)
        if state == DueState.OVERDUE:
            overdue.append(request.reference)
        elif state == DueState.DUE_SOON:
            soon.append(request.reference)
    return DueReport(overdue=overdue, due_soon=soon)


def log_report(report: DueReport, soon_days: int) -> None:
    if report.overdue:
        log.warning(
            "%d data-subject request(s) overdue: %s (`pbx-bridge dsar list --overdue`)",
            len(report.overdue),
            ", ".join(report.overdue),
        )
    if report.due_soon:
        log.info(
            "%d data-subject request(s) due within %d days: %s",
            len(report.due_soon),
            soon_days,
            ", ".join(report.due_soon),
        )
    if not report.overdue and not report.due_soon:
        log.info("no data-subject request overdue or due within %d days", soon_days)


class DueRequestsReporter(PeriodicJob[DueReport]):
    """Logs the due report at start and then every ``interval_s`` (a day), in the service."""

    name = "data-subject request due report"
    job = "due_report"

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        soon_days: int,
        interval_s: float = DAY_S,
        now: Clock = utcnow,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        # The database is away for now: try again within the hour, not tomorrow.
        super().__init__(interval_s=interval_s, retry_s=RETRY_S, sleep=sleep)
        self._sessions = sessions
        self._soon_days = soon_days
        self._now = now

    @property
    def last_report(self) -> DueReport | None:
        return self.last_result

    async def run_once(self) -> DueReport:
        report = await due_report(self._sessions, now=self._now(), soon_days=self._soon_days)
        log_report(report, self._soon_days)
        return report
