"""``GET /api/v1/calls``: the calls a token's principal may see, as ``calls list --json``
(the same search, filters and fields); the next page's cursor in ``Link: rel="next"``
and ``Next-Cursor``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from pbx_bridge.calls.search import DEFAULT_LIMIT, MAX_LIMIT, InvalidSearch
from pbx_bridge.subjects.index import SubjectKeyError
from pbx_bridge.web.accounts import Principal
from pbx_bridge.web.api_auth import api_principal
from pbx_bridge.web.api_models import CallOut, problem_responses
from pbx_bridge.web.call_listing import NumberFilterNotAllowed, visible_calls
from pbx_bridge.web.filters import BadFilter, call_filter
from pbx_bridge.web.paging import link_next_page
from pbx_bridge.web.viewer import Forbidden
from pbx_bridge.web.web_state import web_state

router = APIRouter(prefix="/api/v1", tags=["calls"], responses=problem_responses(401, 403, 422))

Text = Annotated[str | None, Query(max_length=64)]
@router.get("/calls", response_model=list[CallOut])
async def list_calls_api(
    request: Request,
    response: Response,
    principal: Annotated[Principal, Depends(api_principal)],
    number: Annotated[
        str | None, Query(max_length=64, description="Caller or called number (needs unmask).")
    ] = None,
    since: Annotated[str | None, Query(max_length=40, description="UTC date/time.")] = None,
    until: Annotated[str | None, Query(max_length=40, description="UTC date/time.")] = None,
    did: Text = None,
    extension: Text = None,
    disposition: Text = None,
    consent: Text = None,
    direction: Text = None,
    campaign: Annotated[
        str | None, Query(max_length=64, description="The campaign's name.")
    ] = None,
    reference: Annotated[
        str | None,
        Query(max_length=32, description="The call's reference number (9 digits)."),
    ] = None,
    cursor: Annotated[
        str | None, Query(max_length=512, description="The previous page's Next-Cursor.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> list[dict[str, Any]]:
    """Newest first, a page at a time; numbers masked unless the token may unmask."""
    try:
        filters = call_filter(
            number=number, since=since, until=until, did=did, extension=extension,
            disposition=disposition, consent=consent, direction=direction, campaign=campaign,
            reference=reference,
        )
        page, _ = await visible_calls(
            web_state(request), principal, filters, cursor=cursor, limit=limit
        )
    except (BadFilter, InvalidSearch, SubjectKeyError) as exc:
        raise HTTPException(422, str(exc)) from exc
    except NumberFilterNotAllowed as exc:
        raise HTTPException(403, "filtering by number needs the unmask permission") from exc
    except Forbidden as exc:
        raise HTTPException(403, "this token's role may not list calls") from exc
    link_next_page(request, response, page.next_cursor)
    return [call.to_json() for call in page.calls]
