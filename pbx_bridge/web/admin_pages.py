"""The admin's pages for routes, extensions, retention classes and storage: lists, and
forms (CSRF-checked) that change them through the same code paths as ``route set``,
``ext set``, ``retention set`` (pbx_bridge/config_admin.py). A refused form comes back
with the CLI's message beside the field it is about and what was typed kept; a change
is audited with the signed-in admin as actor. Only ``admin`` may (403 for anyone else).
Nothing here reads a call, so no caller's number can show."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from pbx_bridge.calls.extensions import (
    DEFAULT_RECORDING_MODE,
    list_extensions,
    set_extension,
)
from pbx_bridge.calls.retention import (
    RetentionClassInUse,
    UnknownRetentionClass,
    delete_class,
    list_classes,
    set_class,
)
from pbx_bridge.calls.ring_groups import group_of_target, list_groups
from pbx_bridge.calls.routes import UnknownRoute, delete_route, get_route, list_routes
from pbx_bridge.config import Announcement, Language, LegalBasis, RecordingMode, TimeoutRule
from pbx_bridge.config_admin import CONFIG_ERRORS, RouteFields, error_field, save_route
from pbx_bridge.flow.policy import CELL_NAMES
from pbx_bridge.storage_overview import backend_states
from pbx_bridge.web.admin_access import SignedIn, admin_of, form_text, outcome_notice
from pbx_bridge.web.call_record import actor_of
from pbx_bridge.web.pages import render
from pbx_bridge.web.permissions import (
    EXTENSIONS_READ,
    EXTENSIONS_WRITE,
    RETENTION_READ,
    RETENTION_WRITE,
    ROUTES_READ,
    ROUTES_WRITE,
    STORAGE_STATUS,
)
from pbx_bridge.web.viewer import Viewer, csrf_checked
from pbx_bridge.web.web_state import web_state
from storage.status import storage_status

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_checked)])
Key = Annotated[str, Path(min_length=1, max_length=64)]
E = TypeVar("E", bound=StrEnum)
REACH_TIMEOUT_S = 5.0
# The form's fields that are passed on as typed (others are parsed below).
ROUTE_TEXT = ("target", "retention_class", "require_jurisdiction", "languages",
              "language_keys")


class FormProblem(ValueError):
    """A form value that is not even of the right kind (not a number, not an option)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


FORM_ERRORS: tuple[type[Exception], ...] = (FormProblem, *CONFIG_ERRORS)
DELETE_ROUTE_ERRORS: tuple[type[Exception], ...] = (UnknownRoute, *CONFIG_ERRORS)
DELETE_CLASS_ERRORS: tuple[type[Exception], ...] = (RetentionClassInUse, *CONFIG_ERRORS)


def _choice(form: FormData, name: str, kind: type[E]) -> E | None:
    value = form_text(form, name)
    if not value:
        return None
    try:
        return kind(value)
    except ValueError:
        options = ", ".join(k.value for k in kind)
        raise FormProblem(name, f"invalid {name.replace('_', ' ')} {value!r}: use one of "
                          f"{options}") from None


def _number(form: FormData, name: str, what: str) -> int | None:
    value = form_text(form, name)
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise FormProblem(name, f"invalid {what} {value!r}: a whole number") from None


def _route_fields(form: FormData) -> RouteFields:
    text = {name: form_text(form, name) or None for name in ROUTE_TEXT}
    return RouteFields(
        target=text["target"],
        announcement=_choice(form, "announcement", Announcement),
        legal_basis=_choice(form, "legal_basis", LegalBasis),
        retention_class=text["retention_class"],
        language=_choice(form, "language", Language),
        timeout_means=_choice(form, "timeout_means", TimeoutRule),
        prompt_timeout_s=_number(form, "prompt_timeout_s", "prompt timeout"),
        # Empty: no requirement (the form always says what it wants).
        require_jurisdiction=form_text(form, "require_jurisdiction"),
        offer_withdrawal=form.get("offer_withdrawal") is not None,
        # The caller's language choice, as ``route set --languages tr,en --language-keys
        # 1,3``: empty languages remove the choice, empty keys are 1, 2, ...
        languages=_codes(form, "languages"),
        language_keys=_codes(form, "language_keys") or None,
        language_by_country=form.get("language_by_country") is not None,
        # A ring group's members each record as their own policy says (ext set).
        recording=None if group_of_target(text["target"] or "") else _choice(
            form, "recording", RecordingMode),
    )


def _codes(form: FormData, name: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in form_text(form, name).split(",") if part.strip())


async def _apply_form(
    request: Request,
    change: Callable[[AsyncSession], Awaitable[object]],
    *,
    done: str,
    refused: Callable[[Exception], Awaitable[Response]],
    errors: tuple[type[Exception], ...] = FORM_ERRORS,
) -> Response:
    """A form's change in one transaction, then back to the list saying what was done
    (303 to ``done``), or, refused, the page again with why (``refused``): what every
    admin form does, so none can forget the commit or answer a refusal differently."""
    try:
        async with web_state(request).sessions() as session:
            await change(session)
            await session.commit()
    except errors as exc:
        return await refused(exc)
    return RedirectResponse(done, status_code=303)


async def _apply_delete(
    request: Request,
    change: Callable[[AsyncSession], Awaitable[object]],
    *,
    done: str,
    page: Callable[..., Awaitable[Response]],
    unknown: type[Exception],
    in_use: type[Exception] | None = None,
    errors: tuple[type[Exception], ...],
) -> Response:
    """A delete form (``_apply_form``); refused, the list again with why above it: 409
    while something still uses it, 404 for nothing of that name, 422 for a bad name."""

    async def refused(exc: Exception) -> Response:
        status = (409 if in_use is not None and isinstance(exc, in_use)
                  else 404 if isinstance(exc, unknown) else 422)
        return await page(request, errors={"delete": str(exc)}, status_code=status)

    return await _apply_form(request, change, done=done, refused=refused, errors=errors)


def _problem(error: Exception, of: str) -> dict[str, str]:
    field = error.field if isinstance(error, FormProblem) else error_field(error, of=of)
    return {field or "form": str(error)}


OPTIONS: Mapping[str, list[str]] = {
    "announcement": [a.value for a in Announcement],
    "legal_basis": [b.value for b in LegalBasis],
    "language": [lang.value for lang in Language],
    "timeout_means": [r.value for r in TimeoutRule],
    "recording": [m.value for m in RecordingMode],
}


# -- routes ------------------------------------------------------------------------------

async def _routes_page(
    request: Request, viewer: Viewer, *, values: Mapping[str, Any] | None = None,
    errors: Mapping[str, str] | None = None, status_code: int = 200,
    notice: str | None = None,
) -> Response:
    state = web_state(request)
    async with state.sessions() as session:
        routes = await list_routes(session)
        modes = {e.number: e.recording.value for e in await list_extensions(session)}
        groups = {g.target: g for g in await list_groups(session)}
        classes = [c.name for c in await list_classes(session, state.config.retention)]
        editing = None
        if values is None and (did := request.query_params.get("edit")):
            editing = await get_route(session, did[:64])
    default = state.config.default_route
    if values is None:
        language = (editing.language if editing
                    else default.language or state.config.prompts.default_language)
        values = {
            "did": editing.did if editing else "",
            "target": editing.target if editing else default.target,
            "announcement": (editing or default).announcement.value,
            "legal_basis": (editing or default).legal_basis.value,
            "retention_class": (editing or default).retention_class,
            "language": language.value,
            "timeout_means": (editing or default).timeout_means.value,
            "prompt_timeout_s": str((editing or default).prompt_timeout_s),
            "require_jurisdiction": (editing.require_jurisdiction or "") if editing else "",
            "offer_withdrawal": (editing or default).offer_withdrawal,
            "languages": ",".join(editing.languages) if editing else "",
            "language_keys": ",".join(editing.language_keys) if editing else "",
            "language_by_country": editing.language_by_country if editing else False,
            "recording": modes.get(editing.target if editing else default.target,
                                   DEFAULT_RECORDING_MODE.value),
        }
    return render(
        request, viewer, "admin_routes.html", status_code, active="admin_routes",
        routes=routes, modes=modes, groups=groups, default_mode=DEFAULT_RECORDING_MODE.value,
        values=values, errors=errors or {}, options=OPTIONS, classes=classes,
        editing=editing is not None or bool(errors), notice=notice,
    )


@router.get("/admin/routes")
async def routes_page(request: Request, viewer: SignedIn) -> Response:
    await admin_of(request, viewer, ROUTES_READ)
    return await _routes_page(request, viewer,
                              notice=outcome_notice(request, viewer, "route"))


@router.post("/admin/routes")
async def save_route_form(request: Request, viewer: SignedIn) -> Response:
    """Create or change the route the form names (its DID field)."""
    principal = await admin_of(request, viewer, ROUTES_WRITE)
    form = await request.form()
    config = web_state(request).config
    did = form_text(form, "did")

    async def change(session: AsyncSession) -> None:
        await save_route(session, config, did, _route_fields(form), actor=actor_of(principal))

    async def refused(exc: Exception) -> Response:
        values: dict[str, object] = {name: form_text(form, name) for name in (
            "did", *ROUTE_TEXT, *OPTIONS, "prompt_timeout_s")}
        values["offer_withdrawal"] = form.get("offer_withdrawal") is not None
        values["language_by_country"] = form.get("language_by_country") is not None
        return await _routes_page(request, viewer, values=values,
                                  errors=_problem(exc, "route"), status_code=422)

    return await _apply_form(request, change, done=f"/admin/routes?saved={did}",
                             refused=refused)


@router.post("/admin/routes/{did}/delete")
async def delete_route_form(request: Request, viewer: SignedIn, did: Key) -> Response:
    principal = await admin_of(request, viewer, ROUTES_WRITE)

    async def change(session: AsyncSession) -> None:
        await delete_route(session, did, actor=actor_of(principal))

    return await _apply_delete(
        request, change, done=f"/admin/routes?deleted={did}",
        page=lambda request, **shown: _routes_page(request, viewer, **shown),
        unknown=UnknownRoute, errors=DELETE_ROUTE_ERRORS)


# -- extensions --------------------------------------------------------------------------

async def _extensions_page(
    request: Request, viewer: Viewer, *, values: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None, status_code: int = 200,
    notice: str | None = None,
) -> Response:
    state = web_state(request)
    async with state.sessions() as session:
        extensions = await list_extensions(session)
        classes = [c.name for c in await list_classes(session, state.config.retention)]
    if values is None:
        editing = next((e for e in extensions
                        if e.number == request.query_params.get("edit")), None)
        values = {"number": editing.number if editing else "",
                  "recording": (editing.recording if editing else DEFAULT_RECORDING_MODE).value,
                  "retention_class": (editing.retention_class or "") if editing else "",
                  **{name: (editing.cells[name].value
                            if editing and name in editing.cells else "")
                     for name in CELL_NAMES}}
    return render(
        request, viewer, "admin_extensions.html", status_code, active="admin_extensions",
        extensions=extensions, values=values, errors=errors or {}, options=OPTIONS,
        classes=classes, default_mode=DEFAULT_RECORDING_MODE.value, notice=notice,
        cells=CELL_NAMES,
    )


@router.get("/admin/extensions")
async def extensions_page(request: Request, viewer: SignedIn) -> Response:
    await admin_of(request, viewer, EXTENSIONS_READ)
    return await _extensions_page(request, viewer,
                                  notice=outcome_notice(request, viewer, "extension"))


@router.post("/admin/extensions")
async def save_extension_form(request: Request, viewer: SignedIn) -> Response:
    principal = await admin_of(request, viewer, EXTENSIONS_WRITE)
    form = await request.form()
    number = form_text(form, "number")

    async def change(session: AsyncSession) -> None:
        recording = _choice(form, "recording", RecordingMode)
        if recording is None:
            raise FormProblem("recording", "choose when this extension's calls are recorded")
        # The form shows every cell: a blank one follows the extension's recording.
        cells = {name: _choice(form, name, RecordingMode) for name in CELL_NAMES}
        await set_extension(session, number, recording,
                            form_text(form, "retention_class") or None,
                            cells=cells, actor=actor_of(principal))

    async def refused(exc: Exception) -> Response:
        values = {name: form_text(form, name) for name in ("number", "recording",
                                                       "retention_class", *CELL_NAMES)}
        return await _extensions_page(request, viewer, values=values,
                                      errors=_problem(exc, "extension"), status_code=422)

    return await _apply_form(request, change, done=f"/admin/extensions?saved={number}",
                             refused=refused)


# -- retention classes -------------------------------------------------------------------

async def _retention_page(
    request: Request, viewer: Viewer, *, values: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None, status_code: int = 200,
    notice: str | None = None,
) -> Response:
    state = web_state(request)
    async with state.sessions() as session:
        classes = await list_classes(session, state.config.retention)
    return render(
        request, viewer, "admin_retention.html", status_code, active="admin_retention",
        classes=classes, values=values or {"name": "", "days": ""}, errors=errors or {},
        notice=notice,
    )


@router.get("/admin/retention")
async def retention_page(request: Request, viewer: SignedIn) -> Response:
    await admin_of(request, viewer, RETENTION_READ)
    return await _retention_page(request, viewer,
                                 notice=outcome_notice(request, viewer, "class"))


@router.post("/admin/retention")
async def save_class_form(request: Request, viewer: SignedIn) -> Response:
    principal = await admin_of(request, viewer, RETENTION_WRITE)
    form = await request.form()
    name = form_text(form, "name")

    async def change(session: AsyncSession) -> None:
        days = _number(form, "days", "retention period")
        if days is None:
            raise FormProblem("days", "how many days are recordings of this class kept?")
        await set_class(session, name, days, actor=actor_of(principal))

    async def refused(exc: Exception) -> Response:
        return await _retention_page(
            request, viewer, values={"name": name, "days": form_text(form, "days")},
            errors=_problem(exc, "retention"), status_code=422,
        )

    return await _apply_form(request, change, done=f"/admin/retention?saved={name}",
                             refused=refused)


@router.post("/admin/retention/{name}/delete")
async def delete_class_form(request: Request, viewer: SignedIn, name: Key) -> Response:
    """Refused with the reason while routes, extensions or kept recordings use the class."""
    principal = await admin_of(request, viewer, RETENTION_WRITE)
    config = web_state(request).config

    async def change(session: AsyncSession) -> None:
        await delete_class(
            session, name, default_route_class=config.default_route.retention_class,
            default_outbound_class=config.default_outbound_route.retention_class,
            actor=actor_of(principal))

    return await _apply_delete(
        request, change, done=f"/admin/retention?deleted={name}",
        page=lambda request, **shown: _retention_page(request, viewer, **shown),
        unknown=UnknownRetentionClass, in_use=RetentionClassInUse, errors=DELETE_CLASS_ERRORS)


# -- storage -----------------------------------------------------------------------------

@router.get("/admin/storage")
async def storage_page(request: Request, viewer: SignedIn) -> Response:
    """The numbers of ``storage status --json``, per backend with where it keeps
    recordings and whether it answers now."""
    await admin_of(request, viewer, STORAGE_STATUS)
    state = web_state(request)
    status = await storage_status(state.sessions)
    backends = await backend_states(state.config.storage, status, timeout_s=REACH_TIMEOUT_S)
    return render(request, viewer, "admin_storage.html", active="admin_storage",
                  status=status, backends=backends)
