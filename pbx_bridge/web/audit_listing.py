"""The audit trail as a principal may read it (the console's audit page and
``GET /api/v1/audit``): filtered, newest first, a keyset page at a time with a signed
cursor (the call search's signer, bound to these filters), and masked for whoever may
not see personal data (audit_masking.py). Pages shown unmasked (a dpo's) are audited
as ``audit.unmasked``, as the calls list's are as ``calls.unmasked``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC
from typing import Annotated

from fastapi import Query
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pbx_bridge.calls.history import iso
from pbx_bridge.calls.search import (
    MAX_LIMIT,
    InvalidCursor,
    InvalidSearch,
    Keyset,
    canonical_filters,
)
from pbx_bridge.web.accounts import Principal
from pbx_bridge.web.audit_masking import EntryView, masked_entry
from pbx_bridge.web.filters import parse_time, text
from pbx_bridge.web.permissions import AUDIT_READ, NUMBERS_UNMASK
from pbx_bridge.web.viewer import Forbidden
from pbx_bridge.web.web_state import WebState
from storage.audit_trail import EntryFilter, record_event, search_entries
from storage.models import AuditEntry, Recording

DEFAULT_LIMIT = 50
MAX_TEXT = 200
# A bare id (no "kind:") is looked for as any of these targets.
ID_KINDS = ("call", "recording", "dsar", "consent", "subject", "token", "user")


@dataclass(frozen=True)
class AuditFilter:
    """The audit search's filters as given (``target``: ``kind:ID``, a prefix ending
    in ``*``, or a bare id: a call's id also finds its recordings' entries)."""

    since: str | None = None
    until: str | None = None
    actor: str | None = None
    action: str | None = None
    target: str | None = None

    def check(self) -> None:
        """``BadFilter`` / ``InvalidSearch`` naming the first field it cannot use."""
        for name in ("actor", "action", "target"):
            if getattr(self, name) == "*":  # a prefix of nothing: say so, not list all
                raise InvalidSearch(f"{name}: give the start of a value before the *")
        start, end = parse_time(self.since, "since"), parse_time(self.until, "until")
        if start and end and start >= end:
            raise InvalidSearch(f"since ({start.isoformat()}) is not before until "
                                f"({end.isoformat()})")

    def canonical(self) -> bytes:
        """What a cursor is bound to (the search's name keeps a calls cursor out)."""
        return canonical_filters({"search": "audit", **asdict(self)})


@dataclass(frozen=True)
class AuditPage:
    entries: list[EntryView]
    next_cursor: str | None  # None on the last page
    masked: bool


def audit_query(
    since: Annotated[str | None, Query(max_length=40, description="UTC date or time.")] = None,
    until: Annotated[str | None, Query(max_length=40, description="UTC date or time.")] = None,
    actor: Annotated[str | None, Query(max_length=MAX_TEXT, description=(
        "user:NAME, token:ID(NAME), service...; a trailing * matches a prefix."))] = None,
    action: Annotated[str | None, Query(max_length=MAX_TEXT, description=(
        "recording.played...; a trailing * matches a prefix (recording.*)."))] = None,
    target: Annotated[str | None, Query(max_length=MAX_TEXT, description=(
        "kind:ID (call:ID, recording:ID, subject:KEY...), a prefix ending in *, or a bare "
        "id (a call's id also finds its recordings' entries)."))] = None,
) -> AuditFilter:
    """The filters of the page and the API from the query (a dependency); an empty
    field is no filter. Checked by :meth:`AuditFilter.check`."""
    return AuditFilter(since=text(since), until=text(until), actor=text(actor),
                       action=text(action), target=text(target))


async def _entry_filter(session: AsyncSession, chosen: AuditFilter) -> EntryFilter:
    since, until = parse_time(chosen.since, "since"), parse_time(chosen.until, "until")
    target, targets = chosen.target, None
    if target is not None and ":" not in target and not target.endswith("*"):
        recordings = await session.scalars(
            select(Recording.id).where(Recording.call_id == target)
        )
        targets = (*(f"{kind}:{target}" for kind in ID_KINDS),
                   *(f"recording:{rid}" for rid in recordings.all()))
        target = None
    return EntryFilter(since=since, until=until, actor=chosen.actor, action=chosen.action,
                       target=target, targets=targets)


def entry_view(entry: AuditEntry) -> EntryView:
    try:
        details = json.loads(entry.details)
    except ValueError:
        details = {"unreadable": entry.details}
    return EntryView(
        seq=entry.seq, at=iso(entry.at) or "", actor=entry.actor, action=entry.action,
        target=entry.target, outcome=entry.outcome,
        details=details if isinstance(details, dict) else {"value": details},
        prev_hash=entry.prev_hash, hash=entry.hash,
    )


def _before_seq(state: WebState, cursor: str | None, chosen: AuditFilter) -> int | None:
    if cursor is None:
        return None
    position = state.cursor_signer.decode(cursor, chosen)
    try:
        return int(position.id)
    except ValueError as exc:  # signed by us for this search, so never; but not a seq
        raise InvalidCursor("cursor: not a position in the audit trail") from exc


async def visible_entries(
    state: WebState,
    principal: Principal,
    chosen: AuditFilter,
    *,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> AuditPage:
    """One page for this principal; Forbidden without ``audit.read``, InvalidSearch
    (InvalidCursor) or BadFilter for a filter, limit or cursor it cannot take."""
    if not (await state.accounts.allowed(principal, AUDIT_READ)).allowed:
        raise Forbidden
    chosen.check()
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidSearch(f"limit: give 1 to {MAX_LIMIT}, got {limit}")
    unmasked = (await state.accounts.allowed(principal, NUMBERS_UNMASK)).allowed
    before = _before_seq(state, cursor, chosen)
    async with state.sessions() as session:
        found = await search_entries(
            session, await _entry_filter(session, chosen), before_seq=before, limit=limit + 1
        )
        page, more = found[:limit], len(found) > limit
        if unmasked and page:
            await record_event(
                session, actor=principal.actor, action="audit.unmasked",
                target="audit:listing",
                details={"count": len(page), "seqs": [page[0].seq, page[-1].seq],
                         "filters": {k: v for k, v in asdict(chosen).items() if v}},
            )
            await session.commit()
    next_cursor = None
    if more:
        last = page[-1]
        next_cursor = state.cursor_signer.encode(
            Keyset(last.at.astimezone(UTC), str(last.seq)), chosen
        )
    views = [entry_view(entry) for entry in page]
    if not unmasked:
        views = [masked_entry(view) for view in views]
    return AuditPage(views, next_cursor, masked=not unmasked)
