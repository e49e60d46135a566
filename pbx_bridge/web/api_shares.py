"""``POST /api/v1/recordings/{id}/share``, ``GET /api/v1/shares``, ``DELETE
/api/v1/shares/{id}``: share links through the API (rules in share_links.py)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from pbx_bridge.web.accounts import Principal
from pbx_bridge.web.api_auth import api_principal
from pbx_bridge.web.api_models import problem_responses
from pbx_bridge.web.share_links import (
    MAX_NOTE,
    MAX_SHARE_DAYS,
    CallNotFound,
    ShareNotFound,
    create_share,
    list_shares,
    revoke_share,
    state_of,
)
from pbx_bridge.web.share_models import ShareLink
from pbx_bridge.web.viewer import Forbidden
from pbx_bridge.web.web_state import web_state
from storage.models import utcnow

router = APIRouter(
    prefix="/api/v1", tags=["shares"], responses=problem_responses(401, 403, 404, 422)
)


class ShareIn(BaseModel):
    expires_days: int | None = Field(default=None, ge=1, le=MAX_SHARE_DAYS)
    one_time: bool = False
    note: str | None = Field(default=None, max_length=MAX_NOTE)


class ShareCreatedOut(BaseModel):
    id: str
    url: str  # shown once: only its hash is kept
    expires_at: datetime
    one_time: bool


class ShareOut(BaseModel):
    id: str
    recording_id: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    one_time: bool
    used_at: datetime | None
    note: str | None
    revoked_at: datetime | None
    revoked_by: str | None
    state: str


def share_json(link: ShareLink) -> dict[str, Any]:
    return {
        "id": link.id, "recording_id": link.recording_id, "created_by": link.created_by,
        "created_at": link.created_at, "expires_at": link.expires_at,
        "one_time": link.one_time, "used_at": link.used_at, "note": link.note,
        "revoked_at": link.revoked_at, "revoked_by": link.revoked_by,
        "state": str(state_of(link, utcnow())),
    }


@router.post("/recordings/{recording_id}/share", status_code=201,
             response_model=ShareCreatedOut)
async def post_share(
    request: Request,
    principal: Annotated[Principal, Depends(api_principal)],
    recording_id: Annotated[uuid.UUID, Path(description="The recording's id (a UUID).")],
    body: ShareIn | None = None,
) -> dict[str, Any]:
    """A link anyone can open without an account until it expires (default
    ``[web] share_days``), is revoked or, one-time, is played. The url is shown once."""
    asked = body or ShareIn()
    state = web_state(request)
    try:
        made = await create_share(
            state, principal, str(recording_id), days=asked.expires_days,
            one_time=asked.one_time, note=asked.note,
        )
    except CallNotFound as exc:
        raise HTTPException(404, "no such recording") from exc
    except Forbidden as exc:
        raise HTTPException(403, "this token's role may not share this recording") from exc
    return {"id": made.link.id, "url": made.url(state.settings.base_url),
            "expires_at": made.link.expires_at, "one_time": made.link.one_time}


@router.get("/shares", response_model=list[ShareOut])
async def get_shares(
    request: Request, principal: Annotated[Principal, Depends(api_principal)]
) -> list[dict[str, Any]]:
    """The links this principal made (a dpo: every link), newest first."""
    try:
        links = await list_shares(web_state(request), principal)
    except Forbidden as exc:
        raise HTTPException(403, "this token's role may not list share links") from exc
    return [share_json(link) for link in links]


@router.delete("/shares/{share_id}", status_code=204, response_class=Response)
async def delete_share(
    request: Request,
    principal: Annotated[Principal, Depends(api_principal)],
    share_id: Annotated[uuid.UUID, Path(description="The share link's id (a UUID).")],
) -> Response:
    """Revoke: the link answers 410 from now on."""
    try:
        await revoke_share(web_state(request), principal, str(share_id))
    except ShareNotFound as exc:
        raise HTTPException(404, "no such share link") from exc
    except Forbidden as exc:
        raise HTTPException(403, "this token may not revoke this share link") from exc
    return Response(status_code=204)
