"""The DSAR register through the API: ``/api/v1/dsar`` (list, open, one, run, reject, the
answer file) and ``/api/v1/approvals`` (four eyes: list, approve, refuse). dpo only; the
same desk (dsar_desk.py) and so the same code paths as ``pbx-bridge dsar``.

Every refusal is RFC 9457 problem JSON: an unknown id 404, a bad number 422 naming
``number``, a step the request's state does not allow (running a done request) 409, an
answer that expired 410; a principal of another role 403.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import FileResponse, JSONResponse, Response

from pbx_bridge.calls.models import DataSubjectRequest
from pbx_bridge.subjects.approvals import MAX_REASON, Approval
from pbx_bridge.subjects.holdings_summary import HeldSummary
from pbx_bridge.subjects.register import (
    MAX_THEIR_REFERENCE,
    RequestChannel,
    RequestStatus,
    RequestType,
    due_state,
)
from pbx_bridge.web.accounts import Principal
from pbx_bridge.web.api_auth import api_principal
from pbx_bridge.web.api_models import problem_responses
from pbx_bridge.web.dsar_desk import (
    DESK_ERRORS,
    MAX_DECISION,
    MAX_NOTE,
    AnswerFile,
    Decided,
    DsarDesk,
    DueFilter,
    RunOutcome,
    failure_of,
    parsed_result,
)
from pbx_bridge.web.permissions import DSAR_READ
from pbx_bridge.web.web_state import web_state
from storage.models import utcnow


async def _may_read_register(
    request: Request, principal: Annotated[Principal, Depends(api_principal)]
) -> None:
    """The role first, as everywhere: a token that may not read the register is refused
    (403) before any of its values (a malformed id: 422) is looked at."""
    await web_state(request).dsar.require(principal, DSAR_READ)


router = APIRouter(
    prefix="/api/v1", tags=["dsar"], dependencies=[Depends(_may_read_register)],
    # 400: a body that is not JSON at all (FastAPI answers it before validation).
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
T = TypeVar("T")

# A reference (DSAR-2026-0001, any case) or the request's id.
DsarId = Annotated[
    str,
    Path(
        description="The request's reference (DSAR-2026-0001) or id (a UUID).",
        pattern=r"^([Dd][Ss][Aa][Rr]-[0-9]{4}-[0-9]{4,8}|"
        r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$",
        max_length=36,
    ),
]
ApprovalId = Annotated[uuid.UUID, Path(description="The approval's id (a UUID).")]
Reason = Annotated[str, Field(min_length=1, max_length=MAX_REASON, pattern=r"\S")]


class DsarOut(BaseModel):
    id: str
    reference: str
    type: str
    channel: str
    their_reference: str | None
    # In the clear for whoever may unmask (else masked); masked once an erasure or an
    # anonymisation removed it (number_erased).
    number: str
    number_erased: bool
    status: str
    due_state: str
    received_at: datetime
    due_at: datetime
    opened_by: str
    handled_by: str | None
    handled_at: datetime | None
    note: str | None
    reject_reason: str | None
    answer_expires_at: datetime | None


class HeldRecordingOut(BaseModel):
    id: str
    call_id: str
    kind: str
    status: str
    started_at: datetime | None
    legal_basis: str
    on_hold: bool
    held_at: datetime | None
    held_by: str | None


class ApprovalOut(BaseModel):
    id: str
    action: str  # dsar.run | recordings.release
    request_id: str | None
    recording_id: str | None
    note: str | None
    requested_by: str
    requested_at: datetime
    state: str  # pending | approved | refused
    decided_by: str | None
    decided_at: datetime | None
    refuse_reason: str | None


class DsarDetailOut(DsarOut):
    result: Any
    holdings: HeldSummary  # what is held about the subject now, as `dsar show` counts it
    recordings: list[HeldRecordingOut]
    approvals: list[ApprovalOut]


class DsarIn(BaseModel):
    model_config = {"json_schema_extra": {"examples": [
        {"number": "0532 123 45 67", "type": "access", "channel": "email"}]}}

    number: str = Field(min_length=1, max_length=64, description="Any spelling of it.",
                        examples=["+905321234567"])
    type: Literal["access", "export", "erasure", "anonymise", "withdraw", "object"]
    channel: Literal["phone", "email", "web", "letter"]
    their_reference: str | None = Field(default=None, max_length=MAX_THEIR_REFERENCE)
    note: str | None = Field(default=None, max_length=MAX_NOTE)


class RunIn(BaseModel):
    dpo_decision: str | None = Field(
        default=None, min_length=1, max_length=MAX_DECISION, pattern=r"\S",
        description="Objections: the DPO's decision upholding it.",
    )


class ReasonIn(BaseModel):
    reason: Reason


class RunOut(BaseModel):
    """Ran (``complete``: closed; else in progress, run again) or, under four eyes, an
    approval waiting for a second dpo (202)."""

    request: DsarOut
    complete: bool
    result: dict[str, Any] | None
    approval: ApprovalOut | None


class DecidedOut(BaseModel):
    approval: ApprovalOut
    run: RunOut | None
    released: bool


def dsar_json(
    request: DataSubjectRequest, now: datetime, soon_days: int, unmasked: bool
) -> dict[str, Any]:
    shown = request.number if unmasked and request.number else request.number_masked
    return {
        "id": request.id, "reference": request.reference, "type": request.type,
        "channel": request.channel, "their_reference": request.their_reference,
        "number": shown, "number_erased": request.number is None,
        "status": request.status, "due_state": due_state(request, now, soon_days),
        "received_at": request.received_at, "due_at": request.due_at,
        "opened_by": request.opened_by, "handled_by": request.handled_by,
        "handled_at": request.handled_at, "note": request.note,
        "reject_reason": request.reject_reason,
        "answer_expires_at": request.export_expires_at,
    }


def approval_json(approval: Approval) -> dict[str, Any]:
    return {
        "id": approval.id, "action": approval.action, "request_id": approval.request_id,
        "recording_id": approval.recording_id, "note": approval.note,
        "requested_by": approval.requested_by, "requested_at": approval.requested_at,
        "state": approval.state, "decided_by": approval.decided_by,
        "decided_at": approval.decided_at, "refuse_reason": approval.refuse_reason,
    }


def _desk(request: Request) -> DsarDesk:
    return web_state(request).dsar


def _soon(desk: DsarDesk) -> int:
    return desk.settings.privacy.due_soon_days


async def _answering(step: Awaitable[T]) -> T:
    """The desk's refusals as problem JSON (via HTTPException's handler)."""
    try:
        return await step
    except DESK_ERRORS as exc:
        failure = failure_of(exc)
        if failure is None:
            raise
        raise HTTPException(failure.status, failure.detail) from exc


def _run_json(desk: DsarDesk, outcome: RunOutcome, unmasked: bool) -> dict[str, Any]:
    return {
        "request": dsar_json(outcome.request, utcnow(), _soon(desk), unmasked),
        "complete": outcome.complete, "result": outcome.result,
        "approval": None if outcome.approval is None else approval_json(outcome.approval),
    }


@router.get("/dsar", response_model=list[DsarOut])
async def list_dsar(
    request: Request,
    principal: Annotated[Principal, Depends(api_principal)],
    status: Annotated[RequestStatus | None, Query()] = None,
    type: Annotated[RequestType | None, Query()] = None,
    due: Annotated[DueFilter | None, Query(description="overdue | due-soon")] = None,
) -> list[dict[str, Any]]:
    """The register, the request due first on top; numbers in the clear (audited)."""
    desk = _desk(request)
    register = await _answering(desk.register(principal, status=status, kind=type, due=due))
    return [dsar_json(r, register.now, _soon(desk), register.unmasked)
            for r in register.requests]


@router.post("/dsar", status_code=201, response_model=DsarOut)
async def open_dsar(
    request: Request, principal: Annotated[Principal, Depends(api_principal)], body: DsarIn
) -> dict[str, Any]:
    """Register a request received now; its due date is ``[privacy] due_days`` later."""
    desk = _desk(request)
    opened = await _answering(desk.open(
        principal, number=body.number, kind=RequestType(body.type),
        channel=RequestChannel(body.channel), their_reference=body.their_reference,
        note=body.note,
    ))
    return dsar_json(opened, utcnow(), _soon(desk), await desk.may_unmask(principal))


@router.get("/dsar/{dsar_id}", response_model=DsarDetailOut)
async def get_dsar(
    request: Request, principal: Annotated[Principal, Depends(api_principal)], dsar_id: DsarId
) -> dict[str, Any]:
    """One request, its result, what is held about its subject now and its approvals."""
    desk = _desk(request)
    page = await _answering(desk.page(principal, dsar_id))
    return {
        **dsar_json(page.request, page.now, _soon(desk), page.unmasked),
        "result": parsed_result(page.request),
        "holdings": page.summary,
        "recordings": [
            {"id": r.id, "call_id": r.call_id, "kind": r.kind, "status": r.status,
             "started_at": r.started_at, "legal_basis": r.legal_basis,
             "on_hold": r.hold_reason is not None, "held_at": r.held_at,
             "held_by": r.held_by}
            for r in page.recordings
        ],
        "approvals": [approval_json(a) for a in page.approvals],
    }


@router.post("/dsar/{dsar_id}/run", response_model=RunOut,
             responses={202: {"model": RunOut, "description": "Waits for a second dpo."},
                        **problem_responses(410, 503)})
async def run_dsar(
    request: Request,
    principal: Annotated[Principal, Depends(api_principal)],
    dsar_id: DsarId,
    body: RunIn | None = None,
) -> Response:
    """Carry the request out as ``dsar run`` does (200); under four eyes an erasure or an
    export waits for a second dpo instead (202 with the approval)."""
    desk = _desk(request)
    asked = body or RunIn()
    outcome = await _answering(desk.run(principal, dsar_id, decision=asked.dpo_decision))
    shown = _run_json(desk, outcome, await desk.may_unmask(principal))
    body_json = RunOut.model_validate(shown).model_dump(mode="json")
    return JSONResponse(body_json, status_code=202 if outcome.approval else 200)


@router.post("/dsar/{dsar_id}/reject", response_model=DsarOut)
async def reject_dsar(
    request: Request,
    principal: Annotated[Principal, Depends(api_principal)],
    dsar_id: DsarId,
    body: ReasonIn,
) -> dict[str, Any]:
    """Close the request without acting on it; the reason is what the subject is told."""
    desk = _desk(request)
    rejected = await _answering(desk.reject(principal, dsar_id, body.reason))
    return dsar_json(rejected, utcnow(), _soon(desk), await desk.may_unmask(principal))


def answer_response(answer: AnswerFile) -> FileResponse:
    """Streamed from disk a piece at a time (never read whole), not cached anywhere."""
    return FileResponse(
        answer.path, media_type=answer.media_type, filename=answer.filename,
        headers={"Cache-Control": "no-store"},
    )


@router.get("/dsar/{dsar_id}/answer", response_class=FileResponse,
            responses={200: {"content": {"application/zip": {}, "text/html": {},
                                         "application/json": {}},
                             "description": "The answer file, as `dsar run` wrote it."},
                       **problem_responses(410)})
async def get_answer(
    request: Request,
    principal: Annotated[Principal, Depends(api_principal)],
    dsar_id: DsarId,
    file: Annotated[Literal["report.html", "report.json"] | None,
                    Query(description="An access answer's file (default report.html).")]
    = None,
) -> FileResponse:
    """An access request's report or an export's ZIP (409 before it ran, 410 expired)."""
    answer = await _answering(_desk(request).answer(principal, dsar_id, file))
    return answer_response(answer)


@router.get("/approvals", response_model=list[ApprovalOut])
async def list_approvals(
    request: Request, principal: Annotated[Principal, Depends(api_principal)]
) -> list[dict[str, Any]]:
    """What waits for a second dpo, the oldest first."""
    approvals = await _answering(_desk(request).pending_approvals(principal))
    return [approval_json(a) for a in approvals]


def decided_json(desk: DsarDesk, decided: Decided, unmasked: bool) -> dict[str, Any]:
    return {
        "approval": approval_json(decided.approval),
        "run": None if decided.run is None else _run_json(desk, decided.run, unmasked),
        "released": decided.released,
    }


@router.post("/approvals/{approval_id}/approve", response_model=DecidedOut,
             responses=problem_responses(503))
async def approve_approval(
    request: Request,
    principal: Annotated[Principal, Depends(api_principal)],
    approval_id: ApprovalId,
) -> dict[str, Any]:
    """A second dpo approves and what was asked is done. The users module's rule holds:
    never the dpo who asked, and never through an API token (403 naming the rule), so
    two tokens cannot make four eyes; approve in the console."""
    desk = _desk(request)
    decided = await _answering(desk.approve(principal, str(approval_id)))
    return decided_json(desk, decided, await desk.may_unmask(principal))


@router.post("/approvals/{approval_id}/refuse", response_model=ApprovalOut)
async def refuse_approval(
    request: Request,
    principal: Annotated[Principal, Depends(api_principal)],
    approval_id: ApprovalId,
    body: ReasonIn,
) -> dict[str, Any]:
    """Refuse with a reason: nothing is done (any dpo, the asker too)."""
    refused = await _answering(_desk(request).refuse(principal, str(approval_id),
                                                     body.reason))
    return approval_json(refused)
