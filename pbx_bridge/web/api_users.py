"""``/api/v1/users``: the admin's users through the API (``users.read`` / ``users.write``):
list them, read one, change one's role, extensions, unmask grant and TOTP requirement.

The same rule as the console's (pbx_bridge/users/personal_data_grants.py): what widens
someone's access to personal data answers 202 with the approval that waits for a dpo
(approved in the console, never with a token); making a dpo is root's at the CLI (403
naming the command); bad input is 422 naming the field. No password or token is ever in
an answer. Every change is audited with the token as actor."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse, Response

from pbx_bridge.config import Role
from pbx_bridge.subjects.approvals import ApprovalStateError
from pbx_bridge.users.accounts import (
    InvalidUserName,
    UnknownUser,
    UserError,
    UserInfo,
    list_users,
    normalise_name,
)
from pbx_bridge.users.personal_data_grants import ChangeKind, UserChange
from pbx_bridge.users.user_changes import NeedsRoot, Waiting, ask, user_info
from pbx_bridge.web.accounts import Principal
from pbx_bridge.web.admin_access import token_allowed
from pbx_bridge.web.api_models import problem_responses
from pbx_bridge.web.call_record import actor_of
from pbx_bridge.web.permissions import USERS_READ, USERS_WRITE
from pbx_bridge.web.problems import problem
from pbx_bridge.web.web_state import web_state

router = APIRouter(
    prefix="/api/v1", tags=["users"], responses=problem_responses(401, 403, 404, 422)
)
UsersReader = Annotated[Principal, Depends(token_allowed(USERS_READ))]
UsersWriter = Annotated[Principal, Depends(token_allowed(USERS_WRITE))]
UserName = Annotated[str, Path(min_length=1, max_length=64, description="The user's name.")]


class UserOut(BaseModel):
    """A user as an admin sees them: no hash, no secret."""

    name: str
    role: Role
    extensions: list[str]
    unmask: bool
    language: str | None
    disabled: bool
    totp_enrolled: bool
    totp_required: bool
    locked_until: datetime | None
    last_sign_in_at: datetime | None
    created_at: datetime


class UserPatch(BaseModel):
    """Fields to change; those left out keep their value."""

    role: Role | None = None
    extensions: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, max_length=200)
    unmask: bool | None = None
    require_totp: bool | None = None


class WaitingOut(BaseModel):
    """Nothing is changed yet: a dpo approves it in the console (or refuses)."""

    approval_id: str
    user: str
    change: str  # what waits, in words
    reason: str  # why it waits
    requested_by: str
    requested_at: datetime


def user_json(user: UserInfo) -> dict[str, Any]:
    return {"name": user.name, "role": user.role, "extensions": list(user.extensions),
            "unmask": user.unmask, "language": user.language, "disabled": user.disabled,
            "totp_enrolled": user.totp_enrolled, "totp_required": user.totp_required,
            "locked_until": user.locked_until, "last_sign_in_at": user.last_sign_in_at,
            "created_at": user.created_at}


def _refused(request: Request, exc: Exception) -> Response:
    if isinstance(exc, UnknownUser):
        return problem(404, str(exc), instance=request.url.path)
    if isinstance(exc, NeedsRoot):
        return problem(403, str(exc), instance=request.url.path)
    if isinstance(exc, ApprovalStateError):
        return problem(409, str(exc), instance=request.url.path)
    field = exc.field if isinstance(exc, UserError) else None
    return problem(422, f"{field}: {exc}" if field else str(exc), instance=request.url.path,
                   field=field)


@router.get("/users", response_model=list[UserOut])
async def get_users(request: Request, principal: UsersReader) -> list[dict[str, Any]]:
    async with web_state(request).sessions() as session:
        return [user_json(u) for u in await list_users(session)]


@router.get("/users/{user_name}", response_model=UserOut)
async def get_user(request: Request, principal: UsersReader, user_name: UserName) -> Any:
    try:
        normalise_name(user_name)  # before any query
        async with web_state(request).sessions() as session:
            return user_json(await user_info(session, user_name))
    except (InvalidUserName, UnknownUser) as exc:
        return _refused(request, exc)


@router.patch("/users/{user_name}", response_model=UserOut,
              responses={202: {"model": WaitingOut}, **problem_responses(409)})
async def patch_user(request: Request, principal: UsersWriter, user_name: UserName,
                     body: UserPatch) -> Any:
    """As ``pbx-bridge users set``; a change that gives access to personal data answers
    202 with what waits for a dpo (a new role ends the user's sessions and tokens)."""
    state = web_state(request)
    change = UserChange(
        ChangeKind.SET, user_name, role=body.role,
        extensions=None if body.extensions is None else tuple(body.extensions),
        unmask=body.unmask, require_totp=body.require_totp,
    )
    try:
        async with state.sessions() as session:
            outcome = await ask(session, change, user_id=principal.user_id,
                                actor=actor_of(principal), settings=state.config)
            await session.commit()
    except (UserError, ApprovalStateError) as exc:
        return _refused(request, exc)
    if isinstance(outcome, Waiting):
        approval = outcome.approval
        return JSONResponse(WaitingOut(
            approval_id=approval.id, user=approval.user_name or user_name,
            change=approval.note or "", reason=outcome.reason,
            requested_by=approval.requested_by, requested_at=approval.requested_at,
        ).model_dump(mode="json"), status_code=202)
    return user_json(outcome.user)
