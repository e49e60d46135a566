"""Four eyes: what one dpo asked that waits for a second dpo's approval.

With ``[web] four_eyes = true``, erasure and bulk export (running a DSAR of those types)
and un-hold (ending a recording's legal hold) are not done when asked: an approval row
says who asked, what and when, and stays ``pending`` until another dpo approves (then
the console carries it out, with the approver as the actor) or refuses it with a reason.
The rules of who may approve are the users module's (``permissions.approval``); this
module keeps the rows and their audit entries. Nothing here commits: each step and its
audit entry land in the caller's transaction together.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String, Text, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from pbx_bridge.subjects.reasons import given_reason
from storage.audit_trail import record_event
from storage.models import Base, UTCDateTime, new_id, utcnow

MAX_REASON = 1000


class ApprovalState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REFUSED = "refused"


class ApprovalAction(StrEnum):
    """What waits: the users module's action names."""

    DSAR_RUN = "dsar.run"
    RECORDINGS_RELEASE = "recordings.release"
    # An admin's change that widens someone's access to personal data
    # (pbx_bridge/users/personal_data_grants.py): ``user_name``, ``user_change``.
    USERS_GRANT = "users.grant"


class ApprovalNotFound(LookupError):
    """No approval with that id."""


class ApprovalStateError(ValueError):
    """The approval was decided already, or the same thing is already waiting."""


class Approval(Base):
    __tablename__ = "dsar_approvals"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    action: Mapped[str] = mapped_column(String(32))  # ApprovalAction
    # The request it belongs to (a run; an un-hold asked from the request's page).
    request_id: Mapped[str | None] = mapped_column(
        ForeignKey("dsar_requests.id"), nullable=True, index=True
    )
    recording_id: Mapped[str | None] = mapped_column(
        ForeignKey("recordings.id"), nullable=True
    )
    # What the asker gave with it (an objection's decision), shown to the approver.
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    # users.grant: the user the change is about, and the change (UserChange JSON).
    user_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_change: Mapped[str | None] = mapped_column(Text, nullable=True)
    requested_by: Mapped[str] = mapped_column(String(128))  # the audit actor
    requester_user_id: Mapped[str] = mapped_column(String(36))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    decided_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    refuse_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


def _target(approval: Approval) -> str:
    if approval.user_name is not None:
        return f"user:{approval.user_name}"
    if approval.recording_id is not None:
        return f"recording:{approval.recording_id}"
    return f"dsar:{approval.request_id}"


def _details(approval: Approval) -> dict[str, object]:
    return {
        "approval_id": approval.id,
        "action": approval.action,
        "request_id": approval.request_id,
        "recording_id": approval.recording_id,
        "requested_by": approval.requested_by,
        **({"user": approval.user_name, "change": approval.note}
           if approval.user_name is not None else {}),
    }


async def pending_for(
    session: AsyncSession,
    action: ApprovalAction,
    *,
    request_id: str | None = None,
    recording_id: str | None = None,
    user_name: str | None = None,
) -> Approval | None:
    query = select(Approval).where(
        Approval.action == action.value, Approval.state == ApprovalState.PENDING.value
    )
    if user_name is not None:
        query = query.where(Approval.user_name == user_name)
    elif recording_id is not None:
        query = query.where(Approval.recording_id == recording_id)
    else:
        query = query.where(Approval.request_id == request_id, Approval.recording_id.is_(None))
    return await session.scalar(query.limit(1))


async def was_approved(session: AsyncSession, request_id: str) -> bool:
    """A run of this request was approved before (an erasure left in progress by a backend
    that was down is finished without asking again)."""
    found = await session.scalar(
        select(Approval.id).where(
            Approval.action == ApprovalAction.DSAR_RUN.value,
            Approval.request_id == request_id,
            Approval.state == ApprovalState.APPROVED.value,
        ).limit(1)
    )
    return found is not None


async def request_approval(
    session: AsyncSession,
    action: ApprovalAction,
    *,
    actor: str,
    user_id: str,
    request_id: str | None = None,
    recording_id: str | None = None,
    note: str | None = None,
    user_name: str | None = None,
    user_change: str | None = None,
    now: datetime | None = None,
) -> Approval:
    """A pending approval; ``ApprovalStateError`` when the same thing is already waiting
    (for a user: any change of theirs, so two cannot be approved out of order)."""
    waiting = await pending_for(session, action, request_id=request_id,
                                recording_id=recording_id, user_name=user_name)
    if waiting is not None:
        raise ApprovalStateError(
            f"{action.value} is already waiting for approval {waiting.id}"
            f" (asked by {waiting.requested_by})"
        )
    at = now or utcnow()
    approval = Approval(
        id=new_id(), action=action.value, request_id=request_id, recording_id=recording_id,
        note=note, user_name=user_name, user_change=user_change, requested_by=actor,
        requester_user_id=user_id, requested_at=at, state=ApprovalState.PENDING.value,
    )
    session.add(approval)
    await session.flush()
    await record_event(
        session, actor=actor, action="approval.requested", target=_target(approval),
        details=_details(approval), at=at,
    )
    return approval


async def get_approval(session: AsyncSession, approval_id: str) -> Approval:
    approval = await session.get(Approval, approval_id)
    if approval is None:
        raise ApprovalNotFound(f"no approval {approval_id!r}")
    return approval


def _check_pending(approval: Approval) -> None:
    if approval.state != ApprovalState.PENDING.value:
        raise ApprovalStateError(
            f"approval {approval.id} was {approval.state} by {approval.decided_by}"
        )


async def approve(
    session: AsyncSession, approval: Approval, *, actor: str, now: datetime | None = None
) -> None:
    """``pending → approved`` (the caller has checked it is a second dpo, and then does
    what was asked, with ``actor`` as its actor)."""
    _check_pending(approval)
    at = now or utcnow()
    approval.state = ApprovalState.APPROVED.value
    approval.decided_by = actor
    approval.decided_at = at
    await session.flush()
    await record_event(
        session, actor=actor, action="approval.approved", target=_target(approval),
        details=_details(approval), at=at,
    )


async def refuse(
    session: AsyncSession,
    approval: Approval,
    *,
    actor: str,
    reason: str,
    now: datetime | None = None,
) -> None:
    """``pending → refused``: nothing is done; the reason is kept and audited."""
    why = given_reason(reason, ApprovalStateError, "a refusal needs a reason",
                       most=MAX_REASON)
    _check_pending(approval)
    at = now or utcnow()
    approval.state = ApprovalState.REFUSED.value
    approval.decided_by = actor
    approval.decided_at = at
    approval.refuse_reason = why
    await session.flush()
    details = _details(approval)
    details["reason_chars"] = len(why)  # the reason may name the subject: not in the trail
    await record_event(
        session, actor=actor, action="approval.refused", target=_target(approval),
        details=details, at=at,
    )


async def list_approvals(
    session: AsyncSession, *, state: ApprovalState | None = ApprovalState.PENDING,
    action: ApprovalAction | None = None,
) -> list[Approval]:
    """Oldest first (the one waiting longest on top)."""
    query = select(Approval)
    if state is not None:
        query = query.where(Approval.state == state.value)
    if action is not None:
        query = query.where(Approval.action == action.value)
    return list((await session.scalars(query.order_by(Approval.requested_at))).all())


async def count_pending(session: AsyncSession) -> int:
    total = await session.scalar(
        select(func.count()).select_from(Approval)
        .where(Approval.state == ApprovalState.PENDING.value)
    )
    return int(total or 0)
