"""``GET /api/v1/consents``: the consent answers a token's principal may see (the fields
of ``consents list --json``), filtered by time, call, answer and, for who may unmask,
the caller's number; a supervisor's only their extensions' calls (in the query, as the
calls search); numbers masked unless the token may unmask, and every unmasked page
audited as ``consents.unmasked`` (as the CLI's ``consents list --unmasked``)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from pbx_bridge.calls.consent_search import ANSWERS, ConsentFilter, search_consents
from pbx_bridge.calls.search import DEFAULT_LIMIT, MAX_LIMIT, InvalidSearch
from pbx_bridge.subjects.index import SubjectKeyError
from pbx_bridge.web.accounts import Principal
from pbx_bridge.web.api_auth import api_principal
from pbx_bridge.web.api_models import ConsentListedOut, problem_responses
from pbx_bridge.web.call_listing import audited_filters
from pbx_bridge.web.filters import BadFilter, parse_time, text
from pbx_bridge.web.paging import link_next_page
from pbx_bridge.web.permissions import CONSENTS_READ, NUMBERS_UNMASK
from pbx_bridge.web.web_state import web_state
from storage.audit_trail import record_event

router = APIRouter(prefix="/api/v1", tags=["consents"], responses=problem_responses(401, 403, 422))


@router.get("/consents", response_model=list[ConsentListedOut])
async def list_consents_api(
    principal: Annotated[Principal, Depends(api_principal)],
    request: Request,
    response: Response,
    since: Annotated[str | None, Query(max_length=40, description="Calls started at or "
                                       "after this UTC date/time.")] = None,
    until: Annotated[str | None, Query(max_length=40, description="Calls started before "
                                       "this UTC date/time.")] = None,
    call: Annotated[uuid.UUID | None, Query(description="One call's id.")] = None,
    answer: Annotated[str | None, Query(max_length=16, description="One of: "
                                        + ", ".join(ANSWERS) + ".")] = None,
    number: Annotated[str | None, Query(max_length=64, description="The caller's number, "
                                        "however written (needs unmask).")] = None,
    cursor: Annotated[
        str | None, Query(max_length=512, description="The previous page's Next-Cursor.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> list[dict[str, Any]]:
    """Newest call first, a page at a time (``Next-Cursor``, ``Link: rel="next"``)."""
    state = web_state(request)
    reading = await state.accounts.allowed(principal, CONSENTS_READ)
    if not reading.allowed:
        raise HTTPException(403, "this token's role may not read consent answers")
    unmasked = (await state.accounts.allowed(principal, NUMBERS_UNMASK)).allowed
    if text(number) is not None and not unmasked:
        raise HTTPException(403, "filtering by number needs the unmask permission")
    try:
        filters = ConsentFilter(
            since=parse_time(since, "since"), until=parse_time(until, "until"),
            call_id=None if call is None else str(call), answer=text(answer),
            number=text(number),
            extensions=None if reading.extensions is None else frozenset(reading.extensions),
        )
        subjects = await state.subjects.index() if filters.number is not None else None
        async with state.sessions() as session:
            page = await search_consents(
                session, filters, signer=state.cursor_signer, subjects=subjects,
                cursor=cursor, limit=limit,
            )
            if unmasked and page.consents:
                await record_event(
                    session, actor=principal.actor, action="consents.unmasked",
                    target="consents:listing",
                    details={"count": len(page.consents),
                             "ids": [c.id for c in page.consents],
                             "filters": audited_filters(filters)},
                )
                await session.commit()
    except (BadFilter, InvalidSearch, SubjectKeyError) as exc:
        raise HTTPException(422, str(exc)) from exc
    link_next_page(request, response, page.next_cursor)
    return [(c if unmasked else c.masked()).to_json() for c in page.consents]
