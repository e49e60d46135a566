"""The admin's ring groups screen: each group's members in ring order with their seconds,
its strategy and the routes that ring it; a form that creates or changes one and a delete,
through the same code paths as ``pbx-bridge group set|delete`` (config_admin.save_group,
calls/ring_groups.py), so the console refuses what the CLI refuses, with its message,
beside the field. Changes are audited with the signed-in admin as actor. A group is where
routes ring, so it takes the routes' permissions (403 for anyone but ``admin``)."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import APIRouter, Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from pbx_bridge.calls.ring_groups import (
    InvalidRingGroup,
    RingGroupInUse,
    UnknownRingGroup,
    delete_group,
    group_target,
    list_groups,
    validate_group_name,
)
from pbx_bridge.calls.routes import list_routes
from pbx_bridge.config import RingStrategy
from pbx_bridge.config_admin import save_group
from pbx_bridge.web.admin_access import SignedIn, admin_of, form_text, outcome_notice
from pbx_bridge.web.admin_pages import Key, _apply_delete, _apply_form, _choice, _problem
from pbx_bridge.web.call_record import actor_of
from pbx_bridge.web.pages import render
from pbx_bridge.web.permissions import ROUTES_READ, ROUTES_WRITE
from pbx_bridge.web.viewer import Viewer, csrf_checked
from pbx_bridge.web.web_state import web_state

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_checked)])
PAGE = "/admin/ring-groups"
FIELDS = ("name", "members", "strategy")
STRATEGIES = [s.value for s in RingStrategy]
DELETE_ERRORS: tuple[type[Exception], ...] = (RingGroupInUse, UnknownRingGroup,
                                              InvalidRingGroup)


async def _page(
    request: Request, viewer: Viewer, *, values: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None, status_code: int = 200,
    notice: str | None = None,
) -> Response:
    state = web_state(request)
    async with state.sessions() as session:
        groups = await list_groups(session)
        routes = await list_routes(session)
    default_target = state.config.default_route.target
    # Who rings each group: its routes' DIDs, and whether the default route does.
    rung_by = {g.name: [r.did for r in routes if r.target == g.target] for g in groups}
    # Changing a group that exists (its edit link, or a refused change of it).
    name = request.query_params.get("edit") if values is None else values.get("name")
    editing = next((g for g in groups if g.name == name), None)
    if values is None:
        values = {"name": editing.name if editing else "",
                  "members": ",".join(str(m) for m in editing.members) if editing else "",
                  "strategy": (editing.strategy if editing else RingStrategy.ALL).value}
    return render(
        request, viewer, "admin_ring_groups.html", status_code, active="admin_ring-groups",
        groups=groups, rung_by=rung_by, default_target=default_target,
        group_target=group_target, values=values, errors=errors or {},
        strategies=STRATEGIES, editing=editing is not None, notice=notice,
    )


@router.get(PAGE)
async def ring_groups_page(request: Request, viewer: SignedIn) -> Response:
    await admin_of(request, viewer, ROUTES_READ)
    return await _page(request, viewer, notice=outcome_notice(request, viewer, "group"))


@router.post(PAGE)
async def save_group_form(request: Request, viewer: SignedIn) -> Response:
    """Create or change the group the form names; the members field is what
    ``--members`` takes (``100:15,101:20``; without seconds: ``[call] ring_timeout_s``)."""
    principal = await admin_of(request, viewer, ROUTES_WRITE)
    form = await request.form()
    config = web_state(request).config
    name = form_text(form, "name")

    async def change(session: AsyncSession) -> None:
        validate_group_name(name)  # as the CLI: the name is checked first
        await save_group(session, config, name, members=form_text(form, "members"),
                         strategy=_choice(form, "strategy", RingStrategy),
                         actor=actor_of(principal))

    async def refused(exc: Exception) -> Response:
        return await _page(request, viewer,
                           values={field: form_text(form, field) for field in FIELDS},
                           errors=_problem(exc, "group"), status_code=422)

    return await _apply_form(request, change, done=f"{PAGE}?saved={name}", refused=refused)


@router.post(PAGE + "/{name}/delete")
async def delete_group_form(request: Request, viewer: SignedIn, name: Key) -> Response:
    """Refused, naming them, while a route or the default route rings the group."""
    principal = await admin_of(request, viewer, ROUTES_WRITE)
    default_target = web_state(request).config.default_route.target

    async def change(session: AsyncSession) -> None:
        await delete_group(session, name, default_target=default_target,
                           actor=actor_of(principal))

    return await _apply_delete(
        request, change, done=f"{PAGE}?deleted={name}",
        page=lambda request, **shown: _page(request, viewer, **shown),
        unknown=UnknownRingGroup, in_use=RingGroupInUse, errors=DELETE_ERRORS)
