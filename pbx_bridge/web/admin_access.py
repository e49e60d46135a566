"""Who may use the admin pages and API: ``Accounts.allowed`` for the action (routes.write,
users.read, ...), so the role rules stay in pbx_bridge/users/permissions.py. Anyone else
(a supervisor, dpo or auditor) gets 403 before anything is read."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends
from starlette.datastructures import FormData
from starlette.requests import Request

from pbx_bridge.web.accounts import Principal
from pbx_bridge.web.api_auth import api_principal
from pbx_bridge.web.viewer import Forbidden, Viewer, signed_in
from pbx_bridge.web.web_state import web_state

SignedIn = Annotated[Viewer, Depends(signed_in)]


async def require(request: Request, principal: Principal, action: str) -> None:
    grant = await web_state(request).accounts.allowed(principal, action)
    if not grant.allowed:
        raise Forbidden


def token_allowed(action: str) -> Callable[..., Awaitable[Principal]]:
    """An API dependency: the token's principal once allowed ``action``. As a dependency
    it answers 401/403 before the body is read, so a refused caller learns nothing of
    what the body should have been."""

    async def allowed_principal(
        request: Request, principal: Annotated[Principal, Depends(api_principal)]
    ) -> Principal:
        await require(request, principal, action)
        return principal

    return allowed_principal


async def admin_of(request: Request, viewer: Viewer, action: str) -> Principal:
    """The signed-in principal behind a page, once allowed ``action`` (else 403)."""
    assert viewer.principal is not None  # the page depends on signed_in
    await require(request, viewer.principal, action)
    return viewer.principal


def form_text(form: FormData, name: str) -> str:
    """A form field as typed, trimmed ("" when absent or a file)."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def outcome_notice(request: Request, viewer: Viewer, kind: str) -> str | None:
    """"Route 2125550100 saved." after the redirect a successful form answers with
    (``?saved=KEY`` or ``?deleted=KEY``; message ``admin.<kind>_<outcome>``)."""
    for outcome in ("saved", "deleted"):
        key = request.query_params.get(outcome)
        if key:
            return viewer.t(f"admin.{kind}_{outcome}", key=key[:64])
    return None
