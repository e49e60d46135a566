"""The API's next page: its cursor in ``Next-Cursor`` and ``Link: <...>; rel="next"``
(the same query with the cursor replaced), for every listing that pages by cursor."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response


def link_next_page(request: Request, response: Response, next_cursor: str | None) -> None:
    if next_cursor is None:
        return
    query = {k: v for k, v in request.query_params.items() if k != "cursor"}
    following = urlencode({**query, "cursor": next_cursor})
    response.headers["Next-Cursor"] = next_cursor
    response.headers["Link"] = f'<{request.url.path}?{following}>; rel="next"'
