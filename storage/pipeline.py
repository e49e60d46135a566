"""From Asterisk to every backend without ever losing or doubling a recording.

Each recording moves ``recording -> finished -> spooled -> prepared -> stored`` (or
``failed``), and every move is committed with a compare-and-set on the status before the
next step starts (``storage.transitions``). The steps up to ``prepared`` (checked,
transcoded if configured, its sha256 and duration final, and one copy row per target
backend planned in the same transaction) are ``storage.intake``'s; the copies are then
made and verified (``storage.replication``). Every step can be repeated safely: the
spool file appears only complete, each copy's key is fixed in its row (a repeated put
replaces, never adds), and the Asterisk copy is deleted only after the ``stored`` commit.
So a crash at any point is undone by ``resume()``, which picks up every row that is not
``stored`` or ``failed`` and deletes Asterisk copies of recordings that are already stored.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.audit import DEFAULT_AUDIT_LIMIT, AuditReport, audit_copies
from storage.backends.base import Backend
from storage.envelope import ENCRYPTED_SUFFIX
from storage.errors import (
    DiskError,
    RecordingNotFound,
    StorageError,
    TransientStorageError,
    UnsafeKey,
)
from storage.failpoints import crash_point
from storage.intake import LOST_IN_ASTERISK, WAV_FORMATS, Intake
from storage.keyring import Keyring
from storage.legs import STEREO_LEGS, Layout, leg_names, recording_name
from storage.models import (
    CopyStatus,
    Recording,
    RecordingCopy,
    RecordingKind,
    RecordingStatus,
    new_id,
    utcnow,
)
from storage.periodic import JobRunner, NextRun, failure_kind
from storage.replication import Encryptor, Replicator, SidecarFacts, Target
from storage.source import RecordingSource
from storage.source_rows import known_source_names, row_for_source_name
from storage.spool import Spool
from storage.transcode import AudioFormat
from storage.transitions import move_row, move_status

log = logging.getLogger(__name__)

# Call ids become a folder in every backend key: keep them to one harmless path segment.
_CALL_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,35}$")
_FORMAT_RE = re.compile(r"^[a-z0-9]{1,16}$")
_PENDING = (
    RecordingStatus.RECORDING,
    RecordingStatus.FINISHED,
    RecordingStatus.SPOOLED,
    RecordingStatus.PREPARED,
)
DEFAULT_AUDIT_INTERVAL_S = 6 * 3600.0


@dataclass
class PipelineStats:
    """Counters since start, for metrics and for the operator's status page."""

    stored: int = 0
    failed: int = 0
    retries: int = 0
    source_delete_failures: int = 0
    copy_failures: int = 0  # failed copy attempts (each retried with backoff)
    dead_copies: int = 0  # copies that gave up (see `pbx-bridge storage status`)


@dataclass
class ResumeReport:
    queued: list[str] = field(default_factory=list)  # recording ids (re)started
    source_cleanups: list[str] = field(default_factory=list)  # stored, still in Asterisk
    spool_files_removed: int = 0
    orphans: list[str] | None = None  # None: the source could not be asked


def storage_key(row: Recording) -> str:
    """``{yyyy}/{mm}/{dd}/{call_id}/{recording_id}.{ext}``, dated by the start in UTC."""
    started = row.started_at.astimezone(UTC)
    return f"{started:%Y/%m/%d}/{row.call_id}/{row.id}.{row.format}"


class _RowVanished(StorageError):
    """The row being ingested was deleted under us; there is nothing left to do."""


class RecordingPipeline:
    """Takes recordings from a ``RecordingSource`` into a ``Backend``, crash-safe.

    The call flow drives it with ``begin``/``finished``/``mark_failed``/``close_call``;
    ingests run as tasks inside the pipeline, at most ``concurrency`` at a time.
    """

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        source: RecordingSource,
        spool_dir: Path,
        targets: Backend | Sequence[Target],
        *,
        concurrency: int = 2,
        retry_initial_s: float = 1.0,
        retry_max_s: float = 60.0,
        stop_timeout_s: float = 10.0,
        audio_format: AudioFormat = "wav",
        cache_days: int = 0,
        max_attempts: int = 12,
        copy_retry_initial_s: float = 2.0,
        copy_retry_max_s: float = 900.0,
        encryptor: Encryptor | None = None,
        sidecar_facts: SidecarFacts | None = None,
        sweep_interval_s: float = 30.0,
        clock: Callable[[], datetime] = utcnow,
        on_settled: Callable[[str], Awaitable[object]] | None = None,
        copy_after_call_ends: bool = False,
        audit_interval_s: float = DEFAULT_AUDIT_INTERVAL_S,
        audit_limit: int = DEFAULT_AUDIT_LIMIT,
        keyring: Keyring | None = None,
        calm: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._sessions = session_factory
        self._source = source
        self._spool = Spool(spool_dir)
        if isinstance(targets, Backend):
            targets = [Target(targets.name, targets)]
        self._replicator = Replicator(
            session_factory,
            targets,
            max_attempts=max_attempts,
            retry_initial_s=copy_retry_initial_s,
            retry_max_s=copy_retry_max_s,
            encryptor=encryptor,
            sidecar_facts=sidecar_facts,
            clock=clock,
            on_failure=self._count_copy_failure,
        )
        self._intake = Intake(
            session_factory, source, self._spool,
            plan=self._replicator.plan, audio_format=audio_format,
            on_failed=self._count_failure,
        )
        self._audio_format = audio_format
        self._cache_days = cache_days
        self._sweep_interval_s = sweep_interval_s
        self._clock = clock
        # Due copies, cache expiry and copy audits, every sweep interval after the start
        # (the start's own resume() has just done what a sweep would).
        self._sweeper = JobRunner(
            "pipeline sweep", "pipeline_sweep", self._sweep_and_audit,
            interval_s=sweep_interval_s, first_delay_s=sweep_interval_s,
        )
        # Told when a recording is stored or its call closes: the retention purger uses
        # it so a 0-day class keeps nothing past the end of the call.
        self._on_settled = on_settled
        # Copies wait until the call has ended, so every sidecar carries retain_until and
        # a 0-day class is deleted without ever being copied anywhere.
        self._copy_after_call_ends = copy_after_call_ends
        # Remote copies are audited (stat against the row) every so often; 0 disables.
        self._audit_interval_s = audit_interval_s
        self._audit_limit = audit_limit
        self._keyring = keyring
        # Awaited before each step of an ingest: while the service's loop is late, calls
        # go first (storage.loop_lag); the recording waits safely in Asterisk.
        self._calm = calm
        self._next_audit: datetime | None = None
        self._slots = asyncio.Semaphore(concurrency)
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._stop_timeout_s = stop_timeout_s
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._running = False
        self._stopping = asyncio.Event()
        self.stats = PipelineStats()

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> RecordingPipeline:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self, *, resume: bool = True) -> None:
        """Open for work and, by default, pick up whatever a previous run left behind."""
        await self._spool.prepare()
        self._running = True
        self._stopping.clear()
        if resume:
            await self.resume()
        self._sweeper.start()

    async def stop(self, timeout_s: float | None = None) -> None:
        """Let in-flight ingests finish for a while, then cancel them; resume() redoes them."""
        self._running = False
        self._stopping.set()
        await self._sweeper.stop()
        tasks = list(self._tasks.values())
        if not tasks:
            return
        limit = self._stop_timeout_s if timeout_s is None else timeout_s
        _, pending = await asyncio.wait(tasks, timeout=limit)
        for task in pending:
            task.cancel()
        if pending:
            log.info("stop: cancelled %d unfinished ingest(s); resume will redo them", len(pending))
            await asyncio.gather(*pending, return_exceptions=True)

    async def wait_idle(self) -> None:
        """Wait until no ingest is queued, running or waiting to retry."""
        await self._idle.wait()

    # -- what the call flow calls -------------------------------------------------------

    async def begin(
        self,
        *,
        call_id: str,
        kind: RecordingKind,
        legal_basis: str,
        retention_class: str,
        retention_days: int,
        format: str = "wav",
        layout: Layout | str = Layout.MIXED,
    ) -> Recording:
        """Commit the row before Asterisk is asked to record, so no file is ever unknown.

        A ``stereo`` row stands for two Asterisk recordings, one per leg, named by
        ``storage.legs.leg_names(row)``; they are merged into one file when both are done.
        """
        if not _CALL_ID_RE.match(call_id):
            raise UnsafeKey("call_id must be one path segment of [A-Za-z0-9_.-], at most 36")
        if not _FORMAT_RE.match(format):
            raise ValueError(f"unsupported recording format {format!r}")
        layout = Layout(layout)
        if layout is Layout.STEREO and format.lower() not in WAV_FORMATS:
            raise ValueError(f"stereo legs are merged from WAV, not {format!r}")
        if retention_days < 0:
            raise ValueError("retention_days must not be negative")
        recording_id = new_id()
        row = Recording(
            id=recording_id,
            call_id=call_id,
            kind=RecordingKind(kind).value,
            status=RecordingStatus.RECORDING.value,
            asterisk_name=recording_name(recording_id),
            legal_basis=legal_basis,
            retention_class=retention_class,
            retention_days=retention_days,
            format=format,
            layout=layout.value,
            started_at=utcnow(),
        )
        async with self._session() as session:
            session.add(row)
            await session.commit()
        log.info("recording %s begun (%s, %s)", recording_id, row.kind, row.layout)
        return row

    async def finished(self, asterisk_name: str) -> Recording | None:
        """Asterisk finished writing: commit that, then queue the ingest.

        One leg of a stereo recording finishing commits nothing: the ingest asks Asterisk
        about both legs (``_check_live``) and goes on only once neither is still live.
        Returns None for a name no row knows (not ours). A repeated event is harmless.
        """
        async with self._session() as session:
            # One statement on the way every recording takes: a mixed recording still
            # being written moves to finished. Anything else (a stereo leg, an event
            # repeated, a name not ours) is only looked up.
            finished = (
                await session.scalars(
                    update(Recording)
                    .where(
                        Recording.asterisk_name == asterisk_name,
                        Recording.layout != Layout.STEREO.value,
                        Recording.status == RecordingStatus.RECORDING.value,
                    )
                    .values(status=RecordingStatus.FINISHED.value, finished_at=utcnow())
                    .returning(Recording)
                )
            ).one_or_none()
            if finished is None:
                row = await row_for_source_name(session, asterisk_name)
                if row is None:
                    log.warning("RecordingFinished for unknown recording name %s", asterisk_name)
                    return None
            else:
                row = finished
                await session.commit()
                log.info("recording %s finished", row.id)
                crash_point("recording-finished")
        if row.status in _PENDING:
            self._spawn(row.id)
        return row

    async def mark_failed(self, recording_id: str, reason: str) -> None:
        """Asterisk (or the flow's record request) failed; a stored recording stays stored."""
        moved = await self._move(
            recording_id,
            (RecordingStatus.RECORDING, RecordingStatus.FINISHED),
            RecordingStatus.FAILED,
            error=reason,
        )
        if moved:
            self.stats.failed += 1
            log.warning("recording %s failed: %s", recording_id, reason)
            return
        async with self._session() as session:
            if await session.get(Recording, recording_id) is None:
                raise RecordingNotFound(recording_id)
        log.info("recording %s: failure report ignored, already past it", recording_id)

    async def failed_by_name(self, asterisk_name: str, reason: str) -> Recording | None:
        """Asterisk's RecordingFailed names the recording, not our id; None if not ours."""
        async with self._session() as session:
            row = await row_for_source_name(session, asterisk_name)
        if row is None:
            log.warning("RecordingFailed for unknown recording name %s", asterisk_name)
            return None
        if row.layout == Layout.STEREO:
            # One failed leg does not cost the other: like a finished leg, the ingest looks
            # at both; what the failed one left is kept, or its channel is silent.
            log.warning("recording %s: leg %s failed in Asterisk: %s", row.id, asterisk_name,
                        reason)
            if row.status in _PENDING:
                self._spawn(row.id)
            return row
        await self.mark_failed(row.id, reason)
        return await self._load(row.id)

    async def close_call(self, call_id: str, ended_at: datetime) -> int:
        """The call ended: every recording of it is kept until end + its retention days."""
        if ended_at.tzinfo is None:
            raise ValueError("ended_at must be timezone-aware")
        async with self._session() as session:
            rows = (
                await session.scalars(select(Recording).where(Recording.call_id == call_id))
            ).all()
            for row in rows:
                row.retain_until = ended_at + timedelta(days=row.retention_days)
            await session.commit()
        for row in rows:
            if row.status == RecordingStatus.STORED:
                await self._settled(row.id)
            elif row.status == RecordingStatus.PREPARED and not self._busy(row.id):
                self._spawn(row.id)
        return len(rows)

    # -- recovery ------------------------------------------------------------------------

    async def resume(self) -> ResumeReport:
        """Pick up whatever a crash, a stop or a lost ARI event left behind.

        Safe to call while running (after the event stream reconnects): recordings already
        being ingested are left to their task.
        """
        report = ResumeReport()
        async with self._session() as session:
            pending = (
                await session.scalars(
                    select(Recording.id).where(Recording.status.in_([s.value for s in _PENDING]))
                )
            ).all()
        try:
            report.spool_files_removed = await self._sweep_spool()
        except DiskError as exc:  # leftovers wait for the next resume; the rest goes on
            log.error("resume: spool not swept: %s", exc)
        for recording_id in pending:
            if not self._busy(recording_id):
                report.queued.append(recording_id)
                self._spawn(recording_id)
        try:
            names = await self._source.list_stored()
        except TransientStorageError as exc:
            log.warning("resume: source unavailable, Asterisk copies not reconciled: %s", exc)
            return report
        known = await known_source_names(self._sessions, names)
        report.orphans = sorted(set(names) - set(known))
        for recording_id, status in dict(known.values()).items():  # a stereo row: 2 names
            if status == RecordingStatus.STORED and not self._busy(recording_id):
                report.source_cleanups.append(recording_id)
                self._spawn(recording_id)
        self._log_orphans(report.orphans)
        return report

    async def orphans(self) -> list[str]:
        """Recordings in Asterisk that no row knows of: not ours to delete, only reported."""
        names = await self._source.list_stored()
        known = await known_source_names(self._sessions, names)
        found = sorted(set(names) - set(known))
        self._log_orphans(found)
        return found

    # -- the ingest task -----------------------------------------------------------------

    def _busy(self, recording_id: str) -> bool:
        task = self._tasks.get(recording_id)
        return task is not None and not task.done()

    def _spawn(self, recording_id: str) -> None:
        if not self._running:
            log.info("recording %s: pipeline not running, left for resume", recording_id)
            return
        existing = self._tasks.get(recording_id)
        if existing is not None and not existing.done():
            # Its task may be about to return (e.g. it saw LIVE): make it look once more.
            self._again.add(recording_id)
            return
        self._idle.clear()
        task = asyncio.create_task(self._run(recording_id), name=f"ingest-{recording_id}")
        self._tasks[recording_id] = task
        task.add_done_callback(partial(self._forget, recording_id))

    def _forget(self, recording_id: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(recording_id) is task:
            del self._tasks[recording_id]
        if not self._tasks:
            self._idle.set()

    async def _run(self, recording_id: str) -> None:
        attempt = 0
        while True:
            self._again.discard(recording_id)
            try:
                async with self._slots:
                    await self._advance(recording_id)
            except _RowVanished:
                log.warning("recording %s: row vanished during ingest", recording_id)
                return
            except Exception as exc:  # a task boundary: nothing may escape and be lost
                if isinstance(exc, DiskError):
                    # Not the database, and not the call's business: the recording stays
                    # in Asterisk until the folder works again.
                    log.error("recording %s: %s; kept in Asterisk, will retry", recording_id,
                              exc)
                elif failure_kind(exc) == "transient":
                    log.warning("recording %s: %s; will retry", recording_id, exc)
                else:
                    log.exception("recording %s: unexpected error; will retry", recording_id)
                self.stats.retries += 1
                if await self._stopped_within(self._backoff(attempt)):
                    return  # resume() after the next start picks it up
                attempt += 1
                continue
            if recording_id not in self._again:
                return
            attempt = 0

    async def _stopped_within(self, delay_s: float) -> bool:
        try:
            await asyncio.wait_for(self._stopping.wait(), delay_s)
        except TimeoutError:
            return False
        return True

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self._retry_max_s, self._retry_initial_s * (2 ** min(attempt, 30)))
        return random.uniform(ceiling / 2, ceiling)

    async def _advance(self, recording_id: str) -> None:
        """Move one recording as far as it can go now; each step commits before the next.

        A step that won its compare-and-set hands on the row as that move committed it
        (``UPDATE ... RETURNING``); only after anything else is the row read again.
        """
        row: Recording | None = None
        while True:
            if self._calm is not None:
                await self._calm()
            if row is None:
                row = await self._load(recording_id)
            status = RecordingStatus(row.status)
            if status == RecordingStatus.RECORDING:
                if not await self._intake.check_live(row):
                    return
                row = None
            elif status == RecordingStatus.FINISHED:
                row = await self._intake.fetch(row)
            elif status == RecordingStatus.SPOOLED:
                row = await self._intake.prepare(row)
            elif status == RecordingStatus.PREPARED:
                if not await self._ready_to_copy(row):
                    return
                outcome = await self._replicate(row)
                if outcome is False:
                    return
                row = None if outcome is True else outcome
            elif status == RecordingStatus.STORED:
                await self._clean_up(row)
                return
            else:
                return

    async def _ready_to_copy(self, row: Recording) -> bool:
        if not self._copy_after_call_ends:
            return True
        if row.retain_until is None:
            return False  # close_call() starts it again
        if row.retain_until <= self._clock():
            await self._settled(row.id)  # expired already (a 0-day class): retention deletes
            return False
        return True

    async def _replicate(self, row: Recording) -> Recording | bool:
        """Make the due copies: the ``stored`` row once this call stored it (go on to
        clean-up), True to look at the row again, False to stop here.

        A copy that is not due for a while (backoff, a nightly schedule) is left to the
        sweeper rather than keeping a task asleep for hours.
        """
        plain = Path(row.spool_path) if row.spool_path else None
        if plain is None or not await self._spool.exists(plain):
            # Asterisk keeps its copy until the recording is stored: fetch it again.
            log.warning("recording %s: prepared file gone from the spool; fetching again",
                        row.id)
            refetch = await move_row(
                self._sessions,
                row.id, (RecordingStatus.PREPARED,), RecordingStatus.FINISHED, spool_path=None,
            )
            return True if refetch is None else refetch
        state = await self._replicator.replicate(row, plain)
        if state.all_verified:
            moved = await move_row(
                self._sessions,
                row.id,
                (RecordingStatus.PREPARED,),
                RecordingStatus.STORED,
                audit={"call": row.call_id, "kind": row.kind, "sha256": row.sha256,
                       "backends": sorted(self._replicator.targets)},
                location=state.primary_location,
                stored_at=self._clock(),
            )
            if moved is None:
                return True
            self.stats.stored += 1
            log.info("recording %s stored on %s", row.id, ", ".join(self._replicator.targets))
            if await self._settled(row.id):
                return True  # retention may have taken it meanwhile: look again
            return moved
        if state.next_due is None:
            return False  # only dead copies left: `storage retry` revives them
        wait_s = (state.next_due - self._clock()).total_seconds()
        if wait_s > self._sweep_interval_s:
            return False
        return not await self._stopped_within(max(wait_s, 0.0))

    async def _clean_up(self, row: Recording) -> None:
        """Only after the ``stored`` commit: drop the Asterisk copy, then the spool file.

        With ``cache_days`` the prepared file stays as a local cache; the sweeper removes
        it when it expires.
        """
        for name in leg_names(row):  # both legs of a stereo recording
            try:
                await self._source.delete(name, row.format)
            except StorageError as exc:
                self.stats.source_delete_failures += 1
                if isinstance(exc, TransientStorageError):
                    raise  # retried by the task with backoff; resume() reconciles later
                log.error("recording %s: could not delete the Asterisk copy %s: %s",
                          row.id, name, exc)
        if self._cache_days > 0:
            return
        await self._spool.remove_named(self._spool_files(row))

    def _spool_files(self, row: Recording) -> list[Path]:
        """Every name a recording's spool files can have outside a crash: fetched in the
        source format, transcoded, encrypted, half-written, and stereo legs."""
        paths = [Path(row.spool_path)] if row.spool_path else []
        for fmt in sorted({row.format, self._audio_format, *WAV_FORMATS}):
            for stem in (row.id, *(f"{row.id}.{leg.value}" for leg in STEREO_LEGS)):
                final = self._spool.path_for(stem, fmt)
                paths += [final, final.with_name(final.name + ENCRYPTED_SUFFIX),
                          self._spool.part_path_for(stem, fmt)]
        return paths

    # -- the sweeper -----------------------------------------------------------------------

    async def _settled(self, recording_id: str) -> bool:
        """Retention's check right after ``stored``; True if it may have changed the row
        (it acted, or failed part way)."""
        if self._on_settled is None:
            return False
        try:
            return await self._on_settled(recording_id) is not None
        except Exception:  # retention's own run will retry; storing must not fail for it
            log.exception("recording %s: retention check after storing failed", recording_id)
            return True

    def _count_failure(self) -> None:
        self.stats.failed += 1

    def _count_copy_failure(self, dead: bool) -> None:
        self.stats.copy_failures += 1
        if dead:
            self.stats.dead_copies += 1

    async def _sweep_and_audit(self) -> NextRun:
        """Copies that came due (backoff over, a schedule's slot, `storage retry`), cache
        files past their days, then the copy audit if it is due (even if the sweep failed)."""
        try:
            await self.sweep()
        finally:
            await self._audit_if_due()
        return None

    async def _audit_if_due(self) -> None:
        if self._audit_interval_s <= 0:
            return
        now = self._clock()
        if self._next_audit is not None and now < self._next_audit:
            return
        self._next_audit = now + timedelta(seconds=self._audit_interval_s)
        await self.audit()

    async def audit(
        self, *, limit: int | None = None, older_than: datetime | None = None
    ) -> AuditReport:
        """Check a batch of verified copies against their backends; damaged ones are
        re-uploaded at once (their recordings go back to ``prepared``)."""
        report = await audit_copies(
            self._sessions,
            {name: t.backend for name, t in self._replicator.targets.items()},
            spool=self._spool.directory,
            limit=self._audit_limit if limit is None else limit,
            older_than=older_than,
            keyring=self._keyring,
            clock=self._clock,
        )
        if report.requeued:
            await self.sweep()
        return report

    async def sweep(self) -> int:
        """Start work on every recording with a copy due now, and on every recording still
        ``recording`` after its call closed; returns how many.

        The second kind is a lost ``RecordingFinished``: Asterisk sends a bridge
        recording's end to the apps subscribed to the bridge, and a bridge destroyed at
        hangup can take the subscription with it before the end is published (seen under
        load). Without this the row would wait for the next restart's resume, and the file
        in Asterisk's folder with it. The task asks Asterisk (``check_live``), so a
        recording that is really still live is left alone.
        """
        now = self._clock()
        async with self._session() as session:
            unfinished = (
                await session.scalars(
                    select(Recording.id).where(
                        Recording.status == RecordingStatus.RECORDING,
                        Recording.retain_until.is_not(None),  # its call closed
                    )
                )
            ).all()
            due = (
                await session.scalars(
                    select(RecordingCopy.recording_id)
                    .join(Recording, Recording.id == RecordingCopy.recording_id)
                    .where(
                        Recording.status == RecordingStatus.PREPARED,
                        *(
                            (Recording.retain_until.is_not(None),)
                            if self._copy_after_call_ends
                            else ()
                        ),
                        RecordingCopy.status == CopyStatus.PENDING,
                        (RecordingCopy.next_attempt_at.is_(None))
                        | (RecordingCopy.next_attempt_at <= now),
                    )
                    .distinct()
                )
            ).all()
            expired_cache: Sequence[Recording] = []
            if self._cache_days > 0:
                expired_cache = (
                    await session.scalars(
                        select(Recording).where(
                            Recording.status == RecordingStatus.STORED,
                            Recording.spool_path.is_not(None),
                            Recording.stored_at <= now - timedelta(days=self._cache_days),
                        )
                    )
                ).all()
        for recording_id in (*due, *unfinished):
            if not self._busy(recording_id):
                self._spawn(recording_id)
        await self._replicator.refresh_sidecars()
        for cached in expired_cache:
            await self._spool.remove_named(self._spool_files(cached))
            await self._move(
                cached.id, (RecordingStatus.STORED,), RecordingStatus.STORED, spool_path=None
            )
        return len(due) + len(unfinished)

    async def _sweep_spool(self) -> int:
        """Discard half-written ``.part`` files and spool copies of finished rows."""
        entries = [e for e in await self._spool.entries() if not self._busy(e.recording_id)]
        if not entries:
            return 0
        ids = list({e.recording_id for e in entries})
        async with self._session() as session:
            statuses = dict(
                (
                    await session.execute(
                        select(Recording.id, Recording.status).where(Recording.id.in_(ids))
                    )
                ).all()
            )
        removed = 0
        for entry in entries:
            status = statuses.get(entry.recording_id)
            done = status in (
                RecordingStatus.FAILED,
                RecordingStatus.DELETED,
                *((RecordingStatus.STORED,) if self._cache_days == 0 else ()),
            )
            if not entry.complete or done:
                await self._spool.remove(entry.path)
                removed += 1
        return removed

    # -- rows ------------------------------------------------------------------------------

    def _session(self) -> AsyncSession:
        # Rows handed out must stay readable after commit, outside any session.
        return self._sessions(expire_on_commit=False)

    async def _load(self, recording_id: str) -> Recording:
        async with self._session() as session:
            row = await session.get(Recording, recording_id)
        if row is None:
            raise _RowVanished(recording_id)
        return row

    async def _move(
        self,
        recording_id: str,
        expected: Sequence[RecordingStatus],
        to: RecordingStatus,
        audit: dict[str, object] | None = None,
        **values: Any,
    ) -> bool:
        return await move_status(self._sessions, recording_id, expected, to, audit, **values)

    @staticmethod
    def _log_orphans(orphans: Sequence[str]) -> None:
        if orphans:
            # Other applications often name recordings after the caller's number, so the
            # names stay out of INFO-and-above logs; orphans() returns them to the caller.
            log.warning(
                "%d recording(s) in Asterisk that no row knows of (left alone)", len(orphans)
            )
            log.debug("orphan recordings: %s", ", ".join(orphans))


__all__ = [
    "LOST_IN_ASTERISK",
    "PipelineStats",
    "RecordingPipeline",
    "ResumeReport",
    "storage_key",
]
