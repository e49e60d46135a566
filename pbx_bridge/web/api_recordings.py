"""``GET /api/v1/calls/{id}``, ``GET /api/v1/recordings/{id}`` and its ``/media`` (Range).

Ids are UUIDs: anything else (``..``, ``%2e%2e``, a path) is refused as 422 problem JSON
before it reaches a query or a storage backend; a slash never matches the route (404).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from pydantic import BaseModel
from starlette.responses import Response

from pbx_bridge.calls.history import recording_view
from pbx_bridge.calls.pauses import pause_json, pauses_of
from pbx_bridge.web.accounts import Principal
from pbx_bridge.web.api_auth import api_principal
from pbx_bridge.web.api_models import CallOut, RecordingOut, problem_responses
from pbx_bridge.web.call_record import CallNotFound, audit_view, load_call, recording_call
from pbx_bridge.web.listening import listen
from pbx_bridge.web.permissions import NUMBERS_UNMASK, RECORDINGS_READ
from pbx_bridge.web.viewer import Forbidden
from pbx_bridge.web.web_state import web_state
from storage.legs import STEREO_LEGS

router = APIRouter(
    prefix="/api/v1", tags=["recordings"], responses=problem_responses(401, 403, 404, 422)
)

CallId = Annotated[uuid.UUID, Path(description="The call's id (a UUID).")]
RecordingId = Annotated[uuid.UUID, Path(description="The recording's id (a UUID).")]


class PauseOut(BaseModel):
    """A PCI pause: a muted span, seconds from the file's start (end null: still on)."""

    start_s: float
    end_s: float | None
    started_at: str
    ended_at: str | None
    paused_by: str
    resumed_by: str | None


class RecordingDetailOut(RecordingOut):
    call_id: str
    caller: str | None
    # What each channel holds, left to right: ["caller", "agent"] for stereo.
    channels: list[str]
    on_hold: bool
    pauses: list[PauseOut]


def _refused(exc: Exception) -> HTTPException:
    if isinstance(exc, CallNotFound):
        return HTTPException(404, "no such call or recording")
    return HTTPException(403, "this token's role may not see this call")


@router.get("/calls/{call_id}", response_model=CallOut)
async def get_call(
    request: Request, principal: Annotated[Principal, Depends(api_principal)], call_id: CallId
) -> dict[str, Any]:
    """One call with its consent proof and recordings; numbers masked unless the token's
    role may unmask. 403 for a call of an extension not assigned to a supervisor."""
    try:
        record = await load_call(web_state(request), principal, str(call_id),
                                 with_audit=False, via="api")
    except (CallNotFound, Forbidden) as exc:
        raise _refused(exc) from exc
    return record.call.to_json()


@router.get("/recordings/{recording_id}", response_model=RecordingDetailOut)
async def get_recording(
    request: Request,
    principal: Annotated[Principal, Depends(api_principal)],
    recording_id: RecordingId,
) -> dict[str, Any]:
    """A recording's metadata (no audio: that is ``/media``)."""
    state = web_state(request)
    try:
        row, call = await recording_call(state, principal, str(recording_id), RECORDINGS_READ)
    except (CallNotFound, Forbidden) as exc:
        raise _refused(exc) from exc
    view = recording_view(row, None if call is None else call.caller)
    unmasked = (await state.accounts.allowed(principal, NUMBERS_UNMASK)).allowed
    if not unmasked:
        view = view.masked()
    async with state.sessions() as session:
        await audit_view(session, principal, f"recording:{row.id}", unmasked=unmasked, via="api")
        await session.commit()
    channels = [str(leg) for leg in STEREO_LEGS] if row.layout == "stereo" else ["mixed"]
    async with state.sessions() as session:
        pauses = (await pauses_of(session, [row.id])).get(row.id, [])
    return {**view.to_json(), "channels": channels, "on_hold": row.hold_reason is not None,
            "pauses": [pause_json(p) for p in pauses]}


MEDIA_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"audio/wav": {}}, "description": "The whole recording."},
    206: {"content": {"audio/wav": {}}, "description": "The asked range."},
    **problem_responses(410, 416, 502, 503),
}


# GET and HEAD as two operations: one route with both would give the document one
# operationId twice.
@router.head("/recordings/{recording_id}/media", response_class=Response,
             responses=MEDIA_RESPONSES, operation_id="head_recording_media")
@router.get("/recordings/{recording_id}/media", response_class=Response,
            responses=MEDIA_RESPONSES, operation_id="get_recording_media")
async def get_recording_media(
    request: Request,
    principal: Annotated[Principal, Depends(api_principal)],
    recording_id: RecordingId,
) -> Response:
    """The audio, decrypted as it streams; ``Range: bytes=...`` answers 206. Every GET
    is audited (``recording.played``). Supervisors (own extensions) and dpos only."""
    try:
        return await listen(request, principal, "api")
    except Forbidden as exc:
        raise HTTPException(403, "this token's role may not listen to this recording") from exc
