"""The audit trail page (``/audit``, an auditor's start page): the chain's verification
state with a "verify now" form (``POST /audit/verify``, CSRF-checked), filters, and the
entries newest first a page at a time, each with its hash and the previous one's;
masked for whoever may not see personal data (audit_listing.py)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import RedirectResponse, Response

from pbx_bridge.calls.search import MAX_LIMIT, InvalidSearch
from pbx_bridge.web.audit_listing import (
    DEFAULT_LIMIT,
    AuditFilter,
    audit_query,
    visible_entries,
)
from pbx_bridge.web.audit_verification import verifier_of
from pbx_bridge.web.filters import BadFilter
from pbx_bridge.web.pages import render
from pbx_bridge.web.permissions import AUDIT_VERIFY
from pbx_bridge.web.viewer import Viewer, csrf_checked, signed_in
from pbx_bridge.web.web_state import web_state

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_checked)])

@router.get("/audit")
async def audit_page(
    request: Request,
    viewer: Annotated[Viewer, Depends(signed_in)],
    chosen: Annotated[AuditFilter, Depends(audit_query)],
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Response:
    assert viewer.principal is not None  # signed_in saw to it
    state = web_state(request)
    chain = await verifier_of(request).state(viewer.principal)  # Forbidden without audit.read
    values = asdict(chosen)
    error, entries, masked, next_url = None, [], True, None
    try:
        page = await visible_entries(state, viewer.principal, chosen, cursor=cursor,
                                     limit=limit)
    except (BadFilter, InvalidSearch) as exc:
        error = str(exc)
    else:
        entries, masked = page.entries, page.masked
        if page.next_cursor is not None:
            kept = {k: v for k, v in values.items() if v}
            next_url = "/audit?" + urlencode({**kept, "limit": limit, "cursor": page.next_cursor})
    may_verify = (await state.accounts.allowed(viewer.principal, AUDIT_VERIFY)).allowed
    return render(
        request, viewer, "audit.html", 400 if error else 200, active="audit",
        chain=chain, entries=entries, masked=masked, error=error, next_url=next_url,
        values={k: v or "" for k, v in values.items()}, may_verify=may_verify,
        as_json=as_json,
    )


def as_json(details: dict[str, object]) -> str:
    """Details as the trail stores them (sorted keys), readable (not \\u-escaped)."""
    return json.dumps(details, sort_keys=True, ensure_ascii=False)


@router.post("/audit/verify")
async def verify_form(
    request: Request, viewer: Annotated[Viewer, Depends(signed_in)]
) -> Response:
    """Walks the chain now (audited as ``audit.verified``), then shows the page again."""
    assert viewer.principal is not None
    await verifier_of(request).verify_now(viewer.principal)
    return RedirectResponse("/audit#chain", status_code=303)
