"""How failures are answered: problem JSON under ``/api/`` (RFC 9457), pages elsewhere
(sign-in, forbidden, not found, a refused form) in the viewer's language."""

from __future__ import annotations

from http import HTTPStatus
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response

from pbx_bridge.web.pages import error_page, render
from pbx_bridge.web.problems import problem
from pbx_bridge.web.viewer import CsrfRefused, Forbidden, SignInNeeded, viewer_of

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


def install(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(SignInNeeded, _sign_in_needed)
    app.add_exception_handler(Forbidden, _forbidden)
    app.add_exception_handler(CsrfRefused, _csrf_refused)
