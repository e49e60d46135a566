"""The console's side of share links: the share form on the call page, the "Shares"
page with revoke forms (both CSRF-checked), and the public link ``/s/{token}`` with its
media, which needs no account (rules in share_links.py)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Request
from starlette.responses import RedirectResponse, Response

from pbx_bridge.byte_ranges import RangeAnswer
from pbx_bridge.cli.listing_options import short_time
from pbx_bridge.media_stream import listen_details, media_endpoint, problem
from pbx_bridge.web.listening import player_of
from pbx_bridge.web.pages import render
from pbx_bridge.web.share_links import (
    MAX_NOTE,
    MAX_SHARE_DAYS,
    CallNotFound,
    ShareGone,
    ShareNotFound,
    audit_open,
    create_share,
    list_shares,
    media_link,
    open_page,
    playback_key,
    revoke_share,
    state_of,
)
from pbx_bridge.web.share_models import ShareLink
from pbx_bridge.web.viewer import Viewer, csrf_checked, signed_in, viewer_of
from pbx_bridge.web.web_state import web_state
from storage.models import utcnow
from storage.playback import PlaybackSource

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_checked)])
PLAYBACK_COOKIE = "pbxb_share_playback"
# A token is 43 url-safe characters; anything far off is not one of ours.
Token = Annotated[str, Path(min_length=20, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


def _ip(request: Request) -> str | None:
    return request.client.host if request.client else None


async def _shares_page(
    request: Request, viewer: Viewer, new_url: str | None = None, status_code: int = 200
) -> Response:
    assert viewer.principal is not None
    links = await list_shares(web_state(request), viewer.principal)
    now = utcnow()
    return render(
        request, viewer, "shares.html", status_code, active="shares", links=links,
        state_of=lambda link: str(state_of(link, now)), short_time=short_time,
        new_url=new_url,
    )


@router.get("/shares")
async def shares(request: Request, viewer: Annotated[Viewer, Depends(signed_in)]) -> Response:
    return await _shares_page(request, viewer)


@router.post("/recordings/{recording_id}/share")
async def share_form(
    request: Request,
    viewer: Annotated[Viewer, Depends(signed_in)],
    recording_id: Annotated[uuid.UUID, Path()],
    expires_days: Annotated[int | None, Form(ge=1, le=MAX_SHARE_DAYS)] = None,
    one_time: Annotated[bool, Form()] = False,
    note: Annotated[str, Form(max_length=MAX_NOTE)] = "",
) -> Response:
    """The new link is shown once, on the Shares page this answers with."""
    assert viewer.principal is not None
    state = web_state(request)
    try:
        made = await create_share(
            state, viewer.principal, str(recording_id), days=expires_days,
            one_time=one_time, note=note.strip() or None,
        )
    except CallNotFound as exc:
        raise HTTPException(404) from exc
    return await _shares_page(request, viewer, made.url(state.settings.base_url), 201)


@router.post("/shares/{share_id}/revoke")
async def revoke_form(
    request: Request,
    viewer: Annotated[Viewer, Depends(signed_in)],
    share_id: Annotated[uuid.UUID, Path()],
) -> Response:
    assert viewer.principal is not None
    try:
        await revoke_share(web_state(request), viewer.principal, str(share_id))
    except ShareNotFound as exc:
        raise HTTPException(404) from exc
    return RedirectResponse("/shares", status_code=303)


async def _gone(request: Request) -> Response:
    viewer = await viewer_of(request)
    return render(
        request, viewer, "error.html", 410,
        title=viewer.t("share.gone_title"), message=viewer.t("share.gone"),
    )


@router.get("/s/{token}")
async def public_page(request: Request, token: Token) -> Response:
    """No account, no caller number: the recording's kind, length and a player."""
    state = web_state(request)
    try:
        link = await open_page(state, token, _ip(request))
    except ShareNotFound as exc:
        raise HTTPException(404) from exc
    except ShareGone:
        return await _gone(request)
    viewer = await viewer_of(request)
    response = render(
        request, viewer, "shared.html", link=link, media_url=f"/s/{token}/media",
        short_time=short_time,
    )
    if link.one_time:
        response.set_cookie(
            PLAYBACK_COOKIE, playback_key(state.secret_key, link), path=f"/s/{token}",
            httponly=True, samesite="strict", secure=state.settings.secure_cookies,
        )
    return response


@router.api_route("/s/{token}/media", methods=["GET", "HEAD"])
async def public_media(request: Request, token: Token) -> Response:
    state = web_state(request)
    try:
        link = await media_link(state, token, request.cookies.get(PLAYBACK_COOKIE),
                                _ip(request))
    except ShareNotFound:
        return problem(404, "Not Found", "no such share link")
    except ShareGone as gone:
        return problem(410, "Gone", f"this share link is no longer valid ({gone.reason})")
    request.state.share_link = link
    request.scope["path_params"]["recording_id"] = link.recording_id
    endpoint = media_endpoint(player_of(request), authorize=_no_check, on_play=_on_play)
    response = await endpoint(request)
    if response.status_code >= 400:
        # The storage layer's words name backends and keys: not for a stranger.
        return problem(response.status_code, "Cannot play", "the recording cannot be played")
    return response


async def _no_check(request: Request, recording_id: str) -> Response | None:
    return None  # media_link has checked the link


async def _on_play(request: Request, source: PlaybackSource, answer: RangeAnswer) -> None:
    if request.method == "HEAD":
        return
    link: ShareLink = request.state.share_link
    await audit_open(
        web_state(request), link, _ip(request), "ok", via="media",
        **listen_details(source, answer),
    )
