"""``/api/v1/ring-groups``: the extensions a route rings at once or in turn, as ``pbx-bridge
group list|set|delete`` (pbx_bridge/config_admin.py, calls/ring_groups.py). Reading and
changing them takes the routes' permissions: a group is where routes ring. Bad input is a
422 problem naming the field, an unknown group 404, a group a route rings 409 naming it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from pbx_bridge.calls.extensions import InvalidExtension
from pbx_bridge.calls.ring_groups import (
    MAX_MEMBERS,
    InvalidRingGroup,
    Member,
    RingGroupInfo,
    RingGroupInUse,
    UnknownRingGroup,
    delete_group,
    get_group,
    group_users,
    list_groups,
    set_group,
    validate_group_name,
)
from pbx_bridge.config import RingStrategy
from pbx_bridge.web.accounts import Principal
from pbx_bridge.web.admin_access import token_allowed
from pbx_bridge.web.api_models import problem_responses
from pbx_bridge.web.call_record import actor_of
from pbx_bridge.web.permissions import ROUTES_READ, ROUTES_WRITE
from pbx_bridge.web.problems import problem
from pbx_bridge.web.web_state import web_state

router = APIRouter(
    prefix="/api/v1", tags=["admin"], responses=problem_responses(401, 403, 404, 422)
)
Reader = Annotated[Principal, Depends(token_allowed(ROUTES_READ))]
Writer = Annotated[Principal, Depends(token_allowed(ROUTES_WRITE))]
GroupName = Annotated[str, Path(min_length=1, max_length=64, description="The group's name.")]


class RingMember(BaseModel):
    extension: str = Field(max_length=64)
    ring_s: int  # seconds it rings (5-300)


class RingGroupConfig(BaseModel):
    name: str
    strategy: RingStrategy
    members: list[RingMember]
    rung_by: list[str]  # who rings it: routes, the configured default route


class RingGroupIn(BaseModel):
    """Fields to set; left out: kept (a new group needs its members; strategy ``all``)."""

    members: list[RingMember] | None = Field(default=None, max_length=MAX_MEMBERS)
    strategy: RingStrategy | None = None


def group_out(group: RingGroupInfo, users: list[str]) -> dict[str, Any]:
    return {"name": group.name, "strategy": group.strategy,
            "members": [{"extension": m.extension, "ring_s": m.ring_s} for m in group.members],
            "rung_by": users}


def _invalid(request: Request, error: InvalidRingGroup | InvalidExtension) -> Response:
    field = error.field if isinstance(error, InvalidRingGroup) and error.field else "members"
    return problem(422, f"{field}: {error}", instance=request.url.path, field=field)


@router.get("/ring-groups", response_model=list[RingGroupConfig])
async def get_groups(request: Request, principal: Reader) -> list[dict[str, Any]]:
    state = web_state(request)
    default = state.config.default_route.target
    async with state.sessions() as session:
        return [group_out(g, await group_users(session, g.name, default_target=default))
                for g in await list_groups(session)]


@router.get("/ring-groups/{name}", response_model=RingGroupConfig)
async def get_one_group(request: Request, principal: Reader, name: GroupName) -> Any:
    try:
        validate_group_name(name)  # before any query
    except InvalidRingGroup as exc:
        return _invalid(request, exc)
    state = web_state(request)
    async with state.sessions() as session:
        group = await get_group(session, name)
        if group is None:
            return problem(404, str(UnknownRingGroup(name)), instance=request.url.path)
        users = await group_users(session, name,
                                  default_target=state.config.default_route.target)
    return group_out(group, users)


@router.put("/ring-groups/{name}", response_model=RingGroupConfig)
async def put_group(request: Request, principal: Writer, name: GroupName,
                    body: RingGroupIn) -> Any:
    """Create or change a group, as ``pbx-bridge group set``; audited as
    ring_group.created/changed with the token."""
    members = None if body.members is None else [
        Member(m.extension, m.ring_s) for m in body.members]
    state = web_state(request)
    async with state.sessions() as session:
        try:
            group = await set_group(session, name, members=members, strategy=body.strategy,
                                    actor=actor_of(principal))
        except (InvalidRingGroup, InvalidExtension) as exc:
            return _invalid(request, exc)
        users = await group_users(session, name,
                                  default_target=state.config.default_route.target)
        await session.commit()
    return group_out(group, users)


@router.delete("/ring-groups/{name}", status_code=204, response_class=Response,
               responses=problem_responses(409))
async def delete_one_group(request: Request, principal: Writer, name: GroupName) -> Response:
    """Only a group no route rings: 409 names the routes that do."""
    state = web_state(request)
    async with state.sessions() as session:
        try:
            await delete_group(session, name, default_target=state.config.default_route.target,
                               actor=actor_of(principal))
        except InvalidRingGroup as exc:
            return _invalid(request, exc)
        except UnknownRingGroup as exc:
            return problem(404, str(exc), instance=request.url.path)
        except RingGroupInUse as exc:
            return problem(409, str(exc), instance=request.url.path)
        await session.commit()
    return Response(status_code=204)
