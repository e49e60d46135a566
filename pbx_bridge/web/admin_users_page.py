"""The admin's pages for users and API tokens, on the users module's own functions (the
ones ``pbx-bridge users`` and ``tokens`` call): add a user with a role and extensions,
disable and enable, reset a password, require a TOTP code; make a token, revoke one.

A new user's first password and a reset one are made here at random and shown once, on
the page that answers the form; a token's bearer secret likewise. Only hashes are kept.
Every change is audited by the users module with the signed-in admin as actor. Only
``admin`` may (``users.read`` / ``users.write``); a user's extensions are shown, never a
caller's number (nothing here reads a call)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from starlette.responses import RedirectResponse, Response

from pbx_bridge.cli.listing_options import short_time
from pbx_bridge.config import Language, Role
from pbx_bridge.users.accounts import (
    UserError,
    add_user,
    list_users,
    reset_password,
    set_disabled,
    set_user,
)
from pbx_bridge.users.passwords import WeakPassword, new_password
from pbx_bridge.users.permissions import InvalidScope
from pbx_bridge.users.tokens import create_token, list_tokens, revoke_token
from pbx_bridge.web.admin_access import SignedIn, admin_of, form_text
from pbx_bridge.web.call_record import actor_of
from pbx_bridge.web.pages import render
from pbx_bridge.web.permissions import USERS_READ, USERS_WRITE
from pbx_bridge.web.viewer import Viewer, csrf_checked
from pbx_bridge.web.web_state import web_state
from storage.models import utcnow

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_checked)])
Name = Annotated[str, Path(min_length=1, max_length=64)]
TokenId = Annotated[uuid.UUID, Path()]  # anything else is refused before any query
USER_ERRORS = (UserError, WeakPassword, InvalidScope)


async def _users_page(
    request: Request, viewer: Viewer, *, values: Mapping[str, object] | None = None,
    error: str | None = None, status_code: int = 200, new_password_for: str | None = None,
    password: str | None = None, notice: str | None = None,
) -> Response:
    async with web_state(request).sessions() as session:
        users = await list_users(session)
    now = utcnow()
    return render(
        request, viewer, "admin_users.html", status_code, active="admin_users", users=users,
        values=values or {"name": "", "role": "", "extensions": "", "language": "",
                          "require_totp": False, "unmask": False},
        roles=[r.value for r in Role], languages=[lang.value for lang in Language],
        error=error, new_password_for=new_password_for, password=password, notice=notice,
        locked=lambda u: u.locked_until is not None and u.locked_until > now,
        short_time=short_time,
    )


@router.get("/admin/users")
async def users_page(request: Request, viewer: SignedIn) -> Response:
    await admin_of(request, viewer, USERS_READ)
    return await _users_page(request, viewer)


@router.post("/admin/users")
async def add_user_form(request: Request, viewer: SignedIn) -> Response:
    """Answers 201 with the new user's password, shown this once."""
    principal = await admin_of(request, viewer, USERS_WRITE)
    form = await request.form()
    state = web_state(request)
    values: dict[str, object] = {k: form_text(form, k) for k in ("name", "role", "extensions",
                                                             "language")}
    values["require_totp"] = form.get("require_totp") is not None
    values["unmask"] = form.get("unmask") is not None
    try:
        role_text, language_text = form_text(form, "role"), form_text(form, "language")
        try:
            role = Role(role_text)
        except ValueError:
            raise UserError(f"invalid role {role_text!r}: use one of "
                            f"{', '.join(r.value for r in Role)}") from None
        try:
            language = Language(language_text) if language_text else None
        except ValueError:
            raise UserError(f"invalid language {language_text!r}") from None
        name = form_text(form, "name")
        password = new_password(user_name=name.lower(),
                                min_length=state.config.auth.min_password_length)
        async with state.sessions() as session:
            made = await add_user(
                session, name=name, role=role, password=password, auth=state.config.auth,
                actor=actor_of(principal),
                default_target=state.config.default_route.target,
                extensions=form_text(form, "extensions").split(","), unmask=bool(values["unmask"]),
                language=language, require_totp=bool(values["require_totp"]),
            )
            await session.commit()
    except USER_ERRORS as exc:
        return await _users_page(request, viewer, values=values, error=str(exc),
                                 status_code=422)
    return await _users_page(request, viewer, status_code=201, new_password_for=made.name,
                             password=password)


async def _change(request: Request, viewer: Viewer, name: str, action: str) -> Response:
    principal = await admin_of(request, viewer, USERS_WRITE)
    state = web_state(request)
    actor = actor_of(principal)
    form = await request.form()
    password = None
    try:
        async with state.sessions() as session:
            if action in ("disable", "enable"):
                if action == "disable" and name.lower() == principal.name:
                    raise UserError("you cannot disable yourself: ask another admin")
                user = await set_disabled(session, name, disabled=action == "disable",
                                          actor=actor)
            elif action == "reset-password":
                password = new_password(user_name=name.lower(),
                                        min_length=state.config.auth.min_password_length)
                user = await reset_password(session, name, password,
                                            auth=state.config.auth, actor=actor)
            else:  # totp: the form says whether a code is required from now on
                user = await set_user(
                    session, name, actor=actor,
                    default_target=state.config.default_route.target,
                    require_totp=form_text(form, "require_totp") == "on",
                )
            await session.commit()
    except USER_ERRORS as exc:
        return await _users_page(request, viewer, error=str(exc), status_code=422)
    if password is not None:
        return await _users_page(request, viewer, new_password_for=user.name,
                                 password=password)
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/admin/users/{name}/disable")
async def disable_form(request: Request, viewer: SignedIn, name: Name) -> Response:
    return await _change(request, viewer, name, "disable")


@router.post("/admin/users/{name}/enable")
async def enable_form(request: Request, viewer: SignedIn, name: Name) -> Response:
    return await _change(request, viewer, name, "enable")


@router.post("/admin/users/{name}/reset-password")
async def reset_password_form(request: Request, viewer: SignedIn, name: Name) -> Response:
    """The new password is on the page this answers with, this once; the user's sessions
    end and any lockout is lifted (as ``users reset-password``)."""
    return await _change(request, viewer, name, "reset-password")


@router.post("/admin/users/{name}/totp")
async def totp_form(request: Request, viewer: SignedIn, name: Name) -> Response:
    return await _change(request, viewer, name, "totp")


# -- tokens ------------------------------------------------------------------------------

async def _tokens_page(
    request: Request, viewer: Viewer, *, values: Mapping[str, str] | None = None,
    error: str | None = None, status_code: int = 200, bearer: str | None = None,
) -> Response:
    async with web_state(request).sessions() as session:
        tokens = await list_tokens(session)
        users = [u.name for u in await list_users(session) if not u.disabled]
    now = utcnow()
    return render(
        request, viewer, "admin_tokens.html", status_code, active="admin_tokens",
        tokens=tokens, users=users, state_of=lambda token: token.state(now),
        values=values or {"user": "", "scopes": "", "days": ""}, error=error,
        bearer=bearer, short_time=short_time,
    )


@router.get("/admin/tokens")
async def tokens_page(request: Request, viewer: SignedIn) -> Response:
    await admin_of(request, viewer, USERS_READ)
    return await _tokens_page(request, viewer)


@router.post("/admin/tokens")
async def create_token_form(request: Request, viewer: SignedIn) -> Response:
    """Answers 201 with the bearer secret, shown this once (only its sha256 is kept)."""
    principal = await admin_of(request, viewer, USERS_WRITE)
    form = await request.form()
    state = web_state(request)
    values = {k: form_text(form, k) for k in ("user", "scopes", "days")}
    try:
        days_text = values["days"]
        if days_text and not days_text.isdigit():
            raise UserError(f"--expires-days must be a whole number, not {days_text!r}")
        async with state.sessions() as session:
            _, bearer = await create_token(
                session, user_name=values["user"], scopes=[values["scopes"]],
                days=int(days_text) if days_text else state.config.auth.token_days,
                actor=actor_of(principal),
            )
            await session.commit()
    except USER_ERRORS as exc:
        return await _tokens_page(request, viewer, values=values, error=str(exc),
                                  status_code=422)
    return await _tokens_page(request, viewer, status_code=201, bearer=bearer)


@router.post("/admin/tokens/{token_id}/revoke")
async def revoke_token_form(request: Request, viewer: SignedIn, token_id: TokenId) -> Response:
    principal = await admin_of(request, viewer, USERS_WRITE)
    try:
        async with web_state(request).sessions() as session:
            await revoke_token(session, str(token_id), actor=actor_of(principal))
            await session.commit()
    except USER_ERRORS as exc:
        return await _tokens_page(request, viewer, error=str(exc), status_code=404)
    return RedirectResponse("/admin/tokens", status_code=303)
