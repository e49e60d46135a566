"""The dashboard's numbers: calls and consent per day and per route, today, storage, DSARs.

Pure queries, no rendering: the web console draws them (``pbx_bridge.calls.charts``), an
API or a report can print them. Calls and consent are counted in one grouped query over
the window along ``ix_calls_started_at_id`` (with a supervisor's scope in the same SQL);
storage reads ``storage.backlog.read_backlog`` and the requests
``subjects.due_report.read_due_report``, the definitions the metrics and the service's
daily reminder use, so the dashboard never tells another story than they do.

Days are UTC days, like every time pbx-bridge shows. The consent rate is granted out of
asked: a caller who pressed 1, of those who answered the disclosure (granted, declined,
withdrew) or let it time out, on routes whose basis is consent; calls where nobody was
asked for consent (notice-only routes, legal obligation, and legitimate-interest or
contract routes, whose callers may only object) and callers who hung up before answering
are not in it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import String, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from pbx_bridge.calls.models import Call, Consent
from pbx_bridge.config import LegalBasis
from pbx_bridge.flow.policy import ConsentOutcome
from pbx_bridge.subjects.due_report import read_due_report
from storage.backlog import read_backlog
from storage.models import CopyStatus, RecordingStatus

DEFAULT_DAYS = 30
MAX_DAYS = 366
ASKED = (ConsentOutcome.GRANTED, ConsentOutcome.DECLINED, ConsentOutcome.TIMEOUT,
         ConsentOutcome.WITHDRAWN)


class utc_day(FunctionElement[str]):
    """``YYYY-MM-DD`` of a UTC timestamp column, on SQLite and PostgreSQL."""

    type = String()
    inherit_cache = True


@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    # Stored as "YYYY-MM-DD HH:MM:SS.ffffff" in UTC (storage.models.UTCDateTime).
    return f"substr({compiler.process(element.clauses, **kw)}, 1, 10)"


@compiles(utc_day, "postgresql")
def _utc_day_postgres(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"to_char(({column}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


@dataclass(frozen=True)
class ConsentCount:
    calls: int = 0
    asked: int = 0
    granted: int = 0

    @property
    def consent_rate(self) -> float | None:
        """Granted out of asked; None when nobody was asked (no rate, not 0 %)."""
        return None if self.asked == 0 else self.granted / self.asked

    def __add__(self, other: ConsentCount) -> ConsentCount:
        return ConsentCount(self.calls + other.calls, self.asked + other.asked,
                            self.granted + other.granted)


@dataclass(frozen=True)
class DayCount:
    day: date
    count: ConsentCount


@dataclass(frozen=True)
class RouteCount:
    did: str
    count: ConsentCount


@dataclass(frozen=True)
class CallStats:
    days: list[DayCount]  # every day of the window, oldest first, empty days as 0
    routes: list[RouteCount]  # the window's DIDs, most calls first
    today: ConsentCount
    window: ConsentCount


@dataclass(frozen=True)
class StorageStats:
    recordings_stored: int
    copies_pending: int
    copies_dead: int
    # backend -> (pending, dead), only backends with either
    by_backend: dict[str, tuple[int, int]]


@dataclass(frozen=True)
class DsarStats:
    overdue: list[str]  # references, oldest due first
    due_soon: list[str]


@dataclass(frozen=True)
class Dashboard:
    calls: CallStats
    storage: StorageStats
    dsars: DsarStats


def _window(now: datetime, days: int) -> tuple[date, datetime, datetime]:
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days: give 1 to {MAX_DAYS}, got {days}")
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    return first, start, start + timedelta(days=days)


async def call_stats(
    session: AsyncSession,
    *,
    now: datetime,
    days: int = DEFAULT_DAYS,
    extensions: Collection[str] | None = None,
) -> CallStats:
    """Calls and consent over the last ``days`` UTC days, today included.

    ``extensions``: a supervisor's scope (None: every call; empty: none), in the SQL.
    """
    first, start, end = _window(now, days)
    day = utc_day(Call.started_at)
    # Only consent routes ask for consent (a legitimate-interest caller's 1 before this
    # was told apart was stored as "granted": it is no consent either).
    on_consent = Call.legal_basis == LegalBasis.CONSENT.value
    asked = case((and_(on_consent, Consent.decision.in_([o.value for o in ASKED])), 1),
                 else_=0)
    granted = case((and_(on_consent, Consent.decision == ConsentOutcome.GRANTED.value), 1),
                   else_=0)
    query = (
        select(day, Call.did, func.count(Call.id), func.sum(asked), func.sum(granted))
        .select_from(Call)
        .outerjoin(Consent, Consent.call_id == Call.id)
        .where(Call.started_at >= start, Call.started_at < end)
        .group_by(day, Call.did)
    )
    if extensions is not None:
        query = query.where(Call.extension.in_(sorted(extensions)))
    per_day: dict[str, ConsentCount] = {}
    per_route: dict[str, ConsentCount] = {}
    for day_key, did, calls, asked_n, granted_n in await session.execute(query):
        count = ConsentCount(int(calls), int(asked_n or 0), int(granted_n or 0))
        per_day[day_key] = per_day.get(day_key, ConsentCount()) + count
        per_route[did] = per_route.get(did, ConsentCount()) + count
    window = [first + timedelta(days=i) for i in range(days)]
    day_counts = [DayCount(d, per_day.get(d.isoformat(), ConsentCount())) for d in window]
    routes = sorted((RouteCount(did, c) for did, c in per_route.items()),
                    key=lambda r: (-r.count.calls, r.did))
    total = sum((d.count for d in day_counts), ConsentCount())
    return CallStats(day_counts, routes, day_counts[-1].count, total)


async def storage_stats(session: AsyncSession, *, now: datetime) -> StorageStats:
    backlog = await read_backlog(session, now)
    by_backend: dict[str, tuple[int, int]] = {}
    for (backend, status), count in backlog.copies.items():
        pending, dead = by_backend.get(backend, (0, 0))
        if status == CopyStatus.PENDING.value:
            pending += count
        elif status == CopyStatus.DEAD.value:
            dead += count
        by_backend[backend] = (pending, dead)
    return StorageStats(
        recordings_stored=backlog.recordings.get(RecordingStatus.STORED.value, 0),
        copies_pending=sum(p for p, _ in by_backend.values()),
        copies_dead=sum(d for _, d in by_backend.values()),
        by_backend=dict(sorted(by_backend.items())),
    )


async def dsar_stats(session: AsyncSession, *, now: datetime, soon_days: int) -> DsarStats:
    """Also the badge every console page shows: two short lists of references."""
    report = await read_due_report(session, now=now, soon_days=soon_days)
    return DsarStats(report.overdue, report.due_soon)


async def dashboard(
    session: AsyncSession,
    *,
    now: datetime,
    soon_days: int,
    days: int = DEFAULT_DAYS,
    extensions: Collection[str] | None = None,
) -> Dashboard:
    return Dashboard(
        await call_stats(session, now=now, days=days, extensions=extensions),
        await storage_stats(session, now=now),
        await dsar_stats(session, now=now, soon_days=soon_days),
    )
