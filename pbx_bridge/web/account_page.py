""""My account" (``/account``), for every signed-in user whatever their role: the UI
language, their own password, their own TOTP second factor and their own sessions; and
the header's language switch (``POST /language``), which works signed out too.

Every form is CSRF-checked and changes only the signed-in user (the users module keys
each change by the session's user id, never a name from the form). Refusals re-render
the page with the message (400); successes redirect (303) to the page, which says what
was done, in the language now chosen.

Signed out, the header's switch keeps the choice in a cookie (``pbxb_lang``, a year) for
the sign-in page; signed in, it is stored on the user and the cookie is cleared, so
"follow the browser" means the browser.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import RedirectResponse, Response

from pbx_bridge.cli.listing_options import short_time
from pbx_bridge.web.accounts import AccountChangeRefused, Principal, TotpEnrolment
from pbx_bridge.web.pages import render
from pbx_bridge.web.qr_codes import qr_svg
from pbx_bridge.web.sign_in import MAX_FIELD, safe_next
from pbx_bridge.web.viewer import Viewer, csrf_checked, signed_in, viewer_of
from pbx_bridge.web.web_state import web_state

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_checked)])

# The form's value for "no choice of my own: follow the browser's Accept-Language".
BROWSER = "browser"
# What the page says after a change (?done=...): each has a message account.done_<x>.
DONE = frozenset({"language", "password", "totp", "sessions"})
# Sealed TOTP secrets are ~100 characters; anything far longer is not ours.
MAX_SEALED = 512


def _language_choice(value: str, languages: list[str]) -> str | None:
    """The form's value as the user's choice (None: follow the browser)."""
    if value == BROWSER:
        return None
    if value not in languages:
        raise AccountChangeRefused("unknown-language", f"unknown language {value!r}")
    return value


async def _account_page(
    request: Request,
    viewer: Viewer,
    status_code: int = 200,
    *,
    error: str | None = None,
    error_form: str | None = None,
    enrolment: TotpEnrolment | None = None,
    done: str | None = None,
    ended: int = 0,
) -> Response:
    principal = _principal(viewer)
    accounts = web_state(request).accounts
    notice = None
    if done in DONE:
        notice = viewer.t(f"account.done_{done}", count=ended)
    context: dict[str, Any] = {
        "active": "account",
        "sessions": await accounts.own_sessions(principal),
        "totp_enrolled": await accounts.totp_enrolled(principal),
        "choice": principal.language or BROWSER,
        "languages": web_state(request).catalogue.languages,
        "enrolment": enrolment,
        "qr": qr_svg(enrolment.uri, viewer.t("account.totp_qr_title")) if enrolment else None,
        "error": error,
        "error_form": error_form,
        "notice": notice,
        "short_time": short_time,
    }
    return render(request, viewer, "account.html", status_code, **context)


def _principal(viewer: Viewer) -> Principal:
    assert viewer.principal is not None  # signed_in saw to it
    return viewer.principal


def _refused(viewer: Viewer, refused: AccountChangeRefused) -> str:
    return viewer.t(f"account.{refused.reason}", **refused.params)


def _done(what: str, ended: int | None = None) -> RedirectResponse:
    extra = "" if ended is None else f"&ended={ended}"
    return RedirectResponse(f"/account?done={what}{extra}", status_code=303)


@router.get("/account")
async def account(
    request: Request,
    viewer: Annotated[Viewer, Depends(signed_in)],
    done: str | None = None,
    ended: int = 0,
) -> Response:
    return await _account_page(request, viewer, done=done, ended=max(0, ended))


@router.post("/account/language")
async def account_language(
    request: Request,
    viewer: Annotated[Viewer, Depends(signed_in)],
    language: Annotated[str, Form(max_length=16)] = BROWSER,
) -> Response:
    state = web_state(request)
    try:
        choice = _language_choice(language, state.catalogue.languages)
        await state.accounts.set_language(_principal(viewer), choice)
    except AccountChangeRefused as refused:
        return await _account_page(request, viewer, 400, error=_refused(viewer, refused),
                                   error_form="language")
    response = _done("language")
    state.cookies.clear_language(response)
    return response


@router.post("/account/password")
async def account_password(
    request: Request,
    viewer: Annotated[Viewer, Depends(signed_in)],
    current: Annotated[str, Form(max_length=MAX_FIELD)] = "",
    new: Annotated[str, Form(max_length=2048)] = "",
    repeat: Annotated[str, Form(max_length=2048)] = "",
) -> Response:
    state = web_state(request)
    try:
        if new != repeat:
            raise AccountChangeRefused("passwords-differ", "the new passwords differ")
        ended = await state.accounts.change_password(_principal(viewer), current, new)
    except AccountChangeRefused as refused:
        return await _account_page(request, viewer, 400, error=_refused(viewer, refused),
                                   error_form="password")
    return _done("password", ended)


@router.post("/account/totp")
async def account_totp_start(
    request: Request, viewer: Annotated[Viewer, Depends(signed_in)]
) -> Response:
    """A new secret shown with its QR code; nothing changes until it is confirmed."""
    enrolment = await web_state(request).accounts.start_totp(_principal(viewer))
    return await _account_page(request, viewer, enrolment=enrolment)


@router.post("/account/totp/confirm")
async def account_totp_confirm(
    request: Request,
    viewer: Annotated[Viewer, Depends(signed_in)],
    sealed: Annotated[str, Form(max_length=MAX_SEALED)] = "",
    code: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    accounts = web_state(request).accounts
    principal = _principal(viewer)
    try:
        await accounts.confirm_totp(principal, sealed, code)
    except AccountChangeRefused as refused:
        enrolment = None
        if refused.reason == "wrong-code":  # the same secret again: the app has it already
            enrolment = await accounts.reopen_totp(principal, sealed)
        return await _account_page(request, viewer, 400, error=_refused(viewer, refused),
                                   error_form="totp", enrolment=enrolment)
    return _done("totp")


@router.post("/account/sessions/end-others")
async def account_end_other_sessions(
    request: Request, viewer: Annotated[Viewer, Depends(signed_in)]
) -> Response:
    ended = await web_state(request).accounts.end_other_sessions(_principal(viewer))
    return _done("sessions", ended)


@router.post("/language")
async def switch_language(
    request: Request,
    viewer: Annotated[Viewer, Depends(viewer_of)],
    language: Annotated[str, Form(max_length=16)] = BROWSER,
    next: Annotated[str, Form(max_length=2048)] = "/",
) -> Response:
    """The header's switch: on the user when signed in, else in a cookie."""
    state = web_state(request)
    try:
        choice = _language_choice(language, state.catalogue.languages)
    except AccountChangeRefused:
        choice = None  # a tampered form: follow the browser rather than fail
    response = RedirectResponse(safe_next(next), status_code=303)
    if viewer.principal is not None:
        # Refused only for a principal that is no console session: nothing to store.
        with contextlib.suppress(AccountChangeRefused):
            await state.accounts.set_language(viewer.principal, choice)
        state.cookies.clear_language(response)
    elif choice is None:
        state.cookies.clear_language(response)
    else:
        state.cookies.set_language(response, choice)
    return response
