"""How failures are answered: problem JSON under ``/api/`` (RFC 9457), pages elsewhere
(sign-in, forbidden, not found, a refused form) in the viewer's language."""

from __future__ import annotations

import logging
from http import HTTPStatus
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response

from pbx_bridge.web.pages import error_page, render
from pbx_bridge.web.problems import problem
from pbx_bridge.web.security_headers import HEADERS
from pbx_bridge.web.viewer import (
    CsrfRefused,
    Forbidden,
    SignInNeeded,
    anonymous_viewer,
    viewer_of,
)
from storage.database import DatabaseError, error_reason

log = logging.getLogger(__name__)

PAGE_ERRORS = {
    403: ("errors.forbidden_title", "errors.forbidden"),
    404: ("errors.not_found_title", "errors.not_found"),
}


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("query", "body"))
        parts.append(f"{where}: {error.get('msg')}")
    return "; ".join(parts) or "invalid request"


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if _is_api(request):
        detail = exc.detail if exc.detail != HTTPStatus(exc.status_code).phrase else None
        headers = dict(exc.headers) if exc.headers else None
        return problem(exc.status_code, detail, instance=request.url.path, headers=headers)
    viewer = await viewer_of(request)
    title_key, message_key = PAGE_ERRORS.get(exc.status_code, PAGE_ERRORS[404])
    response = error_page(request, viewer, exc.status_code, title_key, message_key)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _invalid_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    detail = _validation_detail(exc)
    if _is_api(request):
        return problem(422, detail, instance=request.url.path)
    viewer = await viewer_of(request)
    return render(
        request, viewer, "error.html", 400,
        title=viewer.t("errors.bad_request_title"), message=detail,
    )


async def _sign_in_needed(request: Request, exc: Exception) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/sign-in?next={quote(target, safe='/')}", status_code=303)


async def _forbidden(request: Request, exc: Exception) -> Response:
    if _is_api(request):
        return problem(403, "your role does not allow this", instance=request.url.path)
    viewer = await viewer_of(request)
    return error_page(request, viewer, 403, *PAGE_ERRORS[403])


async def _csrf_refused(request: Request, exc: Exception) -> Response:
    viewer = await viewer_of(request)
    return error_page(request, viewer, 403, "errors.csrf_title", "errors.csrf")


async def _failed(request: Request, status: int, title_key: str, message_key: str) -> Response:
    """503 or 500 in the viewer's words, naming nothing internal (no driver, file,
    statement or trace: the log has what the operator needs)."""
    if _is_api(request):
        viewer = anonymous_viewer(request)
        return problem(status, viewer.t(message_key), instance=request.url.path)
    try:
        viewer = await viewer_of(request)
    except Exception:  # what failed may be the sessions' lookup itself (logged already)
        viewer = anonymous_viewer(request)
    return error_page(request, viewer, status, title_key, message_key)


async def _database_failed(request: Request, exc: Exception) -> Response:
    log.error("web: %s %s: database error: %s", request.method, request.url.path,
              error_reason(exc))
    return await _failed(request, 503, "errors.unavailable_title", "errors.unavailable")


async def _unexpected(request: Request, exc: Exception) -> Response:
    """Starlette answers this outside every middleware: the headers are set here."""
    log.error("web: %s %s failed", request.method, request.url.path, exc_info=exc)
    try:
        response = await _failed(request, 500, "errors.failed_title", "errors.failed")
    except Exception:  # the page itself cannot be made: a plain answer still
        log.exception("web: the error page failed too")
        response = problem(500, instance=request.url.path)
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def install(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(SignInNeeded, _sign_in_needed)
    app.add_exception_handler(Forbidden, _forbidden)
    app.add_exception_handler(CsrfRefused, _csrf_refused)
    app.add_exception_handler(SQLAlchemyError, _database_failed)
    app.add_exception_handler(DatabaseError, _database_failed)
    app.add_exception_handler(Exception, _unexpected)
