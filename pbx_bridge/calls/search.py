"""The one call search behind ``calls list``, the web calls screen and ``GET /api/v1/calls``.

Newest first, a page at a time by keyset ``(started_at, id)``: a deep page costs what the
first one does, where an OFFSET would read every row before it. Each page is found along
one index: the most selective filter given "drives" (its values are equality ranges of an
index ending in ``(started_at, id)``; several values, such as a supervisor's extensions or
a number's caller key and its spellings as a DID, are one limited range each, merged), and
every other filter, the extension scope included, is a condition in the same SQL. The
scope is never applied after the query: a page of someone else's calls is never read.

The cursor is opaque and signed (HMAC) together with the filters it was made for: a
damaged, edited or another search's cursor is refused with :class:`InvalidCursor`, never
read as a position.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import struct
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Protocol

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    exists,
    false,
    func,
    or_,
    select,
    tuple_,
    union,
)
from sqlalchemy.ext.asyncio import AsyncSession

from pbx_bridge.calls.history import CallView, call_view
from pbx_bridge.calls.models import Call, CallTransfer, Consent
from pbx_bridge.calls.reference import InvalidReference, parse_reference
from pbx_bridge.calls.transfers import transfer_view
from pbx_bridge.flow.policy import ConsentOutcome
from pbx_bridge.subjects.index import SubjectIndex
from pbx_bridge.subjects.numbers import try_normalise
from storage.models import Recording

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
DISPOSITIONS = ("answered", "abandoned", "no-answer", "busy", "failed", "live")
# "none": no consent row (the caller hung up before answering, or nobody was asked).
CONSENT_FILTERS = (*(o.value for o in ConsentOutcome), "none")
DIRECTIONS = ("inbound", "outbound")
# At most this many calls with the consent answer filtered for: they drive the page
# (looked up by id), instead of a walk of every call that checks each one's answer.
RARE_CONSENT = 5000
_MAX_TEXT = 64
_CURSOR_VERSION = 1
_MAC_BYTES = 16
_CURSOR_LABEL = "pbx-bridge calls cursor v1"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class InvalidSearch(ValueError):
    """A filter, limit or cursor the search cannot take; the message names which."""


class InvalidCursor(InvalidSearch):
    """The cursor is not one this search handed out for these filters."""


class CursorScope(Protocol):
    """What a cursor is bound to: the filters of the search that made it (other
    searches, the audit trail's and the consents', sign theirs with the same signer)."""

    def canonical(self) -> bytes: ...


@dataclass(frozen=True)
class CallFilter:
    """What to look for; every field None means all calls (within ``extensions``).

    ``extensions`` is the caller's scope, not a filter they chose: None sees every
    extension, an empty set sees nothing (a supervisor with no extension assigned).
    """

    since: datetime | None = None  # started_at >= since
    until: datetime | None = None  # started_at < until
    number: str | None = None  # the caller's number or the number called, however written
    did: str | None = None
    extension: str | None = None
    disposition: str | None = None  # one of DISPOSITIONS ("live": not ended yet)
    consent: str | None = None  # one of CONSENT_FILTERS
    direction: str | None = None
    # A call's reference number (nine digits with its check digit; spacing allowed).
    reference: str | None = None
    campaign: str | None = None
    extensions: frozenset[str] | None = None

    def check(self) -> None:
        """Raises :class:`InvalidSearch` naming the first filter that cannot be searched."""
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise InvalidSearch(f"{name}: a time with its zone is needed, got {value}")
        if self.since and self.until and self.since >= self.until:
            raise InvalidSearch(f"since ({self.since.isoformat()}) is not before until "
                                f"({self.until.isoformat()})")
        for name in ("number", "did", "extension", "campaign"):
            value = getattr(self, name)
            if value is not None and not 0 < len(value.strip()) <= _MAX_TEXT:
                raise InvalidSearch(f"{name}: give 1 to {_MAX_TEXT} characters")
        if self.reference is not None:
            try:
                parse_reference(self.reference)
            except InvalidReference as exc:
                raise InvalidSearch(str(exc)) from exc
        for name, allowed in (("disposition", DISPOSITIONS), ("consent", CONSENT_FILTERS),
                              ("direction", DIRECTIONS)):
            value = getattr(self, name)
            if value is not None and value not in allowed:
                raise InvalidSearch(
                    f"{name}: {value!r} is not one of {', '.join(allowed)}"
                )

    def canonical(self) -> bytes:
        return canonical_filters(asdict(self))


def canonical_filters(data: dict[str, object]) -> bytes:
    """A search's filters as its cursors' signature covers them (order-free, stable):
    times in UTC, a scope sorted. Other searches put their name in ``data``."""
    for name in ("since", "until"):
        value = data.get(name)
        if isinstance(value, datetime):
            data[name] = value.astimezone(UTC).isoformat()
    scope = data.get("extensions")
    if isinstance(scope, frozenset | set):
        data["extensions"] = sorted(scope)
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Keyset:
    """A position in the newest-first order: the last call of a page."""

    started_at: datetime
    id: str


@dataclass(frozen=True)
class CallPage:
    calls: list[CallView]
    # None on the last page.
    next_cursor: str | None


class CursorSigner:
    """Makes and checks cursors with a secret; ``secret`` is read only when first needed."""

    def __init__(self, secret: Callable[[], bytes]) -> None:
        self._source = secret

    @classmethod
    def of_subjects(cls, subjects: Callable[[], SubjectIndex]) -> CursorSigner:
        """A key derived from the subject key (a label no E.164 number can be), for
        processes without a secret of their own (the CLI)."""
        return cls(lambda: subjects().key(_CURSOR_LABEL).encode())

    @cached_property
    def _secret(self) -> bytes:
        return self._source()

    def _mac(self, payload: bytes, filters: CursorScope) -> bytes:
        digest = hmac.new(self._secret, payload + b"\0" + filters.canonical(), hashlib.sha256)
        return digest.digest()[:_MAC_BYTES]

    def encode(self, position: Keyset, filters: CursorScope) -> str:
        micros = (position.started_at - _EPOCH) // timedelta(microseconds=1)
        payload = struct.pack(">Bq", _CURSOR_VERSION, micros) + position.id.encode()
        token = payload + self._mac(payload, filters)
        return base64.urlsafe_b64encode(token).decode().rstrip("=")

    def decode(self, cursor: str, filters: CursorScope) -> Keyset:
        try:
            token = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError) as exc:
            raise InvalidCursor("cursor: not a cursor this search gave (not base64url)") from exc
        payload, mac = token[:-_MAC_BYTES], token[-_MAC_BYTES:]
        header = struct.calcsize(">Bq")
        if len(payload) <= header or not hmac.compare_digest(mac, self._mac(payload, filters)):
            raise InvalidCursor(
                "cursor: not valid for this search (damaged, edited, or made for other "
                "filters); start again from the first page"
            )
        version, micros = struct.unpack(">Bq", payload[:header])
        if version != _CURSOR_VERSION:
            raise InvalidCursor(f"cursor: version {version} is not understood")
        started = _EPOCH + timedelta(microseconds=micros)
        return Keyset(started, payload[header:].decode())


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidSearch(f"limit: give 1 to {MAX_LIMIT}, got {limit}")
    return limit


def _number_conditions(number: str, subjects: SubjectIndex | None) -> list[ColumnElement[bool]]:
    """The caller (by subject key) or the number called (the DID in any spelling).

    What is no public number (an extension, a short code, 'anonymous') is matched as
    written: a part of a number would find strangers' calls.
    """
    text = number.strip()
    if subjects is None:
        raise InvalidSearch("number: searching by number needs the subject index")
    e164 = try_normalise(text, subjects.default_region)
    if e164 is None:
        return [Call.caller == text, Call.did == text]
    return [Call.caller_key == subjects.key(e164),
            *(Call.did == s for s in subjects.spellings(e164))]


def _did_conditions(did: str, subjects: SubjectIndex | None) -> list[ColumnElement[bool]]:
    text = did.strip()
    e164 = None if subjects is None else try_normalise(text, subjects.default_region)
    if subjects is None or e164 is None:
        return [Call.did == text]
    return [Call.did == s for s in dict.fromkeys((text, *subjects.spellings(e164)))]


def _any(conditions: Sequence[ColumnElement[bool]]) -> ColumnElement[bool]:
    return or_(*conditions) if conditions else false()


def _disposition(value: str) -> ColumnElement[bool]:
    return Call.disposition.is_(None) if value == "live" else Call.disposition == value


def _consent(value: str) -> ColumnElement[bool]:
    if value == "none":
        return ~exists().where(Consent.call_id == Call.id)
    return exists().where(Consent.call_id == Call.id, Consent.decision == value)


def _plan(
    filters: CallFilter,
    subjects: SubjectIndex | None,
    consent_calls: Sequence[str] | None = None,
) -> tuple[list[ColumnElement[bool]] | None, list[ColumnElement[bool]]]:
    """(the driving filter's equality ranges, or None to walk started_at; the rest).

    The driver is the filter likely to match fewest calls: a reference (one call), a
    number, one extension, the scope, a DID, a campaign, a disposition, a direction, else the few
    calls of a rare consent answer when the search found them first. An empty list of
    ranges matches nothing.
    """
    f = filters
    scope = None if f.extensions is None else sorted(f.extensions)
    others: list[ColumnElement[bool]] = []
    if f.since is not None:
        others.append(Call.started_at >= f.since)
    if f.until is not None:
        others.append(Call.started_at < f.until)
    if f.consent is not None and consent_calls is None:
        others.append(_consent(f.consent))
    candidates: list[tuple[list[ColumnElement[bool]], ColumnElement[bool]] | None] = []
    if f.reference is not None:  # unique: at most one call, found by ux_calls_reference
        only = Call.reference == parse_reference(f.reference)
        candidates.append(([only], only))
    number = None if f.number is None else _number_conditions(f.number, subjects)
    candidates.append(None if number is None else (number, _any(number)))
    # A disposition given with extensions is part of their ranges (migration 0017's
    # index): each extension's calls of that disposition, in page order. Live calls
    # (IS NULL) keep their own partial index instead.
    fold = [] if f.disposition in (None, "live") else [_disposition(f.disposition)]
    if f.extension is not None:
        ext = f.extension.strip()
        ranges = [and_(Call.extension == ext, *fold)] if scope is None or ext in scope else []
        candidates.append((ranges, _any(ranges)))
    if scope is not None:
        ranges = [and_(Call.extension == e, *fold) for e in scope]
        candidates.append((ranges, Call.extension.in_(scope) if scope else _any([])))
    did = None if f.did is None else _did_conditions(f.did, subjects)
    candidates.append(None if did is None else (did, _any(did)))
    if f.campaign is not None:  # ix_calls_campaign_started_at
        only = Call.campaign == f.campaign.strip()
        candidates.append(([only], only))
    if f.disposition is not None:
        only = _disposition(f.disposition)
        candidates.append(([only], only))
    if f.direction is not None:
        only = Call.direction == f.direction
        candidates.append(([only], only))
    chosen = [c for c in candidates if c is not None]
    if not chosen:
        return None, others
    driver, *rest = chosen
    return driver[0], others + [condition for _, condition in rest]


def page_query(
    filters: CallFilter,
    *,
    subjects: SubjectIndex | None = None,
    after: Keyset | None = None,
    limit: int = DEFAULT_LIMIT,
    consent_calls: Sequence[str] | None = None,
) -> Select[str, datetime]:
    """``(id, started_at)`` of up to ``limit`` calls after ``after``, newest first.

    ``consent_calls``: every call with the consent answer filtered for, when they are
    few (:func:`rare_consent_calls`). Public for the plan tests and the benchmark: what
    the database is asked, exactly.
    """
    filters.check()
    if limit < 1:
        raise InvalidSearch(f"limit: give at least 1, got {limit}")
    ranges, others = _plan(filters, subjects, consent_calls)
    if after is not None:
        others.append(tuple_(Call.started_at, Call.id) < tuple_(after.started_at, after.id))
    newest = (Call.started_at.desc(), Call.id.desc())

    def branch(condition: ColumnElement[bool] | None) -> Select[str, datetime]:
        query = select(Call.id, Call.started_at).where(*others)
        if condition is not None:
            query = query.where(condition)
        return query.order_by(*newest).limit(limit)

    if consent_calls is not None:
        # Given the order, SQLite would walk started_at checking each id against the
        # list; materialised first, the few calls are found by id and only they sorted.
        few = select(Call.id, Call.started_at).where(*others, Call.id.in_(list(consent_calls)))
        found = few.cte("rare_consent").prefix_with("MATERIALIZED")
        return (
            select(found.c.id, found.c.started_at)
            .order_by(found.c.started_at.desc(), found.c.id.desc())
            .limit(limit)
        )
    if ranges is None or len(ranges) == 1:
        return branch(None if ranges is None else ranges[0])
    if not ranges:
        return branch(_any([]))
    parts = [branch(r).subquery() for r in ranges]
    merged = union(*(select(p.c.id, p.c.started_at) for p in parts)).subquery()
    return (
        select(merged.c.id, merged.c.started_at)
        .order_by(merged.c.started_at.desc(), merged.c.id.desc())
        .limit(limit)
    )


async def rare_consent_calls(
    session: AsyncSession, filters: CallFilter, subjects: SubjectIndex | None
) -> list[str] | None:
    """The calls with the consent answer asked for, if nothing else drives and they are
    at most :data:`RARE_CONSENT`; else None.

    A consent answer lives on the consents table, so no index of calls drives it: the
    search walks the calls newest first and checks each one's answer, which finds a page
    of a common answer at once but reads the whole table for a rare one (withdrawals).
    One bounded count along ``ix_consents_decision_call_id`` tells which case this is;
    the few calls of a rare answer are then read from it, looked up by id and sorted.
    """
    if filters.consent in (None, "none") or _plan(filters, subjects)[0] is not None:
        return None
    few = select(Consent.call_id).where(Consent.decision == filters.consent).limit(
        RARE_CONSENT + 1
    )
    # Counted first, in the database: a common answer's 5,001 ids handed to Python to
    # learn only that they are many cost its page two thirds of its CPU.
    counted = await session.scalar(select(func.count()).select_from(few.subquery()))
    if counted is None or counted > RARE_CONSENT:
        return None
    return list(await session.scalars(few))


async def search_calls(
    session: AsyncSession,
    filters: CallFilter,
    *,
    signer: CursorSigner,
    subjects: SubjectIndex | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> CallPage:
    """One page of calls with their consent and recordings, and the next page's cursor.

    ``subjects`` is needed for a number filter (the caller's subject key, the DID's
    spellings); raises :class:`InvalidSearch` / :class:`InvalidCursor` for bad input.
    """
    filters.check()
    after = None if cursor is None else signer.decode(cursor, filters)
    query = page_query(filters, subjects=subjects, after=after, limit=check_limit(limit) + 1,
                       consent_calls=await rare_consent_calls(session, filters, subjects))
    # One statement for the page: its calls (one more than asked: is there a next
    # page?) with their consent, recordings and transfers joined, so a page costs one
    # wait for the database whatever it shows, not five. A call with several recordings
    # and transfers comes once per pair (transfers are few).
    found = query.subquery("page")
    rows = await session.execute(
        select(Call, Consent, Recording, CallTransfer)
        .join(found, found.c.id == Call.id)
        .outerjoin(Consent, Consent.call_id == Call.id)
        .outerjoin(Recording, Recording.call_id == Call.id)
        .outerjoin(CallTransfer, CallTransfer.call_id == Call.id)
        .order_by(found.c.started_at.desc(), found.c.id.desc(), Recording.started_at,
                  Recording.id, CallTransfer.requested_at, CallTransfer.id)
    )
    calls: dict[str, _Listed] = {}
    for call, consent, recording, transfer in rows:
        if call.id not in calls:
            calls[call.id] = _Listed(call, consent)
        listed = calls[call.id]
        if recording is not None:
            listed.recordings.setdefault(recording.id, recording)
        if transfer is not None:
            listed.transfers.setdefault(transfer.id, transfer)
    page = list(calls.values())[:limit]
    if not page:
        return CallPage([], None)
    last = page[-1].call
    more = len(calls) > limit
    next_cursor = signer.encode(Keyset(last.started_at, last.id), filters) if more else None
    return CallPage([listed.view() for listed in page], next_cursor)


@dataclass
class _Listed:
    """A call of the page as its rows come: recordings and transfers by id, in order."""

    call: Call
    consent: Consent | None
    recordings: dict[str, Recording] = field(default_factory=dict)
    transfers: dict[str, CallTransfer] = field(default_factory=dict)

    def view(self) -> CallView:
        return call_view(self.call, self.consent, list(self.recordings.values()),
                         [transfer_view(row) for row in self.transfers.values()])
