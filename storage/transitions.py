"""The one way a recording's status changes: compare-and-set, committed at once.

Every step of the pipeline and of its intake moves a row only from the statuses it
expects, so two writers (a task and a resume, a retry and a late event) can never both
win the same transition, and the loser learns it lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, update
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
    async with sessions() as session:
        result = await session.execute(
            update(Recording)
            .where(
                Recording.id == recording_id,
                Recording.status.in_([s.value for s in expected]),
            )
            .values(status=to.value, **values)
        )
        won = cast(CursorResult[Any], result).rowcount == 1
        if audit is not None and won:
            await record_event(session, actor="service", action=f"recording.{to.value}",
                               target=f"recording:{recording_id}", details=audit)
        await session.commit()
    return won


__all__ = ["move_status"]
