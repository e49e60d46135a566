"""Transcoding to FLAC/Opus and merging two call legs, checked by decoding the result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from storage.errors import CorruptRecording, TranscodeError, TranscodeUnavailable
from storage.transcode import (
    merge_stereo,
    require_format,
    supported_formats,
    transcode,
)

RATE = 8000


def _tone(path: Path, freq: float, seconds: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.5 * np.sin(2 * np.pi * freq * t) * 32767).astype(np.int16)
    soundfile.write(path, samples, rate, subtype="PCM_16")
    return samples


def _peak_hz(samples: np.ndarray, rate: int) -> float:
    signal = samples.astype(np.float64)
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return float(np.fft.rfftfreq(len(signal), 1 / rate)[int(np.argmax(spectrum))])


def _no_leftovers(folder: Path) -> None:
    assert [p.name for p in folder.iterdir() if p.name.endswith(".part")] == []


def test_this_machine_writes_every_configurable_format() -> None:
    assert supported_formats() == {"wav", "flac", "opus"}


def test_wav_is_kept_byte_for_byte(tmp_path: Path) -> None:
    _tone(tmp_path / "in.wav", 440, 1.5)
    result = transcode(tmp_path / "in.wav", tmp_path / "out.wav", "wav")
    assert (tmp_path / "out.wav").read_bytes() == (tmp_path / "in.wav").read_bytes()
    assert (result.format, result.ext, result.samplerate, result.channels) == ("wav", "wav",
                                                                                RATE, 1)
    assert result.duration_s == pytest.approx(1.5)


@pytest.mark.parametrize(("fmt", "container"), [("flac", "FLAC"), ("opus", "OGG")])
def test_transcoded_audio_keeps_duration_and_tone(tmp_path: Path, fmt: str,
                                                  container: str) -> None:
    seconds = 12.3  # more than one block of frames
    original = _tone(tmp_path / "in.wav", 1000, seconds)
    dest = tmp_path / f"out.{fmt}"
    result = transcode(tmp_path / "in.wav", dest, fmt)  # type: ignore[arg-type]

    assert (result.format, result.ext, result.channels) == (fmt, fmt, 1)
    assert result.duration_s == pytest.approx(seconds, abs=0.02)
    info = soundfile.info(str(dest))
    assert info.format == container
    decoded, rate = soundfile.read(dest, dtype="int16")
    assert len(decoded) / rate == pytest.approx(seconds, abs=0.02)
    assert _peak_hz(decoded, rate) == pytest.approx(1000, abs=5)
    if fmt == "flac":
        assert np.array_equal(decoded, original)  # lossless
        assert dest.stat().st_size < (tmp_path / "in.wav").stat().st_size
    else:
        assert dest.stat().st_size < (tmp_path / "in.wav").stat().st_size / 4
    _no_leftovers(tmp_path)


def test_opus_at_a_rate_it_cannot_encode(tmp_path: Path) -> None:
    _tone(tmp_path / "in.wav", 440, 0.5, rate=44100)
    with pytest.raises(TranscodeError, match="44100"):
        transcode(tmp_path / "in.wav", tmp_path / "out.opus", "opus")
    assert not (tmp_path / "out.opus").exists()
    _no_leftovers(tmp_path)


def test_opus_missing_from_libsndfile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(soundfile, "available_subtypes",
                        lambda fmt=None: {"VORBIS": "Vorbis"})
    assert supported_formats() == {"wav", "flac"}
    with pytest.raises(TranscodeUnavailable, match="Opus"):
        require_format("opus")
    _tone(tmp_path / "in.wav", 440, 0.5)
    with pytest.raises(TranscodeUnavailable):
        transcode(tmp_path / "in.wav", tmp_path / "out.opus", "opus")
    require_format("flac")


def test_garbage_input_is_a_corrupt_recording(tmp_path: Path) -> None:
    (tmp_path / "in.wav").write_bytes(b"RIFF" + b"\x00" * 100)
    with pytest.raises(CorruptRecording):
        transcode(tmp_path / "in.wav", tmp_path / "out.flac", "flac")
    assert not (tmp_path / "out.flac").exists()


def test_merge_stereo_places_and_pads_the_legs(tmp_path: Path) -> None:
    caller = _tone(tmp_path / "caller.wav", 400, 10.0)
    agent = _tone(tmp_path / "agent.wav", 1200, 7.5)
    result = merge_stereo(tmp_path / "caller.wav", tmp_path / "agent.wav", tmp_path / "call.wav")

    assert (result.format, result.channels, result.samplerate) == ("wav", 2, RATE)
    assert result.duration_s == pytest.approx(10.0)
    merged, rate = soundfile.read(tmp_path / "call.wav", dtype="int16")
    assert merged.shape == (len(caller), 2)
    assert np.array_equal(merged[:, 0], caller)
    assert np.array_equal(merged[: len(agent), 1], agent)
    assert not merged[len(agent) :, 1].any()  # the shorter leg is padded with silence
    assert _peak_hz(merged[:, 0], rate) == pytest.approx(400, abs=5)
    assert _peak_hz(merged[: len(agent), 1], rate) == pytest.approx(1200, abs=5)

    # Either leg may be the longer one.
    merge_stereo(tmp_path / "agent.wav", tmp_path / "caller.wav", tmp_path / "swapped.wav")
    swapped, _ = soundfile.read(tmp_path / "swapped.wav", dtype="int16")
    assert np.array_equal(swapped[:, ::-1], merged)
    _no_leftovers(tmp_path)


def test_merge_refuses_legs_that_do_not_fit(tmp_path: Path) -> None:
    _tone(tmp_path / "a.wav", 400, 1.0)
    _tone(tmp_path / "b.wav", 400, 1.0, rate=16000)
    with pytest.raises(TranscodeError, match="sample rate"):
        merge_stereo(tmp_path / "a.wav", tmp_path / "b.wav", tmp_path / "out.wav")
    soundfile.write(tmp_path / "st.wav", np.zeros((800, 2), dtype=np.int16), RATE)
    with pytest.raises(TranscodeError, match="2 channels"):
        merge_stereo(tmp_path / "a.wav", tmp_path / "st.wav", tmp_path / "out.wav")
    assert not (tmp_path / "out.wav").exists()
    _no_leftovers(tmp_path)
