"""Deleting a recording so that nothing is left anywhere, and proving it afterwards.

One mechanism serves retention, manual deletion and erasure requests. The intent is
committed first (status ``deleting``), so a crash or an unreachable backend only delays
the work: ``finish`` (and every purge run) picks it up again. Each copy is marked
``deleting`` before its backend is asked and ``deleted`` only after the backend said so,
so no row ever claims a copy is gone while it may still exist. When every place is
clear, the tombstone and the ``deleted`` status are written in one transaction; the
recording row and its metadata stay, so an access request can be answered truthfully.

The work is done in batches (``finish_many``) with a few commits per batch, not per
copy, so a purge of 100,000 recordings does not cost 500,000 transactions.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.audit_trail import AuditEvent, record_events
from storage.backends.base import Backend
from storage.errors import RecordingNotFound, StorageError
from storage.legs import leg_names
from storage.models import (
    CopyStatus,
    DataKey,
    Recording,
    RecordingCopy,
    RecordingStatus,
    Tombstone,
    new_id,
    utcnow,
)
from storage.source import RecordingSource
from storage.spool import Spool

log = logging.getLogger(__name__)

# Statuses from which deletion may start; before them the pipeline owns the recording.
DELETABLE = (RecordingStatus.STORED, RecordingStatus.PREPARED, RecordingStatus.FAILED)
BUSY = (RecordingStatus.RECORDING, RecordingStatus.FINISHED, RecordingStatus.SPOOLED)
# Places that are not backends, as they appear in ``deleted_where`` and pending lists.
SPOOL_PLACE = "spool"
ASTERISK_PLACE = "asterisk"
DATA_KEY_PLACE = "data_key"
DEFAULT_CONCURRENCY = 8
MANUAL_REASON = "manual"
RETENTION_REASON = "retention"
# Keeps ``IN (...)`` lists well under every driver's bound-parameter limit.
_IN_CHUNK = 500

DestroyKey = Callable[[str], Awaitable[object]]


class DeletionRefused(StorageError):
    """Deletion cannot start for this recording now; the message says why."""


class RecordingOnHold(DeletionRefused):
    """A legal hold protects the recording; release it first."""


class RecordingBusy(DeletionRefused):
    """The pipeline still owns the recording (it is being recorded, fetched or spooled)."""


class DeletionNotRequested(StorageError):
    """``finish`` was asked for a recording nobody asked to delete."""


@dataclass(frozen=True)
class PendingPlace:
    """A place where a copy may still exist, and why it could not be cleared yet."""

    place: str  # a backend name, or "spool", "asterisk", "data_key"
    key: str
    why: str


@dataclass(frozen=True)
class DeletionOutcome:
    recording_id: str
    status: str  # "deleted" or "deleting"
    reason: str | None
    deleted_at: datetime | None = None
    # {"backend", "key", "deleted_at"} per place cleared; complete once deleted.
    deleted_where: tuple[dict[str, str], ...] = ()
    pending: tuple[PendingPlace, ...] = ()
    tombstone_id: str | None = None

    @property
    def done(self) -> bool:
        return self.status == RecordingStatus.DELETED


@dataclass
class _Work:
    """What one recording's deletion has achieved and what blocks it, within one pass."""

    row: Recording
    cleared: list[dict[str, str]] = field(default_factory=list)
    pending: list[PendingPlace] = field(default_factory=list)
    sealed: DeletionOutcome | None = None


def _progress(row: Recording) -> list[dict[str, str]]:
    if not row.delete_progress:
        return []
    loaded = json.loads(row.delete_progress)
    return [dict(place) for place in loaded] if isinstance(loaded, list) else []


def _dump_progress(cleared: Sequence[Mapping[str, str]]) -> str | None:
    return json.dumps(_unique_places(cleared), ensure_ascii=False) if cleared else None


def _unique_places(places: Iterable[Mapping[str, str]]) -> list[dict[str, str]]:
    """Each place once (a data key destroyed in an earlier pass is seen again in later
    ones), the first sighting kept: it has the time it was really cleared."""
    seen: set[tuple[str, str]] = set()
    unique: list[dict[str, str]] = []
    for place in places:
        ident = (place["backend"], place["key"])
        if ident not in seen:
            seen.add(ident)
            unique.append(dict(place))
    return unique


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _chunks(items: Sequence[str], size: int = _IN_CHUNK) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class RecordingDeleter:
    """Deletes recordings everywhere; safe to call again after any failure or crash."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        backends: Mapping[str, Backend],
        *,
        spool_dir: Path,
        source: RecordingSource | None = None,
        destroy_key: DestroyKey | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._sessions = sessions
        self._backends = dict(backends)
        self._spool = Spool(spool_dir)
        self._source = source
        self._destroy_key = destroy_key
        self._slots = asyncio.Semaphore(concurrency)

    # -- asking ----------------------------------------------------------------------

    async def request(
        self,
        recording_id: str,
        *,
        reason: str,
        note: str | None = None,
        actor: str | None = None,
    ) -> DeletionOutcome:
        """Commit the intent to delete, then delete everywhere it can right now."""
        if not reason:
            raise ValueError("a deletion needs a reason")
        claimed = await self.claim([recording_id], reason=reason, note=note, actor=actor)
        if not claimed:
            async with self._sessions() as session:
                row = await session.get(Recording, recording_id)
            if row is None:
                raise RecordingNotFound(f"no recording {recording_id}")
            if row.status == RecordingStatus.DELETED:
                return await self._deleted_outcome(recording_id)
            if row.status != RecordingStatus.DELETING:
                if row.hold_reason is not None:
                    raise RecordingOnHold(
                        f"recording {recording_id} is on legal hold ({row.hold_reason}); "
                        "release it first"
                    )
                raise RecordingBusy(
                    f"recording {recording_id} is {row.status}: the recording pipeline "
                    "still owns it; delete it once it is stored or failed"
                )
            # Already being deleted (by an earlier request): finish it.
        return (await self.finish_many([recording_id]))[0]

    async def claim(
        self,
        recording_ids: Sequence[str],
        *,
        reason: str,
        note: str | None = None,
        actor: str | None = None,
        expired_by: datetime | None = None,
    ) -> list[str]:
        """Compare-and-set to ``deleting`` (committed); returns the ids this call moved.

        Only recordings in a deletable status and not on hold move; with ``expired_by``
        only those whose ``retain_until`` is at or before it (retention purges), so a
        hold or a longer retention set meanwhile always wins.
        """
        requested_at = utcnow()
        moved: list[str] = []
        async with self._sessions() as session:
            for chunk in _chunks(recording_ids):
                statement = (
                    update(Recording)
                    .where(
                        Recording.id.in_(chunk),
                        Recording.status.in_([s.value for s in DELETABLE]),
                        Recording.hold_reason.is_(None),
                    )
                    .values(
                        status=RecordingStatus.DELETING.value,
                        delete_reason=reason,
                        delete_note=note,
                        delete_actor=actor,
                        delete_requested_at=requested_at,
                    )
                    .returning(Recording.id)
                )
                if expired_by is not None:
                    statement = statement.where(Recording.retain_until <= expired_by)
                moved.extend((await session.scalars(statement)).all())
            await session.commit()
        if moved:
            log.info("deletion requested for %d recording(s), reason %s", len(moved), reason)
        return moved

    # -- doing -----------------------------------------------------------------------

    async def finish(self, recording_id: str) -> DeletionOutcome:
        """Clear every place a requested deletion has not cleared yet."""
        async with self._sessions() as session:
            row = await session.get(Recording, recording_id)
        if row is None:
            raise RecordingNotFound(f"no recording {recording_id}")
        if row.status == RecordingStatus.DELETED:
            return await self._deleted_outcome(recording_id)
        if row.status != RecordingStatus.DELETING:
            raise DeletionNotRequested(
                f"recording {recording_id} is {row.status}, not being deleted"
            )
        return (await self.finish_many([recording_id]))[0]

    async def pending(self) -> list[str]:
        """Recordings whose deletion was asked for and is not complete."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(Recording.id)
                .where(Recording.status == RecordingStatus.DELETING.value)
                .order_by(Recording.id)
            )
            return list(rows.all())

    async def finish_many(self, recording_ids: Sequence[str]) -> list[DeletionOutcome]:
        """Finish the deletions of these recordings together, in the order given.

        Ids that are already deleted get their recorded outcome; ids in any other
        status than ``deleting`` are skipped (their outcome is absent).
        """
        ids = list(dict.fromkeys(recording_ids))
        async with self._sessions() as session:
            rows: dict[str, Recording] = {}
            for chunk in _chunks(ids):
                found = await session.scalars(select(Recording).where(Recording.id.in_(chunk)))
                rows.update((row.id, row) for row in found.all())
        work = {
            rid: _Work(row, cleared=_progress(row))
            for rid, row in rows.items()
            if row.status == RecordingStatus.DELETING
        }
        if work:
            await self._clear_copies(work)
            await self._clear_spool(work)
            await self._clear_asterisk(work)
            await self._destroy_keys(work)
            await self._seal(work)
        await self._save_progress([item for item in work.values() if item.pending])
        outcomes: list[DeletionOutcome] = []
        for rid in ids:
            item = work.get(rid)
            if item is not None and item.sealed is not None:
                outcomes.append(item.sealed)
            elif item is not None and item.pending:
                outcomes.append(
                    DeletionOutcome(
                        recording_id=rid,
                        status=RecordingStatus.DELETING.value,
                        reason=item.row.delete_reason,
                        deleted_where=tuple(item.cleared),
                        pending=tuple(item.pending),
                    )
                )
            elif item is not None or (
                rid in rows and rows[rid].status == RecordingStatus.DELETED
            ):
                # Sealed by someone else meanwhile, or deleted before this call.
                outcomes.append(await self._deleted_outcome(rid))
        return outcomes

    async def _clear_copies(self, work: Mapping[str, _Work]) -> None:
        ids = list(work)
        async with self._sessions() as session:
            copies: list[RecordingCopy] = []
            for chunk in _chunks(ids):
                found = await session.scalars(
                    select(RecordingCopy).where(
                        RecordingCopy.recording_id.in_(chunk),
                        RecordingCopy.status != CopyStatus.DELETED.value,
                    )
                )
                copies.extend(found.all())
            to_mark = [c.id for c in copies if c.status != CopyStatus.DELETING]
            for chunk in _chunks(to_mark):
                await session.execute(
                    update(RecordingCopy)
                    .where(RecordingCopy.id.in_(chunk))
                    .values(status=CopyStatus.DELETING.value)
                )
            await session.commit()
        if not copies:
            return
        results = await asyncio.gather(*(self._delete_copy(copy) for copy in copies))
        gone = [copy for copy, blocker in zip(copies, results, strict=True) if blocker is None]
        deleted_at = utcnow()
        async with self._sessions() as session:
            for chunk in _chunks([c.id for c in gone]):
                await session.execute(
                    update(RecordingCopy)
                    .where(
                        RecordingCopy.id.in_(chunk),
                        RecordingCopy.status == CopyStatus.DELETING.value,
                    )
                    .values(status=CopyStatus.DELETED.value, deleted_at=deleted_at)
                )
            await session.commit()
        for copy, blocker in zip(copies, results, strict=True):
            if blocker is not None:
                work[copy.recording_id].pending.append(blocker)

    async def _delete_copy(self, copy: RecordingCopy) -> PendingPlace | None:
        backend = self._backends.get(copy.backend)
        if backend is None:
            return PendingPlace(
                copy.backend, copy.key, f"backend {copy.backend!r} is not configured"
            )
        async with self._slots:
            try:
                if copy.sidecar_key:
                    await backend.delete(copy.sidecar_key)
                await backend.delete(copy.key)
            except (StorageError, OSError) as exc:
                log.warning(
                    "recording %s: cannot delete copy on %s yet: %s",
                    copy.recording_id,
                    copy.backend,
                    exc,
                )
                return PendingPlace(copy.backend, copy.key, str(exc) or type(exc).__name__)
        return None

    async def _clear_spool(self, work: Mapping[str, _Work]) -> None:
        """The spool file, a half-fetched ``.part`` and the local cache copy, if any."""
        paths: dict[str, set[Path]] = {rid: set() for rid in work}
        for entry in await self._spool.entries():
            if entry.recording_id in paths:
                paths[entry.recording_id].add(entry.path)
        for rid, item in work.items():
            if item.row.spool_path:
                spool_path = Path(item.row.spool_path)
                if await self._spool.exists(spool_path):
                    paths[rid].add(spool_path)
        for rid, found in paths.items():
            for path in sorted(found):
                try:
                    await self._spool.remove(path)
                except OSError as exc:
                    work[rid].pending.append(PendingPlace(SPOOL_PLACE, str(path), str(exc)))
                    continue
                work[rid].cleared.append(
                    {"backend": SPOOL_PLACE, "key": str(path), "deleted_at": _iso(utcnow())}
                )

    async def _clear_asterisk(self, work: Mapping[str, _Work]) -> None:
        if self._source is None:
            return
        try:
            present = set(await self._source.list_stored())
        except StorageError as exc:
            for item in work.values():
                item.pending.append(
                    PendingPlace(ASTERISK_PLACE, item.row.asterisk_name, f"cannot ask: {exc}")
                )
            return
        for item in work.values():
            for name in leg_names(item.row):  # both legs of a stereo recording
                if name not in present:
                    continue
                try:
                    await self._source.delete(name, item.row.format)
                except StorageError as exc:
                    item.pending.append(PendingPlace(ASTERISK_PLACE, name, str(exc)))
                    continue
                item.cleared.append(
                    {"backend": ASTERISK_PLACE, "key": name, "deleted_at": _iso(utcnow())}
                )

    async def _destroy_keys(self, work: Mapping[str, _Work]) -> None:
        """Only recordings that have a data key (encrypted copies) cost a call."""
        async with self._sessions() as session:
            keys: list[tuple[str, datetime | None]] = []
            for chunk in _chunks(list(work)):
                found = await session.execute(
                    select(DataKey.recording_id, DataKey.destroyed_at).where(
                        DataKey.recording_id.in_(chunk)
                    )
                )
                keys.extend((rid, destroyed) for rid, destroyed in found.all())
        for rid, destroyed_at in keys:
            item = work[rid]
            if destroyed_at is None:
                if self._destroy_key is None:
                    item.pending.append(
                        PendingPlace(DATA_KEY_PLACE, rid, "no key destroyer configured")
                    )
                    continue
                try:
                    await self._destroy_key(rid)
                except (StorageError, SQLAlchemyError) as exc:
                    item.pending.append(PendingPlace(DATA_KEY_PLACE, rid, str(exc)))
                    continue
                destroyed_at = utcnow()
            item.cleared.append(
                {"backend": DATA_KEY_PLACE, "key": rid, "deleted_at": _iso(destroyed_at)}
            )

    async def _seal(self, work: Mapping[str, _Work]) -> None:
        """Tombstone and ``deleted`` in one transaction, for every recording now clear."""
        ready = [rid for rid, item in work.items() if not item.pending]
        if not ready:
            return
        deleted_at = utcnow()
        async with self._sessions() as session:
            copies: dict[str, list[RecordingCopy]] = {rid: [] for rid in ready}
            for chunk in _chunks(ready):
                found = await session.scalars(
                    select(RecordingCopy)
                    .where(RecordingCopy.recording_id.in_(chunk))
                    .order_by(RecordingCopy.backend)
                )
                for copy in found.all():
                    copies[copy.recording_id].append(copy)
            # A copy the pipeline put while we were deleting blocks the seal.
            for rid in ready:
                for copy in copies[rid]:
                    if copy.status != CopyStatus.DELETED:
                        work[rid].pending.append(
                            PendingPlace(copy.backend, copy.key, "copy appeared during deletion")
                        )
            ready = [rid for rid in ready if not work[rid].pending]
            sealed: list[str] = []
            for chunk in _chunks(ready):
                moved = await session.scalars(
                    update(Recording)
                    .where(
                        Recording.id.in_(chunk),
                        Recording.status == RecordingStatus.DELETING.value,
                    )
                    .values(
                        status=RecordingStatus.DELETED.value,
                        deleted_at=deleted_at,
                        delete_progress=None,  # the tombstone holds it now
                    )
                    .returning(Recording.id)
                )
                sealed.extend(moved.all())
            events: list[AuditEvent] = []
            for rid in sealed:
                tombstone = self._tombstone(work[rid], copies[rid], deleted_at)
                # Built before the commit: the caller's session factory may expire rows.
                work[rid].sealed = _sealed_outcome(tombstone)
                session.add(tombstone)
                events.append(_audit_event(tombstone))
            # Tombstones and their audit entries commit together, or neither does.
            await record_events(session, events)
            await session.commit()
        if sealed:
            log.info("deleted %d recording(s) everywhere", len(sealed))

    async def _save_progress(self, unfinished: Sequence[_Work]) -> None:
        """What an unfinished deletion cleared outside the copies, kept on its row.

        A later pass (perhaps after a restart) can no longer see a spool file or an
        Asterisk recording it already removed; the tombstone must still name them.
        """
        changed = [
            item for item in unfinished if _dump_progress(item.cleared) != item.row.delete_progress
        ]
        if not changed:
            return
        async with self._sessions() as session:
            for item in changed:
                await session.execute(
                    update(Recording)
                    .where(
                        Recording.id == item.row.id,
                        Recording.status == RecordingStatus.DELETING.value,
                    )
                    .values(delete_progress=_dump_progress(item.cleared))
                )
            await session.commit()

    def _tombstone(
        self, item: _Work, copies: Sequence[RecordingCopy], deleted_at: datetime
    ) -> Tombstone:
        row = item.row
        where = [
            {
                "backend": copy.backend,
                "key": copy.key,
                "deleted_at": _iso(copy.deleted_at or deleted_at),
            }
            for copy in copies
        ]
        where.extend(item.cleared)
        return Tombstone(
            id=new_id(),
            recording_id=row.id,
            call_id=row.call_id,
            kind=row.kind,
            legal_basis=row.legal_basis,
            retention_class=row.retention_class,
            retain_until=row.retain_until,
            sha256=row.sha256,
            reason=row.delete_reason or "unknown",
            note=row.delete_note,
            actor=row.delete_actor,
            deleted_where=json.dumps(_unique_places(where), ensure_ascii=False),
            requested_at=row.delete_requested_at or deleted_at,
            deleted_at=deleted_at,
        )

    async def _deleted_outcome(self, recording_id: str) -> DeletionOutcome:
        async with self._sessions() as session:
            tombstone = await latest_tombstone(session, recording_id)
            row = await session.get(Recording, recording_id)
        if tombstone is None:
            # Deleted before tombstones existed, or by hand: say so, claim nothing.
            return DeletionOutcome(
                recording_id=recording_id,
                status=RecordingStatus.DELETED.value,
                reason=row.delete_reason if row else None,
                deleted_at=row.deleted_at if row else None,
            )
        return _sealed_outcome(tombstone)


def _audit_event(tombstone: Tombstone) -> AuditEvent:
    """A deletion for retention is a purge; any other (manual, erasure...) a deletion.

    The tombstone's note is free text an admin typed and may name a caller: left out.
    """
    where = json.loads(tombstone.deleted_where)
    return AuditEvent(
        actor=tombstone.actor or "service",
        action="recording.purged" if tombstone.reason == RETENTION_REASON
        else "recording.deleted",
        target=f"recording:{tombstone.recording_id}",
        details={
            "reason": tombstone.reason,
            "call": tombstone.call_id,
            "kind": tombstone.kind,
            "legal_basis": tombstone.legal_basis,
            "tombstone": tombstone.id,
            "requested_at": tombstone.requested_at,
            "where": [f"{w.get('backend')}:{w.get('key')}" for w in where],
        },
        at=tombstone.deleted_at,
    )


def _sealed_outcome(tombstone: Tombstone) -> DeletionOutcome:
    return DeletionOutcome(
        recording_id=tombstone.recording_id,
        status=RecordingStatus.DELETED.value,
        reason=tombstone.reason,
        deleted_at=tombstone.deleted_at,
        deleted_where=tuple(json.loads(tombstone.deleted_where)),
        tombstone_id=tombstone.id,
    )


async def latest_tombstone(session: AsyncSession, recording_id: str) -> Tombstone | None:
    result = await session.scalars(
        select(Tombstone)
        .where(Tombstone.recording_id == recording_id)
        .order_by(Tombstone.deleted_at.desc())
        .limit(1)
    )
    return result.first()
