"""Outbound routes: what the callee of an agent's call out hears, chosen by the dialled
number's prefix (the longest prefix wins), and on what legal basis it is recorded.

A number no prefix matches takes the configured ``[default_outbound_route]``, so an agent
can never reach a customer unannounced because nobody configured their country code.
Writers flush but do not commit; every change is audited as ``outbound_route.*``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pbx_bridge.calls.changes import SYSTEM_ACTOR, record_change, record_removal, snapshot
from pbx_bridge.calls.models import OutboundRoute
from pbx_bridge.calls.retention import require_class
from pbx_bridge.calls.routes import PROMPT_TIMEOUT_RANGE, InvalidRoute, ResolvedRoute
from pbx_bridge.config import (
    Announcement,
    Language,
    LegalBasis,
    OutboundRouteSettings,
    TimeoutRule,
)
from pbx_bridge.disclosure import outbound_untruthful
from storage.models import utcnow

# What an agent dials: digits, a leading + for E.164 (as the dialplan's _X. and _+X.).
PREFIX_PATTERN = re.compile(r"^\+?[0-9]{1,31}$")
DIALLED_PATTERN = re.compile(r"^\+?[0-9]{1,63}$")
# The call row's ``did`` for a call out on the default outbound route (a matched route's
# is its prefix): never the dialled number, which is the callee's personal data and is
# kept (and erased) in the call's number field only.
DEFAULT_OUTBOUND_DID = "outbound"


class UnknownOutboundRoute(LookupError):
    """No outbound route for that prefix."""


@dataclass(frozen=True)
class OutboundRouteInfo:
    prefix: str
    announcement: Announcement
    language: Language
    legal_basis: LegalBasis
    timeout_means: TimeoutRule
    prompt_timeout_s: int
    retention_class: str
    dial_template: str | None  # None: [call] outbound_dial_template
    is_default: bool = False

    def for_agent(self, extension: str) -> ResolvedRoute:
        """The route a call out on this outbound route runs on: its target is the agent
        who placed it (their feature codes, their recording policy)."""
        return ResolvedRoute(
            did=self.prefix if not self.is_default else DEFAULT_OUTBOUND_DID,
            target=extension,
            announcement=self.announcement,
            language=self.language,
            legal_basis=self.legal_basis,
            timeout_means=self.timeout_means,
            prompt_timeout_s=self.prompt_timeout_s,
            retention_class=self.retention_class,
            is_default=self.is_default,
        )


def validate_prefix(prefix: str) -> str:
    if not PREFIX_PATTERN.fullmatch(prefix):
        raise InvalidRoute(
            f"invalid outbound prefix {prefix!r}: use 1-31 digits, optionally after a "
            "leading + (e.g. 0090, +44, 05)", field="prefix",
        )
    return prefix


def validate_dial_template(template: str) -> str:
    if "{number}" not in template or template.count("{") != 1 or template.count("}") != 1:
        raise InvalidRoute(
            f"invalid dial template {template!r}: must contain {{number}} once and no other "
            "braces, e.g. PJSIP/{number}@carrier", field="dial_template",
        )
    return template


def _from_row(row: OutboundRoute) -> OutboundRouteInfo:
    return OutboundRouteInfo(
        prefix=row.prefix,
        announcement=Announcement(row.announcement),
        language=Language(row.language),
        legal_basis=LegalBasis(row.legal_basis),
        timeout_means=TimeoutRule(row.timeout_means),
        prompt_timeout_s=row.prompt_timeout_s,
        retention_class=row.retention_class,
        dial_template=row.dial_template,
    )


def default_outbound(
    default: OutboundRouteSettings, default_language: Language
) -> OutboundRouteInfo:
    return OutboundRouteInfo(
        prefix="(any other)",
        announcement=default.announcement,
        language=default.language or default_language,
        legal_basis=default.legal_basis,
        timeout_means=default.timeout_means,
        prompt_timeout_s=default.prompt_timeout_s,
        retention_class=default.retention_class,
        dial_template=None,
        is_default=True,
    )


async def set_outbound_route(
    session: AsyncSession,
    prefix: str,
    *,
    default: OutboundRouteSettings,
    default_language: Language,
    announcement: Announcement | None = None,
    legal_basis: LegalBasis | None = None,
    retention_class: str | None = None,
    language: Language | None = None,
    timeout_means: TimeoutRule | None = None,
    prompt_timeout_s: int | None = None,
    dial_template: str | None = None,
    actor: str = SYSTEM_ACTOR,
) -> OutboundRouteInfo:
    """Create or partially update an outbound route; a new one takes unset fields from
    ``default``. ``dial_template`` "" goes back to ``[call] outbound_dial_template``.
    Settings that would make the callee's notice lie are refused, naming why."""
    validate_prefix(prefix)
    if dial_template:
        validate_dial_template(dial_template)
    if prompt_timeout_s is not None and not (
        PROMPT_TIMEOUT_RANGE[0] <= prompt_timeout_s <= PROMPT_TIMEOUT_RANGE[1]
    ):
        raise InvalidRoute(
            f"invalid prompt timeout {prompt_timeout_s}s: must be between "
            f"{PROMPT_TIMEOUT_RANGE[0]} and {PROMPT_TIMEOUT_RANGE[1]}", field="prompt_timeout_s",
        )
    if retention_class is not None:
        await require_class(session, retention_class)
    row = await session.get(OutboundRoute, prefix)
    before = None if row is None else snapshot(row)
    if row is None:
        base = default_outbound(default, default_language)
        if retention_class is None:
            await require_class(session, base.retention_class)
        row = OutboundRoute(
            prefix=prefix, announcement=base.announcement.value, language=base.language.value,
            legal_basis=base.legal_basis.value, timeout_means=base.timeout_means.value,
            prompt_timeout_s=base.prompt_timeout_s, retention_class=base.retention_class,
        )
        session.add(row)
    changes: dict[str, object] = {
        "announcement": announcement, "legal_basis": legal_basis,
        "retention_class": retention_class, "language": language,
        "timeout_means": timeout_means, "prompt_timeout_s": prompt_timeout_s,
    }
    for name, value in changes.items():
        if value is not None:
            setattr(row, name, value.value if isinstance(value, Enum) else value)
    if dial_template is not None:
        row.dial_template = dial_template or None
    problems = outbound_untruthful(Announcement(row.announcement), LegalBasis(row.legal_basis))
    if problems:
        raise InvalidRoute(f"outbound route {prefix}: would mislead the callee: "
                           + "; ".join(problems))
    row.updated_at = utcnow()
    await session.flush()
    await record_change(session, actor=actor, kind="outbound_route", key=prefix,
                        before=before, after=snapshot(row))
    return _from_row(row)


async def delete_outbound_route(
    session: AsyncSession, prefix: str, *, actor: str = SYSTEM_ACTOR
) -> None:
    """Numbers with that prefix take the next longest prefix, or the default, from then on."""
    validate_prefix(prefix)
    row = await session.get(OutboundRoute, prefix)
    if row is None:
        raise UnknownOutboundRoute(
            f"no outbound route for prefix {prefix!r} (see `pbx-bridge outbound-route list`)"
        )
    before = snapshot(row)
    await session.delete(row)
    await session.flush()
    await record_removal(session, actor=actor, kind="outbound_route", key=prefix, before=before)


async def get_outbound_route(session: AsyncSession, prefix: str) -> OutboundRouteInfo | None:
    """The route of exactly that prefix (not the one a number resolves to)."""
    row = await session.get(OutboundRoute, validate_prefix(prefix))
    return None if row is None else _from_row(row)


async def list_outbound_routes(session: AsyncSession) -> list[OutboundRouteInfo]:
    rows = (await session.scalars(select(OutboundRoute).order_by(OutboundRoute.prefix))).all()
    return [_from_row(row) for row in rows]


def prefixes_of(number: str) -> list[str]:
    """Every prefix a route may have for ``number``, longest first."""
    return [number[:n] for n in range(min(len(number), 31 + number.startswith("+")), 0, -1)]


async def resolve_outbound_route(
    session: AsyncSession,
    number: str,
    default: OutboundRouteSettings,
    default_language: Language,
) -> OutboundRouteInfo:
    """The route of the longest prefix of ``number`` (one indexed look-up), else the
    default outbound route."""
    candidates = prefixes_of(number)
    row = None
    if candidates:
        row = await session.scalar(
            select(OutboundRoute)
            .where(OutboundRoute.prefix.in_(candidates))
            .order_by(func.length(OutboundRoute.prefix).desc())
            .limit(1)
        )
    return default_outbound(default, default_language) if row is None else _from_row(row)
