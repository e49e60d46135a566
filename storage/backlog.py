"""What is waiting in the pipeline and the purge, in a few cheap queries, for the metrics.

The service refreshes its gauges from these every few seconds, so each query must stay
fast on a table of millions of recordings that are mostly stored or long deleted: each
is answered from an index (``ix_recordings_status``, ``ix_recordings_status_retain_until``,
``ix_recording_copies_status``) and touches only the rows still waiting, except the
per-status count, which reads the status index alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.deletion import DELETABLE
from storage.models import CopyStatus, Recording, RecordingCopy, RecordingStatus

# Asterisk has finished these, and they are not yet stored on every backend.
UNSTORED = (RecordingStatus.FINISHED, RecordingStatus.SPOOLED, RecordingStatus.PREPARED)
# Copies an operator should see per backend: still to be made, or given up on.
WAITING_COPIES = (CopyStatus.PENDING, CopyStatus.DEAD)


@dataclass(frozen=True)
class Backlog:
    recordings: dict[str, int]  # status -> count, every status present (0 if none)
    copies: dict[tuple[str, str], int]  # (backend, pending|dead) -> count
    oldest_unstored_at: datetime | None  # when the oldest unstored recording finished
    oldest_overdue_until: datetime | None  # retain_until of the oldest not yet purged


async def read_backlog(session: AsyncSession, now: datetime) -> Backlog:
    recordings = {status.value: 0 for status in RecordingStatus}
    for status, count in await session.execute(
        select(Recording.status, func.count()).group_by(Recording.status)
    ):
        recordings[status] = count
    copies = {
        (backend, status): count
        for backend, status, count in await session.execute(
            select(RecordingCopy.backend, RecordingCopy.status, func.count())
            .where(RecordingCopy.status.in_([s.value for s in WAITING_COPIES]))
            .group_by(RecordingCopy.backend, RecordingCopy.status)
        )
    }
    oldest_unstored = await session.scalar(
        select(func.min(func.coalesce(Recording.finished_at, Recording.started_at))).where(
            Recording.status.in_([s.value for s in UNSTORED])
        )
    )
    return Backlog(recordings, copies, oldest_unstored, await _oldest_overdue(session, now))


async def _oldest_overdue(session: AsyncSession, now: datetime) -> datetime | None:
    """The earliest retain_until that has passed on a recording still not deleted.

    Asked one status at a time, so each answer is the first step along
    ``ix_recordings_status_retain_until``: the plain retain_until index would walk past
    every deleted recording (they keep their retain_until) before the first live one.
    Held recordings are kept on purpose, so they are not late.
    """
    overdue = []
    for status in (*DELETABLE, RecordingStatus.DELETING):
        until = await session.scalar(
            select(Recording.retain_until)
            .where(
                Recording.status == status.value,
                Recording.retain_until.is_not(None),
                Recording.retain_until <= now,
                Recording.hold_reason.is_(None),
            )
            .order_by(Recording.retain_until)
            .limit(1)
        )
        if until is not None:
            overdue.append(until)
    return min(overdue, default=None)
