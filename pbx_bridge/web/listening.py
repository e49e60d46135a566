"""Listening to a recording in the console or through the API: who may, and the audit
entry of every listen, around ``media_stream.media_endpoint`` (Range, 206, decrypted on
the fly).

Who: ``recordings.listen`` for the recording's call (a supervisor's own extensions, a
dpo any); an admin or auditor never (403), before anything about the recording is read.

Audit: one ``recording.played`` entry per GET that is answered, each range request its
own entry, with the range and byte count (``listen_details``). Auditing only the first
request of a playback (range starting at 0, or no Range) would be fewer entries, but a
client asking ``bytes=1-`` would then hear the whole call unrecorded; one entry per
request accounts for every byte given out, and a reader tells a playback's start (range
``0-...``) from its seeks. HEAD gives no audio and is not audited. The console's
``<audio>`` uses ``preload="none"``, so opening the call page fetches nothing: only
pressing play does, and that is what the trail shows.

Errors: the player's problem details name backends and copy keys; only an admin or dpo
sees them. Anyone else gets the status and a generic sentence.
"""

from __future__ import annotations

import json

from fastapi import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from pbx_bridge.byte_ranges import RangeAnswer
from pbx_bridge.media_stream import listen_details, media_endpoint, problem
from pbx_bridge.web.accounts import Principal
from pbx_bridge.web.call_record import CallNotFound, actor_of, recording_call
from pbx_bridge.web.permissions import RECORDINGS_LISTEN
from pbx_bridge.web.web_state import web_state
from storage.audit_trail import record_event
from storage.playback import PlaybackSource, Player

PLAYED = "recording.played"
# Roles that may read the storage layer's own words about a failure.
SEES_STORAGE_DETAILS = frozenset({"admin", "dpo"})
GENERIC = {
    404: "no such recording",
    410: "this recording was erased",
    502: "the recording cannot be played now; an administrator has been told by the logs",
    503: "the recording cannot be played now; try again later",
}


def _principal(request: Request) -> Principal:
    principal: Principal = request.state.listener
    return principal


async def _authorize(request: Request, recording_id: str) -> Response | None:
    principal = _principal(request)
    try:
        _, call = await recording_call(
            web_state(request), principal, recording_id, RECORDINGS_LISTEN
        )
    except CallNotFound as exc:
        raise HTTPException(404, "no such recording") from exc
    request.state.listened_call = None if call is None else call.id
    return None


async def _on_play(request: Request, source: PlaybackSource, answer: RangeAnswer) -> None:
    if request.method == "HEAD":
        return
    state = web_state(request)
    details = {
        **listen_details(source, answer),
        "call_id": request.state.listened_call,
        "via": request.state.listen_via,
    }
    async with state.sessions() as session:
        await record_event(
            session, actor=actor_of(_principal(request)), action=PLAYED,
            target=f"recording:{source.recording_id}", details=details,
        )
        await session.commit()


def _generic(response: Response, principal: Principal) -> Response:
    if response.status_code < 400 or str(principal.role) in SEES_STORAGE_DETAILS:
        return response
    if response.headers.get("content-type", "").split(";")[0] != "application/problem+json":
        return response
    body = json.loads(bytes(response.body))
    detail = GENERIC.get(response.status_code, "the recording cannot be played")
    return problem(response.status_code, str(body.get("title", "Error")), detail)


async def listen(request: Request, principal: Principal, via: str) -> Response:
    """Answer a media request for a principal already known (bearer token or console
    session); ``via`` ("api", "console") goes in the audit entry."""
    request.state.listener = principal
    request.state.listen_via = via
    endpoint = media_endpoint(player_of(request), authorize=_authorize, on_play=_on_play)
    return _generic(await endpoint(request), principal)


def player_of(request: Request) -> Player:
    """The process's player (``app.state.player``); 503 when the console has none."""
    player: Player | None = getattr(request.app.state, "player", None)
    if player is None:
        raise HTTPException(503, "playback is not set up in this console")
    return player
