"""``/api/v1/routes``, ``/api/v1/extensions``, ``/api/v1/retention-classes`` and
``/api/v1/storage``: the admin's configuration through the API, on the same code paths as
``route set``, ``ext set``, ``retention set`` and ``storage status --json``
(pbx_bridge/config_admin.py). Bad input is a 422 problem naming the field (``field``), an
unknown one 404, a class still in use 409; every change is audited with the token as actor.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from pbx_bridge.calls.extensions import (
    DEFAULT_RECORDING_MODE,
    ExtensionInfo,
    get_extension,
    list_extensions,
    set_extension,
    validate_extension,
)
from pbx_bridge.calls.retention import (
    MAX_DAYS,
    RetentionClassInfo,
    RetentionClassInUse,
    delete_class,
    list_classes,
    set_class,
)
from pbx_bridge.calls.ring_groups import RingGroupInfo, list_groups
from pbx_bridge.calls.routes import (
    ResolvedRoute,
    UnknownRoute,
    delete_route,
    get_route,
    list_routes,
    validate_did,
)
from pbx_bridge.config import (
    Announcement,
    Language,
    LegalBasis,
    RecordingMode,
    RingStrategy,
    TimeoutRule,
)
from pbx_bridge.config_admin import (
    CONFIG_ERRORS,
    RouteFields,
    error_field,
    route_group,
    route_recording,
    save_route,
)
from pbx_bridge.flow.policy import CELL_NAMES
from pbx_bridge.storage_overview import BackendState, backend_states
from pbx_bridge.web.accounts import Principal
from pbx_bridge.web.admin_access import require, token_allowed
from pbx_bridge.web.api_models import problem_responses
from pbx_bridge.web.call_record import actor_of
from pbx_bridge.web.permissions import (
    EXTENSIONS_READ,
    EXTENSIONS_WRITE,
    RETENTION_READ,
    RETENTION_WRITE,
    ROUTES_READ,
    ROUTES_WRITE,
    STORAGE_STATUS,
)
from pbx_bridge.web.problems import problem
from pbx_bridge.web.web_state import web_state
from storage.status import storage_status

router = APIRouter(
    prefix="/api/v1", tags=["admin"], responses=problem_responses(401, 403, 404, 422)
)
# Each operation's principal, allowed its action before the body is read (else 401/403).
RoutesReader = Annotated[Principal, Depends(token_allowed(ROUTES_READ))]
RoutesWriter = Annotated[Principal, Depends(token_allowed(ROUTES_WRITE))]
ExtensionsReader = Annotated[Principal, Depends(token_allowed(EXTENSIONS_READ))]
ExtensionsWriter = Annotated[Principal, Depends(token_allowed(EXTENSIONS_WRITE))]
RetentionReader = Annotated[Principal, Depends(token_allowed(RETENTION_READ))]
RetentionWriter = Annotated[Principal, Depends(token_allowed(RETENTION_WRITE))]
StorageReader = Annotated[Principal, Depends(token_allowed(STORAGE_STATUS))]
Did = Annotated[str, Path(min_length=1, max_length=64, description="The dialled number.")]
Ext = Annotated[str, Path(min_length=1, max_length=64, description="The extension number.")]
ClassName = Annotated[str, Path(min_length=1, max_length=64, description="The class name.")]
# How long to wait for each storage backend to answer GET /api/v1/storage.
REACH_TIMEOUT_S = 5.0


class RingMemberOut(BaseModel):
    extension: str
    ring_s: int  # seconds it rings before the group moves on (order) or gives up (all)


class RingGroupOut(BaseModel):
    name: str
    strategy: RingStrategy
    members: list[RingMemberOut]


class RouteConfig(BaseModel):
    did: str
    target: str
    announcement: Announcement
    legal_basis: LegalBasis
    retention_class: str
    language: Language
    timeout_means: TimeoutRule
    prompt_timeout_s: int
    require_jurisdiction: str | None
    offer_withdrawal: bool
    languages: list[str]  # the caller chooses among these by key (empty: no choice)
    language_keys: list[str]
    language_by_country: bool
    # The target extension's policy: how the route's calls are recorded when allowed
    # (null for a ring group: the member who answers records as its own policy says).
    recording: RecordingMode | None
    # The ring group a ``group:NAME`` target rings (null for an extension).
    ring_group: RingGroupOut | None = None


class RouteIn(BaseModel):
    """Fields to set; those left out keep their value (a new route: the default's)."""

    target: str | None = Field(default=None, max_length=64)
    announcement: Announcement | None = None
    legal_basis: LegalBasis | None = None
    retention_class: str | None = Field(default=None, max_length=64)
    language: Language | None = None
    timeout_means: TimeoutRule | None = None
    prompt_timeout_s: int | None = None
    require_jurisdiction: str | None = Field(default=None, max_length=8)
    offer_withdrawal: bool | None = None
    languages: list[str] | None = Field(default=None, max_length=9)  # [] removes the choice
    language_keys: list[str] | None = Field(default=None, max_length=9)
    language_by_country: bool | None = None
    recording: RecordingMode | None = None


class ExtensionOut(BaseModel):
    number: str
    recording: RecordingMode
    retention_class: str | None  # null: the route's
    # The policy per direction and scope; null: ``recording`` applies to such calls.
    inbound_internal: RecordingMode | None = None
    inbound_external: RecordingMode | None = None
    outbound_internal: RecordingMode | None = None
    outbound_external: RecordingMode | None = None


class ExtensionIn(BaseModel):
    recording: RecordingMode
    retention_class: str | None = Field(default=None, max_length=64)
    # A cell given changes (null: follow ``recording``); a cell left out is kept.
    inbound_internal: RecordingMode | None = None
    inbound_external: RecordingMode | None = None
    outbound_internal: RecordingMode | None = None
    outbound_external: RecordingMode | None = None


class RetentionClassOut(BaseModel):
    name: str
    days: int
    source: str  # "config" while the default class has no row of its own


class RetentionClassIn(BaseModel):
    days: int = Field(ge=0, le=MAX_DAYS)


class BackendOut(BaseModel):
    name: str
    type: str
    jurisdiction: str
    target: bool
    encrypt: bool
    reachable: bool
    problem: str | None
    copies: dict[str, int]


class DeadCopyOut(BaseModel):
    recording_id: str
    backend: str
    attempts: int
    last_error: str | None


class StorageStatusOut(BaseModel):
    """``storage status --json``'s fields, and each backend's state."""

    recordings: dict[str, int]
    copies: dict[str, dict[str, int]]
    dead: list[DeadCopyOut]
    oldest_pending: str | None
    audit_repairs: int
    healthy: bool
    backends: list[BackendOut]


def group_json(group: RingGroupInfo | None) -> dict[str, Any] | None:
    if group is None:
        return None
    return {"name": group.name, "strategy": group.strategy,
            "members": [{"extension": m.extension, "ring_s": m.ring_s} for m in group.members]}


def route_json(
    route: ResolvedRoute, recording: RecordingMode | None, group: RingGroupInfo | None = None
) -> dict[str, Any]:
    return {
        "did": route.did, "target": route.target, "announcement": route.announcement,
        "legal_basis": route.legal_basis, "retention_class": route.retention_class,
        "language": route.language, "timeout_means": route.timeout_means,
        "prompt_timeout_s": route.prompt_timeout_s,
        "require_jurisdiction": route.require_jurisdiction,
        "offer_withdrawal": route.offer_withdrawal, "languages": list(route.languages),
        "language_keys": list(route.language_keys),
        "language_by_country": route.language_by_country, "recording": recording,
        "ring_group": group_json(group),
    }


def extension_json(info: ExtensionInfo) -> dict[str, Any]:
    return {"number": info.number, "recording": info.recording,
            "retention_class": info.retention_class,
            **{name: info.cells.get(name) for name in CELL_NAMES}}


def class_json(info: RetentionClassInfo) -> dict[str, Any]:
    return {"name": info.name, "days": info.days, "source": info.source}


def backend_json(state: BackendState) -> dict[str, Any]:
    return {"name": state.name, "type": state.type, "jurisdiction": state.jurisdiction,
            "target": state.target, "encrypt": state.encrypt, "reachable": state.reachable,
            "problem": state.problem, "copies": dict(state.copies)}


def invalid(request: Request, error: Exception, of: str) -> Response:
    field = error_field(error, of=of)
    return problem(422, f"{field}: {error}" if field else str(error),
                   instance=request.url.path, field=field)


def not_found(request: Request, detail: str) -> Response:
    return problem(404, detail, instance=request.url.path)


@router.get("/routes", response_model=list[RouteConfig])
async def get_routes(request: Request, principal: RoutesReader) -> list[dict[str, Any]]:
    """Every route with a row of its own (DIDs without one take the configured default)."""
    async with web_state(request).sessions() as session:
        routes = await list_routes(session)
        modes = {e.number: e.recording for e in await list_extensions(session)}
        groups = {g.target: g for g in await list_groups(session)}
    return [
        route_json(r, None, groups[r.target]) if r.target in groups
        else route_json(r, modes.get(r.target, DEFAULT_RECORDING_MODE))
        for r in routes
    ]


@router.get("/routes/{did}", response_model=RouteConfig)
async def get_one_route(request: Request, principal: RoutesReader, did: Did) -> Any:
    try:
        validate_did(did)  # before any query: a DID holding NUL is no key to look up
    except CONFIG_ERRORS as exc:
        return invalid(request, exc, "route")
    async with web_state(request).sessions() as session:
        route = await get_route(session, did)
        if route is None:
            return not_found(request, f"no route for DID {did!r}")
        return route_json(route, await route_recording(session, route),
                          await route_group(session, route))


@router.put("/routes/{did}", response_model=RouteConfig)
async def put_route(request: Request, principal: RoutesWriter, did: Did, body: RouteIn) -> Any:
    """Create or change a route, as ``pbx-bridge route set``; ``recording`` sets the target
    extension's policy (``ext set``). Audited as route.created/changed (and extension.*)."""
    if body.recording is not None:
        await require(request, principal, EXTENSIONS_WRITE)
    state = web_state(request)
    asked = body.model_dump()
    for name in ("languages", "language_keys"):
        if asked[name] is not None:
            asked[name] = tuple(asked[name])
    fields = RouteFields(**asked)
    async with state.sessions() as session:
        try:
            route = await save_route(session, state.config, did, fields,
                                     actor=actor_of(principal))
        except CONFIG_ERRORS as exc:
            return invalid(request, exc, "route")
        recording = await route_recording(session, route)
        group = await route_group(session, route)
        await session.commit()
    return route_json(route, recording, group)


@router.delete("/routes/{did}", status_code=204, response_class=Response)
async def delete_one_route(request: Request, principal: RoutesWriter, did: Did) -> Response:
    """The DID's calls take the configured default route from then on."""
    async with web_state(request).sessions() as session:
        try:
            await delete_route(session, did, actor=actor_of(principal))
        except CONFIG_ERRORS as exc:
            return invalid(request, exc, "route")
        except UnknownRoute as exc:
            return not_found(request, str(exc))
        await session.commit()
    return Response(status_code=204)


@router.get("/extensions", response_model=list[ExtensionOut])
async def get_extensions(request: Request, principal: ExtensionsReader) -> list[dict[str, Any]]:
    """Extensions with a policy of their own (any other records: always)."""
    async with web_state(request).sessions() as session:
        return [extension_json(e) for e in await list_extensions(session)]


@router.get("/extensions/{ext}", response_model=ExtensionOut)
async def get_one_extension(request: Request, principal: ExtensionsReader, ext: Ext) -> Any:
    try:
        validate_extension(ext)
    except CONFIG_ERRORS as exc:
        return invalid(request, exc, "extension")
    async with web_state(request).sessions() as session:
        info = await get_extension(session, ext)
    if info is None:
        return not_found(request, f"extension {ext!r} has no policy of its own")
    return extension_json(info)


@router.put("/extensions/{ext}", response_model=ExtensionOut)
async def put_extension(request: Request, principal: ExtensionsWriter, ext: Ext,
                        body: ExtensionIn) -> Any:
    """As ``pbx-bridge ext set``: ``retention_class`` null keeps the current one; each
    cell given (``outbound_external`` ...) is set, null making it follow ``recording``,
    and a cell left out is kept."""
    cells = {name: getattr(body, name) for name in CELL_NAMES if name in body.model_fields_set}
    async with web_state(request).sessions() as session:
        try:
            info = await set_extension(session, ext, body.recording, body.retention_class,
                                       cells=cells, actor=actor_of(principal))
        except CONFIG_ERRORS as exc:
            return invalid(request, exc, "extension")
        await session.commit()
    return extension_json(info)


@router.get("/retention-classes", response_model=list[RetentionClassOut])
async def get_classes(request: Request, principal: RetentionReader) -> list[dict[str, Any]]:
    state = web_state(request)
    async with state.sessions() as session:
        return [class_json(c) for c in await list_classes(session, state.config.retention)]


@router.put("/retention-classes/{name}", response_model=RetentionClassOut)
async def put_class(request: Request, principal: RetentionWriter, name: ClassName,
                    body: RetentionClassIn) -> Any:
    """As ``pbx-bridge retention set``: recordings already made keep their date."""
    async with web_state(request).sessions() as session:
        try:
            info = await set_class(session, name, body.days, actor=actor_of(principal))
        except CONFIG_ERRORS as exc:
            return invalid(request, exc, "retention")
        await session.commit()
    return class_json(info)


@router.delete("/retention-classes/{name}", status_code=204, response_class=Response,
               responses=problem_responses(409))
async def delete_one_class(
    request: Request, principal: RetentionWriter, name: ClassName
) -> Response:
    """Only a class nobody uses: 409 names the routes, extensions or recordings that do."""
    state = web_state(request)
    async with state.sessions() as session:
        try:
            await delete_class(
                session, name, default_route_class=state.config.default_route.retention_class,
                default_outbound_class=state.config.default_outbound_route.retention_class,
                actor=actor_of(principal),
            )
        except RetentionClassInUse as exc:
            return problem(409, str(exc), instance=request.url.path)
        except CONFIG_ERRORS as exc:
            if isinstance(exc, LookupError):
                return not_found(request, str(exc))
            return invalid(request, exc, "retention")
        await session.commit()
    return Response(status_code=204)


@router.get("/storage", response_model=StorageStatusOut)
async def get_storage(request: Request, principal: StorageReader) -> dict[str, Any]:
    """``pbx-bridge storage status --json``, plus each backend: type, jurisdiction, target,
    encryption, whether it answers now, and its copies by state."""
    state = web_state(request)
    status = await storage_status(state.sessions)
    backends = await backend_states(state.config.storage, status, timeout_s=REACH_TIMEOUT_S)
    return {**status.to_json(), "backends": [backend_json(b) for b in backends]}
