"""Values holding a NUL character are refused before any handler sees them.

PostgreSQL's text cannot hold NUL (``invalid byte sequence for encoding "UTF8": 0x00``):
a filter, a user name or a note with one reached the query and the request ended in a
500. No legitimate value contains it, so every request is checked once, here, for
every route that exists or lands later: the query string's names and values, and a
form's or a JSON document's fields (bodies up to ``MAX_CHECKED_BODY``; bigger ones are
no form of ours). The answer names the field, as any refused value does: 422 problem
JSON under ``/api/``, the 400 error page elsewhere.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from pbx_bridge.web.pages import render
from pbx_bridge.web.problems import problem
from pbx_bridge.web.viewer import viewer_of

NUL = "\x00"
MAX_CHECKED_BODY = 1 << 20
FORM = "application/x-www-form-urlencoded"


def _in_json(value: object, where: str) -> Iterator[str]:
    if isinstance(value, str):
        if NUL in value:
            yield where or "body"
    elif isinstance(value, dict):
        for key, item in value.items():
            name = f"{where}.{key}" if where else str(key)
            if NUL in str(key):
                yield name
            yield from _in_json(item, name)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _in_json(item, f"{where}[{index}]")


def _in_pairs(pairs: list[tuple[str, str]]) -> str | None:
    for name, value in pairs:
        if NUL in name or NUL in value:
            return name.replace(NUL, "\\0")
    return None


async def _in_body(request: Request) -> str | None:
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_CHECKED_BODY):
        return None
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != FORM and not kind.endswith("json"):
        return None
    body = await request.body()
    if b"\x00" not in body and b"%00" not in body and b"\\u0000" not in body:
        return None
    if kind == FORM:
        return _in_pairs(parse_qsl(body.decode("latin-1"), keep_blank_values=True))
    try:
        document = json.loads(body)
    except ValueError:
        return None  # not JSON: the route's own validation says so
    return next(_in_json(document, ""), None)


async def refuse_nul(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    where = _in_pairs(request.query_params.multi_items()) or await _in_body(request)
    if where is None:
        return await call_next(request)
    message = f"{where}: a value cannot contain a NUL character"
    if request.url.path.startswith("/api/"):
        return problem(422, message, instance=request.url.path)
    viewer = await viewer_of(request)
    return render(
        request, viewer, "error.html", 400,
        title=viewer.t("errors.bad_request_title"), message=message,
    )
