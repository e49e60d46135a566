"""``/api/v1/outbound-routes``: what the callee of an agent's call out hears, by the
dialled number's prefix, on the code path of ``pbx-bridge outbound-route``
(pbx_bridge/config_admin.py), so the API refuses what the CLI refuses with the same
message. Bad input is a 422 problem naming the field, an unknown prefix 404; every change
is audited with the token as actor. An outbound route is a route: reading and writing
need ``routes.read`` / ``routes.write``, as the inbound routes do.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from pbx_bridge.calls.outbound_routes import (
    OutboundRouteInfo,
    UnknownOutboundRoute,
    delete_outbound_route,
    get_outbound_route,
    list_outbound_routes,
)
from pbx_bridge.config import Announcement, Language, LegalBasis, TimeoutRule
from pbx_bridge.config_admin import CONFIG_ERRORS, OutboundRouteFields, save_outbound_route
from pbx_bridge.web.accounts import Principal
from pbx_bridge.web.admin_access import token_allowed
from pbx_bridge.web.api_admin import invalid, not_found
from pbx_bridge.web.api_models import problem_responses
from pbx_bridge.web.call_record import actor_of
from pbx_bridge.web.permissions import ROUTES_READ, ROUTES_WRITE
from pbx_bridge.web.web_state import web_state

router = APIRouter(
    prefix="/api/v1", tags=["admin"], responses=problem_responses(400, 401, 403, 404, 422)
)
Reader = Annotated[Principal, Depends(token_allowed(ROUTES_READ))]
Writer = Annotated[Principal, Depends(token_allowed(ROUTES_WRITE))]
Prefix = Annotated[str, Path(min_length=1, max_length=32,
                             description="The dialled number's start: 0090, +44.")]
OF = "outbound_route"


class OutboundRouteOut(BaseModel):
    prefix: str
    announcement: Announcement
    legal_basis: LegalBasis
    retention_class: str
    language: Language
    timeout_means: TimeoutRule
    prompt_timeout_s: int
    dial_template: str | None  # null: [call] outbound_dial_template


class OutboundRouteIn(BaseModel):
    """Fields to set; those left out keep their value (a new route: the default's)."""

    announcement: Announcement | None = None
    legal_basis: LegalBasis | None = None
    retention_class: str | None = Field(default=None, max_length=64)
    language: Language | None = None
    timeout_means: TimeoutRule | None = None
    prompt_timeout_s: int | None = None
    # "" goes back to [call] outbound_dial_template.
    dial_template: str | None = Field(default=None, max_length=128)


def outbound_json(route: OutboundRouteInfo) -> dict[str, Any]:
    return {"prefix": route.prefix, "announcement": route.announcement,
            "legal_basis": route.legal_basis, "retention_class": route.retention_class,
            "language": route.language, "timeout_means": route.timeout_means,
            "prompt_timeout_s": route.prompt_timeout_s, "dial_template": route.dial_template}


@router.get("/outbound-routes", response_model=list[OutboundRouteOut])
async def get_outbound_routes(request: Request, principal: Reader) -> list[dict[str, Any]]:
    """Every outbound route with a row (other numbers take [default_outbound_route])."""
    async with web_state(request).sessions() as session:
        return [outbound_json(r) for r in await list_outbound_routes(session)]


@router.get("/outbound-routes/{prefix}", response_model=OutboundRouteOut)
async def get_one_outbound_route(request: Request, principal: Reader, prefix: Prefix) -> Any:
    async with web_state(request).sessions() as session:
        try:
            route = await get_outbound_route(session, prefix)
        except CONFIG_ERRORS as exc:
            return invalid(request, exc, OF)
    if route is None:
        return not_found(request, f"no outbound route for prefix {prefix!r}")
    return outbound_json(route)


@router.put("/outbound-routes/{prefix}", response_model=OutboundRouteOut)
async def put_outbound_route(request: Request, principal: Writer, prefix: Prefix,
                             body: OutboundRouteIn) -> Any:
    """As ``pbx-bridge outbound-route set``; audited as outbound_route.created/changed."""
    state = web_state(request)
    async with state.sessions() as session:
        try:
            route = await save_outbound_route(
                session, state.config, prefix, OutboundRouteFields(**body.model_dump()),
                actor=actor_of(principal),
            )
        except CONFIG_ERRORS as exc:
            return invalid(request, exc, OF)
        await session.commit()
    return outbound_json(route)


@router.delete("/outbound-routes/{prefix}", status_code=204, response_class=Response)
async def delete_one_outbound_route(request: Request, principal: Writer,
                                    prefix: Prefix) -> Response:
    """Its numbers take the next longest prefix, or the default outbound route."""
    async with web_state(request).sessions() as session:
        try:
            await delete_outbound_route(session, prefix, actor=actor_of(principal))
        except CONFIG_ERRORS as exc:
            return invalid(request, exc, OF)
        except UnknownOutboundRoute as exc:
            return not_found(request, str(exc))
        await session.commit()
    return Response(status_code=204)
