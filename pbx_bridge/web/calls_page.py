"""The calls list page: read-only, newest first, a page at a time, numbers masked unless
the role may unmask (the same search as ``pbx-bridge calls list``)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from pbx_bridge.calls.search import (
    CONSENT_FILTERS,
    DEFAULT_LIMIT,
    DISPOSITIONS,
    MAX_LIMIT,
    InvalidSearch,
)
from pbx_bridge.cli.listing_options import short_time
from pbx_bridge.subjects.index import SubjectKeyError
from pbx_bridge.web.call_listing import NumberFilterNotAllowed, visible_calls
from pbx_bridge.web.filters import BadFilter, call_filter
from pbx_bridge.web.pages import render
from pbx_bridge.web.viewer import Forbidden, Viewer, signed_in
from pbx_bridge.web.web_state import web_state

router = APIRouter(include_in_schema=False)

Text = Annotated[str | None, Query(max_length=64)]


@router.get("/calls")
async def calls_page(
    request: Request,
    viewer: Annotated[Viewer, Depends(signed_in)],
    number: Text = None,
    since: Text = None,
    until: Text = None,
    did: Text = None,
    extension: Text = None,
    disposition: Text = None,
    consent: Text = None,
    reference: Annotated[str | None, Query(max_length=32)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Response:
    assert viewer.principal is not None  # signed_in saw to it
    values = {"number": number, "since": since, "until": until, "did": did,
              "extension": extension, "disposition": disposition, "consent": consent,
              "reference": reference}
    error, calls, unmasked, next_url = None, [], False, None
    try:
        page, unmasked = await visible_calls(
            web_state(request), viewer.principal, call_filter(**values), cursor=cursor,
            limit=limit,
        )
    except (BadFilter, InvalidSearch, SubjectKeyError) as exc:
        error = str(exc)
    except NumberFilterNotAllowed as exc:
        raise Forbidden from exc
    else:
        calls = page.calls
        if page.next_cursor is not None:
            kept = {k: v for k, v in values.items() if v}
            next_url = "/calls?" + urlencode({**kept, "limit": limit, "cursor": page.next_cursor})
    return render(
        request, viewer, "calls.html", 400 if error else 200,
        calls=calls, unmasked=unmasked, values={k: v or "" for k, v in values.items()},
        dispositions=DISPOSITIONS, consents=CONSENT_FILTERS, error=error,
        next_url=next_url, short_time=short_time,
    )
