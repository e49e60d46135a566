"""One call as a principal may see it (the call page and ``GET /api/v1/calls/{id}``), and
the checks before a recording's metadata or audio is given out.

The order of the checks is the same everywhere: the role first (an admin or auditor is
refused before anything about the call is read), then the row (unknown: not found), then
the call's extension against the principal's (a supervisor's other extensions: refused).
So a supervisor learns nothing about another extension's call but that the id exists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from pbx_bridge.calls.history import CallView, call_views
from pbx_bridge.calls.models import Call
from pbx_bridge.calls.pauses import PauseSpan, pauses_of
from pbx_bridge.web.accounts import Grant, Principal
from pbx_bridge.web.permissions import (
    CALLS_READ,
    NUMBERS_UNMASK,
    RECORDINGS_LISTEN,
    RECORDINGS_SHARE,
)
from pbx_bridge.web.viewer import Forbidden
from pbx_bridge.web.web_state import WebState
from storage.audit_trail import record_event
from storage.models import AuditEntry, Recording

# The newest entries about the call and its recordings shown with it.
AUDIT_LIMIT = 200


class CallNotFound(LookupError):
    """No call (or recording) with that id."""


@dataclass(frozen=True)
class Hold:
    recording_id: str
    at: datetime | None
    by: str | None
    reason: str | None  # None unless the viewer may see it (it may name the subject)


@dataclass(frozen=True)
class AuditLine:
    seq: int
    at: datetime
    actor: str
    action: str
    target: str
    outcome: str
    details: dict[str, object]


@dataclass(frozen=True)
class CallRecord:
    call: CallView  # masked unless ``unmasked``
    unmasked: bool
    may_listen: bool
    may_share: bool
    holds: dict[str, Hold]
    audit: list[AuditLine]
    # Each recording's PCI pauses (calls/pauses.py); recordings without one are absent.
    pauses: dict[str, list[PauseSpan]] = field(default_factory=dict)


def actor_of(principal: Principal) -> str:
    """The audit actor: the users module's (``user:NAME`` or ``token:ID(NAME)``)."""
    actor = getattr(principal, "actor", None)
    return actor if isinstance(actor, str) else f"user:{principal.name}"


def covers(grant: Grant, extension: str | None) -> bool:
    """Does an allowed grant reach a call of this extension? (None: every call.)"""
    return grant.allowed and (grant.extensions is None or extension in grant.extensions)


async def _grant(state: WebState, principal: Principal, action: str) -> Grant:
    grant = await state.accounts.allowed(principal, action)
    if not grant.allowed:
        raise Forbidden
    return grant


async def audit_view(
    session: AsyncSession, principal: Principal, target: str, *, unmasked: bool, via: str
) -> None:
    """A call or a recording's facts were shown (``call.viewed``, ``recording.viewed``,
    as ``recordings show`` writes): who, whether the numbers were unmasked, where
    (``console`` or ``api``). The caller commits."""
    kind = target.split(":", 1)[0]
    await record_event(
        session, actor=actor_of(principal), action=f"{kind}.viewed", target=target,
        details={"unmasked": unmasked, "via": via},
    )


async def load_call(
    state: WebState, principal: Principal, call_id: str, *, with_audit: bool = True,
    via: str = "console",
) -> CallRecord:
    """The call for this principal, its view audited (``call.viewed``); ``CallNotFound``
    or ``Forbidden``."""
    reading = await _grant(state, principal, CALLS_READ)
    unmasked = (await state.accounts.allowed(principal, NUMBERS_UNMASK)).allowed
    listening = await state.accounts.allowed(principal, RECORDINGS_LISTEN)
    sharing = await state.accounts.allowed(principal, RECORDINGS_SHARE)
    async with state.sessions() as session:
        row = await session.get(Call, call_id)
        if row is None:
            raise CallNotFound(call_id)
        if not covers(reading, row.extension):
            raise Forbidden
        (view,) = await call_views(session, [row])
        recordings = (
            await session.scalars(select(Recording).where(Recording.call_id == call_id))
        ).all()
        holds = {
            r.id: Hold(r.id, r.held_at, r.held_by, r.hold_reason if unmasked else None)
            for r in recordings
            if r.hold_reason is not None
        }
        pauses = await pauses_of(session, [r.id for r in recordings])
        audit: list[AuditLine] = []
        if with_audit:
            targets = [f"call:{call_id}", *(f"recording:{r.id}" for r in recordings)]
            entries = await session.scalars(
                select(AuditEntry)
                .where(or_(AuditEntry.target.in_(targets)))
                .order_by(AuditEntry.seq.desc())
                .limit(AUDIT_LIMIT)
            )
            audit = [audit_line(entry) for entry in entries.all()]
        await audit_view(session, principal, f"call:{call_id}", unmasked=unmasked, via=via)
        await session.commit()
    return CallRecord(
        call=view if unmasked else view.masked(),
        unmasked=unmasked,
        may_listen=covers(listening, row.extension),
        may_share=covers(sharing, row.extension),
        holds=holds,
        audit=audit,
        pauses=pauses,
    )


def audit_line(entry: AuditEntry) -> AuditLine:
    try:
        details = json.loads(entry.details)
    except ValueError:
        details = {}
    return AuditLine(
        entry.seq, entry.at, entry.actor, entry.action, entry.target, entry.outcome,
        details if isinstance(details, dict) else {},
    )


async def recording_call(
    state: WebState, principal: Principal, recording_id: str, action: str
) -> tuple[Recording, Call | None]:
    """The recording and its call, when ``action`` on it is allowed to this principal;
    ``CallNotFound`` or ``Forbidden``. A recording without a call row (fed by another
    source) is only for principals not limited to some extensions."""
    grant = await _grant(state, principal, action)
    async with state.sessions() as session:
        recording = await session.get(Recording, recording_id)
        if recording is None:
            raise CallNotFound(recording_id)
        call = await session.get(Call, recording.call_id)
    if grant.extensions is not None and (call is None or call.extension not in grant.extensions):
        raise Forbidden
    return recording, call
