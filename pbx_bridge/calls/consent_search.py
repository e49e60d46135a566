"""The consent answers search behind ``GET /api/v1/consents``: filters, the extension
scope in the query (as the call search's), newest call first a keyset page at a time.

The order is the call's start, newest first (``(started_at, id)`` of the call, along
the calls' own index ``ix_calls_started_at_id``); each call has at most one consent
row, found by its unique ``call_id``. ``decided_at`` has no index, and ordering by it
would sort every answer for each page. The cursor is the call search's: signed
together with these filters (:class:`ConsentFilter.canonical`), so another search's or
an edited cursor is refused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, false, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from pbx_bridge.calls.history import ConsentView, consent_view
from pbx_bridge.calls.models import Call, Consent
from pbx_bridge.calls.search import (
    CursorSigner,
    InvalidSearch,
    Keyset,
    canonical_filters,
    check_limit,
)
from pbx_bridge.flow.policy import ConsentOutcome
from pbx_bridge.subjects.index import SubjectIndex
from pbx_bridge.subjects.numbers import try_normalise

ANSWERS = tuple(o.value for o in ConsentOutcome)
_MAX_TEXT = 64


@dataclass(frozen=True)
class ConsentFilter:
    """What to look for; ``extensions`` is the principal's scope (None: every call)."""

    since: datetime | None = None  # the call started at or after
    until: datetime | None = None  # the call started before
    call_id: str | None = None
    answer: str | None = None  # one of ANSWERS
    number: str | None = None  # the caller's number, however written
    extensions: frozenset[str] | None = None

    def check(self) -> None:
        """Raises :class:`InvalidSearch` naming the first filter that cannot be used."""
        if self.since and self.until and self.since >= self.until:
            raise InvalidSearch(f"since ({self.since.isoformat()}) is not before until "
                                f"({self.until.isoformat()})")
        for name in ("call_id", "number"):
            value = getattr(self, name)
            if value is not None and not 0 < len(value.strip()) <= _MAX_TEXT:
                raise InvalidSearch(f"{'call' if name == 'call_id' else name}: give 1 to "
                                    f"{_MAX_TEXT} characters")
        if self.answer is not None and self.answer not in ANSWERS:
            raise InvalidSearch(f"answer: {self.answer!r} is not one of {', '.join(ANSWERS)}")

    def canonical(self) -> bytes:
        return canonical_filters({"search": "consents", **asdict(self)})


@dataclass(frozen=True)
class ConsentPage:
    consents: list[ConsentView]
    next_cursor: str | None  # None on the last page


def _conditions(f: ConsentFilter, subjects: SubjectIndex | None) -> list[ColumnElement[bool]]:
    found: list[ColumnElement[bool]] = []
    if f.extensions is not None:
        found.append(Call.extension.in_(sorted(f.extensions)) if f.extensions else false())
    if f.since is not None:
        found.append(Call.started_at >= f.since)
    if f.until is not None:
        found.append(Call.started_at < f.until)
    if f.call_id is not None:
        found.append(Consent.call_id == f.call_id.strip())
    if f.answer is not None:
        found.append(Consent.decision == f.answer)
    if f.number is not None:
        if subjects is None:
            raise InvalidSearch("number: searching by number needs the subject index")
        text = f.number.strip()
        e164 = try_normalise(text, subjects.default_region)
        found.append(Consent.caller == text if e164 is None
                     else Consent.caller_key == subjects.key(e164))
    return found


async def search_consents(
    session: AsyncSession,
    filters: ConsentFilter,
    *,
    signer: CursorSigner,
    subjects: SubjectIndex | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> ConsentPage:
    """One page of consent answers (full numbers: the caller masks), and the next
    page's cursor; :class:`InvalidSearch` for a filter, limit or cursor it cannot take."""
    filters.check()
    check_limit(limit)
    after = None if cursor is None else signer.decode(cursor, filters)
    query = (
        select(Consent, Call.started_at)
        .join(Call, Call.id == Consent.call_id)
        .where(*_conditions(filters, subjects))
    )
    if after is not None:
        query = query.where(tuple_(Call.started_at, Call.id) < tuple_(after.started_at, after.id))
    query = query.order_by(Call.started_at.desc(), Call.id.desc()).limit(limit + 1)
    rows = (await session.execute(query)).all()
    page, more = rows[:limit], len(rows) > limit
    next_cursor = None
    if more:
        last, started = page[-1]
        next_cursor = signer.encode(Keyset(started, last.call_id), filters)
    return ConsentPage([consent_view(row) for row, _ in page], next_cursor)
