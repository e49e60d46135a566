"""The register of data-subject requests: received, due, handled, answered.

KVKK art. 13 and GDPR art. 12 give the controller 30 days to answer and make it prove
what it did, so every request gets a quotable reference, a due date fixed on receipt, a
status that only moves forward (``open → in-progress → done | rejected``) and an audit
entry for every step. Nothing here commits: each function works inside the caller's
transaction, so a step and its audit entry land together or not at all.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from pbx_bridge.calls.models import DataSubjectRequest
from pbx_bridge.subjects.index import SubjectIndex
from pbx_bridge.subjects.reasons import given_reason
from storage.audit_trail import record_event
from storage.models import new_id, utcnow


class RequestType(StrEnum):
    ACCESS = "access"
    EXPORT = "export"
    ERASURE = "erasure"
    ANONYMISE = "anonymise"
    WITHDRAW = "withdraw"
    OBJECT = "object"


class RequestChannel(StrEnum):
    PHONE = "phone"
    EMAIL = "email"
    WEB = "web"
    LETTER = "letter"
    KEYPRESS = "keypress"  # the caller pressed the withdrawal key at the disclosure


class RequestStatus(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in-progress"
    DONE = "done"
    REJECTED = "rejected"


class DueState(StrEnum):
    OVERDUE = "overdue"
    DUE_SOON = "due-soon"
    ON_TIME = "on-time"
    CLOSED = "closed"


class RequestNotFound(LookupError):
    """No request has this reference or id."""


class RequestStateError(ValueError):
    """The step is not allowed from the request's status (or lacks what it needs)."""


PENDING = (RequestStatus.OPEN.value, RequestStatus.IN_PROGRESS.value)
CLOSED = (RequestStatus.DONE.value, RequestStatus.REJECTED.value)
# Types whose answer removes the number: the register must not keep what was erased.
REDACTING = (RequestType.ERASURE.value, RequestType.ANONYMISE.value)
REFERENCE_PREFIX = "DSAR"
MAX_THEIR_REFERENCE = 64
# pg_advisory_xact_lock key for choosing references (any constant unique to this use).
_LOCK_KEY = 0x44534152  # "DSAR"


def _reference(year: int, number: int) -> str:
    return f"{REFERENCE_PREFIX}-{year}-{number:04d}"


async def _next_reference(session: AsyncSession, year: int) -> str:
    """One more than the year's highest; longer references sort after shorter ones."""
    prefix = f"{REFERENCE_PREFIX}-{year}-"
    last = await session.scalar(
        select(DataSubjectRequest.reference)
        .where(DataSubjectRequest.reference.like(f"{prefix}%"))
        .order_by(
            func.length(DataSubjectRequest.reference).desc(),
            DataSubjectRequest.reference.desc(),
        )
        .limit(1)
    )
    if last is None:
        return _reference(year, 1)
    try:
        return _reference(year, int(last.removeprefix(prefix)) + 1)
    except ValueError:  # a hand-made reference in the year's range: stay clear of it
        count = await session.scalar(
            select(func.count())
            .select_from(DataSubjectRequest)
            .where(DataSubjectRequest.reference.like(f"{prefix}%"))
        )
        return _reference(year, (count or 0) + 1)


async def _lock_references(session: AsyncSession) -> None:
    """Serialise the choice of the next reference among concurrent openers.

    Two openers (the CLI, and the service on a withdrawal keypress) must not both take
    the same number. PostgreSQL: a transaction-scoped advisory lock. SQLite: the row is
    inserted (under a placeholder reference) before the year's highest reference is read,
    and that insert holds the database's single write lock until the caller commits.
    Savepoints are no way out on SQLite: pysqlite commits a savepoint opened outside a
    transaction when it is released, which would commit behind the caller's back.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})


def _audit_details(request: DataSubjectRequest) -> dict[str, object]:
    # Never the number itself: the audit trail outlives erasure and cannot be redacted.
    return {
        "reference": request.reference,
        "type": request.type,
        "number": request.number_masked,
    }


async def open_request(
    session: AsyncSession,
    index: SubjectIndex,
    *,
    number: str,
    type: RequestType,
    channel: RequestChannel,
    actor: str,
    due_days: int,
    note: str | None = None,
    now: datetime | None = None,
    their_reference: str | None = None,
) -> DataSubjectRequest:
    """Register a request received ``now``; raises ``InvalidNumber`` for a bad number.

    ``their_reference``: the subject's own reference (their letter's), kept to quote back.
    """
    if due_days < 1:
        raise RequestStateError(f"due_days must be at least 1, not {due_days}")
    theirs = their_reference.strip() if their_reference is not None else ""
    if len(theirs) > MAX_THEIR_REFERENCE:
        raise RequestStateError(
            f"their reference must be at most {MAX_THEIR_REFERENCE} characters"
        )
    received = (now or utcnow()).astimezone(UTC)
    e164 = index.normalise(number)
    request_type = RequestType(type)
    request_channel = RequestChannel(channel)
    note_text = note.strip() if note is not None else None
    request = DataSubjectRequest(
        id=new_id(),
        # Placeholder until the reference is chosen under the lock below; never committed.
        reference="~" + uuid.uuid4().hex[:31],
        subject_key=index.key(e164),
        number=e164,
        number_masked=index.masked(e164),
        type=request_type.value,
        channel=request_channel.value,
        note=note_text or None,
        their_reference=theirs or None,
        status=RequestStatus.OPEN.value,
        received_at=received,
        due_at=received + timedelta(days=due_days),
        opened_by=actor,
        updated_at=received,
    )
    await _lock_references(session)
    session.add(request)
    await session.flush()
    request.reference = await _next_reference(session, received.year)
    await session.flush()
    details = _audit_details(request)
    details["channel"] = request.channel
    details["due_at"] = request.due_at.isoformat()
    await record_event(
        session,
        actor=actor,
        action="dsar.opened",
        target=f"dsar:{request.id}",
        details=details,
        at=received,
    )
    return request


async def get_request(session: AsyncSession, ref_or_id: str) -> DataSubjectRequest:
    """By reference (``DSAR-2026-0001``, any letter case) or by id."""
    wanted = ref_or_id.strip()
    if not wanted:
        raise RequestNotFound("no request reference given")
    request = await session.scalar(
        select(DataSubjectRequest).where(
            or_(
                DataSubjectRequest.reference == wanted.upper(),
                DataSubjectRequest.id == wanted.lower(),
            )
        )
    )
    if request is None:
        raise RequestNotFound(f"no data-subject request {wanted!r}")
    return request


async def list_requests(
    session: AsyncSession,
    *,
    status: RequestStatus | None = None,
    overdue_only: bool = False,
    due_within_days: int | None = None,
    now: datetime | None = None,
    type: RequestType | None = None,
) -> list[DataSubjectRequest]:
    """Oldest due first. ``overdue_only``: still pending past their due date;
    ``due_within_days``: still pending and due by then (overdue ones included)."""
    at = now or utcnow()
    query = select(DataSubjectRequest)
    if status is not None:
        query = query.where(DataSubjectRequest.status == RequestStatus(status).value)
    if type is not None:
        query = query.where(DataSubjectRequest.type == RequestType(type).value)
    if overdue_only or due_within_days is not None:
        query = query.where(DataSubjectRequest.status.in_(PENDING))
        limit = at if overdue_only else at + timedelta(days=due_within_days or 0)
        if overdue_only:
            query = query.where(DataSubjectRequest.due_at < limit)
        else:
            query = query.where(DataSubjectRequest.due_at <= limit)
    query = query.order_by(DataSubjectRequest.due_at, DataSubjectRequest.reference)
    return list((await session.scalars(query)).all())


def _describe(request: DataSubjectRequest) -> str:
    return f"request {request.reference} is {request.status}"


async def _handled(
    session: AsyncSession, request: DataSubjectRequest, actor: str, at: datetime, action: str
) -> None:
    """Who moved the request and when, and its audit entry (written last, as the audit
    trail asks: it takes the chain's lock)."""
    request.handled_by = actor
    request.handled_at = at
    request.updated_at = at
    await session.flush()
    await record_event(
        session,
        actor=actor,
        action=action,
        target=f"dsar:{request.id}",
        details=_audit_details(request),
        at=at,
    )


async def start(
    session: AsyncSession,
    request: DataSubjectRequest,
    *,
    actor: str,
    now: datetime | None = None,
) -> None:
    """``open → in-progress``; already in progress is fine (an action being re-run)."""
    if request.status == RequestStatus.IN_PROGRESS.value:
        return
    if request.status != RequestStatus.OPEN.value:
        raise RequestStateError(f"{_describe(request)}: it cannot be started again")
    at = now or utcnow()
    request.status = RequestStatus.IN_PROGRESS.value
    await _handled(session, request, actor, at, "dsar.started")


async def complete(
    session: AsyncSession,
    request: DataSubjectRequest,
    *,
    actor: str,
    result: Mapping[str, object],
    now: datetime | None = None,
) -> None:
    """``in-progress → done`` with what the action did; an erasure or anonymisation also
    clears the number from the register (its masked copy stays)."""
    if request.status != RequestStatus.IN_PROGRESS.value:
        hint = " (start it first)" if request.status == RequestStatus.OPEN.value else ""
        raise RequestStateError(f"{_describe(request)}: it cannot be completed{hint}")
    at = now or utcnow()
    request.status = RequestStatus.DONE.value
    request.result = json.dumps(dict(result), sort_keys=True, default=str, ensure_ascii=False)
    if request.type in REDACTING:
        request.number = None
    await _handled(session, request, actor, at, "dsar.done")


async def reject(
    session: AsyncSession,
    request: DataSubjectRequest,
    *,
    actor: str,
    reason: str,
    now: datetime | None = None,
) -> None:
    """``open | in-progress → rejected``; the reason is what the subject will be told."""
    why = given_reason(reason, RequestStateError,
                       f"request {request.reference}: a rejection needs a reason")
    if request.status not in PENDING:
        raise RequestStateError(f"{_describe(request)}: it cannot be rejected")
    at = now or utcnow()
    request.status = RequestStatus.REJECTED.value
    request.reject_reason = why
    await _handled(session, request, actor, at, "dsar.rejected")


def due_state(request: DataSubjectRequest, now: datetime, soon_days: int) -> str:
    """``overdue`` | ``due-soon`` (within ``soon_days``) | ``on-time`` | ``closed``."""
    if request.status in CLOSED:
        return DueState.CLOSED.value
    if request.due_at < now:
        return DueState.OVERDUE.value
    if request.due_at <= now + timedelta(days=soon_days):
        return DueState.DUE_SOON.value
    return DueState.ON_TIME.value


async def count_overdue(session: AsyncSession, now: datetime) -> int:
    """Requests still pending past their due date (the status and due_at indexes)."""
    total = await session.scalar(
        select(func.count())
        .select_from(DataSubjectRequest)
        .where(DataSubjectRequest.status.in_(PENDING), DataSubjectRequest.due_at < now)
    )
    return int(total or 0)
