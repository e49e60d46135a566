"""Proof that verified copies are still intact, long after they were verified.

A copy verified last month can since have been truncated by a full disk, deleted by the
customer's clean-up script or replaced by someone's "fix". The audit asks each backend
what it now holds (``stat``: size, and the sha256 where the backend knows it) and compares
that with the row. A copy that no longer matches goes back to ``pending`` and its
recording back from ``stored`` to ``prepared``, with the plain file staged into the spool
again first, so the pipeline re-uploads it exactly as it uploads any pending copy.

The file is staged from the local cache when it is still there, else from another
verified copy whose bytes prove intact (plain copies first; an encrypted one is opened
with the recording's data key). When no intact copy is left anywhere the damaged copies
are dead-lettered with a message ``storage status`` shows: never a silent loss.

``verified_at`` doubles as "last proven intact": an intact copy's stamp moves to the
audit's start, so audits walk the oldest-proven copies first and a bounded batch per run
still covers every copy in turn, without a column of its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.audio_facts import digest_file
from storage.backends.base import Backend
from storage.errors import EncryptionError, StorageError, TransientStorageError
from storage.keyring import Keyring
from storage.models import CopyStatus, Recording, RecordingCopy, RecordingStatus, utcnow
from storage.progress import SILENT, Progress
from storage.spool import Spool

log = logging.getLogger(__name__)

DEFAULT_AUDIT_LIMIT = 200
AUDIT_PREFIX = "audit: "
NO_INTACT_COPY = "no intact copy left to repair from"
_BATCH = 100
_STAT_CONCURRENCY = 4
_REPAIRABLE = (RecordingStatus.STORED, RecordingStatus.PREPARED)

# Outcomes of a damaged copy.
REQUEUED = "re-upload queued"
UNREPAIRABLE = "dead: " + NO_INTACT_COPY
DEFERRED = "left for the next audit"
SKIPPED = "skipped (recording changed meanwhile)"


@dataclass(frozen=True)
class AuditFinding:
    recording_id: str
    backend: str
    key: str
    problem: str  # "missing", "size 12 bytes, expected 4096", "sha256 differs", ...
    outcome: str  # REQUEUED, UNREPAIRABLE, DEFERRED or SKIPPED


@dataclass
class AuditReport:
    checked: int = 0
    intact: int = 0
    findings: list[AuditFinding] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)  # recording ids back to prepared
    unrepairable: list[str] = field(default_factory=list)  # recording ids, copies dead
    # backend -> the first error; those copies keep their stamp and come first next time.
    unreachable: dict[str, str] = field(default_factory=dict)
    unconfigured: int = 0  # copies on a backend no longer configured (not checked)

    @property
    def clean(self) -> bool:
        return not self.findings and not self.unreachable


class _NotIntact(StorageError):
    """A candidate source copy's bytes do not match what its row promises."""


async def audit_copies(
    sessions: async_sessionmaker[AsyncSession],
    backends: Mapping[str, Backend],
    *,
    spool: Path,
    limit: int | None = DEFAULT_AUDIT_LIMIT,
    older_than: datetime | None = None,
    keyring: Keyring | None = None,
    clock: Callable[[], datetime] = utcnow,
    progress: Progress = SILENT,
) -> AuditReport:
    """Check up to ``limit`` verified copies (None: all), oldest-proven first.

    ``older_than``: only copies last proven intact before then (default: before this
    audit began). Every repair is committed before the next recording is looked at.
    """
    report = AuditReport()
    started = clock()
    cutoff = started if older_than is None or older_than > started else older_than
    stager = _Stager(sessions, backends, Spool(spool), keyring)
    cursor: tuple[datetime, str] | None = None
    slots = asyncio.Semaphore(_STAT_CONCURRENCY)
    if progress is not SILENT:  # the service's audits show nobody: no counting for them
        due = await _count_auditable(sessions, cutoff)
        progress.start(due if limit is None else min(due, limit))
    while limit is None or report.checked < limit:
        size = _BATCH if limit is None else min(_BATCH, limit - report.checked)
        batch = await _next_batch(sessions, cutoff, cursor, size)
        if not batch:
            break
        last = batch[-1]
        cursor = (last.verified_at or last.created_at, last.id)
        await _check(sessions, backends, stager, batch, report, slots, clock,
                     partial(_stamp, sessions, when=started))
        progress.advance(len(batch))
        if len(batch) < size:
            break
    _log_outcome(report)
    return report


async def recheck_dead_copies(
    sessions: async_sessionmaker[AsyncSession],
    backends: Mapping[str, Backend],
    *,
    spool: Path,
    recording_id: str | None = None,
    backend: str | None = None,
    keyring: Keyring | None = None,
    clock: Callable[[], datetime] = utcnow,
    progress: Progress = SILENT,
) -> AuditReport:
    """``storage retry`` for copies an audit dead-lettered on a stored recording.

    Giving them fresh upload attempts would do nothing: their recording is ``stored``, so
    no upload runs, and there was no intact file to upload from anyway. What can have
    changed is the backend: the operator put the file back from a backup, or another
    copy came back. So each is checked again like an audited copy: intact now means
    verified again; still damaged means repaired from any intact copy there now is, or
    left dead with the reason.
    """
    statement = (
        select(RecordingCopy)
        .join(Recording, Recording.id == RecordingCopy.recording_id)
        .where(
            RecordingCopy.status == CopyStatus.DEAD.value,
            Recording.status == RecordingStatus.STORED.value,
        )
        .order_by(RecordingCopy.recording_id, RecordingCopy.backend)
    )
    if recording_id is not None:
        statement = statement.where(RecordingCopy.recording_id == recording_id)
    if backend is not None:
        statement = statement.where(RecordingCopy.backend == backend)
    async with sessions() as session:
        dead = list((await session.scalars(statement)).all())
    report = AuditReport()
    stager = _Stager(sessions, backends, Spool(spool), keyring)
    slots = asyncio.Semaphore(_STAT_CONCURRENCY)
    progress.start(len(dead))
    for start in range(0, len(dead), _BATCH):
        batch = dead[start : start + _BATCH]
        await _check(sessions, backends, stager, batch, report, slots, clock,
                     partial(_revive, sessions, when=clock()))
        progress.advance(len(batch))
    _log_outcome(report)
    return report


async def _check(
    sessions: async_sessionmaker[AsyncSession],
    backends: Mapping[str, Backend],
    stager: _Stager,
    batch: Sequence[RecordingCopy],
    report: AuditReport,
    slots: asyncio.Semaphore,
    clock: Callable[[], datetime],
    mark_intact: Callable[[Sequence[str]], Awaitable[None]],
) -> None:
    """Ask the backends about ``batch``, mark the intact copies, then repair what is
    damaged: in that order, so a copy found intact again can be the repair source."""
    checkable = [c for c in batch if c.backend in backends]
    report.unconfigured += len(batch) - len(checkable)
    report.checked += len(checkable)
    results = await asyncio.gather(*(_inspect(backends[c.backend], c, slots) for c in checkable))
    intact: list[str] = []
    damaged: dict[str, dict[str, str]] = {}  # recording id -> copy id -> problem
    by_id = {c.id: c for c in checkable}
    for copy, result in zip(checkable, results, strict=True):
        if isinstance(result, StorageError):
            report.unreachable.setdefault(copy.backend, str(result))
        elif result is None:
            intact.append(copy.id)
        else:
            damaged.setdefault(copy.recording_id, {})[copy.id] = result
    report.intact += len(intact)
    await mark_intact(intact)
    for recording_id, problems in damaged.items():
        await _repair(sessions, stager, recording_id, problems, by_id, report, clock)


def _log_outcome(report: AuditReport) -> None:
    for backend, error in report.unreachable.items():
        log.warning("audit: backend %s could not be asked: %s", backend, error)
    log.info(
        "audit: %d copies checked, %d intact, %d damaged, %d recording(s) re-queued, "
        "%d without an intact copy",
        report.checked, report.intact, len(report.findings), len(report.requeued),
        len(report.unrepairable),
    )


# When a copy was last proven intact (its stamp).
_proven_at = func.coalesce(RecordingCopy.verified_at, RecordingCopy.created_at)


def _auditable(cutoff: datetime) -> list[ColumnElement[bool]]:
    return [
        RecordingCopy.status == CopyStatus.VERIFIED.value,
        Recording.status.in_([s.value for s in _REPAIRABLE]),
        _proven_at < cutoff,
    ]


async def _count_auditable(sessions: async_sessionmaker[AsyncSession], cutoff: datetime) -> int:
    statement = (
        select(func.count())
        .select_from(RecordingCopy)
        .join(Recording, Recording.id == RecordingCopy.recording_id)
        .where(*_auditable(cutoff))
    )
    async with sessions() as session:
        return int(await session.scalar(statement) or 0)


async def _next_batch(
    sessions: async_sessionmaker[AsyncSession],
    cutoff: datetime,
    cursor: tuple[datetime, str] | None,
    size: int,
) -> list[RecordingCopy]:
    statement = (
        select(RecordingCopy)
        .join(Recording, Recording.id == RecordingCopy.recording_id)
        .where(*_auditable(cutoff))
        .order_by(_proven_at, RecordingCopy.id)
        .limit(size)
    )
    if cursor is not None:
        statement = statement.where(
            or_(_proven_at > cursor[0], and_(_proven_at == cursor[0], RecordingCopy.id > cursor[1]))
        )
    async with sessions() as session:
        return list((await session.scalars(statement)).all())


async def _inspect(
    backend: Backend, copy: RecordingCopy, slots: asyncio.Semaphore
) -> str | StorageError | None:
    """What is wrong with the copy (None: nothing), or the error that kept us from asking."""
    async with slots:
        try:
            info = await backend.stat(copy.key)
            if info is None:
                return "missing"
            if copy.size_bytes is not None and info.size != copy.size_bytes:
                return f"size {info.size} bytes, expected {copy.size_bytes}"
            if info.sha256 and copy.sha256 and info.sha256.lower() != copy.sha256.lower():
                return f"sha256 {info.sha256[:12]}..., expected {copy.sha256[:12]}..."
            if copy.sidecar_key and await backend.stat(copy.sidecar_key) is None:
                return "sidecar missing"
        except StorageError as exc:
            return exc
        except (OSError, TimeoutError) as exc:
            return TransientStorageError(f"{type(exc).__name__}: {exc}")
    return None


async def _stamp(
    sessions: async_sessionmaker[AsyncSession], copy_ids: Sequence[str], *, when: datetime
) -> None:
    if not copy_ids:
        return
    async with sessions() as session:
        await session.execute(
            update(RecordingCopy)
            .where(
                RecordingCopy.id.in_(list(copy_ids)),
                RecordingCopy.status == CopyStatus.VERIFIED.value,
            )
            .values(verified_at=when)
        )
        await session.commit()


async def _revive(
    sessions: async_sessionmaker[AsyncSession], copy_ids: Sequence[str], *, when: datetime
) -> None:
    """Dead copies found intact again: verified as of now; a recording with no dead
    copy left loses the audit's error."""
    if not copy_ids:
        return
    async with sessions() as session:
        revived = (
            await session.scalars(
                select(RecordingCopy).where(
                    RecordingCopy.id.in_(list(copy_ids)),
                    RecordingCopy.status == CopyStatus.DEAD.value,
                )
            )
        ).all()
        for copy in revived:
            copy.status = CopyStatus.VERIFIED.value
            copy.verified_at = when
            copy.attempts = 0
            copy.next_attempt_at = None
            copy.last_error = None
        await session.flush()
        for recording_id in {c.recording_id for c in revived}:
            still_dead = await session.scalar(
                select(func.count()).select_from(RecordingCopy).where(
                    RecordingCopy.recording_id == recording_id,
                    RecordingCopy.status == CopyStatus.DEAD.value,
                )
            )
            row = await session.get(Recording, recording_id)
            if row is not None and not still_dead and (row.error or "").startswith(AUDIT_PREFIX):
                row.error = None
        await session.commit()
    for copy in revived:
        log.warning("audit: recording %s: copy on %s is intact again", copy.recording_id,
                    copy.backend)


async def _repair(
    sessions: async_sessionmaker[AsyncSession],
    stager: _Stager,
    recording_id: str,
    problems: dict[str, str],
    copies_by_id: Mapping[str, RecordingCopy],
    report: AuditReport,
    clock: Callable[[], datetime],
) -> None:
    """Stage the file, then (one commit) copies -> pending and stored -> prepared."""
    async with sessions() as session:
        row = await session.get(Recording, recording_id)
        siblings = list(
            (
                await session.scalars(
                    select(RecordingCopy).where(RecordingCopy.recording_id == recording_id)
                )
            ).all()
        )
    known = {c.id: c for c in siblings}
    for copy_id, problem in problems.items():
        log.warning(
            "audit: recording %s: copy on %s is damaged (%s)",
            recording_id, copies_by_id[copy_id].backend, problem,
        )
    if row is None or row.status not in _REPAIRABLE:
        _note(report, problems, copies_by_id, SKIPPED)
        return
    staged = await stager.stage(row, siblings, problems)
    if staged is None:
        if stager.deferred:
            log.error(
                "audit: recording %s: damaged copies cannot be repaired now (%s); "
                "the next audit tries again", recording_id, "; ".join(stager.deferred),
            )
            _note(report, problems, known, DEFERRED)
        else:
            await _dead_letter(sessions, row, problems, known, report)
        return
    now = clock()
    async with sessions() as session:
        fresh = await session.get(Recording, recording_id, with_for_update=True)
        if fresh is None or fresh.status not in _REPAIRABLE:
            await session.rollback()
            await stager.discard(staged)
            _note(report, problems, known, SKIPPED)
            return
        fresh.status = RecordingStatus.PREPARED.value
        fresh.spool_path = str(staged.path)
        if (fresh.error or "").startswith(AUDIT_PREFIX):
            fresh.error = None  # a repair is under way after all
        for copy_id, problem in problems.items():
            copy = await session.get(RecordingCopy, copy_id)
            if copy is None or copy.status not in (CopyStatus.VERIFIED, CopyStatus.DEAD):
                continue  # a dead one: `storage retry` asked to check it again
            copy.status = CopyStatus.PENDING.value
            copy.attempts = 0
            copy.last_error = (AUDIT_PREFIX + problem)[:2000]
            copy.next_attempt_at = now
        await session.commit()
    report.requeued.append(recording_id)
    _note(report, problems, known, REQUEUED)
    log.warning(
        "audit: recording %s: %d damaged cop%s queued for re-upload (file staged from %s)",
        recording_id, len(problems), "y" if len(problems) == 1 else "ies", staged.origin,
    )


async def _dead_letter(
    sessions: async_sessionmaker[AsyncSession],
    row: Recording,
    problems: dict[str, str],
    known: Mapping[str, RecordingCopy],
    report: AuditReport,
) -> None:
    async with sessions() as session:
        for copy_id, problem in problems.items():
            copy = await session.get(RecordingCopy, copy_id)
            if copy is None or copy.status != CopyStatus.VERIFIED:
                continue
            copy.status = CopyStatus.DEAD.value
            copy.next_attempt_at = None
            copy.last_error = f"{AUDIT_PREFIX}{problem}; {NO_INTACT_COPY}"[:2000]
        fresh = await session.get(Recording, row.id)
        if fresh is not None:
            fresh.error = f"{AUDIT_PREFIX}{NO_INTACT_COPY}"
        await session.commit()
    report.unrepairable.append(row.id)
    _note(report, problems, known, UNREPAIRABLE)
    log.error(
        "audit: recording %s: damaged on %s and %s (see pbx-bridge storage status)",
        row.id, ", ".join(sorted(known[c].backend for c in problems if c in known)),
        NO_INTACT_COPY,
    )


def _note(
    report: AuditReport,
    problems: Mapping[str, str],
    copies: Mapping[str, RecordingCopy],
    outcome: str,
) -> None:
    for copy_id, problem in problems.items():
        copy = copies.get(copy_id)
        if copy is None:  # the row went away meanwhile (a deletion finished)
            continue
        report.findings.append(
            AuditFinding(copy.recording_id, copy.backend, copy.key, problem, outcome)
        )


@dataclass(frozen=True)
class _Staged:
    path: Path
    origin: str  # "the local cache" or "backend NAME"
    created: bool  # False when it was already in the spool (leave it on a skip)


class _Stager:
    """Puts an intact plain file for a recording into the spool, or says why it cannot."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        backends: Mapping[str, Backend],
        spool: Spool,
        keyring: Keyring | None,
    ) -> None:
        self._sessions = sessions
        self._backends = backends
        self._spool = spool
        self._keyring = keyring
        # Why the last stage() found nothing, where the cause may pass (an outage, no
        # master key loaded); empty when every copy was checked and none is intact.
        self.deferred: list[str] = []

    async def stage(
        self, row: Recording, copies: Sequence[RecordingCopy], damaged: dict[str, str]
    ) -> _Staged | None:
        self.deferred = []
        await self._spool.prepare()
        final = self._spool.path_for(row.id, row.format)
        for cached in dict.fromkeys(
            p for p in (Path(row.spool_path) if row.spool_path else None, final) if p
        ):
            if await self._spool.exists(cached) and await self._matches(cached, row.sha256):
                return _Staged(cached, "the local cache", created=False)
        candidates = sorted(
            (
                c
                for c in copies
                if c.status == CopyStatus.VERIFIED and c.id not in damaged
            ),
            key=lambda c: (c.encrypted, c.backend),
        )
        for copy in candidates:
            backend = self._backends.get(copy.backend)
            if backend is None:
                self.deferred.append(f"{copy.backend}: not configured")
                continue
            try:
                await self._download(row, copy, backend, final)
            except _NotIntact as exc:
                damaged[copy.id] = f"content differs: {exc}"
                continue
            except (StorageError, OSError, TimeoutError) as exc:
                self.deferred.append(f"{copy.backend}: {exc}")
                continue
            return _Staged(final, f"backend {copy.backend}", created=True)
        return None

    async def discard(self, staged: _Staged) -> None:
        if staged.created:
            await self._spool.remove(staged.path)

    async def _download(
        self, row: Recording, copy: RecordingCopy, backend: Backend, final: Path
    ) -> None:
        part = self._spool.part_path_for(row.id, row.format)
        sealed = part.with_name(f"{row.id}.{row.format}.enc.part")
        try:
            if not copy.encrypted:
                await backend.get(copy.key, part)
                if not await self._matches(part, copy.sha256):
                    raise _NotIntact(f"{copy.backend} holds other bytes than verified")
            else:
                if self._keyring is None:
                    raise EncryptionError("copy is encrypted and no master key is loaded")
                await backend.get(copy.key, sealed)
                if not await self._matches(sealed, copy.sha256):
                    raise _NotIntact(f"{copy.backend} holds other bytes than verified")
                await self._decrypt(row.id, sealed, part)
            if not await self._matches(part, row.sha256):
                raise _NotIntact(f"{copy.backend}: not the recording's bytes")
            await asyncio.to_thread(self._spool.commit, part, final)
        finally:
            await self._spool.remove(part)
            await self._spool.remove(sealed)

    async def _decrypt(self, recording_id: str, sealed: Path, plain: Path) -> None:
        from storage.crypto import decrypt_file
        from storage.keys import load_data_key

        assert self._keyring is not None
        data_key = await load_data_key(self._sessions, self._keyring, recording_id)
        await asyncio.to_thread(decrypt_file, sealed, plain, data_key, recording_id)

    @staticmethod
    async def _matches(path: Path, sha256: str | None) -> bool:
        if sha256 is None:
            return False  # nothing to vouch for it with
        return (await asyncio.to_thread(digest_file, path)).sha256 == sha256


__all__ = [
    "AUDIT_PREFIX",
    "DEFAULT_AUDIT_LIMIT",
    "NO_INTACT_COPY",
    "AuditFinding",
    "AuditReport",
    "audit_copies",
    "recheck_dead_copies",
]
