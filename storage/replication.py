"""Copies of a prepared recording on every backend its policy names, each proven intact.

Each copy is a row (``recording_copies``) that moves pending -> verified, or to dead after
``max_attempts`` failures. A copy is verified only after the backend reports the size
(and, where it can, the sha256) of what it now holds, and the sidecar is written; only
when every copy is verified does the recording count as stored. Failures are retried per
copy with capped exponential backoff and jitter, so one slow FTP server delays only its
own copies. Uploads never run on the event loop's time: hashing and encryption run in
threads, and each backend has its own concurrency limit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import tempfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.audio_facts import FileDigest, digest_file
from storage.backends.base import Backend, validate_key
from storage.backends.settings import DEFAULT_PATH_TEMPLATE
from storage.errors import DiskError, IntegrityMismatch, StorageError
from storage.failpoints import crash_point
from storage.models import CopyStatus, Recording, RecordingCopy, RecordingStatus, utcnow
from storage.schedule import next_slot

log = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".json"


@dataclass(frozen=True)
class Target:
    """A backend as the pipeline uses it: where, how, and when copies go."""

    name: str
    backend: Backend
    encrypt: bool = False
    concurrency: int = 2
    schedule: str = "immediate"
    path_template: str = DEFAULT_PATH_TEMPLATE
    sidecar: bool = False


class Encryptor(Protocol):
    """Makes (once) the encrypted form of a recording's prepared file."""

    async def encrypted_copy(self, recording_id: str, plain: Path) -> Path: ...


# Extra facts for a sidecar that only the upper layer knows (the caller, the DID), already
# masked or not as configured.
SidecarFacts = Callable[[Recording], Awaitable[Mapping[str, Any]]]


async def mark_sidecars_stale(session: AsyncSession, recording_id: str) -> None:
    """The recording's sidecar facts changed (e.g. retain_until): rewrite them on the
    backends. Inside the caller's transaction, so the change and the mark commit together."""
    await session.execute(
        update(RecordingCopy)
        .where(
            RecordingCopy.recording_id == recording_id,
            RecordingCopy.sidecar_key.is_not(None),
            RecordingCopy.status == CopyStatus.VERIFIED,
        )
        .values(sidecar_stale_since=utcnow())
    )


def render_key(template: str, row: Recording, ext: str) -> str:
    """The copy's key from the backend's template; every value is one safe path segment."""
    started = row.started_at.astimezone(UTC)
    values = {
        "yyyy": f"{started:%Y}",
        "mm": f"{started:%m}",
        "dd": f"{started:%d}",
        "hh": f"{started:%H}",
        "call_id": row.call_id,
        "recording_id": row.id,
        "kind": row.kind,
        "ext": ext,
    }
    return validate_key(template.format(**values))


@dataclass
class ReplicationState:
    """What is left after one pass over a recording's copies."""

    all_verified: bool
    next_due: datetime | None  # the earliest pending copy not yet due
    dead: list[str] = field(default_factory=list)  # backends that gave up
    # The first target's verified copy: what listings show as the recording's location.
    primary_location: str | None = None


class Replicator:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        targets: Sequence[Target],
        *,
        max_attempts: int = 12,
        retry_initial_s: float = 2.0,
        retry_max_s: float = 900.0,
        encryptor: Encryptor | None = None,
        sidecar_facts: SidecarFacts | None = None,
        clock: Callable[[], datetime] = utcnow,
        on_failure: Callable[[bool], None] | None = None,
    ) -> None:
        if not targets:
            raise ValueError("at least one target backend is needed")
        missing_keys = [t.name for t in targets if t.encrypt and encryptor is None]
        if missing_keys:
            raise StorageError(
                f"backend(s) {', '.join(missing_keys)} encrypt, but no master key is configured"
            )
        self._sessions = sessions
        self.targets = {t.name: t for t in targets}
        self._order = [t.name for t in targets]
        self._slots = {t.name: asyncio.Semaphore(t.concurrency) for t in targets}
        self._max_attempts = max_attempts
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._encryptor = encryptor
        self._sidecar_facts = sidecar_facts
        self._clock = clock
        self._on_failure = on_failure

    def plan(self, row: Recording, ext: str) -> list[RecordingCopy]:
        """The copy rows for a recording that has just been prepared (added by the caller)."""
        now = self._clock()
        return [
            RecordingCopy(
                recording_id=row.id,
                backend=target.name,
                key=render_key(target.path_template, row, ext),
                status=CopyStatus.PENDING.value,
                encrypted=target.encrypt,
                attempts=0,
                next_attempt_at=next_slot(target.schedule, now),
                created_at=now,
            )
            for target in (self.targets[name] for name in self._order)
        ]

    async def replicate(self, row: Recording, plain: Path) -> ReplicationState:
        """Make every copy that is due now; report what remains."""
        copies = await self._copies(row.id)
        now = self._clock()
        due = [
            c
            for c in copies
            if c.status == CopyStatus.PENDING
            and (c.next_attempt_at is None or c.next_attempt_at <= now)
        ]
        if due:
            await asyncio.gather(*(self._make(row, copy, plain) for copy in due))
            copies = await self._copies(row.id)
        pending = [c for c in copies if c.status == CopyStatus.PENDING]
        return ReplicationState(
            all_verified=bool(copies) and all(c.status == CopyStatus.VERIFIED for c in copies),
            next_due=min(
                (c.next_attempt_at or self._clock() for c in pending), default=None
            ),
            dead=[c.backend for c in copies if c.status == CopyStatus.DEAD],
            primary_location=self._primary(copies),
        )

    def _primary(self, copies: Sequence[RecordingCopy]) -> str | None:
        by_backend = {c.backend: c for c in copies}
        for name in self._order:
            copy = by_backend.get(name)
            if copy is not None and copy.status == CopyStatus.VERIFIED:
                return copy.location
        return None

    # -- sidecars whose facts changed -------------------------------------------------------

    async def refresh_sidecars(self, limit: int = 200) -> int:
        """Rewrite sidecars marked stale (``mark_sidecars_stale``); returns how many.

        A backend that is down keeps its mark and is tried again on the next sweep; the
        mark is cleared only if it was not set again while we wrote.
        """
        async with self._sessions() as session:
            stale = (
                await session.execute(
                    select(RecordingCopy, Recording)
                    .join(Recording, Recording.id == RecordingCopy.recording_id)
                    .where(
                        RecordingCopy.sidecar_stale_since.is_not(None),
                        RecordingCopy.status == CopyStatus.VERIFIED,
                        Recording.status == RecordingStatus.STORED,
                    )
                    .order_by(RecordingCopy.sidecar_stale_since)
                    .limit(limit)
                )
            ).all()
        rewritten = 0
        for copy, row in stale:
            target = self.targets.get(copy.backend)
            if target is not None and target.sidecar and copy.sidecar_key and copy.sha256:
                try:
                    async with self._slots[target.name]:
                        await self._put_sidecar(row, copy, target, copy.sidecar_key, copy.sha256)
                except Exception as exc:  # a copy boundary: the mark stays, retried later
                    log.warning("recording %s: sidecar on %s not rewritten yet: %s",
                                row.id, copy.backend, exc)
                    continue
                rewritten += 1
            async with self._sessions() as session:
                await session.execute(
                    update(RecordingCopy)
                    .where(
                        RecordingCopy.id == copy.id,
                        RecordingCopy.sidecar_stale_since == copy.sidecar_stale_since,
                    )
                    .values(sidecar_stale_since=None)
                )
                await session.commit()
        if rewritten:
            log.info("%d sidecar(s) rewritten with changed facts", rewritten)
        return rewritten

    # -- one copy ----------------------------------------------------------------------------

    async def _make(self, row: Recording, copy: RecordingCopy, plain: Path) -> None:
        target = self.targets.get(copy.backend)
        if target is None:
            await self._failed(copy, f"backend {copy.backend!r} is no longer configured")
            return
        try:
            async with self._slots[target.name]:
                await self._upload(row, copy, target, plain)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a copy boundary: every failure is counted and retried
            # A disk of ours full or unwritable is an admin's to fix: said at ERROR.
            level = logging.ERROR if isinstance(exc, DiskError) else logging.WARNING
            await self._failed(copy, f"{type(exc).__name__}: {exc}", level=level)

    async def _upload(
        self, row: Recording, copy: RecordingCopy, target: Target, plain: Path
    ) -> None:
        if target.encrypt:
            assert self._encryptor is not None
            src = await self._encryptor.encrypted_copy(row.id, plain)
            expected = await asyncio.to_thread(digest_file, src)
        else:
            # The plain file's digest was committed when it was prepared: every plain copy
            # must match the recording itself, with no second pass over the bytes.
            src = plain
            assert row.sha256 is not None and row.size_bytes is not None
            expected = FileDigest(row.size_bytes, row.sha256)
        stored = await target.backend.put(src, copy.key)
        if stored.size != expected.size_bytes or (
            stored.checksum_verified and stored.sha256 != expected.sha256
        ):
            raise IntegrityMismatch(
                f"{target.name} holds {stored.size} bytes sha256 {stored.sha256}, "
                f"sent {expected.size_bytes} bytes sha256 {expected.sha256}"
            )
        crash_point("copy-uploaded")
        sidecar_key = None
        if target.sidecar:
            sidecar_key = copy.key + SIDECAR_SUFFIX
            await self._put_sidecar(row, copy, target, sidecar_key, expected.sha256)
        async with self._sessions() as session:
            # Compare-and-set in one statement: only a copy still pending becomes verified.
            verified = await session.scalar(
                update(RecordingCopy)
                .where(RecordingCopy.id == copy.id, RecordingCopy.status == CopyStatus.PENDING)
                .values(
                    status=CopyStatus.VERIFIED.value,
                    size_bytes=expected.size_bytes,
                    sha256=expected.sha256,
                    location=stored.location,
                    sidecar_key=sidecar_key,
                    verified_at=self._clock(),
                    last_error=None,
                    next_attempt_at=None,
                )
                .returning(RecordingCopy.id)
            )
            if verified is None:
                # Deleted (erasure, retention) while we uploaded: take back what we put,
                # so nothing outlives the tombstone.
                await session.rollback()
                await self._withdraw(target, copy.key, sidecar_key)
                return
            await session.commit()
        log.info(
            "recording %s: copy on %s verified (%d bytes%s)",
            row.id, target.name, expected.size_bytes,
            ", sha256 checked" if stored.checksum_verified else ", size checked",
        )

    async def _withdraw(self, target: Target, key: str, sidecar_key: str | None) -> None:
        log.warning("recording copy %s on %s deleted meanwhile; removing the upload",
                    key, target.name)
        await target.backend.delete(key)
        if sidecar_key is not None:
            await target.backend.delete(sidecar_key)

    async def _put_sidecar(
        self,
        row: Recording,
        copy: RecordingCopy,
        target: Target,
        key: str,
        stored_sha256: str,
    ) -> None:
        document: dict[str, Any] = {
            "format": 1,
            "call_id": row.call_id,
            "recording_id": row.id,
            "kind": row.kind,
            "legal_basis": row.legal_basis,
            "retention_class": row.retention_class,
            "retain_until": row.retain_until.isoformat() if row.retain_until else None,
            "started_at": row.started_at.isoformat(),
            "duration_s": row.duration_s,
            "audio_format": row.format,
            "audio_sha256": row.sha256,
            "encrypted": copy.encrypted,
            "stored_sha256": stored_sha256,
        }
        if self._sidecar_facts is not None:
            document.update(await self._sidecar_facts(row))
        text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False)
        with tempfile.TemporaryDirectory(prefix="pbxb-sidecar-") as folder:
            path = Path(folder) / "sidecar.json"
            await asyncio.to_thread(path.write_text, text, "utf-8")
            await target.backend.put(path, key)

    async def _failed(
        self, copy: RecordingCopy, error: str, *, level: int = logging.WARNING
    ) -> None:
        async with self._sessions() as session:
            fresh = await session.get(RecordingCopy, copy.id)
            if fresh is None or fresh.status != CopyStatus.PENDING:
                return
            fresh.attempts += 1
            fresh.last_error = error[:2000]
            dead = fresh.attempts >= self._max_attempts
            if self._on_failure is not None:
                self._on_failure(dead)
            if dead:
                fresh.status = CopyStatus.DEAD.value
                fresh.next_attempt_at = None
                log.error(
                    "recording %s: copy on %s dead-lettered after %d attempts: %s "
                    "(pbx-bridge storage retry)",
                    copy.recording_id, copy.backend, fresh.attempts, error,
                )
            else:
                delay = self._backoff(fresh.attempts)
                fresh.next_attempt_at = self._clock() + timedelta(seconds=delay)
                log.log(
                    level,
                    "recording %s: copy on %s failed (attempt %d/%d), retry in %.0f s: %s",
                    copy.recording_id, copy.backend, fresh.attempts, self._max_attempts,
                    delay, error,
                )
            await session.commit()

    def _backoff(self, attempts: int) -> float:
        ceiling = min(self._retry_max_s, self._retry_initial_s * (2 ** min(attempts - 1, 30)))
        return random.uniform(ceiling / 2, ceiling)

    async def _copies(self, recording_id: str) -> list[RecordingCopy]:
        async with self._sessions() as session:
            return list(
                (
                    await session.scalars(
                        select(RecordingCopy).where(RecordingCopy.recording_id == recording_id)
                    )
                ).all()
            )
