"""Signing in and out of the console.

A new session id is issued at every sign-in (never an id the browser brought: session
fixation), and the CSRF nonce is renewed with it. Failures never say whether the name or
the password was wrong.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import RedirectResponse, Response

from pbx_bridge.web import csrf
from pbx_bridge.web.accounts import ASK_SECOND_FACTOR, Principal, SignInAttempt, SignInRefused
from pbx_bridge.web.pages import render
from pbx_bridge.web.viewer import Viewer, csrf_checked, landing_of, viewer_of
from pbx_bridge.web.web_state import web_state

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_checked)])

# The default after sign-in: "/" sends each role to its own start page (landing_of).
HOME = "/"
# Long enough for any name people use, short enough that a pasted novel is refused.
MAX_FIELD = 256


def safe_next(value: str | None) -> str:
    """Only a path on this site: ``//evil.example`` or ``https://...`` would send the
    user elsewhere right after they signed in (an open redirect)."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return HOME
    return value


async def _after_sign_in(request: Request, principal: Principal, next: str | None) -> str:
    """Where a signed-in browser goes: ``next`` when it is ours, else the role's page."""
    target = safe_next(next)
    if target == HOME:
        return await landing_of(web_state(request).accounts, principal)
    return target


@router.get("/")
async def start(request: Request) -> Response:
    viewer = await viewer_of(request)
    if viewer.principal is None:
        return RedirectResponse("/sign-in", status_code=303)
    landing = await landing_of(web_state(request).accounts, viewer.principal)
    return RedirectResponse(landing, status_code=303)


@router.get("/sign-in")
async def sign_in_page(
    request: Request,
    viewer: Annotated[Viewer, Depends(viewer_of)],
    next: str | None = None,
    signed_out: bool = False,
) -> Response:
    if viewer.principal is not None:
        return RedirectResponse(await _after_sign_in(request, viewer.principal, next),
                                status_code=303)
    return render(
        request, viewer, "sign_in.html", next=safe_next(next), username="",
        error=None, notice=viewer.t("sign_in.signed_out") if signed_out else None,
        ask_totp=False,
    )


@router.post("/sign-in")
async def sign_in(
    request: Request,
    viewer: Annotated[Viewer, Depends(viewer_of)],
    username: Annotated[str, Form(max_length=MAX_FIELD)] = "",
    password: Annotated[str, Form(max_length=MAX_FIELD)] = "",
    totp: Annotated[str, Form(max_length=16)] = "",
    next: Annotated[str, Form(max_length=2048)] = HOME,
) -> Response:
    state = web_state(request)
    attempt = SignInAttempt(
        username=username,
        password=password,
        totp=totp.strip() or None,
        client=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
        replacing=state.cookies.session_id(request),
    )
    try:
        session = await state.accounts.sign_in(attempt)
    except SignInRefused as refused:
        return render(
            request, viewer, "sign_in.html", 401, next=safe_next(next), username=username,
            error=viewer.t(f"sign_in.{refused.reason}"), notice=None,
            ask_totp=refused.reason in ASK_SECOND_FACTOR,
        )
    response = RedirectResponse(await _after_sign_in(request, session.principal, next),
                                status_code=303)
    state.cookies.set_session(response, session.session_id)
    state.cookies.set_csrf(response, csrf.new_nonce())
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    state = web_state(request)
    session_id = state.cookies.session_id(request)
    if session_id is not None:
        await state.accounts.sign_out(session_id)
    response = RedirectResponse("/sign-in?signed_out=true", status_code=303)
    state.cookies.clear_session(response)
    state.cookies.set_csrf(response, csrf.new_nonce())
    return response
