"""The DSAR register's pages (dpo only): the register with its filters and the approvals
waiting, the form that opens a request, a request's page (holdings, recordings with
their legal holds, history, due date) with run, reject and the answer's download, and
the approve/refuse forms of four eyes. Every form is CSRF-checked; a refused form is
shown again with what was wrong. The work is the desk's (dsar_desk.py)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query, Request
from starlette.responses import RedirectResponse, Response

from pbx_bridge.cli.listing_options import short_time
from pbx_bridge.subjects.register import (
    RequestChannel,
    RequestStatus,
    RequestType,
    due_state,
)
from pbx_bridge.web.accounts import Principal
from pbx_bridge.web.api_dsar import DsarId, answer_response
from pbx_bridge.web.dsar_desk import (
    DESK_ERRORS,
    MAX_DECISION,
    MAX_NOTE,
    OPEN_CHANNELS,
    DsarDesk,
    DueFilter,
    Failure,
    RunOutcome,
    failure_of,
)
from pbx_bridge.web.pages import render
from pbx_bridge.web.viewer import Viewer, csrf_checked, signed_in
from pbx_bridge.web.web_state import web_state

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_checked)])
SignedIn = Annotated[Viewer, Depends(signed_in)]
# What a redirect after a form may say (?notice=...): only these, never free text.
NOTICES = frozenset({"opened", "done", "partial", "waiting", "rejected", "held", "released",
                     "release-waiting", "approved", "refused"})
Choice = Annotated[str | None, Query(max_length=16)]
FormReason = Annotated[str, Form(max_length=MAX_NOTE)]
RecordingId = Annotated[uuid.UUID, Path()]


def _desk(request: Request) -> DsarDesk:
    return web_state(request).dsar


class BadFilter(ValueError):
    """A register filter's value that is none of its choices; the message names it."""


def _enum(name: str, kind: type[StrEnum], value: str | None) -> Any:
    if not value:
        return None
    try:
        return kind(value)
    except ValueError as exc:
        choices = ", ".join(k.value for k in kind)
        raise BadFilter(f"{name}: use one of {choices}") from exc


def _failure(exc: Exception) -> Failure:
    """A refused step's failure to show on the page; unknown ids are the 404 page, and
    what is not the desk's refusal rises as it is."""
    failure = failure_of(exc)
    if failure is None:
        raise exc
    if failure.status == 404:
        raise HTTPException(404) from exc
    return failure


def _notice(notice: str | None) -> str | None:
    return notice if notice in NOTICES else None


async def _register_page(
    request: Request, viewer: Viewer, *, status: str | None = None, kind: str | None = None,
    due: str | None = None, error: str | None = None, status_code: int = 200,
    notice: str | None = None, new_password_for: str | None = None,
    password: str | None = None,
) -> Response:
    assert viewer.principal is not None
    desk = _desk(request)
    try:
        filters = {"status": _enum("status", RequestStatus, status),
                   "kind": _enum("kind", RequestType, kind),
                   "due": _enum("due", DueFilter, due)}
    except BadFilter as bad:  # the register unfiltered, saying which filter was wrong
        filters, error, status_code = {}, str(bad), 400
    register = await desk.register(viewer.principal, **filters)
    soon = desk.settings.privacy.due_soon_days
    return render(
        request, viewer, "dsar_list.html", status_code, active="dsar", register=register,
        due_state=lambda r: due_state(r, register.now, soon), short_time=short_time,
        values={"status": status or "", "kind": kind or "", "due": due or ""},
        statuses=[s.value for s in RequestStatus], kinds=[k.value for k in RequestType],
        dues=[d.value for d in DueFilter], error=error, notice=_notice(notice),
        new_password_for=new_password_for, password=password,
    )


@router.get("/dsar")
async def register_page(
    request: Request, viewer: SignedIn, status: Choice = None, kind: Choice = None,
    due: Choice = None, notice: Choice = None,
) -> Response:
    return await _register_page(request, viewer, status=status, kind=kind, due=due,
                                notice=notice)


def _new_form(
    request: Request, viewer: Viewer, values: dict[str, str], error: str | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request, viewer, "dsar_new.html", status_code, active="dsar", values=values,
        kinds=[k.value for k in RequestType], channels=[c.value for c in OPEN_CHANNELS],
        error=error, max_note=MAX_NOTE,
    )


@router.get("/dsar/new")
async def new_page(request: Request, viewer: SignedIn) -> Response:
    assert viewer.principal is not None
    await _desk(request).require(viewer.principal, "dsar.open")
    return _new_form(request, viewer, {"number": "", "kind": "access", "channel": "phone",
                                       "their_reference": "", "note": ""})


@router.post("/dsar")
async def open_form(
    request: Request,
    viewer: SignedIn,
    number: Annotated[str, Form(max_length=64)] = "",
    kind: Annotated[str, Form(max_length=16)] = "",
    channel: Annotated[str, Form(max_length=16)] = "",
    their_reference: Annotated[str, Form(max_length=200)] = "",
    note: Annotated[str, Form(max_length=MAX_NOTE)] = "",
) -> Response:
    assert viewer.principal is not None
    await _desk(request).require(viewer.principal, "dsar.open")  # the role before the values
    values = {"number": number, "kind": kind, "channel": channel,
              "their_reference": their_reference, "note": note}
    try:
        request_type, request_channel = RequestType(kind), RequestChannel(channel)
    except ValueError:
        return _new_form(request, viewer, values, viewer.t("dsar.bad_kind"), 422)
    if not number.strip():
        return _new_form(request, viewer, values, viewer.t("dsar.number_missing"), 422)
    try:
        opened = await _desk(request).open(
            viewer.principal, number=number, kind=request_type, channel=request_channel,
            their_reference=their_reference or None, note=note or None,
        )
    except DESK_ERRORS as exc:
        failure = failure_of(exc)
        if failure is None:
            raise
        return _new_form(request, viewer, values, failure.detail, failure.status)
    return RedirectResponse(f"/dsar/{opened.reference}?notice=opened", status_code=303)


async def _request_page(
    request: Request, viewer: Viewer, ref: str, *, error: str | None = None,
    status_code: int = 200, notice: str | None = None,
) -> Response:
    assert viewer.principal is not None
    desk = _desk(request)
    try:
        page = await desk.page(viewer.principal, ref)
    except DESK_ERRORS as exc:
        failure = failure_of(exc)
        if failure is None:
            raise
        raise HTTPException(failure.status) from exc
    soon = desk.settings.privacy.due_soon_days
    pending_release = {a.recording_id for a in page.approvals
                       if a.state == "pending" and a.recording_id}
    return render(
        request, viewer, "dsar_request.html", status_code, active="dsar", page=page,
        dsar=page.request, due=due_state(page.request, page.now, soon),
        short_time=short_time, error=error, notice=_notice(notice),
        pending_release=pending_release, max_decision=MAX_DECISION,
        four_eyes=desk.accounts.needs_approval("dsar.run", dsar_type=page.request.type),
    )


@router.get("/dsar/{dsar_id}")
async def request_page(
    request: Request, viewer: SignedIn, dsar_id: DsarId, notice: Choice = None
) -> Response:
    return await _request_page(request, viewer, dsar_id, notice=notice)


Step = Callable[[DsarDesk, Principal], Awaitable[str]]


async def _step(request: Request, viewer: Viewer, ref: str, step: Step) -> Response:
    """Run a form's step (it answers the notice to show); on refusal the request's page
    again with what was wrong."""
    assert viewer.principal is not None  # signed_in saw to it
    try:
        notice = await step(_desk(request), viewer.principal)
    except DESK_ERRORS as exc:
        failure = _failure(exc)
        return await _request_page(request, viewer, ref, error=failure.detail,
                                   status_code=failure.status)
    return RedirectResponse(f"/dsar/{ref}?notice={notice}", status_code=303)


def _ran(outcome: RunOutcome) -> str:
    if outcome.approval is not None:
        return "waiting"
    return "done" if outcome.complete else "partial"


@router.post("/dsar/{dsar_id}/run")
async def run_form(
    request: Request, viewer: SignedIn, dsar_id: DsarId,
    dpo_decision: Annotated[str, Form(max_length=MAX_DECISION)] = "",
) -> Response:
    async def step(desk: DsarDesk, principal: Principal) -> str:
        return _ran(await desk.run(principal, dsar_id, decision=dpo_decision.strip() or None))

    return await _step(request, viewer, dsar_id, step)


@router.post("/dsar/{dsar_id}/reject")
async def reject_form(
    request: Request, viewer: SignedIn, dsar_id: DsarId, reason: FormReason = ""
) -> Response:
    async def step(desk: DsarDesk, principal: Principal) -> str:
        await desk.reject(principal, dsar_id, reason)
        return "rejected"

    return await _step(request, viewer, dsar_id, step)


@router.get("/dsar/{dsar_id}/answer")
async def answer_download(
    request: Request, viewer: SignedIn, dsar_id: DsarId,
    file: Annotated[str | None, Query(max_length=32)] = None,
) -> Response:
    assert viewer.principal is not None
    try:
        answer = await _desk(request).answer(viewer.principal, dsar_id, file)
    except DESK_ERRORS as exc:
        failure = _failure(exc)
        return await _request_page(request, viewer, dsar_id, error=failure.detail,
                                   status_code=failure.status)
    return answer_response(answer)


@router.post("/dsar/{dsar_id}/recordings/{recording_id}/hold")
async def hold_form(
    request: Request, viewer: SignedIn, dsar_id: DsarId, recording_id: RecordingId,
    reason: FormReason = "",
) -> Response:
    async def step(desk: DsarDesk, principal: Principal) -> str:
        await desk.hold(principal, dsar_id, str(recording_id), reason)
        return "held"

    return await _step(request, viewer, dsar_id, step)


@router.post("/dsar/{dsar_id}/recordings/{recording_id}/release")
async def release_form(
    request: Request, viewer: SignedIn, dsar_id: DsarId, recording_id: RecordingId
) -> Response:
    async def step(desk: DsarDesk, principal: Principal) -> str:
        outcome = await desk.release(principal, dsar_id, str(recording_id))
        return "released" if outcome.released else "release-waiting"

    return await _step(request, viewer, dsar_id, step)


async def _decision(request: Request, viewer: Viewer, step: Any, done: str) -> Response:
    try:
        await step
    except DESK_ERRORS as exc:
        failure = _failure(exc)
        return await _register_page(request, viewer, error=failure.detail,
                                    status_code=failure.status)
    return RedirectResponse(f"/dsar?notice={done}", status_code=303)


@router.post("/approvals/{approval_id}/approve")
async def approve_form(
    request: Request, viewer: SignedIn, approval_id: Annotated[uuid.UUID, Path()]
) -> Response:
    assert viewer.principal is not None
    try:
        decided = await _desk(request).approve(viewer.principal, str(approval_id))
    except DESK_ERRORS as exc:
        failure = _failure(exc)
        return await _register_page(request, viewer, error=failure.detail,
                                    status_code=failure.status)
    if decided.password is not None and decided.user is not None:
        # A user's new password (an approved new supervisor, reset, promotion): shown
        # to this dpo once, on this page, to hand over; never kept or shown again.
        return await _register_page(request, viewer, notice="approved",
                                    new_password_for=decided.user.name,
                                    password=decided.password)
    return RedirectResponse("/dsar?notice=approved", status_code=303)


@router.post("/approvals/{approval_id}/refuse")
async def refuse_form(
    request: Request, viewer: SignedIn, approval_id: Annotated[uuid.UUID, Path()],
    reason: FormReason = "",
) -> Response:
    assert viewer.principal is not None
    return await _decision(
        request, viewer,
        _desk(request).refuse(viewer.principal, str(approval_id), reason), "refused",
    )
