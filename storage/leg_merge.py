"""Two fetched call legs into the one stereo file a stereo recording row stands for.

A leg can be missing (Asterisk never wrote it, or lost it) or unreadable; the other leg
is still the call's recording, so the missing one becomes a silent channel rather than
costing the whole conversation. Only when neither leg holds audio is there nothing to
keep. Legs Asterisk could not close (it crashed mid-call) get their WAV header finished
first, as a mixed recording would in the pipeline.

Blocking: the pipeline runs it in a worker thread.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from storage.atomic_write import TEMP_SUFFIX
from storage.errors import CorruptRecording
from storage.transcode import TranscodeResult, merge_stereo
from storage.wav_header import NotAWav, finish_wav_header


@dataclass(frozen=True)
class LegMerge:
    result: TranscodeResult
    # Channel index -> why that channel is silent ("missing", or what was wrong with it).
    silent: dict[int, str]
    headers_finished: int  # legs whose WAV header Asterisk had left unfinished


def merge_legs(legs: tuple[Path | None, Path | None], dest: Path) -> LegMerge:
    """Write ``dest`` as a 16-bit stereo WAV: ``legs[0]`` left, ``legs[1]`` right.

    ``None`` means the leg was missing. Raises ``CorruptRecording`` if no leg is usable.
    """
    silent: dict[int, str] = {}
    usable: dict[int, tuple[Path, int]] = {}
    finished = 0
    for channel, path in enumerate(legs):
        if path is None:
            silent[channel] = "missing"
            continue
        try:
            finished += finish_wav_header(path)
            info = soundfile.info(str(path))
        except (NotAWav, soundfile.LibsndfileError, OSError) as exc:
            silent[channel] = f"unreadable: {exc}"
            continue
        if info.channels != 1 or info.samplerate <= 0:
            silent[channel] = f"not a mono leg ({info.channels} ch, {info.samplerate} Hz)"
            continue
        usable[channel] = (path, info.samplerate)
    if not usable:
        raise CorruptRecording(
            "no usable leg: " + "; ".join(f"channel {c} {why}" for c, why in sorted(silent.items()))
        )
    rates = {rate for _, rate in usable.values()}
    if len(rates) > 1:
        # Both legs are recorded by the same Asterisk in the same format; differing
        # rates mean something is badly wrong, and resampling would hide it.
        raise CorruptRecording(f"legs differ in sample rate: {sorted(rates)}")
    rate = rates.pop()
    silence: Path | None = None
    try:
        paths: list[Path] = []
        for channel in range(len(legs)):
            if channel in usable:
                paths.append(usable[channel][0])
                continue
            if silence is None:
                silence = _empty_wav(dest.parent, dest.name, rate)
            paths.append(silence)
        result = merge_stereo(paths[0], paths[1], dest)
    finally:
        if silence is not None:
            silence.unlink(missing_ok=True)
    return LegMerge(result, silent, finished)


def _empty_wav(folder: Path, prefix: str, rate: int) -> Path:
    """A mono WAV with no frames: ``merge_stereo`` pads it to the other leg's length."""
    fd, name = tempfile.mkstemp(dir=folder, prefix=f"{prefix}.silence.", suffix=TEMP_SUFFIX)
    os.close(fd)
    path = Path(name)
    try:
        soundfile.write(str(path), np.zeros(0, dtype=np.int16), rate, format="WAV",
                        subtype="PCM_16")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path
