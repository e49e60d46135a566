"""PCI pauses as stored beside a conversation recording: each muted span's offsets into
the file, who paused and who (or what) resumed, each change audited.

Written only when an agent (or an API user) pauses: a call without a pause costs no
statement here. Read by `recordings show`, the API and the call page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.calls.models import RecordingPause
from storage.audit_trail import record_event
from storage.models import new_id

AUTO_RESUME_ACTOR = "auto"
CALL_END_ACTOR = "recording-end"


@dataclass(frozen=True)
class PauseSpan:
    """A pause as stored: offsets in seconds from the recording's first sample."""

    id: str
    recording_id: str
    start_s: float
    end_s: float | None
    started_at: datetime
    ended_at: datetime | None
    paused_by: str
    resumed_by: str | None


def offset_s(recording_started: datetime, moment: datetime) -> float:
    """Seconds into the recording; never negative (a pause asked as it started)."""
    return round(max(0.0, (moment - recording_started).total_seconds()), 3)


async def store_pause_start(
    sessions: async_sessionmaker[AsyncSession],
    *,
    recording_id: str,
    call_id: str,
    start_s: float,
    at: datetime,
    actor: str,
) -> str:
    """The pause's row and its audit entry, in one transaction; returns the pause id."""
    pause_id = new_id()
    async with sessions() as session:
        session.add(
            RecordingPause(
                id=pause_id, recording_id=recording_id, start_s=start_s, started_at=at,
                paused_by=actor,
            )
        )
        await record_event(
            session, actor=actor, action="recording.paused",
            target=f"recording:{recording_id}",
            details={"call": call_id, "pause": pause_id, "start_s": start_s}, at=at,
        )
        await session.commit()
    return pause_id


async def store_pause_end(
    sessions: async_sessionmaker[AsyncSession],
    *,
    pause_id: str,
    recording_id: str,
    call_id: str,
    end_s: float,
    at: datetime,
    actor: str,
) -> None:
    async with sessions() as session:
        await session.execute(
            update(RecordingPause)
            .where(RecordingPause.id == pause_id)
            .values(end_s=end_s, ended_at=at, resumed_by=actor)
        )
        await record_event(
            session, actor=actor, action="recording.resumed",
            target=f"recording:{recording_id}",
            details={"call": call_id, "pause": pause_id, "end_s": end_s}, at=at,
        )
        await session.commit()


async def pauses_of(session: AsyncSession, recording_ids: list[str]) -> dict[str, list[PauseSpan]]:
    """Each recording's pauses in order (recordings without any are absent)."""
    if not recording_ids:
        return {}
    rows = (
        await session.scalars(
            select(RecordingPause)
            .where(RecordingPause.recording_id.in_(recording_ids))
            .order_by(RecordingPause.recording_id, RecordingPause.start_s)
        )
    ).all()
    found: dict[str, list[PauseSpan]] = {}
    for row in rows:
        found.setdefault(row.recording_id, []).append(
            PauseSpan(row.id, row.recording_id, row.start_s, row.end_s, row.started_at,
                      row.ended_at, row.paused_by, row.resumed_by)
        )
    return found


def pause_json(span: PauseSpan) -> dict[str, object]:
    """A pause as `recordings show --json` and the API give it."""
    return {
        "start_s": span.start_s,
        "end_s": span.end_s,
        "started_at": span.started_at.isoformat(),
        "ended_at": span.ended_at.isoformat() if span.ended_at else None,
        "paused_by": span.paused_by,
        "resumed_by": span.resumed_by,
    }
