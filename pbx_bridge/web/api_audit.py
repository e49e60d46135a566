"""``GET /api/v1/audit`` (filters and a cursor, newest first, masked for whoever may not
see personal data), ``GET /api/v1/audit/verification`` (the newest verification) and
``POST /api/v1/audit/verify`` (walk the chain now, audited as ``audit.verified``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from pbx_bridge.calls.search import MAX_LIMIT, InvalidSearch
from pbx_bridge.web.accounts import Principal
from pbx_bridge.web.api_auth import api_principal
from pbx_bridge.web.api_models import ChainStateOut, problem_responses
from pbx_bridge.web.audit_listing import (
    DEFAULT_LIMIT,
    AuditFilter,
    audit_query,
    visible_entries,
)
from pbx_bridge.web.audit_masking import EntryView
from pbx_bridge.web.audit_verification import verifier_of
from pbx_bridge.web.filters import BadFilter
from pbx_bridge.web.paging import link_next_page
from pbx_bridge.web.viewer import Forbidden
from pbx_bridge.web.web_state import web_state

router = APIRouter(prefix="/api/v1", tags=["audit"], responses=problem_responses(401, 403, 422))

@router.get("/audit", response_model=list[EntryView])
async def list_audit_api(
    request: Request,
    response: Response,
    principal: Annotated[Principal, Depends(api_principal)],
    chosen: Annotated[AuditFilter, Depends(audit_query)],
    cursor: Annotated[
        str | None, Query(max_length=512, description="The previous page's Next-Cursor.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> list[dict[str, Any]]:
    """Entries newest first (by seq), each with its hash and the previous entry's;
    numbers, addresses and free text in ``details`` hidden unless the token may unmask.
    Needs ``audit.read``."""
    try:
        page = await visible_entries(
            web_state(request), principal, chosen, cursor=cursor, limit=limit
        )
    except (BadFilter, InvalidSearch) as exc:
        raise HTTPException(422, str(exc)) from exc
    except Forbidden as exc:
        raise HTTPException(403, "this token may not read the audit trail") from exc
    link_next_page(request, response, page.next_cursor)
    return [asdict(entry) for entry in page.entries]


@router.get("/audit/verification", response_model=ChainStateOut)
async def chain_state_api(
    request: Request, principal: Annotated[Principal, Depends(api_principal)]
) -> dict[str, object]:
    """The newest verification of the chain (who ran it, when, what it found)."""
    try:
        state = await verifier_of(request).state(principal)
    except Forbidden as exc:
        raise HTTPException(403, "this token may not read the audit trail") from exc
    return state.to_json()


@router.post("/audit/verify", response_model=ChainStateOut)
async def verify_api(
    request: Request, principal: Annotated[Principal, Depends(api_principal)]
) -> dict[str, object]:
    """Walk the whole chain now (hashes checked off the event loop), record the result
    as an ``audit.verified`` entry and answer it. Needs ``audit.verify``. A broken
    chain is a 200 with ``ok: false``: the check worked, the trail did not hold."""
    try:
        state = await verifier_of(request).verify_now(principal)
    except Forbidden as exc:
        raise HTTPException(403, "this token may not verify the audit trail") from exc
    return state.to_json()
