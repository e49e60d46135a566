"""The admin's pages for users and API tokens, on the users module's own functions (the
ones ``pbx-bridge users`` and ``tokens`` call): add a user with a role and extensions,
disable and enable, reset a password, require a TOTP code; make a token, revoke one.
(A user's edit form is admin_user_edit_page.py.)

A new user's first password and a reset one are made here at random and shown once, on
the page that answers the form; a token's bearer secret likewise. Only hashes are kept.
Whatever would give someone access to personal data, or an admin a credential of someone
who has it, is decided by pbx_bridge/users/personal_data_grants.py: it waits for a dpo's
approval (202, listed here as waiting) or is refused for root at the CLI (403, saying
the command). Every change is audited by the users module with the signed-in admin as
actor. Only ``admin`` may (``users.read`` / ``users.write``); a user's extensions are
shown, never a caller's number (nothing here reads a call)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from starlette.responses import RedirectResponse, Response

from pbx_bridge.cli.listing_options import short_time
from pbx_bridge.config import Language, Role
from pbx_bridge.subjects.approvals import ApprovalAction, ApprovalStateError, list_approvals
from pbx_bridge.users.accounts import UserError, get_user, list_users, set_disabled
from pbx_bridge.users.passwords import WeakPassword
from pbx_bridge.users.permissions import InvalidScope
from pbx_bridge.users.personal_data_grants import ChangeKind, UserChange, Who, token_verdict
from pbx_bridge.users.tokens import create_token, list_tokens, revoke_token
from pbx_bridge.users.user_changes import Done, NeedsRoot, Waiting, ask
from pbx_bridge.web.admin_access import SignedIn, admin_of, form_text, outcome_notice
from pbx_bridge.web.call_record import actor_of
from pbx_bridge.web.pages import render
from pbx_bridge.web.permissions import USERS_READ, USERS_WRITE
from pbx_bridge.web.viewer import Viewer, csrf_checked
from pbx_bridge.web.web_state import web_state
from storage.models import utcnow

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_checked)])
Name = Annotated[str, Path(min_length=1, max_length=64)]
TokenId = Annotated[uuid.UUID, Path()]  # anything else is refused before any query
USER_ERRORS = (UserError, WeakPassword, InvalidScope, ApprovalStateError)


def refusal_status(exc: Exception) -> int:
    """403 for what only root may do (the admin is not allowed), 409 for a change already
    waiting, 422 for bad input."""
    if isinstance(exc, NeedsRoot):
        return 403
    return 409 if isinstance(exc, ApprovalStateError) else 422


async def _users_page(
    request: Request, viewer: Viewer, *, values: Mapping[str, object] | None = None,
    error: str | None = None, status_code: int = 200, new_password_for: str | None = None,
    password: str | None = None, notice: str | None = None,
) -> Response:
    async with web_state(request).sessions() as session:
        users = await list_users(session)
        waiting = await list_approvals(session, action=ApprovalAction.USERS_GRANT)
    now = utcnow()
    return render(
        request, viewer, "admin_users.html", status_code, active="admin_users", users=users,
        values=values or {"name": "", "role": "", "extensions": "", "language": "",
                          "require_totp": False, "unmask": False},
        roles=[r.value for r in Role], languages=[lang.value for lang in Language],
        error=error, new_password_for=new_password_for, password=password, notice=notice,
        locked=lambda u: u.locked_until is not None and u.locked_until > now,
        short_time=short_time, waiting=waiting,
    )


async def answer_change(
    request: Request, viewer: Viewer, change: UserChange
) -> Done | Waiting | Response:
    """Ask the users module for ``change`` as the signed-in admin: what was done, what
    waits for a dpo, or the users page again with the refusal (403 / 409 / 422)."""
    principal = await admin_of(request, viewer, USERS_WRITE)
    state = web_state(request)
    try:
        async with state.sessions() as session:
            outcome = await ask(session, change, user_id=principal.user_id,
                                actor=actor_of(principal), settings=state.config)
            await session.commit()
    except USER_ERRORS as exc:
        return await _users_page(request, viewer, error=str(exc),
                                 status_code=refusal_status(exc))
    return outcome


async def waiting_page(request: Request, viewer: Viewer, waiting: Waiting) -> Response:
    """202: nothing is done yet; the page says why and that a dpo decides."""
    return await _users_page(
        request, viewer, status_code=202,
        notice=viewer.t("admin.user_change_waiting", reason=waiting.reason),
    )


@router.get("/admin/users")
async def users_page(request: Request, viewer: SignedIn) -> Response:
    await admin_of(request, viewer, USERS_READ)
    return await _users_page(request, viewer, notice=outcome_notice(request, viewer, "user"))


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
        change = UserChange(
            ChangeKind.ADD, form_text(form, "name"), role=role_of(form_text(form, "role")),
            extensions=extensions_of(form_text(form, "extensions")),
            unmask=bool(values["unmask"]),
            language=language_of(form_text(form, "language")),
            require_totp=bool(values["require_totp"]),
        )
        async with state.sessions() as session:
            outcome = await ask(session, change, user_id=principal.user_id,
                                actor=actor_of(principal), settings=state.config)
            await session.commit()
    except USER_ERRORS as exc:
        return await _users_page(request, viewer, values=values, error=str(exc),
                                 status_code=refusal_status(exc))
    if isinstance(outcome, Waiting):
        return await waiting_page(request, viewer, outcome)
    return await _users_page(request, viewer, status_code=201,
                             new_password_for=outcome.user.name, password=outcome.password)


class InvalidRole(UserError):
    field = "role"


class InvalidLanguage(UserError):
    field = "language"


def role_of(text: str) -> Role:
    try:
        return Role(text)
    except ValueError:
        raise InvalidRole(f"invalid role {text!r}: use one of "
                          f"{', '.join(r.value for r in Role)}") from None


def language_of(text: str) -> Language | None:
    """"" is the browser's language."""
    try:
        return Language(text) if text else None
    except ValueError:
        raise InvalidLanguage(f"invalid language {text!r}: use one of "
                              f"{', '.join(lang.value for lang in Language)}") from None


def extensions_of(text: str) -> tuple[str, ...]:
    return tuple(e.strip() for e in text.split(",") if e.strip())


async def _change(request: Request, viewer: Viewer, change: UserChange) -> Response:
    outcome = await answer_change(request, viewer, change)
    if isinstance(outcome, Response):
        return outcome
    if isinstance(outcome, Waiting):
        return await waiting_page(request, viewer, outcome)
    if outcome.password is not None:
        return await _users_page(request, viewer, new_password_for=outcome.user.name,
                                 password=outcome.password)
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/admin/users/{name}/disable")
async def disable_form(request: Request, viewer: SignedIn, name: Name) -> Response:
    """Taking access away is always the admin's (never yourself: ask another admin)."""
    principal = await admin_of(request, viewer, USERS_WRITE)
    try:
        async with web_state(request).sessions() as session:
            if name.lower() == principal.name:
                raise UserError("you cannot disable yourself: ask another admin")
            await set_disabled(session, name, disabled=True, actor=actor_of(principal))
            await session.commit()
    except USER_ERRORS as exc:
        return await _users_page(request, viewer, error=str(exc), status_code=422)
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/admin/users/{name}/enable")
async def enable_form(request: Request, viewer: SignedIn, name: Name) -> Response:
    """A supervisor or dpo enabled again waits for a dpo's approval (202)."""
    return await _change(request, viewer, UserChange(ChangeKind.ENABLE, name))


@router.post("/admin/users/{name}/reset-password")
async def reset_password_form(request: Request, viewer: SignedIn, name: Name) -> Response:
    """The new password is on the page this answers with, this once; the user's sessions
    end and any lockout is lifted (as ``users reset-password``). A supervisor's waits for
    a dpo (who is shown it); a dpo's is root's (403)."""
    return await _change(request, viewer, UserChange(ChangeKind.RESET_PASSWORD, name))


@router.post("/admin/users/{name}/totp")
async def totp_form(request: Request, viewer: SignedIn, name: Name) -> Response:
    form = await request.form()
    return await _change(request, viewer, UserChange(
        ChangeKind.SET, name, require_totp=form_text(form, "require_totp") == "on"))


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
            if values["user"]:
                owner = await get_user(session, values["user"])
                verdict = token_verdict(Role(owner.role), owner.name,
                                        by_self=owner.id == principal.user_id)
                if verdict.who is not Who.ADMIN:
                    raise NeedsRoot(verdict.reason)
            _, bearer = await create_token(
                session, user_name=values["user"], scopes=[values["scopes"]],
                days=int(days_text) if days_text else state.config.auth.token_days,
                actor=actor_of(principal),
            )
            await session.commit()
    except USER_ERRORS as exc:
        return await _tokens_page(request, viewer, values=values, error=str(exc),
                                  status_code=refusal_status(exc))
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
