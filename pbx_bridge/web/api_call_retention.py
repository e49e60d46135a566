"""``PUT /api/v1/calls/{id}/retention``: keep one call's conversation recordings per a
retention class, as the agent's ``*7`` / ``*0`` do from the keypad.

A supervisor of the call's extension or a dpo may; the change is audited with the user
or token as actor (``call.retention_changed`` and each ``recording.retention_changed``).
A 0-day class makes the purge delete the conversation recordings once the call has
ended. A line that records under a legal obligation cannot be shortened (409).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from pydantic import BaseModel, Field, ValidationError

from pbx_bridge.calls.models import Call
from pbx_bridge.calls.retention import CLASS_NAME_PATTERN, UnknownRetentionClass, class_days
from pbx_bridge.config import LegalBasis
from pbx_bridge.flow.agent_features import retention_choice_refused
from pbx_bridge.recordings_admin import change_call_retention
from pbx_bridge.web.accounts import Principal
from pbx_bridge.web.api_auth import api_principal
from pbx_bridge.web.api_models import problem_responses
from pbx_bridge.web.call_record import actor_of, covers
from pbx_bridge.web.permissions import CALLS_RETENTION
from pbx_bridge.web.web_state import web_state
from storage.errors import RecordingNotFound

router = APIRouter(
    prefix="/api/v1", tags=["calls"], responses=problem_responses(401, 403, 404, 409, 422)
)


class RetentionIn(BaseModel):
    retention_class: str = Field(
        pattern=CLASS_NAME_PATTERN.pattern, examples=["default"],
        description="An existing retention class (`pbx-bridge retention list`).",
    )

    model_config = {"extra": "forbid"}


# The body is read by the handler, after who may ask is answered (a refused caller learns
# nothing from the body's check); the document still describes it as required.
_BODY_DOC = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": RetentionIn.model_json_schema()}}}}


class RecordingRetentionOut(BaseModel):
    id: str
    retain_until: datetime | None  # null while the call is live: counted from its end


class CallRetentionOut(BaseModel):
    call_id: str
    retention_class: str
    retention_days: int
    recordings: list[RecordingRetentionOut]


async def _class_asked(request: Request) -> str:
    """The body's class, or 422 naming what is wrong with the body."""
    try:
        return RetentionIn.model_validate_json(await request.body()).retention_class
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        raise HTTPException(422, problems) from exc


@router.put("/calls/{call_id}/retention", response_model=CallRetentionOut,
            openapi_extra=_BODY_DOC)
async def put_call_retention(
    request: Request,
    principal: Annotated[Principal, Depends(api_principal)],
    call_id: Annotated[uuid.UUID, Path(description="The call's id (a UUID).")],
) -> dict[str, Any]:
    """Keep this call's conversation recordings per ``retention_class`` (the consent
    evidence keeps its own period)."""
    state = web_state(request)
    grant = await state.accounts.allowed(principal, CALLS_RETENTION)
    if not grant.allowed:
        raise HTTPException(403, "this token's role may not change a call's retention")
    async with state.sessions() as session:
        call = await session.get(Call, str(call_id))
        if call is None:
            raise HTTPException(404, "no such call")
        if not covers(grant, call.extension):
            raise HTTPException(403, "this token's role may not change this call's retention")
        # Who may is answered first: a refused caller learns nothing from the body's check.
        name = await _class_asked(request)
        try:
            days = await class_days(session, name, state.retention)
        except UnknownRetentionClass as exc:
            raise HTTPException(422, str(exc)) from exc
        try:
            current = await class_days(session, call.retention_class, state.retention)
        except UnknownRetentionClass:
            current = 0  # the call's class is gone: nothing to shorten below
        basis = call.legal_basis
    refused = retention_choice_refused(LegalBasis(basis), current, days)
    if refused is not None:
        raise HTTPException(409, refused)
    try:
        changes = await change_call_retention(
            state.sessions, str(call_id), name, state.retention, actor=actor_of(principal)
        )
    except RecordingNotFound as exc:  # the call went (erased) in between
        raise HTTPException(404, "no such call") from exc
    return {
        "call_id": str(call_id),
        "retention_class": name,
        "retention_days": days,
        "recordings": [{"id": c.recording_id, "retain_until": c.retain_until} for c in changes],
    }
