"""A WAV whose writer died keeps its audio once the header is finished."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile

from storage.wav_header import NotAWav, finish_wav_header


def crashed_wav(path: Path, seconds: float = 2.0) -> None:
    """What Asterisk leaves behind when killed: audio written, sizes still zero."""
    samples = (np.sin(np.arange(int(8000 * seconds)) * 0.3) * 8000).astype(np.int16)
    soundfile.write(path, samples, 8000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    data[4:8] = struct.pack("<I", 36)
    data[40:44] = struct.pack("<I", 0)
    path.write_bytes(bytes(data))


def test_finishes_a_crashed_header(tmp_path: Path) -> None:
    path = tmp_path / "rec.wav"
    crashed_wav(path)
    assert finish_wav_header(path) is True
    info = soundfile.info(str(path))
    assert info.frames == 16000
    assert finish_wav_header(path) is False  # idempotent: a good header is left alone


def test_leaves_a_good_file_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "ok.wav"
    soundfile.write(path, np.zeros(800, dtype=np.int16), 8000, subtype="PCM_16")
    before = path.read_bytes()
    assert finish_wav_header(path) is False
    assert path.read_bytes() == before


def test_refuses_what_is_not_a_wav(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    path.write_bytes(b"not a wav file at all, just bytes")
    with pytest.raises(NotAWav, match=r"x\.wav"):
        finish_wav_header(path)
