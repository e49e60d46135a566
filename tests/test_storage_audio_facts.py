"""What the pipeline vouches for about a file: digest, duration, and that it is sane audio."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
import soundfile
from storage_fakes import wav_bytes

from storage.audio_facts import digest_file, inspect_recording
from storage.errors import CorruptRecording


@pytest.mark.parametrize(("rate", "seconds", "channels"), [(8000, 1.5, 1), (16000, 0.25, 1),
                                                          (48000, 2.0, 2)])
def test_real_wav_facts(tmp_path: Path, rate: int, seconds: float, channels: int) -> None:
    data = wav_bytes(seconds, samplerate=rate, channels=channels)
    path = tmp_path / "r.wav"
    path.write_bytes(data)
    facts = inspect_recording(path, "wav")
    assert facts.sha256 == hashlib.sha256(data).hexdigest()
    assert facts.size_bytes == len(data)
    assert facts.duration_s == pytest.approx(seconds)
    assert (facts.samplerate, facts.channels) == (rate, channels)


def test_digest_in_chunks_matches_hashlib(tmp_path: Path) -> None:
    data = np.random.default_rng(1).bytes(3 * 1024 * 1024 + 17)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    digest = digest_file(path)
    assert (digest.size_bytes, digest.sha256) == (len(data), hashlib.sha256(data).hexdigest())


def test_empty_recording_is_sane(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(wav_bytes(0.0))
    assert inspect_recording(path, "wav").duration_s == 0.0


def _odd_rate_wav() -> bytes:
    buf = io.BytesIO()
    soundfile.write(buf, np.zeros(100, dtype=np.int16), 12345, format="WAV")
    return buf.getvalue()


@pytest.mark.parametrize(
    "data",
    [b"", b"not audio at all" * 10, b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(200), _odd_rate_wav()],
    ids=["empty", "text", "bad-header", "odd-rate"],
)
def test_corrupt_files_are_refused(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(data)
    with pytest.raises(CorruptRecording):
        inspect_recording(path, "wav")


def test_undecodable_formats_are_digested_only(tmp_path: Path) -> None:
    path = tmp_path / "r.ulaw"
    path.write_bytes(b"\xff" * 800)
    facts = inspect_recording(path, "ulaw")
    assert facts.duration_s is None and facts.size_bytes == 800
