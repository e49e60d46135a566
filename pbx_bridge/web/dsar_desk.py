"""The DSAR register as the console and the API use it: the dpo's desk.

Every action goes through the same code as ``pbx-bridge dsar`` (subjects/register.py for
open, list and reject, subjects/handling.py for run, storage/retention.py for holds);
this module adds what a signed-in principal needs around them: the role's permission
(``dsar.*``, ``recordings.hold|release``: dpo only), four eyes (``[web] four_eyes``: an
erasure, a bulk export or an un-hold asked by one dpo waits in ``dsar_approvals`` until
a second dpo approves), the audit actor (the user or token, never the process), and
an audit entry for every look at a subject's data (the register's unmasked numbers, a
request's page, a downloaded answer).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.calls.models import DataSubjectRequest
from pbx_bridge.config import Settings
from pbx_bridge.subjects.access import REPORT_HTML, REPORT_JSON
from pbx_bridge.subjects.answer_files import UnsafeReference
from pbx_bridge.subjects.approvals import (
    Approval,
    ApprovalAction,
    ApprovalNotFound,
    ApprovalStateError,
    approve,
    count_pending,
    get_approval,
    list_approvals,
    pending_for,
    refuse,
    request_approval,
    was_approved,
)
from pbx_bridge.subjects.env import RequestEnv
from pbx_bridge.subjects.erasure import DecisionRequired
from pbx_bridge.subjects.export import ExportFailed
from pbx_bridge.subjects.handling import handle_request
from pbx_bridge.subjects.holdings_summary import HeldSummary
from pbx_bridge.subjects.index import InvalidNumber, SubjectKeyError
from pbx_bridge.subjects.lookup import holdings_of
from pbx_bridge.subjects.reasons import given_reason
from pbx_bridge.subjects.register import (
    RequestChannel,
    RequestNotFound,
    RequestStateError,
    RequestStatus,
    RequestType,
    get_request,
    list_requests,
    open_request,
    reject,
)
from pbx_bridge.users.accounts import UserError, UserInfo
from pbx_bridge.users.models import User
from pbx_bridge.users.user_changes import carry_out_approved
from pbx_bridge.web.accounts import Accounts, Principal
from pbx_bridge.web.call_record import AuditLine, audit_line
from pbx_bridge.web.call_search_setup import Subjects
from pbx_bridge.web.permissions import (
    DSAR_APPROVE,
    DSAR_DOWNLOAD,
    DSAR_OPEN,
    DSAR_READ,
    DSAR_REJECT,
    DSAR_RUN,
    EXPORTS_BULK,
    NUMBERS_UNMASK,
    RECORDINGS_HOLD,
    RECORDINGS_RELEASE,
    USERS_GRANT,
)
from pbx_bridge.web.viewer import Forbidden
from storage.audit_trail import record_event
from storage.backends.base import Backend
from storage.errors import RecordingNotFound, StorageError
from storage.models import AuditEntry, Recording, utcnow
from storage.retention import HoldError, hold, release

# Channels a person registers (the withdrawal keypress is the service's own).
OPEN_CHANNELS = [c for c in RequestChannel if c is not RequestChannel.KEYPRESS]
MAX_NOTE = 2000
MAX_DECISION = 2000
HISTORY_LIMIT = 200
ACCESS_FILES = {REPORT_HTML: "text/html; charset=utf-8", REPORT_JSON: "application/json"}
ZIP_TYPE = "application/zip"


class DueFilter(StrEnum):
    OVERDUE = "overdue"
    DUE_SOON = "due-soon"


class FourEyesRefused(Exception):
    """This principal may not approve this (their own request, a token, not a dpo)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NoAnswerYet(RequestStateError):
    """The request has no answer file (not run yet, or its type answers with none)."""


class AnswerGone(LookupError):
    """The answer file expired (``[privacy] export_days``) or was removed."""


class ReasonRequired(ValueError):
    """A rejection, a refusal or a hold needs a reason (what the subject or the next dpo
    is told)."""


def _reason(reason: str) -> str:
    return given_reason(reason, ReasonRequired, "reason: give a reason (it must not be empty)")


class RecordingNotHeldHere(LookupError):
    """The recording is not one of this request's subject's."""


@dataclass(frozen=True)
class Register:
    requests: list[DataSubjectRequest]
    approvals: list[Approval]  # pending, oldest first
    pending_approvals: int
    now: datetime
    unmasked: bool  # the numbers may be shown in the clear (numbers.unmask)


@dataclass(frozen=True)
class RequestPage:
    request: DataSubjectRequest
    summary: HeldSummary
    recordings: list[Recording]
    history: list[AuditLine]
    approvals: list[Approval]  # every approval about this request, oldest first
    result: object  # the stored result, parsed (None: not run)
    now: datetime
    unmasked: bool


@dataclass(frozen=True)
class RunOutcome:
    """``result`` when it ran; ``approval`` (pending) when four eyes hold it back."""

    request: DataSubjectRequest
    result: dict[str, object] | None = None
    approval: Approval | None = None

    @property
    def complete(self) -> bool:
        return self.result is not None and self.result.get("complete", True) is True


@dataclass(frozen=True)
class ReleaseOutcome:
    recording_id: str
    released: bool
    approval: Approval | None = None


@dataclass(frozen=True)
class Decided:
    """An approval decided; what approving it did (a run's outcome, a release, a user's
    change: ``password`` is a new one, shown this once to the approving dpo)."""

    approval: Approval
    run: RunOutcome | None = None
    released: bool = False
    user: UserInfo | None = None
    password: str | None = None


@dataclass(frozen=True)
class AnswerFile:
    path: Path
    media_type: str
    filename: str
    size: int


def parsed_result(request: DataSubjectRequest) -> object:
    if request.result is None:
        return None
    try:
        parsed: object = json.loads(request.result)
    except ValueError:
        return request.result
    return parsed


class DsarDesk:
    """One per console process (``WebState.dsar``). ``backends`` replaces the configured
    storage backends for erasures (tests); otherwise the CLI's own are built per run."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        accounts: Accounts,
        subjects: Subjects,
        *,
        backends: Mapping[str, Backend] | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.accounts = accounts
        self.subjects = subjects
        self.backends = backends

    async def require(self, principal: Principal, action: str) -> None:
        if not (await self.accounts.allowed(principal, action)).allowed:
            raise Forbidden

    async def may_unmask(self, principal: Principal) -> bool:
        """A dpo's session, or a token of theirs whose scopes include numbers.unmask."""
        return (await self.accounts.allowed(principal, NUMBERS_UNMASK)).allowed

    def _soon_days(self) -> int:
        return self.settings.privacy.due_soon_days

    # -- the register -------------------------------------------------------------------

    async def register(
        self,
        principal: Principal,
        *,
        status: RequestStatus | None = None,
        kind: RequestType | None = None,
        due: DueFilter | None = None,
    ) -> Register:
        """The requests (oldest due first) and the approvals waiting; the numbers shown
        in the clear are audited as ``dsar.unmasked`` with who saw them."""
        await self.require(principal, DSAR_READ)
        unmasked = await self.may_unmask(principal)
        now = utcnow()
        async with self.sessions() as session:
            found = await list_requests(
                session, status=status, type=kind, now=now,
                overdue_only=due is DueFilter.OVERDUE,
                due_within_days=self._soon_days() if due is DueFilter.DUE_SOON else None,
            )
            approvals = await list_approvals(session)
            if found and unmasked:
                await _audit_unmasked(session, principal, [r.id for r in found],
                                      status=status, kind=kind, due=due)
                await session.commit()
        return Register(found, approvals, len(approvals), now, unmasked)

    async def pending_approvals(self, principal: Principal) -> list[Approval]:
        await self.require(principal, DSAR_READ)
        async with self.sessions() as session:
            return await list_approvals(session)

    async def count_pending(self, principal: Principal) -> int:
        await self.require(principal, DSAR_READ)
        async with self.sessions() as session:
            return await count_pending(session)

    async def open(
        self,
        principal: Principal,
        *,
        number: str,
        kind: RequestType,
        channel: RequestChannel,
        their_reference: str | None = None,
        note: str | None = None,
    ) -> DataSubjectRequest:
        """``InvalidNumber`` for a number that is none (nothing stored then)."""
        await self.require(principal, DSAR_OPEN)
        if channel is RequestChannel.KEYPRESS:
            raise RequestStateError("keypress requests are opened by the service itself")
        index = await self.subjects.index()
        async with self.sessions() as session:
            request = await open_request(
                session, index, number=number, type=kind, channel=channel,
                actor=principal.actor, due_days=self.settings.privacy.due_days,
                note=note, their_reference=their_reference,
            )
            await session.commit()
            return request

    async def page(self, principal: Principal, ref: str) -> RequestPage:
        """One request with the subject's holdings (as ``dsar show`` counts them), their
        recordings, its history and approvals; audited as ``dsar.viewed``."""
        await self.require(principal, DSAR_READ)
        unmasked = await self.may_unmask(principal)
        async with self.sessions() as session:
            request = await get_request(session, ref)
            held = await holdings_of(session, request.subject_key)
            approvals = list((await session.scalars(
                select(Approval).where(Approval.request_id == request.id)
                .order_by(Approval.requested_at)
            )).all())
            targets = [f"dsar:{request.id}"] + [
                f"recording:{r.id}" for r in held.recordings
            ]
            entries = await session.scalars(
                select(AuditEntry)
                .where(AuditEntry.target.in_(targets[:500]))
                .order_by(AuditEntry.seq.desc())
                .limit(HISTORY_LIMIT)
            )
            history = [audit_line(e) for e in entries.all()]
            await record_event(
                session, actor=principal.actor, action="dsar.viewed",
                target=f"dsar:{request.id}",
                details={"reference": request.reference, "number": request.number_masked,
                         "unmasked": unmasked},
            )
            await session.commit()
        return RequestPage(
            request, HeldSummary.of(held), list(held.recordings), history, approvals,
            parsed_result(request), utcnow(), unmasked,
        )

    async def reject(self, principal: Principal, ref: str, reason: str) -> DataSubjectRequest:
        await self.require(principal, DSAR_REJECT)
        async with self.sessions() as session:
            request = await get_request(session, ref)
            await reject(session, request, actor=principal.actor, reason=_reason(reason))
            await session.commit()
            return request

    # -- running, four eyes -------------------------------------------------------------

    def _run_waits(self, request: DataSubjectRequest) -> bool:
        return self.accounts.needs_approval(DSAR_RUN, dsar_type=request.type)

    async def run(
        self, principal: Principal, ref: str, *, decision: str | None = None
    ) -> RunOutcome:
        """Run the request as ``dsar run`` does; an erasure or export under four eyes
        becomes a pending approval instead (unless a run of it was approved before)."""
        await self.require(principal, DSAR_RUN)
        if decision is not None and len(decision) > MAX_DECISION:
            raise RequestStateError(f"the decision must be at most {MAX_DECISION} characters")
        async with self.sessions() as session:
            request = await get_request(session, ref)
            if request.type == RequestType.EXPORT.value:
                await self.require(principal, EXPORTS_BULK)
            if request.status in (RequestStatus.DONE.value, RequestStatus.REJECTED.value):
                raise RequestStateError(
                    f"request {request.reference} is {request.status}: it is not run again"
                )
            if self._run_waits(request) and not await was_approved(session, request.id):
                approval = await request_approval(
                    session, ApprovalAction.DSAR_RUN, actor=principal.actor,
                    user_id=principal.user_id, request_id=request.id,
                    note=(decision or "").strip() or None,
                )
                await session.commit()
                return RunOutcome(request, approval=approval)
        return await self._carry_out(principal, request.id, decision)

    async def _carry_out(
        self, principal: Principal, request_id: str, decision: str | None
    ) -> RunOutcome:
        index = await self.subjects.index()
        env = RequestEnv(self.settings, self.sessions, index, principal.actor, utcnow)
        result = await handle_request(env, request_id, decision=decision,
                                      backends=self.backends)
        async with self.sessions() as session:
            request = await get_request(session, request_id)
        return RunOutcome(request, result=result)

    async def approve(self, principal: Principal, approval_id: str) -> Decided:
        """A second dpo approves: the approval commits first (so it is on record even if
        the action must be finished later), then the action runs with them as actor."""
        await self.require(principal, DSAR_APPROVE)
        async with self.sessions() as session:
            approval = await get_approval(session, approval_id)
            grant = self.accounts.approval(approval.requester_user_id, principal,
                                           approval.action)
            if not grant.allowed:
                await record_event(
                    session, actor=principal.actor, action="approval.approved",
                    target=f"approval:{approval.id}", outcome="refused",
                    details={"approval_id": approval.id, "why": grant.reason},
                )
                await session.commit()
                raise FourEyesRefused(grant.reason)
            if approval.action == ApprovalAction.USERS_GRANT.value:
                return await self._grant(session, principal, approval)
            if approval.request_id is not None and approval.recording_id is None:
                asked = await get_request(session, approval.request_id)
                if asked.status in (RequestStatus.DONE.value, RequestStatus.REJECTED.value):
                    raise ApprovalStateError(
                        f"request {asked.reference} is {asked.status} meanwhile: refuse"
                        " this approval instead"
                    )
            await approve(session, approval, actor=principal.actor)
            await session.commit()
        if approval.action == ApprovalAction.DSAR_RUN.value:
            assert approval.request_id is not None
            outcome = await self._carry_out(principal, approval.request_id, approval.note)
            return Decided(approval, run=outcome)
        assert approval.recording_id is not None
        await release(self.sessions, approval.recording_id, actor=principal.actor)
        return Decided(approval, released=True)

    async def _grant(
        self, session: AsyncSession, principal: Principal, approval: Approval
    ) -> Decided:
        """An admin's change to a user, approved: done in the approval's transaction (both
        or neither), the dpo as actor. Never by the user it is about."""
        assert approval.user_name is not None
        await self.require(principal, USERS_GRANT)
        target = await session.scalar(select(User.id).where(User.name == approval.user_name))
        if target is not None and target == principal.user_id:
            raise FourEyesRefused("a change to your own account is approved by another dpo")
        done = await carry_out_approved(session, approval, actor=principal.actor,
                                        settings=self.settings)
        await approve(session, approval, actor=principal.actor)
        await session.commit()
        return Decided(approval, user=done.user, password=done.password)

    async def refuse(self, principal: Principal, approval_id: str, reason: str) -> Approval:
        """Any dpo may refuse (the asker too: taking it back); nothing is done."""
        await self.require(principal, DSAR_APPROVE)
        async with self.sessions() as session:
            approval = await get_approval(session, approval_id)
            await refuse(session, approval, actor=principal.actor, reason=_reason(reason))
            await session.commit()
            return approval

    # -- the answer ---------------------------------------------------------------------

    async def answer(
        self, principal: Principal, ref: str, name: str | None = None
    ) -> AnswerFile:
        """The file the CLI wrote (an access report, an export's ZIP); audited as
        ``dsar.answer-downloaded`` before a byte is sent."""
        await self.require(principal, DSAR_DOWNLOAD)
        async with self.sessions() as session:
            request = await get_request(session, ref)
            # stat() in a thread: the export folder may be on a slow disk.
            answer = await asyncio.to_thread(_answer_file, request, name)
            await record_event(
                session, actor=principal.actor, action="dsar.answer-downloaded",
                target=f"dsar:{request.id}",
                details={"reference": request.reference, "file": answer.filename,
                         "bytes": answer.size, "number": request.number_masked},
            )
            await session.commit()
        return answer

    # -- legal holds --------------------------------------------------------------------

    async def _subject_recording(
        self, session: AsyncSession, ref: str, recording_id: str
    ) -> DataSubjectRequest:
        request = await get_request(session, ref)
        held = await holdings_of(session, request.subject_key)
        if recording_id not in {r.id for r in held.recordings}:
            raise RecordingNotHeldHere(
                f"recording {recording_id} is not one of {request.reference}'s subject's"
            )
        return request

    async def hold(
        self, principal: Principal, ref: str, recording_id: str, reason: str
    ) -> None:
        """``HoldError`` (no reason, already held, deleted) as ``recordings hold``."""
        await self.require(principal, RECORDINGS_HOLD)
        why = _reason(reason)
        async with self.sessions() as session:
            await self._subject_recording(session, ref, recording_id)
        await hold(self.sessions, recording_id, why, actor=principal.actor)

    async def release(
        self, principal: Principal, ref: str, recording_id: str
    ) -> ReleaseOutcome:
        await self.require(principal, RECORDINGS_RELEASE)
        async with self.sessions() as session:
            request = await self._subject_recording(session, ref, recording_id)
            row = await session.get(Recording, recording_id)
            if row is None or row.hold_reason is None:
                raise RequestStateError(f"recording {recording_id} is not on hold")
            if self.accounts.needs_approval(RECORDINGS_RELEASE):
                approval = await request_approval(
                    session, ApprovalAction.RECORDINGS_RELEASE, actor=principal.actor,
                    user_id=principal.user_id, request_id=request.id,
                    recording_id=recording_id,
                )
                await session.commit()
                return ReleaseOutcome(recording_id, False, approval)
        await release(self.sessions, recording_id, actor=principal.actor)
        return ReleaseOutcome(recording_id, True)

    async def waiting_release(self, recording_id: str) -> Approval | None:
        async with self.sessions() as session:
            return await pending_for(session, ApprovalAction.RECORDINGS_RELEASE,
                                     recording_id=recording_id)


def _answer_file(request: DataSubjectRequest, name: str | None) -> AnswerFile:
    if request.type not in (RequestType.ACCESS.value, RequestType.EXPORT.value):
        raise NoAnswerYet(
            f"request {request.reference} is {request.type}: its answer is the result shown"
            " on its page, not a file"
        )
    if request.export_path is None:
        raise NoAnswerYet(f"request {request.reference} has no answer yet: run it first")
    if request.type == RequestType.ACCESS.value:
        wanted = name or REPORT_HTML
        if wanted not in ACCESS_FILES:
            raise NoAnswerYet(
                f"an access answer is {' or '.join(ACCESS_FILES)}, not {wanted!r}"
            )
        path, media_type = Path(request.export_path) / wanted, ACCESS_FILES[wanted]
        filename = f"{request.reference}-{wanted}"
    else:
        path, media_type = Path(request.export_path), ZIP_TYPE
        filename = f"{request.reference}.zip"
    try:
        size = path.stat().st_size
    except FileNotFoundError as exc:
        raise AnswerGone(
            f"the answer of {request.reference} is no longer there (expired"
            f" {request.export_expires_at:%Y-%m-%d}); run the request again"
            if request.export_expires_at else f"the answer of {request.reference} is gone"
        ) from exc
    return AnswerFile(path, media_type, filename, size)


async def _audit_unmasked(
    session: AsyncSession,
    principal: Principal,
    ids: list[str],
    **filters: StrEnum | None,
) -> None:
    await record_event(
        session, actor=principal.actor, action="dsar.unmasked", target="dsar:listing",
        details={"count": len(ids), "ids": ids,
                 "filters": {k: str(v) for k, v in filters.items() if v is not None}},
    )




@dataclass(frozen=True)
class Failure:
    """How a refused DSAR step is answered: the status, and the field at fault (422)."""

    status: int
    detail: str


# Every refusal of a DSAR step that failure_of answers; anything else is a defect and
# rises as it is (the error handlers make it a 500).
DESK_ERRORS: tuple[type[Exception], ...] = (
    FourEyesRefused, RequestNotFound, ApprovalNotFound, RecordingNotHeldHere,
    RecordingNotFound, InvalidNumber, DecisionRequired, ReasonRequired, AnswerGone,
    RequestStateError, ApprovalStateError, HoldError, UnsafeReference, ExportFailed,
    StorageError, OSError, SubjectKeyError, UserError,
)


def failure_of(exc: Exception) -> Failure | None:
    """The answer to an exception of a DSAR step (None: not one of ours, let it rise).

    Bad input is 4xx naming the problem; only storage that cannot be reached now is 503
    (the request stays in progress, run it again)."""
    text = str(exc)
    if isinstance(exc, FourEyesRefused):
        return Failure(403, exc.reason)
    if isinstance(exc, (RequestNotFound, ApprovalNotFound, RecordingNotHeldHere,
                        RecordingNotFound)):
        return Failure(404, text)
    if isinstance(exc, InvalidNumber):
        return Failure(422, f"number: {text}")
    if isinstance(exc, DecisionRequired):
        return Failure(422, f"dpo_decision: {text}")
    if isinstance(exc, ReasonRequired):
        return Failure(422, text)
    if isinstance(exc, AnswerGone):
        return Failure(410, text)
    if isinstance(exc, (RequestStateError, ApprovalStateError, HoldError, UnsafeReference,
                        UserError)):
        return Failure(409, text)
    if isinstance(exc, (ExportFailed, StorageError, OSError, SubjectKeyError)):
        return Failure(503, f"{text}; the request stays in progress, run it again")
    return None
