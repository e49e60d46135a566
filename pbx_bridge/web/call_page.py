"""The call page (``/calls/{id}``): the call's facts, its consent proof, its recordings
with a player each, retention and holds, and the audit entries about it; and the page's
own media URL (``/recordings/{id}/media``, the console session instead of a token)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from starlette.responses import Response

from pbx_bridge.cli.listing_options import short_time
from pbx_bridge.web.call_record import CallNotFound, load_call
from pbx_bridge.web.listening import listen
from pbx_bridge.web.pages import render
from pbx_bridge.web.viewer import Viewer, signed_in
from pbx_bridge.web.web_state import web_state

router = APIRouter(include_in_schema=False)


def media_url(recording_id: str) -> str:
    return f"/recordings/{recording_id}/media"


@router.get("/calls/{call_id}")
async def call_page(
    request: Request,
    viewer: Annotated[Viewer, Depends(signed_in)],
    call_id: Annotated[uuid.UUID, Path()],
) -> Response:
    assert viewer.principal is not None  # signed_in saw to it
    try:
        record = await load_call(web_state(request), viewer.principal, str(call_id))
    except CallNotFound as exc:
        raise HTTPException(404) from exc
    recordings = {r.id: r for r in record.call.recordings}
    consent = record.call.consent
    evidence = recordings.get(consent.evidence_recording_id or "") if consent else None
    return render(
        request, viewer, "call.html",
        record=record, call=record.call, consent=consent, evidence=evidence,
        media_url=media_url, short_time=short_time,
        share_days=web_state(request).settings.share_days,
    )


@router.api_route("/recordings/{recording_id}/media", methods=["GET", "HEAD"])
async def console_media(
    request: Request,
    viewer: Annotated[Viewer, Depends(signed_in)],
    recording_id: Annotated[uuid.UUID, Path()],
) -> Response:
    assert viewer.principal is not None
    return await listen(request, viewer.principal, "console")
