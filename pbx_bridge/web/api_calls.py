"""``GET /api/v1/calls``: the calls a token's principal may see, as ``calls list --json``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from pbx_bridge.calls.history import DEFAULT_LIMIT
from pbx_bridge.web.accounts import Principal
from pbx_bridge.web.api_auth import api_principal
from pbx_bridge.web.api_models import CallOut, problem_responses
from pbx_bridge.web.call_listing import NumberFilterNotAllowed, visible_calls
from pbx_bridge.web.filters import MAX_LIMIT, BadFilter, clean_number, parse_since
from pbx_bridge.web.viewer import Forbidden
from pbx_bridge.web.web_state import web_state

router = APIRouter(prefix="/api/v1", tags=["calls"], responses=problem_responses(401, 403, 422))


@router.get("/calls", response_model=list[CallOut])
async def list_calls_api(
    request: Request,
    principal: Annotated[Principal, Depends(api_principal)],
    number: Annotated[
        str | None, Query(max_length=64, description="Caller number (needs unmask).")
    ] = None,
    since: Annotated[
        str | None, Query(max_length=40, description="UTC date or date-time.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> list[dict[str, Any]]:
    """Newest first; numbers masked unless the token's role may unmask."""
    try:
        calls, _ = await visible_calls(
            web_state(request), principal,
            number=clean_number(number), since=parse_since(since), limit=limit,
        )
    except BadFilter as exc:
        raise HTTPException(422, str(exc)) from exc
    except NumberFilterNotAllowed as exc:
        raise HTTPException(403, "filtering by number needs the unmask permission") from exc
    except Forbidden as exc:
        raise HTTPException(403, "this token's role may not list calls") from exc
    return [call.to_json() for call in calls]
