"""Routes, extensions and retention classes as an operator changes them: one code path for
the CLI (``route set``, ``ext set``, ``retention set``), the console's admin pages and the
REST API, so each refuses the same input with the same message.

The data layer (``pbx_bridge.calls.routes`` / ``extensions`` / ``retention``) validates
each field and audits each change; this adds what needs the configuration as well: a
route's jurisdiction against the storage targets, its default fields, and the recording
mode of its target extension (a route records as the extension that answers it says).
Callers own the transaction: nothing here commits, so a refused change leaves nothing.

Every error is a ``ValueError`` or ``LookupError`` whose message is the CLI's;
:func:`error_field` names the input it is about, for a form or an RFC 9457 problem.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from pbx_bridge.calls.extensions import (
    InvalidExtension,
    UnknownCell,
    extension_recording,
    set_extension,
)
from pbx_bridge.calls.outbound_routes import OutboundRouteInfo, set_outbound_route
from pbx_bridge.calls.retention import InvalidRetentionClass, UnknownRetentionClass
from pbx_bridge.calls.ring_groups import (
    InvalidRingGroup,
    Member,
    RingGroupInfo,
    UnknownRingGroup,
    get_group,
    group_of_target,
    parse_members,
    set_group,
)
from pbx_bridge.calls.routes import InvalidRoute, ResolvedRoute, set_route, validate_did
from pbx_bridge.config import (
    Announcement,
    Language,
    LegalBasis,
    RecordingMode,
    RingStrategy,
    Settings,
    TimeoutRule,
)
from pbx_bridge.jurisdiction import JurisdictionViolation, check_routes

COUNTRY = re.compile(r"[A-Z]{2}")
# What a change of routes, extensions or classes is refused with (the CLI's usage errors).
CONFIG_ERRORS: tuple[type[Exception], ...] = (
    InvalidRoute,
    InvalidExtension,
    UnknownCell,
    InvalidRetentionClass,
    UnknownRetentionClass,
    JurisdictionViolation,
    InvalidRingGroup,
    UnknownRingGroup,
)


@dataclass(frozen=True)
class AnnouncementFields:
    """What inbound and outbound routes both set: what is said, on what basis, kept how
    long; ``None`` keeps the field (a new route: the default's)."""

    announcement: Announcement | None = None
    legal_basis: LegalBasis | None = None
    retention_class: str | None = None
    language: Language | None = None
    timeout_means: TimeoutRule | None = None
    prompt_timeout_s: int | None = None


@dataclass(frozen=True)
class RouteFields(AnnouncementFields):
    """What a route change sets, beside what it announces."""

    target: str | None = None
    # A country code, "" to remove the requirement.
    require_jurisdiction: str | None = None
    offer_withdrawal: bool | None = None
    # The languages the caller chooses from (``()`` removes the choice), their keys.
    languages: tuple[str, ...] | None = None
    language_keys: tuple[str, ...] | None = None
    language_by_country: bool | None = None
    # The target extension's recording policy (``ext set``), set with the route.
    recording: RecordingMode | None = None


@dataclass(frozen=True)
class OutboundRouteFields(AnnouncementFields):
    """What an outbound route change sets, beside what it announces (a new one: the
    ``[default_outbound_route]``'s); ``dial_template`` "" goes back to the default."""

    dial_template: str | None = None


def jurisdiction_code(raw: str | None) -> str | None:
    """A two-letter country code upper-cased, "" (remove) or None (keep)."""
    if raw is None:
        return None
    country = raw.strip().upper()
    if country and not COUNTRY.fullmatch(country):
        raise InvalidRoute(
            f"--require-jurisdiction {raw!r}: use a two-letter country code such as TR",
            field="require_jurisdiction",
        )
    return country


def require_prompts_folder(settings: Settings, code: str) -> None:
    """A language is offered only once its prompts exist (adding one is adding a folder)."""
    folder = settings.prompts.dir / code
    if re.fullmatch(r"[a-z]{2,3}", code) and not folder.is_dir():
        raise InvalidRoute(
            f"--languages {code}: no prompts folder {folder}; add the texts there "
            "(a copy of another language's folder, translated) and run `pbx-bridge prompts "
            "build`",
            field="languages",
        )


def check_route_input(did: str, fields: RouteFields, settings: Settings) -> None:
    """What can be refused before the database is opened (the CLI's first answer)."""
    validate_did(did)
    for code in fields.languages or ():
        require_prompts_folder(settings, code)
    jurisdiction_code(fields.require_jurisdiction)


async def save_route(
    session: AsyncSession, settings: Settings, did: str, fields: RouteFields, *, actor: str
) -> ResolvedRoute:
    """Create or change a route (and its target extension's recording mode when given);
    both audited with ``actor``. Refused (nothing written) when its recordings would be
    kept outside the country it requires."""
    check_route_input(did, fields, settings)
    route = await set_route(
        session,
        did,
        default=settings.default_route,
        default_language=settings.prompts.default_language,
        target=fields.target,
        announcement=fields.announcement,
        legal_basis=fields.legal_basis,
        retention_class=fields.retention_class,
        language=fields.language,
        timeout_means=fields.timeout_means,
        prompt_timeout_s=fields.prompt_timeout_s,
        require_jurisdiction=jurisdiction_code(fields.require_jurisdiction),
        offer_withdrawal=fields.offer_withdrawal,
        languages=fields.languages,
        language_keys=fields.language_keys,
        language_by_country=fields.language_by_country,
        actor=actor,
    )
    check_routes([route], settings.storage)
    group = group_of_target(route.target)
    if fields.recording is not None and group is not None:
        raise InvalidRoute(
            f"route {did} rings ring group {group}: the member that answers records as "
            "its own policy says; set each member's with `pbx-bridge ext set EXT "
            "--recording MODE`", field="recording")
    # Only a change writes the extension: an unconfigured one already records "always".
    if fields.recording is not None and fields.recording != await route_recording(session, route):
        await set_extension(session, route.target, fields.recording, actor=actor)
    return route


async def save_outbound_route(
    session: AsyncSession, settings: Settings, prefix: str, fields: OutboundRouteFields,
    *, actor: str,
) -> OutboundRouteInfo:
    """Create or change an outbound route as ``outbound-route set`` does, audited with
    ``actor``; refused (nothing written) when the callee's notice would mislead."""
    return await set_outbound_route(
        session, prefix, default=settings.default_outbound_route,
        default_language=settings.prompts.default_language, actor=actor, **asdict(fields),
    )


async def route_recording(session: AsyncSession, route: ResolvedRoute) -> RecordingMode | None:
    """How the route's calls are recorded once the caller's choice allows it: its target
    extension's mode (``always`` for an extension nobody configured); None for a ring
    group, where the member that answers decides."""
    if group_of_target(route.target) is not None:
        return None
    return await extension_recording(session, route.target)


async def route_group(session: AsyncSession, route: ResolvedRoute) -> RingGroupInfo | None:
    """The ring group the route rings; None for an extension."""
    name = group_of_target(route.target)
    return None if name is None else await get_group(session, name)


async def save_group(
    session: AsyncSession,
    settings: Settings,
    name: str,
    *,
    members: str | None = None,
    strategy: RingStrategy | None = None,
    actor: str,
) -> RingGroupInfo:
    """Create or change a ring group from the admin's ``--members 100:15,101:20`` (a
    member without seconds rings ``[call] ring_timeout_s``), audited with ``actor``."""
    parsed: tuple[Member, ...] | None = None
    if members is not None:
        parsed = parse_members(name, members, default_ring_s=settings.call.ring_timeout_s)
    return await set_group(session, name, members=parsed, strategy=strategy, actor=actor)


# Which input an error is about, where its type alone says it (``field`` otherwise).
_ROUTE_FIELDS: dict[type[Exception], str] = {
    InvalidExtension: "target",
    InvalidRingGroup: "target",
    UnknownRingGroup: "target",
    UnknownRetentionClass: "retention_class",
    JurisdictionViolation: "require_jurisdiction",
}
_EXTENSION_FIELDS: dict[type[Exception], str] = {
    InvalidExtension: "number",
    UnknownRetentionClass: "retention_class",
}


def error_field(error: Exception, *, of: str) -> str | None:
    """The input ``error`` is about in a form ``of`` "route", "outbound_route",
    "extension" or "retention"."""
    if of == "group" and isinstance(error, InvalidRingGroup | InvalidExtension):
        return error.field if isinstance(error, InvalidRingGroup) and error.field else "members"
    if isinstance(error, InvalidRoute | InvalidRetentionClass) and error.field:
        return error.field
    table = {"route": _ROUTE_FIELDS, "outbound_route": _ROUTE_FIELDS,
             "extension": _EXTENSION_FIELDS}.get(of, {})
    for kind, name in table.items():
        if isinstance(error, kind):
            return name
    if of == "retention" and isinstance(error, UnknownRetentionClass):
        return "name"
    return None
