"""Turn a finished WAV into the stored format, and two call legs into one stereo file.

Asterisk records 16-bit PCM WAV; FLAC halves it losslessly, Opus shrinks speech about
tenfold. Audio is streamed in blocks, so an hour-long call never sits in memory. The output
appears whole or not at all (``atomic_output``). Blocking: the pipeline runs it in a thread.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile

from storage.atomic_write import atomic_output
from storage.errors import CorruptRecording, TranscodeError, TranscodeUnavailable

AudioFormat = Literal["wav", "flac", "opus"]

BLOCK_FRAMES = 64 * 1024
# Opus encodes only at these input rates; libsndfile does not resample.
OPUS_RATES = frozenset({8000, 12000, 16000, 24000, 48000})
# File extension (no dot) each stored format gets; Ogg Opus files are ".opus" (RFC 7845).
EXTENSIONS: dict[str, str] = {"wav": "wav", "flac": "flac", "opus": "opus"}


@dataclass(frozen=True)
class TranscodeResult:
    format: str
    ext: str
    samplerate: int
    channels: int
    duration_s: float


def supported_formats() -> frozenset[str]:
    """Formats this machine's libsndfile can write; check the configured one at start-up."""
    formats = {"wav"}
    if "FLAC" in soundfile.available_formats():
        formats.add("flac")
    if "OGG" in soundfile.available_formats() and "OPUS" in soundfile.available_subtypes("OGG"):
        formats.add("opus")
    return frozenset(formats)


def require_format(fmt: str) -> None:
    """Raise ``TranscodeUnavailable`` unless ``fmt`` can be written here."""
    if fmt not in EXTENSIONS:
        raise TranscodeUnavailable(
            f"unknown audio format {fmt!r} (choose from {', '.join(sorted(EXTENSIONS))})"
        )
    if fmt not in supported_formats():
        raise TranscodeUnavailable(
            f"storage.format = {fmt!r}, but the installed libsndfile "
            f"({soundfile.__libsndfile_version__}) cannot write it; use a libsndfile built "
            "with Ogg/Opus (1.0.29 or later with libopus) or choose \"flac\" or \"wav\""
        )


def extension_for(fmt: AudioFormat) -> str:
    return EXTENSIONS[fmt]


def transcode(src: Path, dest: Path, fmt: AudioFormat) -> TranscodeResult:
    """Write ``src`` to ``dest`` as ``fmt`` (a WAV is copied byte for byte)."""
    require_format(fmt)
    info = _info(src)
    if fmt == "wav":
        if info.format != "WAV":
            raise TranscodeError(f"{src}: is {info.format}, not WAV; cannot keep it as WAV")
        with atomic_output(dest) as tmp:
            shutil.copyfile(src, tmp)
        return TranscodeResult(
            "wav", "wav", info.samplerate, info.channels, info.frames / info.samplerate
        )
    if fmt == "opus":
        if info.samplerate not in OPUS_RATES:
            raise TranscodeError(
                f"{src}: Opus cannot encode {info.samplerate} Hz audio "
                f"(only {', '.join(str(r) for r in sorted(OPUS_RATES))})"
            )
        out_format, subtype, dtype = "OGG", "OPUS", "float32"
    else:
        out_format, subtype, dtype = "FLAC", "PCM_16", "int16"
    frames = 0
    with atomic_output(dest) as tmp:
        try:
            with (
                soundfile.SoundFile(src) as reader,
                soundfile.SoundFile(
                    tmp,
                    "w",
                    samplerate=info.samplerate,
                    channels=info.channels,
                    format=out_format,
                    subtype=subtype,
                ) as writer,
            ):
                for block in reader.blocks(blocksize=BLOCK_FRAMES, dtype=dtype, always_2d=True):
                    writer.write(block)
                    frames += len(block)
        except soundfile.LibsndfileError as exc:
            raise TranscodeError(f"{src}: writing {fmt} failed: {exc}") from exc
    return TranscodeResult(fmt, EXTENSIONS[fmt], info.samplerate, info.channels,
                           frames / info.samplerate)


def merge_stereo(left: Path, right: Path, dest: Path) -> TranscodeResult:
    """Two mono legs of one call (caller left, agent right) as one 16-bit stereo WAV.

    Both legs start when the call's recording starts, so they are aligned at their first
    sample; the shorter one is padded with silence to the longer one's length.
    """
    left_info, right_info = _info(left), _info(right)
    for path, info in ((left, left_info), (right, right_info)):
        if info.channels != 1:
            raise TranscodeError(f"{path}: has {info.channels} channels; a call leg is mono")
    if left_info.samplerate != right_info.samplerate:
        raise TranscodeError(
            f"legs differ in sample rate ({left_info.samplerate} Hz vs "
            f"{right_info.samplerate} Hz); cannot merge without resampling"
        )
    rate = left_info.samplerate
    frames = 0
    with (
        atomic_output(dest) as tmp,
        soundfile.SoundFile(left) as lreader,
        soundfile.SoundFile(right) as rreader,
        soundfile.SoundFile(
            tmp, "w", samplerate=rate, channels=2, format="WAV", subtype="PCM_16"
        ) as writer,
    ):
        while True:
            lblock = lreader.read(BLOCK_FRAMES, dtype="int16")
            rblock = rreader.read(BLOCK_FRAMES, dtype="int16")
            length = max(len(lblock), len(rblock))
            if length == 0:
                break
            stereo = np.zeros((length, 2), dtype=np.int16)
            stereo[: len(lblock), 0] = lblock
            stereo[: len(rblock), 1] = rblock
            writer.write(stereo)
            frames += length
    return TranscodeResult("wav", "wav", rate, 2, frames / rate)


def _info(path: Path) -> Any:
    try:
        info = soundfile.info(str(path))
    except soundfile.LibsndfileError as exc:
        raise CorruptRecording(f"{path}: not readable audio: {exc}") from exc
    if info.samplerate <= 0 or info.channels <= 0:
        raise CorruptRecording(f"{path}: header claims {info.samplerate} Hz, {info.channels} ch")
    return info
