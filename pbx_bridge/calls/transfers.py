"""Transfers as stored beside a call: who handed it to whom, when, and how it went.

One row per attempt, written once when the attempt is over (a call nobody transfers
costs no statement here); a completed one is also in the audit trail as
``call.transferred``, with the transferring agent (or API user) as actor. Read by
`calls show`, `calls list --json`, the API and the call page, which list the extensions
that handled the call and the attempts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.calls.models import CallTransfer
from storage.audit_trail import record_event
from storage.models import new_id


class TransferMode(StrEnum):
    BLIND = "blind"  # the caller goes to the target; the agent leaves at once
    ATTENDED = "attended"  # the agent talks to the target first, the caller on hold


class TransferOutcome(StrEnum):
    COMPLETED = "completed"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    UNREACHABLE = "unreachable"
    CANCELLED = "cancelled"  # by the agent (*), or the target hung up while consulted
    REFUSED = "refused"  # no usable extension typed, or the one already on the call
    CALLER_LEFT = "caller-left"  # the caller hung up while it was under way


class RecordingEffect(StrEnum):
    """What the target extension's policy did to the call's recording."""

    CONTINUED = "continued"  # the same recording goes on, now with the new agent
    STOPPED = "stopped"  # a `never` (or `on-demand`) extension: it ended at the transfer
    STARTED = "started"  # nothing was recorded, the target records: a new recording
    NONE = "none"  # nothing recorded before or after


@dataclass(frozen=True)
class TransferAttempt:
    call_id: str
    mode: TransferMode
    from_extension: str
    to_extension: str
    requested_by: str
    requested_at: datetime
    ended_at: datetime
    outcome: TransferOutcome
    answered_at: datetime | None = None
    recording: RecordingEffect | None = None


async def store_transfer(
    sessions: async_sessionmaker[AsyncSession], attempt: TransferAttempt
) -> str:
    """The attempt's row, and for a completed one its audit entry, in one transaction."""
    transfer_id = new_id()
    async with sessions() as session:
        session.add(CallTransfer(
            id=transfer_id, call_id=attempt.call_id, mode=attempt.mode.value,
            from_extension=attempt.from_extension, to_extension=attempt.to_extension,
            requested_by=attempt.requested_by, requested_at=attempt.requested_at,
            answered_at=attempt.answered_at, ended_at=attempt.ended_at,
            outcome=attempt.outcome.value,
            recording=attempt.recording.value if attempt.recording else None,
        ))
        if attempt.outcome is TransferOutcome.COMPLETED:
            await record_event(
                session, actor=attempt.requested_by, action="call.transferred",
                target=f"call:{attempt.call_id}",
                details={
                    "transfer": transfer_id, "mode": attempt.mode.value,
                    "from": attempt.from_extension, "to": attempt.to_extension,
                    "recording": attempt.recording.value if attempt.recording else None,
                },
                at=attempt.ended_at,
            )
        await session.commit()
    return transfer_id


@dataclass(frozen=True)
class TransferView:
    mode: str
    from_extension: str
    to_extension: str
    requested_by: str
    requested_at: datetime
    answered_at: datetime | None
    ended_at: datetime
    outcome: str
    recording: str | None

    def to_json(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "from": self.from_extension,
            "to": self.to_extension,
            "requested_by": self.requested_by,
            "requested_at": _iso(self.requested_at),
            "answered_at": _iso(self.answered_at),
            "ended_at": _iso(self.ended_at),
            "outcome": self.outcome,
            "recording": self.recording,
        }


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def transfers_of(
    session: AsyncSession, call_ids: Sequence[str]
) -> dict[str, list[TransferView]]:
    """Each call's attempts in the order they were made (calls without any are absent)."""
    if not call_ids:
        return {}
    rows = (await session.scalars(
        select(CallTransfer)
        .where(CallTransfer.call_id.in_(list(call_ids)))
        .order_by(CallTransfer.call_id, CallTransfer.requested_at, CallTransfer.id)
    )).all()
    found: dict[str, list[TransferView]] = {}
    for row in rows:
        found.setdefault(row.call_id, []).append(transfer_view(row))
    return found


def transfer_view(row: CallTransfer) -> TransferView:
    return TransferView(
        row.mode, row.from_extension, row.to_extension, row.requested_by,
        row.requested_at, row.answered_at, row.ended_at, row.outcome, row.recording,
    )


def handled_by(
    first_extension: str | None,
    answered_at: datetime | None,
    ended_at: datetime | None,
    transfers: Sequence[TransferView],
) -> list[dict[str, object]]:
    """The extensions that talked with the caller, in turn, each from when to when.

    The first is the call's own extension from the answer; each completed transfer hands
    the call on when its target answered (an attended transfer: when the first agent let
    go, its ``ended_at``). Unanswered calls were handled by nobody.
    """
    if answered_at is None or first_extension is None:
        return []
    spans: list[dict[str, object]] = []
    current, since = first_extension, answered_at
    for transfer in transfers:
        if transfer.outcome != TransferOutcome.COMPLETED.value:
            continue
        handed = transfer.ended_at
        spans.append({"extension": current, "from": _iso(since), "until": _iso(handed)})
        current, since = transfer.to_extension, handed
    spans.append({"extension": current, "from": _iso(since), "until": _iso(ended_at)})
    return spans
