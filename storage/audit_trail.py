"""The audit trail: an append-only, hash-chained record of who did what to which data.

A controller must be able to prove what it did with personal data (KVKK art. 12, GDPR
art. 5(2)), and a log an administrator can quietly edit proves nothing. So every entry
carries the sha256 of its own content and of the entry before it (``prev_hash``; the first
entry links to 64 zeros). Changing an entry breaks its own hash; removing one leaves a
gap in ``seq`` and a dangling link; moving one changes the ``seq`` its hash was made over.
:func:`verify` walks the chain and names the first entry that does not hold.

The encoding hashed is fixed and documented (:func:`entry_hash`): a JSON array
``["pbx-bridge-audit/1", seq, at, actor, action, target, outcome, details, prev_hash]``,
compact, UTF-8, ``at`` as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` and ``details`` exactly as stored
(canonical JSON: sorted keys, no spaces). Anyone can re-check an export with ten lines of
any language.

Writers append inside their own transaction (:func:`record_event` flushes, the caller
commits), so an action and its entry commit together or not at all. Appenders are
serialised by the one-row chain head (``audit_head``): the first statement of an append
moves the head forward, which takes SQLite's database write lock or PostgreSQL's row lock
on the head until the transaction ends. A second appender, in another process or the same
one, waits there and then links to the entry the first one wrote: the chain never forks.
A process that appended before hashes its next entries against the head it left and moves
the head to their end only if it is still there (compare-and-set, the same lock); if
another writer moved it meanwhile, it moves the head where it now is and links to that.
Call ``record_event`` as the last write before the commit: the head stays locked until
then, and taking other locks after it invites deadlocks on PostgreSQL.

``details`` must never hold a phone number in the clear: callers pass masked numbers
(``0532***4567``) or subject keys. Entries cannot be changed later, not even by an erasure
request, so a number written here could never be erased.

The database refuses UPDATE and DELETE of entries (triggers on both backends, revoked
rights on PostgreSQL: migration 0003). The chain is what catches changes made by someone
who lifted those protections (a database superuser, or whoever can write the SQLite file):
unless they rewrite every later entry too, which :func:`verify` with an anchor (a
``seq``/``hash`` pair written down elsewhere earlier) still catches.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import PurePath
from typing import Any, cast
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, Row, Table, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.inserts import insert_if_absent
from storage.models import AuditEntry, AuditHead, utcnow

log = logging.getLogger(__name__)

GENESIS = "0" * 64
FORMAT = "pbx-bridge-audit/1"
HEAD_ID = 1
DEFAULT_LIMIT = 50
# Entries checked per database round trip; bounds verify's memory on any chain length.
VERIFY_BATCH = 2000

_LOG = cast(Table, AuditEntry.__table__)
_HEAD = cast(Table, AuditHead.__table__)
_LIMITS = {"actor": 128, "action": 64, "target": 200, "outcome": 16}


@dataclass(frozen=True)
class AuditEvent:
    """One event to append (see :func:`record_events` for several in one go)."""

    actor: str
    action: str
    target: str
    outcome: str = "ok"
    details: Mapping[str, object] | None = None
    at: datetime | None = None


# -- the encoding ------------------------------------------------------------------------


def _json_value(value: object) -> object:
    if isinstance(value, datetime):
        return format_at(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, PurePath | uuid.UUID):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(f"audit details cannot hold a {type(value).__name__}")


def canonical_details(details: Mapping[str, object] | None) -> str:
    """The stored (and hashed) form: sorted keys, no whitespace, UTF-8 kept readable."""
    return json.dumps(
        dict(details or {}),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=_json_value,
    )


def format_at(at: datetime) -> str:
    """UTC to the microsecond with a Z: the one spelling of ``at`` that is hashed."""
    if at.tzinfo is None:
        raise ValueError("naive datetime given; audit times are UTC-aware")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(
    *,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    outcome: str,
    details: str,
    prev_hash: str,
) -> str:
    """sha256 (hex) of the canonical encoding of one entry; ``details`` as stored."""
    payload = json.dumps(
        [FORMAT, seq, format_at(at), actor, action, target, outcome, details, prev_hash],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _hash_of(row: AuditEntry | Row[Any], *, seq: int | None = None) -> str:
    return entry_hash(
        seq=row.seq if seq is None else seq,
        at=row.at,
        actor=row.actor,
        action=row.action,
        target=row.target,
        outcome=row.outcome,
        details=row.details,
        prev_hash=row.prev_hash,
    )


# -- appending ---------------------------------------------------------------------------


def _checked(event: AuditEvent) -> tuple[AuditEvent, datetime, str]:
    for name, limit in _LIMITS.items():
        value = getattr(event, name)
        if not value or not value.strip():
            raise ValueError(f"an audit entry needs a non-empty {name}")
        if len(value) > limit:
            raise ValueError(f"audit {name} {value[:40]!r}... is longer than {limit} characters")
    at = event.at or utcnow()
    format_at(at)  # refuses a naive time before anything is written
    return event, at.astimezone(UTC), canonical_details(event.details)


async def _create_head(session: AsyncSession) -> None:
    """A database made without migration 0003 (``create_all``) has no head row yet.

    It starts at the last entry, if any, so the chain continues; concurrent creators
    race harmlessly on the primary key.
    """
    last = (
        await session.execute(
            select(_LOG.c.seq, _LOG.c.hash).order_by(_LOG.c.seq.desc()).limit(1)
        )
    ).first()
    if last is not None:
        log.error(
            "audit chain head was missing; recreated at entry %d: run `pbx-bridge audit verify`",
            last.seq,
        )
    values = {"id": HEAD_ID, "seq": 0 if last is None else last.seq,
              "hash": GENESIS if last is None else last.hash}
    await session.execute(insert_if_absent(session, _HEAD).values(**values))


async def _advance_head(session: AsyncSession, count: int) -> tuple[int, str]:
    """Move the head ``count`` entries forward; returns the new last seq and the old hash.

    An UPDATE first: it takes the lock that serialises appenders before anything is read.
    """
    statement = (
        update(_HEAD)
        .where(_HEAD.c.id == HEAD_ID)
        .values(seq=_HEAD.c.seq + count)
        .returning(_HEAD.c.seq, _HEAD.c.hash)
    )
    moved = (await session.execute(statement)).first()
    if moved is None:
        await _create_head(session)
        moved = (await session.execute(statement)).one()
    return int(moved.seq), str(moved.hash)


# Built once: an append is on the way every call takes (bench/README.md).
_MOVE_HEAD_FROM = (
    update(_HEAD)
    .where(
        _HEAD.c.id == HEAD_ID,
        _HEAD.c.seq == bindparam("known_seq"),
        _HEAD.c.hash == bindparam("known_hash"),
    )
    .values(seq=bindparam("new_seq", type_=_HEAD.c.seq.type),
            hash=bindparam("new_hash", type_=_HEAD.c.hash.type))
    .returning(_HEAD.c.id)
)
_APPEND = insert(_LOG)

# The head as this process last moved it, per engine: the service is nearly always the
# only appender, so its next entries can be hashed before the head is locked and the head
# moved straight to their end (two statements an append instead of three).
_last_heads: WeakKeyDictionary[Engine, tuple[int, str]] = WeakKeyDictionary()


def _engine_of(session: AsyncSession) -> Engine:
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


def _chain(
    prepared: Sequence[tuple[AuditEvent, datetime, str]], after_seq: int, prev_hash: str
) -> list[dict[str, Any]]:
    """The entries' rows, hashed and linked, following entry ``after_seq``/``prev_hash``."""
    rows: list[dict[str, Any]] = []
    seq = after_seq
    for event, at, details in prepared:
        seq += 1
        digest = entry_hash(
            seq=seq,
            at=at,
            actor=event.actor,
            action=event.action,
            target=event.target,
            outcome=event.outcome,
            details=details,
            prev_hash=prev_hash,
        )
        rows.append(
            {
                "seq": seq,
                "at": at,
                "actor": event.actor,
                "action": event.action,
                "target": event.target,
                "outcome": event.outcome,
                "details": details,
                "prev_hash": prev_hash,
                "hash": digest,
            }
        )
        prev_hash = digest
    return rows


async def _move_head_from(
    session: AsyncSession, known: tuple[int, str], rows: Sequence[dict[str, Any]]
) -> bool:
    """Compare-and-set: the head moves to the last of ``rows`` only if it still is
    ``known`` (the entry they were linked to), in the statement that locks it.

    A writer that got there first (another process, or a transaction of ours not yet
    committed) holds the lock; this statement waits for it, and then finds the head moved
    on (no row: the caller links afresh) or, if that writer rolled back, still ``known``.
    """
    won = await session.execute(
        _MOVE_HEAD_FROM,
        {"known_seq": known[0], "known_hash": known[1], "new_seq": rows[-1]["seq"],
         "new_hash": rows[-1]["hash"]},
    )
    return won.first() is not None


async def record_events(session: AsyncSession, events: Sequence[AuditEvent]) -> list[AuditEntry]:
    """Append several entries, in order, with one trip to the chain head (batch deletions)."""
    if not events:
        return []
    prepared = [_checked(event) for event in events]
    # The caller's own writes go first, so the head is the last lock the transaction takes.
    await session.flush()
    engine = _engine_of(session)
    known = _last_heads.get(engine)
    rows = None if known is None else _chain(prepared, *known)
    if known is not None and rows is not None and not await _move_head_from(
        session, known, rows
    ):
        rows = None
    if rows is None:
        # Someone else appended since (or this process never did): lock the head where
        # it is, link to it, and write the new end after the entries.
        last_seq, prev_hash = await _advance_head(session, len(prepared))
        rows = _chain(prepared, last_seq - len(prepared), prev_hash)
        await session.execute(
            update(_HEAD).where(_HEAD.c.id == HEAD_ID).values(hash=rows[-1]["hash"])
        )
    # Remembered before the commit: if this transaction rolls back, the next append's
    # compare-and-set fails and it links afresh, so a wrong guess costs one statement.
    _last_heads[engine] = (rows[-1]["seq"], rows[-1]["hash"])
    # Core, not the unit of work: a purge appends hundreds at once, and entries are never
    # changed afterwards, so there is nothing for the session to track.
    await session.execute(_APPEND, rows if len(rows) > 1 else rows[0])
    return [AuditEntry(**row) for row in rows]


async def record_event(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    target: str,
    outcome: str = "ok",
    details: Mapping[str, object] | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    """Append one entry inside the caller's transaction (it commits with the caller's work).

    ``actor``: who ("cli:<user>", "service", "caller", "retention"); ``action``: what, as
    "<thing>.<verb>" ("recording.stored"); ``target``: to what ("recording:ID", "call:ID",
    "route:DID", "dsar:ID", "subject:KEY"); ``details``: further facts as a JSON object,
    never a phone number in the clear. ``at`` defaults to now; the chain's order is
    ``seq``, not ``at``. Raises ValueError for an empty or over-long field.
    """
    entries = await record_events(
        session,
        [AuditEvent(actor, action, target, outcome, details, at)],
    )
    return entries[0]


# -- reading -----------------------------------------------------------------------------


def _pattern(column: Any, value: str) -> Any:
    """Exact match, or a prefix match for a value ending in ``*`` (``recording.*``)."""
    if not value.endswith("*"):
        return column == value
    prefix = value[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.like(prefix + "%", escape="\\")


async def list_entries(
    session: AsyncSession,
    *,
    since: datetime | None = None,
    target: str | None = None,
    action: str | None = None,
    limit: int | None = DEFAULT_LIMIT,
) -> list[AuditEntry]:
    """Entries newest first; ``target`` and ``action`` match exactly or, ending in ``*``,
    as a prefix. ``limit=None`` returns every match."""
    if limit is not None and limit < 1:
        raise ValueError("limit must be at least 1")
    query = select(AuditEntry)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if target is not None:
        query = query.where(_pattern(AuditEntry.target, target))
    if action is not None:
        query = query.where(_pattern(AuditEntry.action, action))
    query = query.order_by(AuditEntry.seq.desc())
    if limit is not None:
        query = query.limit(limit)
    return list((await session.scalars(query)).all())


@dataclass(frozen=True)
class EntryFilter:
    """What to look for in the trail; every field None means every entry.

    ``actor``, ``action`` and ``target`` match exactly or, ending in ``*``, as a prefix;
    ``targets`` is a set of exact targets any of which matches (a call and its
    recordings), applied together with ``target``.
    """

    since: datetime | None = None  # at >= since
    until: datetime | None = None  # at < until
    actor: str | None = None
    action: str | None = None
    target: str | None = None
    targets: tuple[str, ...] | None = None


async def search_entries(
    session: AsyncSession,
    filters: EntryFilter,
    *,
    before_seq: int | None = None,
    limit: int = DEFAULT_LIMIT,
) -> list[AuditEntry]:
    """Entries newest first (by ``seq``, the chain's order), only those before
    ``before_seq``: a keyset page, as cheap deep in the trail as at its head."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    query = select(AuditEntry)
    if filters.since is not None:
        query = query.where(AuditEntry.at >= filters.since)
    if filters.until is not None:
        query = query.where(AuditEntry.at < filters.until)
    for column, value in ((AuditEntry.actor, filters.actor), (AuditEntry.action, filters.action),
                          (AuditEntry.target, filters.target)):
        if value is not None:
            query = query.where(_pattern(column, value))
    if filters.targets is not None:
        query = query.where(AuditEntry.target.in_(filters.targets))
    if before_seq is not None:
        query = query.where(AuditEntry.seq < before_seq)
    query = query.order_by(AuditEntry.seq.desc()).limit(limit)
    return list((await session.scalars(query)).all())


# -- verifying ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainProblem:
    """The first entry that does not hold, and what is wrong with it."""

    seq: int
    kind: str  # "changed", "removed", "reordered", "inserted", "anchor", "head"
    message: str


@dataclass(frozen=True)
class VerifyReport:
    checked: int  # entries whose hash and link were checked
    head_seq: int  # the chain head: seq and hash of the last entry appended
    head_hash: str
    problem: ChainProblem | None

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def message(self) -> str:
        if self.problem is not None:
            return self.problem.message
        return (
            f"audit trail intact: {self.checked} entries, "
            f"head seq {self.head_seq} hash {self.head_hash}"
        )


@dataclass
class _Walk:
    prev_seq: int = 0
    prev_hash: str = GENESIS
    checked: int = 0


@dataclass(frozen=True)
class _Suspect:
    """An entry that failed a check in the thread; the loop looks up what it was."""

    row: Row[Any]
    kind: str  # "gap", "hash" or "link"


def _check_batch(rows: Sequence[Row[Any]], walk: _Walk) -> _Suspect | None:
    """Hash and link every entry of one batch (CPU work: run in a thread)."""
    for row in rows:
        if row.seq != walk.prev_seq + 1:
            return _Suspect(row, "gap")
        if _hash_of(row) != row.hash:
            return _Suspect(row, "hash")
        if row.prev_hash != walk.prev_hash:
            return _Suspect(row, "link")
        walk.prev_seq, walk.prev_hash = row.seq, row.hash
        walk.checked += 1
    return None


async def _seq_with_hash(session: AsyncSession, digest: str) -> int | None:
    """Which entry has this hash (a scan, only ever run once a problem was found)."""
    if digest == GENESIS:
        return 0
    found = await session.scalar(select(_LOG.c.seq).where(_LOG.c.hash == digest).limit(1))
    return None if found is None else int(found)


def _range(first: int, last: int) -> str:
    return f"entry {first}" if first == last else f"entries {first} to {last}"


async def _explain(session: AsyncSession, suspect: _Suspect, walk: _Walk) -> ChainProblem:
    row = suspect.row
    if suspect.kind == "gap":
        first = walk.prev_seq + 1
        return ChainProblem(
            first,
            "removed",
            f"audit trail broken: {_range(first, row.seq - 1)} removed "
            f"(entry {row.seq} follows entry {walk.prev_seq})",
        )
    # Where did this entry's predecessor go? Its prev_hash names the entry it followed
    # when it was written; a hash made over another seq means it was moved here.
    follows = await _seq_with_hash(session, row.prev_hash)
    if suspect.kind == "hash":
        if follows is not None and follows != walk.prev_seq and (
            _hash_of(row, seq=follows + 1) == row.hash
        ):
            return ChainProblem(
                row.seq,
                "reordered",
                f"audit trail broken: entry {row.seq} was reordered: it was written as "
                f"entry {follows + 1}, after entry {follows}",
            )
        return ChainProblem(
            row.seq,
            "changed",
            f"audit trail broken: entry {row.seq} was changed: its content does not match "
            "its hash",
        )
    if follows is not None and follows != walk.prev_seq:
        return ChainProblem(
            row.seq,
            "reordered",
            f"audit trail broken: entry {row.seq} was reordered: it was written after "
            f"entry {follows}, not after entry {walk.prev_seq}",
        )
    return ChainProblem(
        walk.prev_seq,
        "changed",
        f"audit trail broken: entry {walk.prev_seq} was changed (and its hash recomputed), "
        f"or the entry written before entry {row.seq} was removed: entry {row.seq} does "
        f"not link to it",
    )


async def _head(session: AsyncSession) -> tuple[int, str] | None:
    found = (
        await session.execute(select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == HEAD_ID))
    ).first()
    return None if found is None else (int(found.seq), str(found.hash))


async def _max_seq(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.coalesce(func.max(_LOG.c.seq), 0))) or 0)


async def verify(session: AsyncSession, *, anchor: tuple[int, str] | None = None) -> VerifyReport:
    """Walk the chain up to its head and name the first entry that does not hold.

    Entries appended while it runs are left for the next run. ``anchor``: a (seq, hash)
    noted down earlier, outside this database; the chain must still pass through it,
    which catches a rewrite that recomputed every hash after the change.
    """
    head = await _head(session)
    last_seq = await _max_seq(session) if head is None else head[0]
    walk = _Walk()
    problem: ChainProblem | None = None
    anchor_hash: str | None = None
    while problem is None and walk.prev_seq < last_seq:
        rows = (
            await session.execute(
                select(_LOG)
                .where(_LOG.c.seq > walk.prev_seq, _LOG.c.seq <= last_seq)
                .order_by(_LOG.c.seq)
                .limit(VERIFY_BATCH)
            )
        ).all()
        if not rows:
            break
        suspect = await asyncio.to_thread(_check_batch, rows, walk)
        if anchor is not None and anchor_hash is None:
            anchor_hash = next((r.hash for r in rows if r.seq == anchor[0]), None)
            if anchor_hash is not None and (suspect is None or suspect.row.seq > anchor[0]):
                problem = _anchor_problem(anchor, anchor_hash)
        if problem is None and suspect is not None:
            problem = await _explain(session, suspect, walk)
    if problem is None:
        problem = await _end_problem(session, head, walk, anchor, anchor_hash)
    head_seq, head_hash = head if head is not None else (walk.prev_seq, walk.prev_hash)
    return VerifyReport(walk.checked, head_seq, head_hash, problem)


def _anchor_problem(anchor: tuple[int, str], found: str) -> ChainProblem | None:
    seq, expected = anchor
    if found == expected.lower():
        return None
    return ChainProblem(
        seq,
        "anchor",
        f"audit trail rewritten: entry {seq} has hash {found}, not the anchored "
        f"{expected}: it or an entry before it was changed and every later hash recomputed",
    )


async def _end_problem(
    session: AsyncSession,
    head: tuple[int, str] | None,
    walk: _Walk,
    anchor: tuple[int, str] | None,
    anchor_hash: str | None,
) -> ChainProblem | None:
    """After a clean walk: does the chain end where the head says, and nothing beyond?"""
    if head is None:
        if walk.checked:
            return ChainProblem(
                walk.prev_seq,
                "head",
                f"audit trail broken: the chain head row is missing (entries up to "
                f"{walk.prev_seq} check out)",
            )
        return None
    head_seq, head_hash = head
    if walk.prev_seq < head_seq:
        first = walk.prev_seq + 1
        return ChainProblem(
            first,
            "removed",
            f"audit trail broken: {_range(first, head_seq)} removed (the chain head "
            f"records entry {head_seq}, the last entry is {walk.prev_seq})",
        )
    if walk.prev_hash != head_hash:
        return ChainProblem(
            head_seq,
            "changed",
            f"audit trail broken: entry {head_seq} is not the entry the chain head "
            "records (changed and its hash recomputed, or the head altered)",
        )
    if anchor is not None and anchor_hash is None:
        return ChainProblem(
            anchor[0],
            "anchor",
            f"audit trail broken: anchored entry {anchor[0]} is not in the chain "
            f"(it ends at entry {head_seq})",
        )
    # Entries beyond the head: appends commit entry and head together, and the head
    # only moves forward, so reading the highest seq before the head again is race-free.
    highest = await _max_seq(session)
    now_head = await _head(session)
    if now_head is not None and highest > now_head[0]:
        return ChainProblem(
            now_head[0] + 1,
            "inserted",
            f"audit trail broken: entry {now_head[0] + 1} lies beyond the chain head "
            f"(entry {now_head[0]}): inserted by hand",
        )
    return None


__all__ = [
    "DEFAULT_LIMIT",
    "FORMAT",
    "GENESIS",
    "AuditEvent",
    "ChainProblem",
    "EntryFilter",
    "VerifyReport",
    "canonical_details",
    "entry_hash",
    "format_at",
    "list_entries",
    "record_event",
    "record_events",
    "search_entries",
    "verify",
]
