"""The admin's outbound routes screen: what the callee of an agent's call out hears, by
the dialled number's prefix, and the trunk it is dialled over; a form that creates or
changes one and a delete, through the code path of ``pbx-bridge outbound-route set|delete``
(config_admin.save_outbound_route), so the console refuses what the CLI refuses, with its
message, beside the field. Changes are audited with the signed-in admin as actor. An
outbound route is a route: the routes' permissions (403 for anyone but ``admin``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from pbx_bridge.calls.outbound_routes import (
    UnknownOutboundRoute,
    default_outbound,
    delete_outbound_route,
    list_outbound_routes,
)
from pbx_bridge.calls.retention import list_classes
from pbx_bridge.config import Announcement, Language, LegalBasis, TimeoutRule
from pbx_bridge.config_admin import CONFIG_ERRORS, OutboundRouteFields, save_outbound_route
from pbx_bridge.web.admin_access import SignedIn, admin_of, form_text, outcome_notice
from pbx_bridge.web.admin_pages import (
    OPTIONS,
    _apply_delete,
    _apply_form,
    _choice,
    _number,
    _problem,
)
from pbx_bridge.web.call_record import actor_of
from pbx_bridge.web.pages import render
from pbx_bridge.web.permissions import ROUTES_READ, ROUTES_WRITE
from pbx_bridge.web.viewer import Viewer, csrf_checked
from pbx_bridge.web.web_state import web_state

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_checked)])
PAGE = "/admin/outbound-routes"
Prefix = Annotated[str, Path(min_length=1, max_length=32)]
FIELDS = ("prefix", "announcement", "legal_basis", "retention_class", "language",
          "timeout_means", "prompt_timeout_s", "dial_template")
DELETE_ERRORS: tuple[type[Exception], ...] = (UnknownOutboundRoute, *CONFIG_ERRORS)


async def _page(
    request: Request, viewer: Viewer, *, values: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None, status_code: int = 200,
    notice: str | None = None,
) -> Response:
    state = web_state(request)
    async with state.sessions() as session:
        routes = await list_outbound_routes(session)
        classes = [c.name for c in await list_classes(session, state.config.retention)]
    fallback = default_outbound(state.config.default_outbound_route,
                                state.config.prompts.default_language)
    # Changing a route that exists (its edit link, or a refused change of it).
    prefix = request.query_params.get("edit") if values is None else values.get("prefix")
    editing = next((r for r in routes if r.prefix == prefix), None)
    if values is None:
        shown = editing or fallback
        values = {"prefix": editing.prefix if editing else "",
                  "announcement": shown.announcement.value,
                  "legal_basis": shown.legal_basis.value,
                  "retention_class": shown.retention_class, "language": shown.language.value,
                  "timeout_means": shown.timeout_means.value,
                  "prompt_timeout_s": str(shown.prompt_timeout_s),
                  "dial_template": (editing.dial_template or "") if editing else ""}
    return render(
        request, viewer, "admin_outbound_routes.html", status_code,
        active="admin_outbound-routes", routes=routes, fallback=fallback,
        default_dial=state.config.call.outbound_dial_template, values=values,
        errors=errors or {}, options=OPTIONS, classes=classes, editing=editing is not None,
        notice=notice,
    )


@router.get(PAGE)
async def outbound_routes_page(request: Request, viewer: SignedIn) -> Response:
    await admin_of(request, viewer, ROUTES_READ)
    return await _page(request, viewer,
                       notice=outcome_notice(request, viewer, "outbound_route"))


@router.post(PAGE)
async def save_outbound_route_form(request: Request, viewer: SignedIn) -> Response:
    """Create or change the outbound route the form names (its prefix field); an empty
    dial template goes back to ``[call] outbound_dial_template``."""
    principal = await admin_of(request, viewer, ROUTES_WRITE)
    form = await request.form()
    config = web_state(request).config
    prefix = form_text(form, "prefix")

    async def change(session: AsyncSession) -> None:
        fields = OutboundRouteFields(
            announcement=_choice(form, "announcement", Announcement),
            legal_basis=_choice(form, "legal_basis", LegalBasis),
            retention_class=form_text(form, "retention_class") or None,
            language=_choice(form, "language", Language),
            timeout_means=_choice(form, "timeout_means", TimeoutRule),
            prompt_timeout_s=_number(form, "prompt_timeout_s", "prompt timeout"),
            # The form always says which template it wants: empty is the default.
            dial_template=form_text(form, "dial_template"),
        )
        await save_outbound_route(session, config, prefix, fields, actor=actor_of(principal))

    async def refused(exc: Exception) -> Response:
        return await _page(request, viewer,
                           values={field: form_text(form, field) for field in FIELDS},
                           errors=_problem(exc, "outbound_route"), status_code=422)

    return await _apply_form(request, change, done=f"{PAGE}?saved={quote(prefix, safe='')}",
                             refused=refused)


@router.post(PAGE + "/{prefix}/delete")
async def delete_outbound_route_form(
    request: Request, viewer: SignedIn, prefix: Prefix
) -> Response:
    """Its numbers take the next longest prefix, or the default outbound route."""
    principal = await admin_of(request, viewer, ROUTES_WRITE)

    async def change(session: AsyncSession) -> None:
        await delete_outbound_route(session, prefix, actor=actor_of(principal))

    return await _apply_delete(
        request, change, done=f"{PAGE}?deleted={quote(prefix, safe='')}",
        page=lambda request, **shown: _page(request, viewer, **shown),
        unknown=UnknownOutboundRoute, errors=DELETE_ERRORS)
