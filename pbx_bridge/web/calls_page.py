"""The calls list page: read-only, newest first, numbers masked unless the role may
unmask (the same listing as ``pbx-bridge calls list``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from pbx_bridge.calls.history import DEFAULT_LIMIT
from pbx_bridge.cli.listing_options import short_time
from pbx_bridge.web.call_listing import NumberFilterNotAllowed, visible_calls
from pbx_bridge.web.filters import MAX_LIMIT, BadFilter, clean_number, parse_since
from pbx_bridge.web.pages import render
from pbx_bridge.web.viewer import Forbidden, Viewer, signed_in
from pbx_bridge.web.web_state import web_state

router = APIRouter(include_in_schema=False)


@router.get("/calls")
async def calls_page(
    request: Request,
    viewer: Annotated[Viewer, Depends(signed_in)],
    number: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Response:
    assert viewer.principal is not None  # signed_in saw to it
    error = None
    try:
        calls, unmasked = await visible_calls(
            web_state(request), viewer.principal,
            number=clean_number(number), since=parse_since(since), limit=limit,
        )
    except BadFilter as exc:
        calls, unmasked, error = [], False, str(exc)
    except NumberFilterNotAllowed as exc:
        raise Forbidden from exc
    return render(
        request, viewer, "calls.html", 400 if error else 200,
        calls=calls, unmasked=unmasked, number=number or "", since=since or "",
        error=error, short_time=short_time,
    )
