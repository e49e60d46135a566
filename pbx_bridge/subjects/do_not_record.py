"""The do-not-record list: subjects whose later calls are connected without recording.

A withdrawal of consent or an upheld objection looks forward as well as back: deleting
the old recordings is not enough if the next call is recorded again. The list holds only
subject keys (never a number), so it survives an erasure of the subject and still
protects them. The call flow consults it for every caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from pbx_bridge.calls.models import DoNotRecord
from storage.audit_trail import record_event


class ListReason(StrEnum):
    WITHDRAW = "withdraw"
    OBJECT = "object"


@dataclass(frozen=True)
class Listing:
    """The subject's entry, and whether this call put it there."""

    subject_key: str
    reason: str
    request_id: str | None
    added_by: str
    added_at: datetime
    added_now: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "reason": self.reason,
            "request_id": self.request_id,
            "added_by": self.added_by,
            "added_at": self.added_at.isoformat(),
            "added_now": self.added_now,
        }


async def is_listed(session: AsyncSession, subject_key: str | None) -> bool:
    if subject_key is None:
        return False
    return await session.get(DoNotRecord, subject_key) is not None


async def put_on_list(
    session: AsyncSession,
    subject_key: str,
    *,
    reason: ListReason,
    request_id: str | None,
    actor: str,
    now: datetime,
) -> Listing:
    """Add the subject (in the caller's transaction, audited); an existing entry stays as it is.

    The first entry wins: its reason and request are the ones that put the subject on
    the list, and a later withdrawal of an objector changes nothing for their calls.
    """
    existing = await session.get(DoNotRecord, subject_key)
    if existing is not None:
        return Listing(
            subject_key,
            existing.reason,
            existing.request_id,
            existing.added_by,
            existing.added_at,
            added_now=False,
        )
    session.add(
        DoNotRecord(
            subject_key=subject_key,
            reason=reason.value,
            request_id=request_id,
            added_by=actor,
            added_at=now,
        )
    )
    await session.flush()
    await record_event(
        session,
        actor=actor,
        action="subject.do_not_record_added",
        target=f"subject:{subject_key}",
        details={"reason": reason.value, "request_id": request_id},
    )
    return Listing(subject_key, reason.value, request_id, actor, now, added_now=True)
