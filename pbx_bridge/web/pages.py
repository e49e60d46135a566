"""Rendering a page for a viewer, and the pages every console needs: forbidden, not
found, a refused form."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse

from pbx_bridge.web.viewer import Viewer
from pbx_bridge.web.web_state import web_state


def render(
    request: Request, viewer: Viewer, template: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    state = web_state(request)
    response = state.templates.TemplateResponse(
        request,
        template,
        {"viewer": viewer, "t": viewer.t, "lang": viewer.language, "active": None,
         "here": _here(request, status_code), **context},
        status_code=status_code,
    )
    if viewer.new_nonce is not None:
        state.cookies.set_csrf(response, viewer.new_nonce)
    response.headers["Content-Language"] = viewer.language
    return response


def _here(request: Request, status_code: int) -> str:
    """Where the header's language switch comes back to: this page, but never an error
    page's address (it would repeat what was refused, e.g. another extension's call id,
    in the page), which goes back to the start instead."""
    if status_code >= 400:
        return "/"
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def error_page(
    request: Request, viewer: Viewer, status_code: int, title_key: str, message_key: str
) -> HTMLResponse:
    return render(
        request, viewer, "error.html", status_code,
        title=viewer.t(title_key), message=viewer.t(message_key),
    )
