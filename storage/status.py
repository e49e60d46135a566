"""What an operator asks of the pipeline: how far along is everything, and what gave up.

Plain queries over the rows, so `pbx-bridge storage status` and `storage retry` work
whether or not the service is running; a running service's sweeper notices retried
copies within its sweep interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.audit import AUDIT_PREFIX
from storage.models import CopyStatus, Recording, RecordingCopy, RecordingStatus, utcnow


@dataclass(frozen=True)
class DeadCopy:
    recording_id: str
    backend: str
    attempts: int
    last_error: str | None


@dataclass(frozen=True)
class StorageStatus:
    recordings: dict[str, int]  # recording status -> count
    copies: dict[str, dict[str, int]]  # backend -> copy status -> count
    dead: list[DeadCopy] = field(default_factory=list)
    oldest_pending: datetime | None = None  # created_at of the oldest pending copy
    # Pending copies an audit found damaged on their backend and queued for re-upload.
    audit_repairs: int = 0

    @property
    def healthy(self) -> bool:
        return not self.dead and self.recordings.get("failed", 0) == 0

    def to_json(self) -> dict[str, object]:
        """``pbx-bridge storage status --json``'s document (the console shows the same)."""
        return {
            "recordings": self.recordings,
            "copies": self.copies,
            "dead": [d.__dict__ for d in self.dead],
            "oldest_pending": self.oldest_pending.isoformat() if self.oldest_pending else None,
            "audit_repairs": self.audit_repairs,
            "healthy": self.healthy,
        }


async def storage_status(
    sessions: async_sessionmaker[AsyncSession], *, dead_limit: int = 100
) -> StorageStatus:
    async with sessions() as session:
        recordings = {
            status: count
            for status, count in await session.execute(
                select(Recording.status, func.count()).group_by(Recording.status)
            )
        }
        copies: dict[str, dict[str, int]] = {}
        for backend, status, count in await session.execute(
            select(RecordingCopy.backend, RecordingCopy.status, func.count()).group_by(
                RecordingCopy.backend, RecordingCopy.status
            )
        ):
            copies.setdefault(backend, {})[status] = count
        dead = [
            DeadCopy(c.recording_id, c.backend, c.attempts, c.last_error)
            for c in await session.scalars(
                select(RecordingCopy)
                .where(RecordingCopy.status == CopyStatus.DEAD)
                .order_by(RecordingCopy.created_at)
                .limit(dead_limit)
            )
        ]
        oldest = await session.scalar(
            select(func.min(RecordingCopy.created_at)).where(
                RecordingCopy.status == CopyStatus.PENDING
            )
        )
        audit_repairs = await session.scalar(
            select(func.count()).where(
                RecordingCopy.status == CopyStatus.PENDING,
                RecordingCopy.last_error.like(AUDIT_PREFIX + "%"),
            )
        )
    return StorageStatus(recordings, copies, dead, oldest, int(audit_repairs or 0))


async def retry_dead(
    sessions: async_sessionmaker[AsyncSession],
    *,
    recording_id: str | None = None,
    backend: str | None = None,
) -> int:
    """Give copies that gave up uploading a fresh set of attempts, due now; returns how
    many. Copies an audit dead-lettered on a stored recording are not theirs to revive
    (no upload runs for a stored recording): ``storage.audit.recheck_dead_copies`` is."""
    uploading = select(Recording.id).where(Recording.status == RecordingStatus.PREPARED.value)
    statement = (
        update(RecordingCopy)
        .where(RecordingCopy.status == CopyStatus.DEAD, RecordingCopy.recording_id.in_(uploading))
        .values(status=CopyStatus.PENDING.value, attempts=0, next_attempt_at=utcnow())
    )
    if recording_id is not None:
        statement = statement.where(RecordingCopy.recording_id == recording_id)
    if backend is not None:
        statement = statement.where(RecordingCopy.backend == backend)
    async with sessions() as session:
        result = await session.execute(statement)
        await session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]
