"""A user's edit form on the admin's users screen: role, extensions, the unmask grant.

The change goes through the users module's rule (pbx_bridge/users/personal_data_grants.py):
what widens someone's access to personal data waits for a dpo's approval (202, the users
page says so), making a dpo is root's at the CLI (403, the command is named beside the
role), bad input is 422 with the error beside its field and what was typed kept. CSRF
is checked on the POST; every change is audited by the users module (``user.changed``,
``approval.requested``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from starlette.responses import RedirectResponse, Response

from pbx_bridge.config import Role
from pbx_bridge.users.accounts import InvalidUserName, UnknownUser, UserError, normalise_name
from pbx_bridge.users.personal_data_grants import ChangeKind, UserChange
from pbx_bridge.users.user_changes import NeedsRoot, Waiting, ask, user_info
from pbx_bridge.web.admin_access import SignedIn, admin_of, form_text
from pbx_bridge.web.admin_users_page import (
    USER_ERRORS,
    extensions_of,
    refusal_status,
    role_of,
    waiting_page,
)
from pbx_bridge.web.call_record import actor_of
from pbx_bridge.web.pages import render
from pbx_bridge.web.permissions import USERS_READ, USERS_WRITE
from pbx_bridge.web.viewer import Viewer, csrf_checked
from pbx_bridge.web.web_state import web_state

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_checked)])
Name = Annotated[str, Path(min_length=1, max_length=64)]


def error_field(exc: Exception) -> str:
    """The form's input a refusal is about ("form": the whole change)."""
    if isinstance(exc, NeedsRoot):
        return "role"
    field = exc.field if isinstance(exc, UserError) else None
    return field if field in ("role", "extensions", "unmask") else "form"


async def _edit_page(
    request: Request, viewer: Viewer, name: str, *,
    values: Mapping[str, object] | None = None, errors: Mapping[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    async with web_state(request).sessions() as session:
        try:
            user = await user_info(session, name)
        except (UnknownUser, InvalidUserName):  # no such user, nor could there be
            raise HTTPException(404) from None
    shown = values or {"role": user.role.value, "extensions": ",".join(user.extensions),
                       "unmask": user.unmask}
    return render(
        request, viewer, "admin_user_edit.html", status_code, active="admin_users",
        user=user, values=shown, errors=errors or {}, roles=[r.value for r in Role],
    )


@router.get("/admin/users/{name}")
async def edit_page(request: Request, viewer: SignedIn, name: Name) -> Response:
    await admin_of(request, viewer, USERS_READ)
    return await _edit_page(request, viewer, name)


@router.post("/admin/users/{name}")
async def edit_form(request: Request, viewer: SignedIn, name: Name) -> Response:
    """303 to the users page when done, 202 when it waits for a dpo."""
    principal = await admin_of(request, viewer, USERS_WRITE)
    try:
        normalise_name(name)  # a name no user can have is no page to answer with
    except InvalidUserName:
        raise HTTPException(404) from None
    form = await request.form()
    values: dict[str, object] = {"role": form_text(form, "role"),
                                 "extensions": form_text(form, "extensions"),
                                 "unmask": form.get("unmask") is not None}
    state = web_state(request)
    try:
        role = role_of(str(values["role"]))
        change = UserChange(ChangeKind.SET, name, role=role,
                            extensions=extensions_of(str(values["extensions"])),
                            unmask=bool(values["unmask"]))
        async with state.sessions() as session:
            outcome = await ask(session, change, user_id=principal.user_id,
                                actor=actor_of(principal), settings=state.config)
            await session.commit()
    except UnknownUser:
        raise HTTPException(404) from None
    except USER_ERRORS as exc:
        return await _edit_page(request, viewer, name, values=values,
                                errors={error_field(exc): str(exc)},
                                status_code=refusal_status(exc))
    if isinstance(outcome, Waiting):
        return await waiting_page(request, viewer, outcome)
    return RedirectResponse(f"/admin/users?saved={outcome.user.name}", status_code=303)
