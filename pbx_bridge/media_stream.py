"""A stored recording as an HTTP response: ranged, streamed, decrypted on the fly.

The web console's player and ``GET /api/v1/recordings/{id}/media`` answer with
``media_response`` after they have checked who asks (and audited the listen). The first
piece is read before the status line is sent, so a recording whose first asked chunk is
tampered with (or whose backend fails at once) gets an error answer instead of a 206 that
breaks off; a chunk failing later ends the stream early, and the client sees a body
shorter than its Content-Length, never altered audio. ``Cache-Control: no-store`` keeps
personal audio out of shared and browser caches.

``media_endpoint`` is the same as a Starlette endpoint, with the checks passed in, for a
route ``.../{recording_id}/media``: errors are RFC 9457 problem JSON. Wiring it by hand::

    player = await build_player(settings.storage, sessions)   # start-up; player.close() at exit
    source = await player.open(recording_id)     # after the role check: 404 / 410 / 503
    answer = answer_range(request.headers.get("range"), source.size, ...)
    ...audit "recording.played" with listen_details(source, answer)...
    return await media_response(source, range_header=request.headers.get("range"),
                                if_range=request.headers.get("if-range"))
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from pbx_bridge.byte_ranges import RangeAnswer, answer_range
from storage.errors import (
    BackendUnavailable,
    ChunkTampered,
    NoPlayableCopy,
    RecordingErased,
    RecordingNotFound,
    StorageError,
)
from storage.playback import PlaybackSource, Player

PROBLEM_TYPE = "application/problem+json"


def _etag(source: PlaybackSource) -> str | None:
    return f'"{source.sha256}"' if source.sha256 else None


def _headers(source: PlaybackSource, answer: RangeAnswer) -> dict[str, str]:
    headers = dict(answer.headers)
    headers["Cache-Control"] = "no-store"
    headers["X-Content-Type-Options"] = "nosniff"
    etag = _etag(source)
    if etag is not None:
        headers["ETag"] = etag
    return headers


async def media_response(
    source: PlaybackSource,
    *,
    range_header: str | None,
    if_range: str | None = None,
    head: bool = False,
) -> Response:
    """200, 206 or 416 for ``source``; raises what ``PlaybackSource.read_range`` raises
    for the first piece (``ChunkTampered``, a backend error) before anything is sent."""
    answer = answer_range(range_header, source.size, if_range=if_range, etag=_etag(source))
    headers = _headers(source, answer)
    if answer.range is None or head:
        # 416, an empty recording, or HEAD: headers only.
        return Response(status_code=answer.status, headers=headers, media_type=source.media_type)
    pieces = source.read_range(answer.range.start, answer.range.end)
    try:
        first = await anext(pieces)
    except BaseException:
        await _close(pieces)
        raise
    return StreamingResponse(
        _rest(first, pieces), status_code=answer.status, headers=headers,
        media_type=source.media_type,
    )


async def _rest(first: bytes, pieces: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        yield first
        async for piece in pieces:
            yield piece
    finally:
        await _close(pieces)


async def _close(pieces: AsyncIterator[bytes]) -> None:
    aclose = getattr(pieces, "aclose", None)
    if aclose is not None:
        await aclose()


def listen_details(source: PlaybackSource, answer: RangeAnswer) -> dict[str, object]:
    """The facts of one listen for its audit entry (``recording.played``): which copy,
    which bytes of how many. Nothing personal: ids, sizes and the recording's hash."""
    chosen = answer.range if answer.status != 416 else None
    return {
        "backend": source.backend,
        "encrypted": source.encrypted,
        "status": answer.status,
        "range": None if chosen is None else f"{chosen.start}-{chosen.end}",
        "bytes": 0 if chosen is None else chosen.length,
        "size": source.size,
        "sha256": source.sha256,
    }


def problem(status: int, title: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status_code=status, media_type=PROBLEM_TYPE,
    )


# Checks the caller passes in: ``authorize`` raises (e.g. starlette's HTTPException) or
# returns a refusal response before anything about the recording is looked up;
# ``on_play`` records the listen (who, which recording, which copy, which range).
Authorize = Callable[[Request, str], Awaitable[Response | None]]
OnPlay = Callable[[Request, PlaybackSource, RangeAnswer], Awaitable[None]]


def media_endpoint(
    player: Player, *, authorize: Authorize, on_play: OnPlay
) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint for ``GET``/``HEAD .../{recording_id}/media``."""

    async def endpoint(request: Request) -> Response:
        recording_id = str(request.path_params["recording_id"])
        refused = await authorize(request, recording_id)
        if refused is not None:
            return refused
        try:
            source = await player.open(recording_id)
        except RecordingNotFound:
            return problem(404, "Recording not found", f"no recording {recording_id}")
        except RecordingErased as exc:
            return problem(410, "Recording erased", str(exc))
        except NoPlayableCopy as exc:
            return problem(503, "No copy can be read now", str(exc))
        range_header = request.headers.get("range")
        if_range = request.headers.get("if-range")
        answer = answer_range(range_header, source.size, if_range=if_range,
                              etag=_etag(source))
        await on_play(request, source, answer)
        try:
            return await media_response(
                source, range_header=range_header, if_range=if_range,
                head=request.method == "HEAD",
            )
        except ChunkTampered as exc:
            return problem(502, "Stored copy does not authenticate", str(exc))
        except BackendUnavailable as exc:
            return problem(503, "Storage backend unavailable", str(exc))
        except StorageError as exc:
            return problem(502, "Stored copy cannot be read", str(exc))

    return endpoint


__all__ = [
    "Authorize", "OnPlay", "listen_details", "media_endpoint", "media_response", "problem",
]
