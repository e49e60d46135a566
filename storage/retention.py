"""Recordings leave when their retention ends, unless a legal hold keeps them.

``purge_expired`` is the whole policy: everything past ``retain_until`` that is not on hold
and no longer owned by the pipeline is deleted through the one ``RecordingDeleter``, and
every deletion left unfinished by an earlier run (a backend was down) is resumed. It works
in batches with keyset pagination, so memory stays bounded however much has expired.
A retention class of 0 days gives ``retain_until`` = the call's end: such recordings go
as soon as they are stored (``purge_recording_if_expired``), their metadata stays.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, Select, func, or_, select, text, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from storage.audit_trail import record_event
from storage.deletion import (
    DELETABLE,
    RETENTION_REASON,
    DeletionOutcome,
    PendingPlace,
    RecordingDeleter,
)
from storage.errors import RecordingNotFound, StorageError
from storage.models import CopyStatus, Recording, RecordingCopy, RecordingStatus, utcnow
from storage.periodic import JobRunner, NextRun, Sleep
from storage.progress import SILENT, Progress

log = logging.getLogger(__name__)

DEFAULT_BATCH = 500
DEFAULT_INTERVAL_S = 300.0
# A failed run (the database away) is tried again this soon, not a whole interval later.
RETRY_S = 60.0
# Reports list at most this many pending deletions in detail (the count is always exact).
DETAIL_LIMIT = 1000

Clock = Callable[[], datetime]


class HoldError(StorageError):
    """A hold or release that cannot be applied; the message says why."""


@dataclass(frozen=True)
class PendingDeletion:
    recording_id: str
    places: tuple[PendingPlace, ...]


@dataclass(frozen=True)
class PurgeCandidate:
    """What a dry run shows: one recording that would be deleted, and where it is kept."""

    recording_id: str
    call_id: str
    kind: str
    status: str
    retain_until: datetime | None
    where: tuple[str, ...]  # "backend:key" per copy not yet deleted


@dataclass
class PurgeReport:
    as_of: datetime
    dry_run: bool
    deleted: int = 0
    still_pending_count: int = 0
    still_pending: list[PendingDeletion] = field(default_factory=list)  # first DETAIL_LIMIT
    skipped_on_hold: list[str] = field(default_factory=list)
    would_delete: list[PurgeCandidate] = field(default_factory=list)

    def _count(self, outcomes: list[DeletionOutcome]) -> None:
        for outcome in outcomes:
            if outcome.done:
                self.deleted += 1
                continue
            self.still_pending_count += 1
            if len(self.still_pending) < DETAIL_LIMIT:
                self.still_pending.append(PendingDeletion(outcome.recording_id, outcome.pending))


def _expired_of(status: RecordingStatus, now: datetime) -> list[ColumnElement[bool]]:
    """One status at a time, so the planner steps along ``ix_recordings_status_retain_until``
    (status, retain_until): asked for every deletable status at once it walks
    ``ix_recordings_retain_until`` past every deleted recording (they keep their
    retain_until, all of it in the past) before the first expired live one.
    """
    return [
        Recording.status == status.value,
        Recording.retain_until.is_not(None),
        Recording.retain_until <= now,
    ]


async def _refresh_sqlite_statistics(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Without statistics SQLite may page expired rows through the status index alone and
    sort a status's whole backlog for every page (quadratic in a large purge). PostgreSQL's
    autovacuum keeps its own statistics.
    """
    async with sessions() as session:
        connection = await session.connection()
        if connection.dialect.name == "sqlite":
            await session.execute(text("ANALYZE recordings"))
            await session.commit()


def expired_page_query(
    now: datetime, after: tuple[datetime, str] | None, batch: int
) -> Select[Recording]:
    """The next ``batch`` expired recordings not on hold, oldest ``retain_until`` first
    (then id), after the keyset ``after``: the first ``batch`` of each deletable status,
    merged. Each part is a range of ``ix_recordings_status_retain_until``.
    """
    parts = []
    for status in DELETABLE:
        part = select(Recording).where(*_expired_of(status, now), Recording.hold_reason.is_(None))
        if after is not None:
            last_until, last_id = after
            # The lower bound alone is an index range; the OR only settles the ties.
            part = part.where(
                Recording.retain_until >= last_until,
                or_(Recording.retain_until > last_until, Recording.id > last_id),
            )
        part = part.order_by(Recording.retain_until, Recording.id).limit(batch)
        parts.append(select(part.subquery()))
    merged = union_all(*parts).subquery()
    page = aliased(Recording, merged)
    return select(page).order_by(merged.c.retain_until, merged.c.id).limit(batch)


async def _expired_page(
    session: AsyncSession,
    now: datetime,
    after: tuple[datetime, str] | None,
    batch: int,
) -> list[Recording]:
    return list((await session.scalars(expired_page_query(now, after, batch))).all())


def deleting_page_query(after: str | None, batch: int) -> Select[Recording]:
    """The next ``batch`` unfinished deletions by id: a range of ``ix_recordings_status_id``
    (without it SQLite walks the primary key past every deleted recording).
    """
    query = select(Recording).where(Recording.status == RecordingStatus.DELETING.value)
    if after is not None:
        query = query.where(Recording.id > after)
    return query.order_by(Recording.id).limit(batch)


async def _deleting_page(
    session: AsyncSession, after: str | None, batch: int
) -> list[Recording]:
    return list((await session.scalars(deleting_page_query(after, batch))).all())


async def _where(session: AsyncSession, ids: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {rid: [] for rid in ids}
    rows = await session.execute(
        select(RecordingCopy.recording_id, RecordingCopy.backend, RecordingCopy.key)
        .where(
            RecordingCopy.recording_id.in_(ids),
            RecordingCopy.status != CopyStatus.DELETED.value,
        )
        .order_by(RecordingCopy.backend)
    )
    for rid, backend, key in rows.all():
        found[rid].append(f"{backend}:{key}")
    return found


def _candidates(rows: list[Recording], where: dict[str, list[str]]) -> list[PurgeCandidate]:
    return [
        PurgeCandidate(
            row.id, row.call_id, row.kind, row.status, row.retain_until, tuple(where[row.id])
        )
        for row in rows
    ]


async def purge_expired(
    sessions: async_sessionmaker[AsyncSession],
    deleter: RecordingDeleter,
    *,
    now: datetime,
    dry_run: bool = False,
    batch: int = DEFAULT_BATCH,
    progress: Progress = SILENT,
) -> PurgeReport:
    """Delete what expired by ``now`` (or, with ``dry_run``, only say what would go)."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    report = PurgeReport(as_of=now, dry_run=dry_run)
    await _refresh_sqlite_statistics(sessions)
    if progress is not SILENT:  # the service's purger shows nobody: no counting for it
        progress.start(await _count_due(sessions, now))

    # First the deletions an earlier run (or a crash) left unfinished.
    after_id: str | None = None
    while True:
        async with sessions() as session:
            rows = await _deleting_page(session, after_id, batch)
            where = await _where(session, [r.id for r in rows]) if dry_run and rows else {}
        if not rows:
            break
        after_id = rows[-1].id
        if dry_run:
            report.would_delete.extend(_candidates(rows, where))
        else:
            report._count(await deleter.finish_many([r.id for r in rows]))
        progress.advance(len(rows))

    after: tuple[datetime, str] | None = None
    while True:
        async with sessions() as session:
            rows = await _expired_page(session, now, after, batch)
            where = await _where(session, [r.id for r in rows]) if dry_run and rows else {}
        if not rows:
            break
        last = rows[-1]
        assert last.retain_until is not None  # selected by retain_until <= now
        after = (last.retain_until, last.id)
        if dry_run:
            report.would_delete.extend(_candidates(rows, where))
        else:
            claimed = await deleter.claim(
                [r.id for r in rows], reason=RETENTION_REASON, actor="retention", expired_by=now
            )
            if claimed:
                report._count(await deleter.finish_many(claimed))
        progress.advance(len(rows))

    async with sessions() as session:
        report.skipped_on_hold = list((await session.scalars(held_query(now))).all())
    if not dry_run and (report.deleted or report.still_pending_count):
        log.info(
            "purge as of %s: %d deleted, %d pending, %d on hold",
            now.isoformat(),
            report.deleted,
            report.still_pending_count,
            len(report.skipped_on_hold),
        )
    return report


async def purge_recording_if_expired(
    sessions: async_sessionmaker[AsyncSession],
    deleter: RecordingDeleter,
    recording_id: str,
    *,
    now: datetime,
) -> DeletionOutcome | None:
    """For the pipeline, right after ``stored``: a 0-day recording goes at once.

    Returns None when the recording is not due (or on hold, or not deletable yet).
    """
    claimed = await deleter.claim(
        [recording_id], reason=RETENTION_REASON, actor="retention", expired_by=now
    )
    if not claimed:
        return None
    outcomes = await deleter.finish_many(claimed)
    return outcomes[0] if outcomes else None


# -- legal hold ---------------------------------------------------------------------------

# A hold reason is typed by an admin and may quote a caller's number; the audit trail,
# which can never be erased, keeps only its first and last digits.
_DIGIT_RUN = re.compile(r"\+?\d[\d ]{6,}\d")


def _masked_digits(text: str) -> str:
    def mask(match: re.Match[str]) -> str:
        digits = match.group().replace(" ", "")
        return f"{digits[:4]}***{digits[-4:]}"

    return _DIGIT_RUN.sub(mask, text)


async def hold(
    sessions: async_sessionmaker[AsyncSession],
    recording_id: str,
    reason: str,
    actor: str | None = None,
) -> Recording:
    """Keep the recording past its retention until released (a court order, a dispute)."""
    if not reason.strip():
        raise HoldError("a legal hold needs a reason")
    async with sessions() as session:
        row = await session.get(Recording, recording_id)
        if row is None:
            raise RecordingNotFound(f"no recording {recording_id}")
        if row.status in (RecordingStatus.DELETED, RecordingStatus.DELETING):
            when = f" on {row.deleted_at:%Y-%m-%d}" if row.deleted_at else ""
            raise HoldError(
                f"recording {recording_id} cannot be held: it is {row.status}{when} "
                f"(reason: {row.delete_reason or 'unknown'})"
            )
        if row.hold_reason is not None:
            raise HoldError(
                f"recording {recording_id} is already on hold since "
                f"{row.held_at:%Y-%m-%d %H:%M} ({row.hold_reason})"
            )
        moved = await session.execute(
            update(Recording)
            .where(
                Recording.id == recording_id,
                Recording.status.not_in(
                    [RecordingStatus.DELETING.value, RecordingStatus.DELETED.value]
                ),
                Recording.hold_reason.is_(None),
            )
            .values(hold_reason=reason.strip(), held_at=utcnow(), held_by=actor)
            .returning(Recording.id)
        )
        if moved.first() is None:
            raise HoldError(f"recording {recording_id} changed meanwhile; try again")
        await record_event(
            session,
            actor=actor or "unknown",
            action="recording.held",
            target=f"recording:{recording_id}",
            details={"reason": _masked_digits(reason.strip())},
        )
        await session.commit()
        await session.refresh(row)
    log.info("recording %s put on legal hold by %s", recording_id, actor or "unknown")
    return row


async def release(
    sessions: async_sessionmaker[AsyncSession],
    recording_id: str,
    actor: str | None = None,
) -> Recording:
    """End a legal hold; the next purge deletes the recording if its retention has ended."""
    async with sessions() as session:
        row = await session.get(Recording, recording_id)
        if row is None:
            raise RecordingNotFound(f"no recording {recording_id}")
        if row.hold_reason is None:
            raise HoldError(f"recording {recording_id} is not on hold")
        held_since = row.held_at
        row.hold_reason = None
        row.held_at = None
        await record_event(
            session,
            actor=actor or "unknown",
            action="recording.released",
            target=f"recording:{recording_id}",
            details={"held_since": held_since},
        )
        await session.commit()
    log.info("recording %s released from legal hold by %s", recording_id, actor or "unknown")
    return row


# -- the scheduler ---------------------------------------------------------------------


class Purger:
    """Runs ``purge_expired`` once at start and then every ``interval_s``, in the service."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        deleter: RecordingDeleter,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        now: Clock = utcnow,
        batch: int = DEFAULT_BATCH,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._sessions = sessions
        self._deleter = deleter
        self._now = now
        self._batch = batch
        self._lock = asyncio.Lock()
        self._runner = JobRunner(
            "retention purge", "purge", self._scheduled_run, interval_s=interval_s,
            retry=min(interval_s, RETRY_S), sleep=sleep,
        )
        self.runs = 0
        self.last_report: PurgeReport | None = None

    @property
    def last_error(self) -> str | None:
        """Why the last scheduled run failed; None once one succeeds."""
        return self._runner.last_error

    async def __aenter__(self) -> Purger:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self._runner.start()

    async def stop(self) -> None:
        await self._runner.stop()

    def wake(self) -> None:
        """Run again now instead of waiting for the interval (e.g. after a config change)."""
        self._runner.wake()

    async def run_once(self) -> PurgeReport:
        async with self._lock:
            report = await purge_expired(
                self._sessions, self._deleter, now=self._now(), batch=self._batch
            )
            self.runs += 1
            self.last_report = report
            return report

    async def purge_recording_if_expired(self, recording_id: str) -> DeletionOutcome | None:
        return await purge_recording_if_expired(
            self._sessions, self._deleter, recording_id, now=self._now()
        )

    async def _scheduled_run(self) -> NextRun:
        await self.run_once()
        return None


async def count_expired(sessions: async_sessionmaker[AsyncSession], now: datetime) -> int:
    """How many recordings a purge at ``now`` would delete (holds excluded)."""
    async with sessions() as session:
        total = await session.scalar(count_expired_query(now))
    return int(total or 0)


def count_expired_query(now: datetime) -> Select[int]:
    """The sum of one count per deletable status, each a range of the status index."""
    counts = [
        select(func.count())
        .select_from(Recording)
        .where(*_expired_of(status, now), Recording.hold_reason.is_(None))
        .scalar_subquery()
        for status in DELETABLE
    ]
    return select(sum(counts[1:], counts[0]))


def held_query(now: datetime) -> Select[str]:
    """The expired recordings a legal hold keeps, by id; one status at a time as well."""
    merged = union_all(
        *(
            select(Recording.id).where(
                *_expired_of(status, now), Recording.hold_reason.is_not(None)
            )
            for status in DELETABLE
        )
    ).subquery()
    return select(merged.c.id).order_by(merged.c.id)


async def _count_due(sessions: async_sessionmaker[AsyncSession], now: datetime) -> int:
    """What a purge will walk: unfinished deletions, then the expired (for its progress)."""
    async with sessions() as session:
        unfinished = await session.scalar(
            select(func.count())
            .select_from(Recording)
            .where(Recording.status == RecordingStatus.DELETING.value)
        )
    return int(unfinished or 0) + await count_expired(sessions, now)
