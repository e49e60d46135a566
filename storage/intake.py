"""From Asterisk into the spool, checked and ready to copy: the steps before the copies.

``recording -> finished`` (Asterisk is done with it), ``finished -> spooled`` (fetched,
whole, under its final name), ``spooled -> prepared`` (WAV checked, transcoded if
configured, sha256 and duration final, its copies planned). Each step commits with a
compare-and-set on the status, so ``RecordingPipeline`` can repeat any of them after a
crash; this module only knows how to take one step.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.audio_facts import AudioFacts, inspect_recording
from storage.errors import CorruptRecording
from storage.leg_merge import merge_legs
from storage.legs import STEREO_LEGS, Layout, leg_names
from storage.models import Recording, RecordingCopy, RecordingStatus, utcnow
from storage.source import RecordingSource, SourceMissing, SourceState
from storage.spool import Spool
from storage.transcode import AudioFormat, transcode
from storage.transitions import move_row, move_status
from storage.wav_header import NotAWav, finish_wav_header

log = logging.getLogger(__name__)

LOST_IN_ASTERISK = "recording lost in Asterisk"
# Asterisk's names for the formats that are RIFF/WAVE files.
WAV_FORMATS = frozenset({"wav", "wav16"})


class Intake:
    """Takes one recording one step towards ``prepared``; the pipeline decides when."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        source: RecordingSource,
        spool: Spool,
        *,
        plan: Callable[[Recording, str], Iterable[RecordingCopy]],
        audio_format: AudioFormat,
        on_failed: Callable[[], None],
    ) -> None:
        self._sessions = sessions
        self._source = source
        self._spool = spool
        # The copy rows a prepared recording needs (``Replicator.plan``).
        self._plan = plan
        self._audio_format = audio_format
        self._on_failed = on_failed

    async def check_live(self, row: Recording) -> bool:
        """A row still ``recording`` (after a restart, or a stereo leg's event): has
        Asterisk finished it meanwhile?

        A stereo row waits while either leg is live; it goes on with what is there once
        neither is (a missing leg becomes a silent channel), and is lost only when both are.
        """
        names = leg_names(row)
        states = [await self._source.state(name) for name in names]
        if SourceState.LIVE in states:
            return False
        if SourceState.STORED in states:
            await move_status(
                self._sessions,
                row.id, (RecordingStatus.RECORDING,), RecordingStatus.FINISHED,
                finished_at=utcnow(),
            )
            log.info("recording %s found finished in Asterisk", row.id)
            for name, state in zip(names, states, strict=True):
                if state == SourceState.MISSING:
                    log.warning("recording %s: leg %s is missing in Asterisk", row.id, name)
            return True
        await self._fail(row.id, (RecordingStatus.RECORDING,), LOST_IN_ASTERISK)
        return False

    async def fetch(self, row: Recording) -> Recording | None:
        """Into the spool; the ``spooled`` row as committed, or None if it did not get there
        (failed, or another writer moved it first: look again)."""
        fmt = row.format
        spool_path = self._spool.path_for(row.id, fmt)

        async def write(dest: Path) -> int:
            if row.layout == Layout.STEREO:
                return await self._fetch_legs(row, dest)
            return await self._source.fetch(row.asterisk_name, fmt, dest)

        try:
            await self._spool.receive(row.id, fmt, write)
        except SourceMissing:
            # A crash after the spool rename but before the commit: the file is whole.
            if not await self._spool.exists(spool_path):
                await self._fail(
                    row.id, (RecordingStatus.FINISHED, RecordingStatus.SPOOLED), LOST_IN_ASTERISK
                )
                return None
        except CorruptRecording as exc:  # stereo: neither leg holds readable audio
            if not await self._spool.exists(spool_path):
                await self._fail(
                    row.id, (RecordingStatus.FINISHED, RecordingStatus.SPOOLED),
                    f"corrupt recording: {exc}",
                )
                return None
        spooled = await move_row(
            self._sessions,
            row.id,
            (RecordingStatus.FINISHED, RecordingStatus.SPOOLED),
            RecordingStatus.SPOOLED,
            spool_path=str(spool_path),
        )
        log.info("recording %s spooled", row.id)
        return spooled

    async def _fetch_legs(self, row: Recording, dest: Path) -> int:
        """Both legs of a stereo row into temporary spool files, merged into ``dest``.

        The temporaries end in ``.part`` and start with the recording id, so a crash
        leftover is swept like any half-fetched file.
        """
        temps = [
            self._spool.part_path_for(f"{row.id}.{leg.value}", row.format) for leg in STEREO_LEGS
        ]
        try:
            fetched: list[Path | None] = []
            for name, tmp in zip(leg_names(row), temps, strict=True):
                try:
                    await self._source.fetch(name, row.format, tmp)
                except SourceMissing:
                    await self._spool.remove(tmp)
                    fetched.append(None)
                else:
                    fetched.append(tmp)
            if all(path is None for path in fetched):
                raise SourceMissing(f"neither leg of {row.asterisk_name} is in the source")
            merged = await asyncio.to_thread(merge_legs, (fetched[0], fetched[1]), dest)
        finally:
            await asyncio.shield(asyncio.gather(*(self._spool.remove(t) for t in temps)))
        for channel, why in sorted(merged.silent.items()):
            log.warning("recording %s: %s leg %s; its channel is silent", row.id,
                        STEREO_LEGS[channel].value, why)
        if merged.headers_finished:
            log.warning("recording %s: WAV header of %d leg(s) finished by us (Asterisk "
                        "stopped mid-recording)", row.id, merged.headers_finished)
        return await asyncio.to_thread(lambda: dest.stat().st_size)

    async def prepare(self, row: Recording) -> Recording | None:
        """Check (and transcode) the spooled file; commit its facts and plan its copies.

        Returns the row as committed (``prepared``, or ``spooled`` again after a refetch),
        or None if it did not move (failed, or another writer moved it: look again).
        """
        spool_path = Path(row.spool_path) if row.spool_path else None
        if spool_path is None or not await self._spool.exists(spool_path):
            log.info("recording %s: spool file gone, fetching again", row.id)
            return await self.fetch(row)
        try:
            with self._spool.disk_errors():
                if row.format.lower() in WAV_FORMATS and await asyncio.to_thread(
                    finish_wav_header, spool_path
                ):
                    log.warning(
                        "recording %s: WAV header finished by us (Asterisk stopped "
                        "mid-recording)", row.id,
                    )
                facts = await asyncio.to_thread(inspect_recording, spool_path, row.format)
        except (CorruptRecording, NotAWav) as exc:
            await self._fail(row.id, (RecordingStatus.SPOOLED,), f"corrupt recording: {exc}")
            await self._spool.remove(spool_path)
            return None
        prepared, fmt = spool_path, row.format
        if self._audio_format != row.format:
            with self._spool.disk_errors():
                prepared, fmt, facts = await self._transcode(row, spool_path)
        async with self._sessions(expire_on_commit=False) as session:
            moved = (
                await session.scalars(
                    update(Recording)
                    .where(Recording.id == row.id, Recording.status == RecordingStatus.SPOOLED)
                    .values(
                        status=RecordingStatus.PREPARED.value,
                        format=fmt,
                        spool_path=str(prepared),
                        sha256=facts.sha256,
                        size_bytes=facts.size_bytes,
                        duration_s=facts.duration_s,
                        error=None,
                    )
                    .returning(Recording)
                )
            ).one_or_none()
            if moved is None:
                return None
            planned = set(
                (
                    await session.scalars(
                        select(RecordingCopy.backend).where(RecordingCopy.recording_id == row.id)
                    )
                ).all()
            )
            # Prepared again after its spool file was lost: keep the copies already made.
            session.add_all(c for c in self._plan(moved, fmt) if c.backend not in planned)
            await session.commit()
        if prepared != spool_path:
            await self._spool.remove(spool_path)
        log.info("recording %s prepared (%s, %d bytes, %s s)", row.id, fmt,
                 facts.size_bytes, facts.duration_s)
        return moved

    async def _transcode(self, row: Recording, src: Path) -> tuple[Path, str, AudioFacts]:
        dest_part = self._spool.part_path_for(row.id, self._audio_format)
        result = await asyncio.to_thread(transcode, src, dest_part, self._audio_format)
        dest = self._spool.path_for(row.id, result.ext)
        await asyncio.to_thread(self._spool.commit, dest_part, dest)
        facts = await asyncio.to_thread(inspect_recording, dest, result.ext)
        return dest, result.ext, facts

    async def _fail(
        self, recording_id: str, expected: tuple[RecordingStatus, ...], reason: str
    ) -> None:
        if await move_status(
            self._sessions, recording_id, expected, RecordingStatus.FAILED, error=reason
        ):
            self._on_failed()
            log.warning("recording %s failed: %s", recording_id, reason)


__all__ = ["LOST_IN_ASTERISK", "WAV_FORMATS", "Intake"]
