"""Everything held about one subject, found through the subject key's indexes."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pbx_bridge.calls.models import Call, Consent, DataSubjectRequest
from storage.models import Recording, Tombstone


@dataclass
class SubjectHoldings:
    """Rows about one subject; recordings and tombstones through the subject's calls."""

    subject_key: str
    calls: list[Call] = field(default_factory=list)
    consents: list[Consent] = field(default_factory=list)
    recordings: list[Recording] = field(default_factory=list)
    tombstones: list[Tombstone] = field(default_factory=list)
    requests: list[DataSubjectRequest] = field(default_factory=list)

    @property
    def call_ids(self) -> list[str]:
        return [call.id for call in self.calls]


async def holdings_of(session: AsyncSession, subject_key: str) -> SubjectHoldings:
    """Calls (by ``caller_key``), their consents, recordings and tombstones, and requests."""
    held = SubjectHoldings(subject_key)
    held.calls = list(
        (
            await session.scalars(
                select(Call).where(Call.caller_key == subject_key).order_by(Call.started_at)
            )
        ).all()
    )
    call_ids = held.call_ids
    held.consents = list(
        (
            await session.scalars(
                select(Consent)
                .where(Consent.caller_key == subject_key)
                .order_by(Consent.decided_at)
            )
        ).all()
    )
    if call_ids:
        for start in range(0, len(call_ids), 500):
            batch = call_ids[start : start + 500]
            held.recordings.extend(
                (
                    await session.scalars(
                        select(Recording)
                        .where(Recording.call_id.in_(batch))
                        .order_by(Recording.started_at)
                    )
                ).all()
            )
            held.tombstones.extend(
                (
                    await session.scalars(
                        select(Tombstone)
                        .where(Tombstone.call_id.in_(batch))
                        .order_by(Tombstone.deleted_at)
                    )
                ).all()
            )
    held.requests = list(
        (
            await session.scalars(
                select(DataSubjectRequest)
                .where(DataSubjectRequest.subject_key == subject_key)
                .order_by(DataSubjectRequest.received_at)
            )
        ).all()
    )
    return held
