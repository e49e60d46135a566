"""Asterisk's recordings read from its folder (``[ari] recordings_dir``): copied and
deleted there, and taken over ARI whenever the folder does not have the file, so a wrong
folder costs requests, never a recording. ARI is a real HTTP server on 127.0.0.1
answering as Asterisk does for the stored recordings it has."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from test_ari_rest import Recorder, Reply, client

from pbx_bridge.ari import AriClient
from pbx_bridge.config import AriSettings, ConfigError
from pbx_bridge.health_check.asterisk import check_recordings_dir_is_asterisks
from pbx_bridge.health_check.findings import Status
from pbx_bridge.recording_source import (
    AriRecordingSource,
    LocalRecordingSource,
    check_recordings_dir,
    recording_source,
)
from storage.source import SourceMissing

AUDIO = b"RIFF" + bytes(range(256)) * 40


def recordings_in(folder: Path, *names: str) -> Path:
    """A recording folder as Asterisk leaves it: ``name.wav`` for each name."""
    folder.mkdir()
    for name in names:
        (folder / f"{name}.wav").write_bytes(AUDIO)
    return folder


@pytest.fixture
async def ari() -> AsyncIterator[tuple[Recorder, AriClient]]:
    rec = Recorder()
    async with client(rec) as ari:
        yield rec, ari


async def test_default_is_ari_and_a_folder_is_explicit(
    ari: tuple[Recorder, AriClient], tmp_path: Path
) -> None:
    _, client_ = ari
    assert isinstance(recording_source(client_, None), AriRecordingSource)
    assert isinstance(recording_source(client_, tmp_path), LocalRecordingSource)
    assert AriSettings().recordings_dir is None


async def test_a_file_in_the_folder_is_copied_and_deleted_without_a_request(
    ari: tuple[Recorder, AriClient], tmp_path: Path
) -> None:
    rec, client_ = ari
    folder = recordings_in(tmp_path / "recording", "pbxb-r1")
    source = LocalRecordingSource(AriRecordingSource(client_), folder)
    dest = tmp_path / "spooled.wav.part"
    assert await source.fetch("pbxb-r1", "wav", dest) == len(AUDIO)
    assert dest.read_bytes() == AUDIO
    assert (folder / "pbxb-r1.wav").exists()  # kept until the recording is stored
    await source.delete("pbxb-r1", "wav")
    assert list(folder.iterdir()) == []
    assert rec.requests == [] and source.fallbacks == 0


async def test_a_file_not_in_the_folder_is_taken_over_ari(
    ari: tuple[Recorder, AriClient], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rec, client_ = ari
    source = LocalRecordingSource(AriRecordingSource(client_), tmp_path)
    rec.then(Reply(200, chunks=[AUDIO]), Reply(204))
    dest = tmp_path / "spooled.wav.part"
    assert await source.fetch("pbxb-r2", "wav", dest) == len(AUDIO)
    assert dest.read_bytes() == AUDIO
    await source.delete("pbxb-r2", "wav")  # not here either: Asterisk deletes its own
    assert [(r.method, r.path) for r in rec.requests] == [
        ("GET", "/ari/recordings/stored/pbxb-r2/file"),
        ("DELETE", "/ari/recordings/stored/pbxb-r2"),
    ]
    assert source.fallbacks == 1  # the fetch; a delete of a file gone is no news
    assert "is this Asterisk's recording folder?" in caplog.text
    assert "pbxb-r2" in caplog.text


async def test_missing_in_both_is_missing(
    ari: tuple[Recorder, AriClient], tmp_path: Path
) -> None:
    rec, client_ = ari
    rec.then(Reply(404, json={"message": "Recording not found"}))
    source = LocalRecordingSource(AriRecordingSource(client_), tmp_path)
    with pytest.raises(SourceMissing):
        await source.fetch("pbxb-r3", "wav", tmp_path / "x.part")


async def test_names_asterisk_would_keep_in_a_subfolder_go_over_ari(
    ari: tuple[Recorder, AriClient], tmp_path: Path
) -> None:
    rec, client_ = ari
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "r.wav").write_bytes(AUDIO)
    rec.then(Reply(200, chunks=[AUDIO]))
    source = LocalRecordingSource(AriRecordingSource(client_), tmp_path)
    await source.fetch("sub/r", "wav", tmp_path / "x.part")
    assert [r.raw_path for r in rec.requests] == ["/ari/recordings/stored/sub%2Fr/file"]


def test_the_folder_is_checked_at_start(tmp_path: Path) -> None:
    check_recordings_dir(tmp_path)
    with pytest.raises(ConfigError, match=r"recordings_dir .* is not a folder"):
        check_recordings_dir(tmp_path / "absent")
    with pytest.raises(ConfigError, match="absolute path"):
        check_recordings_dir(Path("var/spool"))
    with pytest.raises(ValidationError, match="absolute path"):
        AriSettings(recordings_dir=Path("relative/recording"))


async def test_check_tells_whether_the_folder_is_asterisks(
    ari: tuple[Recorder, AriClient], tmp_path: Path
) -> None:
    rec, client_ = ari
    mine = recordings_in(tmp_path / "mine", "pbxb-a", "pbxb-b")
    spool = tmp_path / "spool"
    listed = [{"name": "pbxb-a", "format": "wav"}, {"name": "pbxb-b", "format": "wav"}]
    rec.then(Reply(200, json=listed),
             Reply(200, json=[*listed, {"name": "other", "format": "wav"}]),
             Reply(200, json=[]), Reply(200, json={"value": str(spool)}),
             Reply(200, json=[]), Reply(200, json={"value": "/var/spool/asterisk"}))
    check = check_recordings_dir_is_asterisks
    (holds,) = await check(client_, mine)
    assert holds.status is Status.OK and "holds the 2 recording(s)" in holds.message
    (partly,) = await check(client_, mine)
    assert partly.status is Status.WARNING
    assert "holds 2 of the 3 recording(s)" in partly.message
    (absent,) = await check(client_, spool / "recording")
    assert absent.status is Status.PROBLEM and "is not a folder" in absent.message
    assert len(rec.requests) == 2  # refused before asking Asterisk
    # Nothing recorded now: Asterisk's own name for its folder decides.
    (spool / "recording").mkdir(parents=True)
    (by_name,) = await check(client_, spool / "recording")
    assert by_name.status is Status.OK and "by its ASTSPOOLDIR" in by_name.message
    (unsure,) = await check(client_, mine)
    assert unsure.status is Status.WARNING
    assert "/var/spool/asterisk/recording" in unsure.message
