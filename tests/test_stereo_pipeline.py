"""Stereo recordings: two Asterisk legs, one row, one file with the caller left and the
agent right. Real WAV files, the folder-backed fake Asterisk, SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import io
import logging
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from storage_fakes import DirSource, db_url, sessions, stored_files

from storage.audio_facts import digest_file
from storage.backends.local import LocalBackend
from storage.deletion import RecordingDeleter
from storage.legs import (
    Layout,
    Leg,
    base_name,
    belongs_to,
    leg_name,
    leg_names,
    source_names,
)
from storage.models import Recording, RecordingKind, RecordingStatus
from storage.pipeline import LOST_IN_ASTERISK, RecordingPipeline, storage_key
from storage.transcode import AudioFormat

__all__ = ["db_url", "sessions"]  # fixtures, imported for pytest

RATE = 8000
CALLER_HZ = 440.0
AGENT_HZ = 1000.0


def tone_wav(freq_hz: float, seconds: float, rate: int = RATE) -> bytes:
    t = np.arange(round(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * freq_hz * t) * 32767).astype(np.int16)
    buf = io.BytesIO()
    soundfile.write(buf, samples, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def unfinished_header(wav: bytes) -> bytes:
    """As Asterisk leaves a WAV when it dies mid-recording: RIFF and data sizes zero."""
    data_at = wav.index(b"data")
    return wav[:4] + struct.pack("<I", 0) + wav[8 : data_at + 4] + struct.pack(
        "<I", 0) + wav[data_at + 8 :]


def peak_hz(channel: npt.NDArray[np.float64], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(channel * np.hanning(len(channel))))
    return float(np.fft.rfftfreq(len(channel), 1 / rate)[int(np.argmax(spectrum))])


def read_stereo(path: Path) -> tuple[npt.NDArray[np.float64], int]:
    data, rate = soundfile.read(str(path), dtype="float64", always_2d=True)
    assert data.shape[1] == 2, f"{path} has {data.shape[1]} channel(s)"
    return np.asarray(data, dtype=np.float64), int(rate)


@dataclass
class Rig:
    sessions: async_sessionmaker[AsyncSession]
    source: DirSource
    spool: Path
    store: Path
    backend: LocalBackend

    def pipeline(self, audio_format: AudioFormat = "wav") -> RecordingPipeline:
        return RecordingPipeline(
            self.sessions, self.source, self.spool, self.backend,
            retry_initial_s=0.01, retry_max_s=0.05, stop_timeout_s=0.5,
            audio_format=audio_format,
        )

    async def row(self, recording_id: str) -> Recording:
        async with self.sessions() as session:
            row = await session.get(Recording, recording_id)
        assert row is not None
        return row

    async def count_rows(self) -> int:
        async with self.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(Recording)) or 0)

    def spool_files(self) -> list[Path]:
        return sorted(self.spool.iterdir()) if self.spool.exists() else []

    def put_legs(self, row: Recording, caller: bytes | None, agent: bytes | None) -> None:
        for name, data in zip(leg_names(row), (caller, agent), strict=True):
            if data is not None:
                self.source.put(name, data)


@pytest.fixture
async def rig(sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> AsyncIterator[Rig]:
    yield Rig(
        sessions, DirSource(tmp_path / "asterisk"), tmp_path / "spool", tmp_path / "store",
        LocalBackend(tmp_path / "store"),
    )


async def begin_stereo(pipeline: RecordingPipeline, call_id: str = "call-1") -> Recording:
    return await pipeline.begin(
        call_id=call_id, kind=RecordingKind.CONVERSATION, legal_basis="consent",
        retention_class="default", retention_days=30, layout=Layout.STEREO,
    )


async def finish_both(pipeline: RecordingPipeline, row: Recording) -> None:
    for name in leg_names(row):
        await pipeline.finished(name)
    await pipeline.wait_idle()


def assert_stored_stereo(rig: Rig, row: Recording) -> Path:
    """One stored file, of the row's bytes; nothing left in Asterisk or the spool."""
    assert row.status == RecordingStatus.STORED, (row.status, row.error)
    assert row.layout == Layout.STEREO
    path = rig.store.resolve() / storage_key(row)
    assert stored_files(rig.store) == [path]
    digest = digest_file(path)
    assert (row.sha256, row.size_bytes) == (digest.sha256, digest.size_bytes)
    assert row.location == path.as_uri()
    for name in leg_names(row):
        assert not rig.source.has(name), f"{name} left in Asterisk"
    assert rig.spool_files() == []
    return path


# -- naming ------------------------------------------------------------------------------


def test_leg_names_lead_back_to_their_row() -> None:
    name = "pbxb-0b6f5a7e-1d2c-4c3b-9a8f-7e6d5c4b3a21"
    assert source_names(name, "mixed") == (name,)
    assert source_names(name, "stereo") == (f"{name}-caller", f"{name}-agent")
    assert leg_name(name, Leg.AGENT) == f"{name}-agent"
    assert base_name(f"{name}-caller") == name
    assert base_name(f"{name}-agent") == name
    assert base_name(name) == name
    assert base_name("-caller") == "-caller"  # nothing before the suffix: not a leg
    assert belongs_to(f"{name}-caller", name, "stereo")
    assert not belongs_to(f"{name}-caller", name, "mixed")  # another app's name
    assert not belongs_to(name, name, "stereo")  # a stereo row has no recording of its own
    assert belongs_to(name, name, "mixed")


async def test_stereo_needs_wav_legs(rig: Rig) -> None:
    pipeline = rig.pipeline()
    with pytest.raises(ValueError, match="WAV"):
        await pipeline.begin(
            call_id="c", kind=RecordingKind.CONVERSATION, legal_basis="consent",
            retention_class="default", retention_days=1, format="gsm", layout="stereo",
        )
    with pytest.raises(ValueError):
        await pipeline.begin(
            call_id="c", kind=RecordingKind.CONVERSATION, legal_basis="consent",
            retention_class="default", retention_days=1, layout="surround",
        )


# -- the happy path ----------------------------------------------------------------------


async def test_two_legs_become_one_stereo_wav_caller_left_agent_right(rig: Rig) -> None:
    async with rig.pipeline() as pipeline:
        row = await begin_stereo(pipeline)
        assert row.layout == "stereo"
        assert leg_names(row) == (f"{row.asterisk_name}-caller", f"{row.asterisk_name}-agent")
        # The agent's leg ends a little earlier (its recording was stopped first).
        rig.put_legs(row, tone_wav(CALLER_HZ, 2.0), tone_wav(AGENT_HZ, 1.5))
        await finish_both(pipeline, row)
        assert pipeline.stats.stored == 1
    stored = await rig.row(row.id)
    path = assert_stored_stereo(rig, stored)
    # Both legs deleted (a burst of two events may clean up twice: deletes are idempotent).
    assert set(rig.source.deletes) == set(leg_names(row))
    assert await rig.count_rows() == 1

    audio, rate = read_stereo(path)
    assert rate == RATE
    assert stored.duration_s == pytest.approx(2.0)  # the shorter leg is padded
    assert peak_hz(audio[:, 0], rate) == pytest.approx(CALLER_HZ, abs=5)
    assert peak_hz(audio[:RATE, 1], rate) == pytest.approx(AGENT_HZ, abs=5)
    assert not np.any(audio[round(1.6 * RATE) :, 1])  # silence after the agent's leg ended


async def test_one_leg_finished_waits_for_the_other(rig: Rig) -> None:
    async with rig.pipeline() as pipeline:
        row = await begin_stereo(pipeline)
        caller, agent = leg_names(row)
        rig.put_legs(row, tone_wav(CALLER_HZ, 1.0), tone_wav(AGENT_HZ, 1.0))
        rig.source.live.add(agent)
        await pipeline.finished(caller)
        await pipeline.finished(caller)  # a repeated event changes nothing
        await pipeline.wait_idle()
        waiting = await rig.row(row.id)
        assert waiting.status == RecordingStatus.RECORDING
        assert rig.source.fetches == [] and rig.source.deletes == []

        rig.source.live.discard(agent)
        await pipeline.finished(agent)
        await pipeline.wait_idle()
    assert_stored_stereo(rig, await rig.row(row.id))


async def test_transcoded_to_flac_and_opus_after_the_merge(rig: Rig) -> None:
    for fmt in ("flac", "opus"):
        async with rig.pipeline(audio_format=fmt) as pipeline:  # type: ignore[arg-type]
            row = await begin_stereo(pipeline, call_id=f"call-{fmt}")
            rig.put_legs(row, tone_wav(CALLER_HZ, 1.5), tone_wav(AGENT_HZ, 1.5))
            await finish_both(pipeline, row)
        stored = await rig.row(row.id)
        assert stored.status == RecordingStatus.STORED and stored.format == fmt
        path = rig.store.resolve() / storage_key(stored)
        assert path.suffix == f".{fmt}"
        assert digest_file(path).sha256 == stored.sha256
        audio, rate = read_stereo(path)
        assert peak_hz(audio[:, 0], rate) == pytest.approx(CALLER_HZ, abs=10)
        assert peak_hz(audio[:, 1], rate) == pytest.approx(AGENT_HZ, abs=10)
        assert stored.duration_s == pytest.approx(1.5, abs=0.05)
    assert rig.spool_files() == []


# -- a leg that is not there -------------------------------------------------------------


async def test_missing_leg_is_stored_as_silence_with_a_warning(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="storage.pipeline")
    async with rig.pipeline() as pipeline:
        row = await begin_stereo(pipeline)
        caller, agent = leg_names(row)
        rig.put_legs(row, tone_wav(CALLER_HZ, 1.0), None)
        await pipeline.finished(caller)
        await pipeline.wait_idle()
    stored = await rig.row(row.id)
    path = assert_stored_stereo(rig, stored)
    audio, rate = read_stereo(path)
    assert peak_hz(audio[:, 0], rate) == pytest.approx(CALLER_HZ, abs=5)
    assert not np.any(audio[:, 1])
    assert stored.duration_s == pytest.approx(1.0)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(agent in w and "missing" in w for w in warnings), warnings
    assert any("agent leg missing" in w and "silent" in w for w in warnings), warnings


async def test_failed_leg_does_not_cost_the_other(rig: Rig) -> None:
    """Asterisk's RecordingFailed for one leg: the row is found by the leg's name, and
    the other leg is kept."""
    async with rig.pipeline() as pipeline:
        row = await begin_stereo(pipeline)
        caller, agent = leg_names(row)
        rig.put_legs(row, None, tone_wav(AGENT_HZ, 1.0))
        rig.source.live.add(agent)
        found = await pipeline.failed_by_name(caller, "Asterisk reported failure")
        assert found is not None and found.id == row.id
        await pipeline.wait_idle()
        assert (await rig.row(row.id)).status == RecordingStatus.RECORDING  # agent still live
        rig.source.live.discard(agent)
        await pipeline.finished(agent)
        await pipeline.wait_idle()
    path = assert_stored_stereo(rig, await rig.row(row.id))
    audio, rate = read_stereo(path)
    assert not np.any(audio[:, 0])
    assert peak_hz(audio[:, 1], rate) == pytest.approx(AGENT_HZ, abs=5)


async def test_both_legs_missing_fails_the_row(rig: Rig) -> None:
    async with rig.pipeline() as pipeline:
        row = await begin_stereo(pipeline)
        found = await pipeline.finished(leg_names(row)[1])
        assert found is not None and found.id == row.id
        await pipeline.wait_idle()
        assert pipeline.stats.failed == 1
    lost = await rig.row(row.id)
    assert lost.status == RecordingStatus.FAILED
    assert lost.error == LOST_IN_ASTERISK
    assert stored_files(rig.store) == []
    assert rig.spool_files() == []


async def test_unreadable_leg_is_silent_and_two_unreadable_legs_fail(rig: Rig) -> None:
    garbage = b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(500)
    async with rig.pipeline() as pipeline:
        kept = await begin_stereo(pipeline, "call-1")
        rig.put_legs(kept, tone_wav(CALLER_HZ, 1.0), garbage)
        await finish_both(pipeline, kept)
        broken = await begin_stereo(pipeline, "call-2")
        rig.put_legs(broken, garbage, garbage)
        await finish_both(pipeline, broken)
    stored = await rig.row(kept.id)
    assert stored.status == RecordingStatus.STORED
    audio, _ = read_stereo(rig.store.resolve() / storage_key(stored))
    assert np.any(audio[:, 0]) and not np.any(audio[:, 1])

    failed = await rig.row(broken.id)
    assert failed.status == RecordingStatus.FAILED
    assert failed.error is not None and failed.error.startswith("corrupt recording")
    assert all(rig.source.has(name) for name in leg_names(broken))  # kept for a human
    assert rig.spool_files() == []


async def test_legs_asterisk_could_not_close_keep_their_audio(rig: Rig) -> None:
    async with rig.pipeline() as pipeline:
        row = await begin_stereo(pipeline)
        rig.put_legs(
            row, unfinished_header(tone_wav(CALLER_HZ, 1.0)),
            unfinished_header(tone_wav(AGENT_HZ, 1.0)),
        )
        await finish_both(pipeline, row)
    stored = await rig.row(row.id)
    audio, rate = read_stereo(assert_stored_stereo(rig, stored))
    assert stored.duration_s == pytest.approx(1.0)
    assert peak_hz(audio[:, 0], rate) == pytest.approx(CALLER_HZ, abs=5)
    assert peak_hz(audio[:, 1], rate) == pytest.approx(AGENT_HZ, abs=5)


# -- crashes and restarts ----------------------------------------------------------------


async def test_resume_after_a_crash_between_the_two_leg_events(rig: Rig) -> None:
    """The caller's leg finished, then the service died; the agent's leg finished while
    it was down (its event lost): the restart stores the recording once."""
    async with rig.pipeline() as pipeline:
        row = await begin_stereo(pipeline)
        caller, agent = leg_names(row)
        rig.put_legs(row, tone_wav(CALLER_HZ, 1.0), tone_wav(AGENT_HZ, 1.0))
        rig.source.live.add(agent)
        await pipeline.finished(caller)
        await pipeline.wait_idle()
    assert (await rig.row(row.id)).status == RecordingStatus.RECORDING
    rig.source.live.discard(agent)
    # and a temporary leg file of an interrupted merge, to be swept
    rig.spool.mkdir(exist_ok=True)
    (rig.spool / f"{row.id}.caller.wav.part").write_bytes(b"half")

    async with rig.pipeline() as pipeline:
        await pipeline.wait_idle()
        assert pipeline.stats.stored == 1
    assert_stored_stereo(rig, await rig.row(row.id))
    assert await rig.count_rows() == 1


async def test_resume_waits_for_a_leg_still_live_then_its_event(rig: Rig) -> None:
    async with rig.pipeline() as pipeline:
        row = await begin_stereo(pipeline)
        caller, agent = leg_names(row)
        rig.put_legs(row, tone_wav(CALLER_HZ, 1.0), tone_wav(AGENT_HZ, 1.0))
        rig.source.live.add(agent)
        await pipeline.finished(caller)
        await pipeline.wait_idle()

    async with rig.pipeline() as pipeline:  # restarted while the agent leg still records
        report = await pipeline.resume()
        await pipeline.wait_idle()
        assert report.orphans == []
        assert (await rig.row(row.id)).status == RecordingStatus.RECORDING
        rig.source.live.discard(agent)
        await pipeline.finished(agent)
        await pipeline.wait_idle()
    assert_stored_stereo(rig, await rig.row(row.id))


async def test_stored_row_leftover_legs_are_cleaned_on_resume(rig: Rig) -> None:
    async with rig.pipeline() as pipeline:
        row = await begin_stereo(pipeline)
        rig.put_legs(row, tone_wav(CALLER_HZ, 1.0), tone_wav(AGENT_HZ, 1.0))
        await finish_both(pipeline, row)
    rig.put_legs(row, tone_wav(CALLER_HZ, 1.0), tone_wav(AGENT_HZ, 1.0))  # deletes "lost"
    rig.source.deletes.clear()
    pipeline = rig.pipeline()
    await pipeline.start(resume=False)
    try:
        report = await pipeline.resume()
        await pipeline.wait_idle()
        assert pipeline.stats.stored == 0
    finally:
        await pipeline.stop()
    assert report.source_cleanups == [row.id]  # one row, though two names
    assert report.orphans == []
    assert sorted(rig.source.deletes) == sorted(leg_names(row))
    assert_stored_stereo(rig, await rig.row(row.id))


async def test_legs_are_never_orphans_but_look_alikes_are(rig: Rig) -> None:
    async with rig.pipeline() as pipeline:
        stereo = await begin_stereo(pipeline, "call-1")
        mixed = await pipeline.begin(
            call_id="call-2", kind=RecordingKind.CONVERSATION, legal_basis="consent",
            retention_class="default", retention_days=30,
        )
        rig.source.live.add(mixed.asterisk_name)  # still recording
        rig.put_legs(stereo, tone_wav(CALLER_HZ, 0.3), tone_wav(AGENT_HZ, 0.3))
        # Not ours: another app's name shaped like a leg, and a "leg" of a mixed row.
        rig.source.put("queue-7-caller", tone_wav(CALLER_HZ, 0.2))
        rig.source.put(f"{mixed.asterisk_name}-agent", tone_wav(AGENT_HZ, 0.2))
        expected = sorted(["queue-7-caller", f"{mixed.asterisk_name}-agent"])
        assert await pipeline.orphans() == expected
        report = await pipeline.resume()
        assert report.orphans == expected
        await pipeline.wait_idle()
    assert rig.source.has("queue-7-caller")
    assert rig.source.has(f"{mixed.asterisk_name}-agent")
    assert (await rig.row(stereo.id)).status == RecordingStatus.STORED


# -- deletion ---------------------------------------------------------------------------


async def test_deletion_removes_both_legs_from_asterisk(rig: Rig, tmp_path: Path) -> None:
    async with rig.pipeline() as pipeline:
        row = await begin_stereo(pipeline)
        rig.put_legs(row, tone_wav(CALLER_HZ, 1.0), tone_wav(AGENT_HZ, 1.0))
        await finish_both(pipeline, row)
    stored = await rig.row(row.id)
    copy = rig.store.resolve() / storage_key(stored)
    assert copy.exists()
    rig.put_legs(row, tone_wav(CALLER_HZ, 1.0), tone_wav(AGENT_HZ, 1.0))  # left behind
    rig.source.put("someone-elses", tone_wav(CALLER_HZ, 0.2))

    deleter = RecordingDeleter(
        rig.sessions, {"local": rig.backend}, spool_dir=rig.spool, source=rig.source
    )
    outcome = await deleter.request(row.id, reason="manual", actor="test")
    assert outcome.done, outcome.pending
    assert not copy.exists()
    for name in leg_names(row):
        assert not rig.source.has(name)
    assert rig.source.has("someone-elses")
    asterisk = sorted(w["key"] for w in outcome.deleted_where if w["backend"] == "asterisk")
    assert asterisk == sorted(leg_names(row))
    assert (await rig.row(row.id)).status == RecordingStatus.DELETED


async def test_stored_bytes_hash_is_the_rows(rig: Rig) -> None:
    async with rig.pipeline() as pipeline:
        row = await begin_stereo(pipeline)
        rig.put_legs(row, tone_wav(CALLER_HZ, 0.5), tone_wav(AGENT_HZ, 0.5))
        await finish_both(pipeline, row)
    stored = await rig.row(row.id)
    path = rig.store.resolve() / storage_key(stored)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == stored.sha256
    assert soundfile.info(str(path)).channels == 2
