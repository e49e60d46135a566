"""The one way a recording's status changes: compare-and-set, committed at once.

Every step of the pipeline and of its intake moves a row only from the statuses it
expects, so two writers (a task and a resume, a retry and a late event) can never both
win the same transition, and the loser learns it lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.audit_trail import record_event
from storage.models import Recording, RecordingStatus


async def move_status(
    sessions: async_sessionmaker[AsyncSession],
    recording_id: str,
    expected: Sequence[RecordingStatus],
    to: RecordingStatus,
    audit: dict[str, object] | None = None,
    **values: Any,
) -> bool:
    """True if this call made the move. With ``audit``, a won transition is recorded as
    ``recording.<status>`` in the audit trail in the same transaction."""
    return await move_row(sessions, recording_id, expected, to, audit, **values) is not None


async def move_row(
    sessions: async_sessionmaker[AsyncSession],
    recording_id: str,
    expected: Sequence[RecordingStatus],
    to: RecordingStatus,
    audit: dict[str, object] | None = None,
    **values: Any,
) -> Recording | None:
    """``move_status``, handing back the row as the move left it (None: lost the move).

    ``UPDATE ... RETURNING`` (SQLite >= 3.35, PostgreSQL) reads the row in the statement
    that moves it, so the next step needs no ``SELECT``: the row it gets is the committed
    one, not one we assume.
    """
    async with sessions(expire_on_commit=False) as session:
        moved = (
            await session.scalars(
                update(Recording)
                .where(
                    Recording.id == recording_id,
                    Recording.status.in_([s.value for s in expected]),
                )
                .values(status=to.value, **values)
                .returning(Recording)
            )
        ).one_or_none()
        if audit is not None and moved is not None:
            await record_event(session, actor="service", action=f"recording.{to.value}",
                               target=f"recording:{recording_id}", details=audit)
        await session.commit()
    return moved


__all__ = ["move_row", "move_status"]
