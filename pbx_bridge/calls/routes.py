"""Routes: what a dialled number (DID) does — where it rings, what the caller hears, and why.

A DID without a row uses the configured default route, so an unconfigured number is
still announced and handled lawfully. Writers flush but do not commit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pbx_bridge.calls.changes import SYSTEM_ACTOR, record_change, record_removal, snapshot
from pbx_bridge.calls.models import Route
from pbx_bridge.calls.retention import require_class
from pbx_bridge.calls.ring_groups import validate_target
from pbx_bridge.config import Announcement, Language, LegalBasis, RouteSettings, TimeoutRule
from pbx_bridge.disclosure import UntruthfulRoute, check_truthful
from storage.models import utcnow

DID_PATTERN = re.compile(r"^[A-Za-z0-9_+*#-]{1,64}$")
LANGUAGE_PATTERN = re.compile(r"^[a-z]{2,3}$")
MAX_LANGUAGES = 9
PROMPT_TIMEOUT_RANGE = (1, 60)


class InvalidRoute(ValueError):
    """A route field that cannot be stored; the message names the field, and ``field``
    names it for a form or an API problem (``did``, ``prompt_timeout_s``, ...)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnknownRoute(LookupError):
    """No route row for that DID (the default route cannot be deleted)."""


@dataclass(frozen=True)
class ResolvedRoute:
    did: str
    # An extension, or a ring group ``group:NAME`` (``calls/ring_groups.py``).
    target: str
    announcement: Announcement
    language: Language
    legal_basis: LegalBasis
    timeout_means: TimeoutRule
    prompt_timeout_s: int
    retention_class: str
    # True when the DID has no row and the configured default route was used.
    is_default: bool
    require_jurisdiction: str | None = None
    # Callers may press 8 at the disclosure to withdraw consent (do-not-record list).
    offer_withdrawal: bool = False
    # Language choice: the languages offered, in order, and the key of each ("For
    # English, press 3"); empty: ``language`` only. Or the caller's country decides.
    languages: tuple[str, ...] = ()
    language_keys: tuple[str, ...] = ()
    language_by_country: bool = False
    # An agent's call to another extension (``did`` is that extension): nobody outside
    # is on it (flow/outbound.py).
    internal: bool = False


def validate_did(did: str) -> str:
    if not DID_PATTERN.fullmatch(did):
        raise InvalidRoute(
            f"invalid DID {did!r}: use 1-64 letters, digits or _ + * # -", field="did"
        )
    return did


def _validate_prompt_timeout(seconds: int) -> int:
    low, high = PROMPT_TIMEOUT_RANGE
    if not low <= seconds <= high:
        raise InvalidRoute(
            f"invalid prompt timeout {seconds}s: must be between {low} and {high}",
            field="prompt_timeout_s",
        )
    return seconds


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(part for part in (value or "").split(",") if part)


def validate_languages(
    languages: tuple[str, ...], keys: tuple[str, ...] | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The languages offered and their keys (default 1, 2, 3 ...), checked."""
    if len(languages) > MAX_LANGUAGES:
        raise InvalidRoute(f"--languages: at most {MAX_LANGUAGES} (one key each)",
                           field="languages")
    for code in languages:
        if not LANGUAGE_PATTERN.fullmatch(code):
            raise InvalidRoute(f"--languages: {code!r} is not a language code such as tr, en",
                               field="languages")
    if len(set(languages)) != len(languages):
        raise InvalidRoute(f"--languages: {','.join(languages)} names a language twice",
                           field="languages")
    chosen = keys if keys else tuple(str(n) for n in range(1, len(languages) + 1))
    if len(chosen) != len(languages):
        raise InvalidRoute(
            f"--language-keys: {len(chosen)} keys for {len(languages)} languages; give one "
            "key per language, in the same order", field="language_keys",
        )
    if any(len(key) != 1 or not key.isdigit() for key in chosen) or len(set(chosen)) != len(
        chosen
    ):
        raise InvalidRoute(f"--language-keys: {','.join(chosen)}: one distinct digit each",
                           field="language_keys")
    return languages, chosen


def _from_row(row: Route) -> ResolvedRoute:
    return ResolvedRoute(
        did=row.did,
        target=row.target,
        announcement=Announcement(row.announcement),
        language=Language(row.language),
        legal_basis=LegalBasis(row.legal_basis),
        timeout_means=TimeoutRule(row.timeout_means),
        prompt_timeout_s=row.prompt_timeout_s,
        retention_class=row.retention_class,
        is_default=False,
        require_jurisdiction=row.require_jurisdiction,
        offer_withdrawal=row.offer_withdrawal,
        languages=_split(row.languages),
        language_keys=_split(row.language_keys),
        language_by_country=row.language_by_country,
    )


def _from_default(did: str, default: RouteSettings, default_language: Language) -> ResolvedRoute:
    return ResolvedRoute(
        did=did,
        target=default.target,
        announcement=default.announcement,
        language=default.language or default_language,
        legal_basis=default.legal_basis,
        timeout_means=default.timeout_means,
        prompt_timeout_s=default.prompt_timeout_s,
        retention_class=default.retention_class,
        is_default=True,
        offer_withdrawal=default.offer_withdrawal,
    )


async def set_route(
    session: AsyncSession,
    did: str,
    *,
    default: RouteSettings,
    default_language: Language,
    target: str | None = None,
    announcement: Announcement | None = None,
    legal_basis: LegalBasis | None = None,
    retention_class: str | None = None,
    language: Language | None = None,
    timeout_means: TimeoutRule | None = None,
    prompt_timeout_s: int | None = None,
    require_jurisdiction: str | None = None,
    offer_withdrawal: bool | None = None,
    languages: tuple[str, ...] | None = None,
    language_keys: tuple[str, ...] | None = None,
    language_by_country: bool | None = None,
    actor: str = SYSTEM_ACTOR,
) -> ResolvedRoute:
    """Create or partially update a route; a new route takes unset fields from ``default``.

    ``require_jurisdiction``: a country code, or "" to remove the requirement; the caller
    checks it against the storage targets (``pbx_bridge.jurisdiction``). ``languages``:
    the languages the caller chooses from (``()`` removes the choice), with
    ``language_keys`` (default 1, 2, ...). Settings that would make the prompt lie are
    refused (``disclosure.untruthful``), naming why.
    """
    validate_did(did)
    if target is not None:
        await validate_target(session, target)
    if prompt_timeout_s is not None:
        _validate_prompt_timeout(prompt_timeout_s)
    if retention_class is not None:
        await require_class(session, retention_class)

    row = await session.get(Route, did)
    before = None if row is None else snapshot(row)
    if row is None:
        base = _from_default(did, default, default_language)
        # The configured default may name a class nobody created; refuse rather than dangle.
        if retention_class is None:
            await require_class(session, base.retention_class)
        row = Route(
            did=did,
            target=base.target,
            announcement=base.announcement.value,
            language=base.language.value,
            legal_basis=base.legal_basis.value,
            timeout_means=base.timeout_means.value,
            prompt_timeout_s=base.prompt_timeout_s,
            retention_class=base.retention_class,
            offer_withdrawal=base.offer_withdrawal,
        )
        session.add(row)
    if target is not None:
        row.target = target
    if announcement is not None:
        row.announcement = announcement.value
    if legal_basis is not None:
        row.legal_basis = legal_basis.value
    if retention_class is not None:
        row.retention_class = retention_class
    if language is not None:
        row.language = language.value
    if timeout_means is not None:
        row.timeout_means = timeout_means.value
    if prompt_timeout_s is not None:
        row.prompt_timeout_s = prompt_timeout_s
    if require_jurisdiction is not None:
        row.require_jurisdiction = require_jurisdiction or None
    if offer_withdrawal is not None:
        row.offer_withdrawal = offer_withdrawal
    if languages is not None or language_keys is not None:
        offered, keys = validate_languages(
            languages if languages is not None else _split(row.languages),
            language_keys if language_keys is not None else (
                None if languages is not None else _split(row.language_keys)),
        )
        row.languages = ",".join(offered) or None
        row.language_keys = ",".join(keys) or None
    if language_by_country is not None:
        row.language_by_country = language_by_country
    if row.languages and row.language not in _split(row.languages):
        raise InvalidRoute(
            f"route {did}: --language {row.language} is not among --languages "
            f"{row.languages}; the route's language is the one heard without a choice",
            field="languages",
        )
    try:
        check_truthful(
            Announcement(row.announcement), LegalBasis(row.legal_basis),
            offer_withdrawal=row.offer_withdrawal,
        )
    except UntruthfulRoute as exc:
        raise InvalidRoute(f"route {did}: {exc}") from exc
    row.updated_at = utcnow()
    await session.flush()
    await record_change(
        session, actor=actor, kind="route", key=did, before=before, after=snapshot(row)
    )
    return _from_row(row)


async def delete_route(session: AsyncSession, did: str, *, actor: str = SYSTEM_ACTOR) -> None:
    """Remove a DID's row: its calls take the configured default route from then on.
    Audited as ``route.deleted`` with every field it had."""
    validate_did(did)
    row = await session.get(Route, did)
    if row is None:
        raise UnknownRoute(f"no route for DID {did!r} (see `pbx-bridge route list`)")
    before = snapshot(row)
    await session.delete(row)
    await session.flush()
    await record_removal(session, actor=actor, kind="route", key=did, before=before)


async def get_route(session: AsyncSession, did: str) -> ResolvedRoute | None:
    row = await session.get(Route, did)
    return None if row is None else _from_row(row)


async def list_routes(session: AsyncSession) -> list[ResolvedRoute]:
    rows = (await session.scalars(select(Route).order_by(Route.did))).all()
    return [_from_row(row) for row in rows]


async def resolve_route(
    session: AsyncSession, did: str, default: RouteSettings, default_language: Language
) -> ResolvedRoute:
    row = await session.get(Route, did)
    if row is None:
        return _from_default(did, default, default_language)
    return _from_row(row)
