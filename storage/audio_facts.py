"""What we vouch for about a recording file: its bytes (sha256, size) and its audio.

Everything here is blocking and meant to run in a worker thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import soundfile

from storage.errors import CorruptRecording

CHUNK_BYTES = 1024 * 1024

# Rates Asterisk and common telephony/wideband codecs record at; anything else in a call
# recording means the header is garbage.
SANE_RATES = frozenset({8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000})
# Asterisk format names whose files libsndfile can read and so can be checked.
CHECKED_FORMATS = frozenset({"wav", "wav16", "flac", "ogg", "opus"})


@dataclass(frozen=True)
class FileDigest:
    size_bytes: int
    sha256: str


@dataclass(frozen=True)
class AudioFacts:
    size_bytes: int
    sha256: str
    # None for formats we cannot decode (raw codecs): their bytes are still vouched for.
    duration_s: float | None
    samplerate: int | None
    channels: int | None


def digest_file(path: Path) -> FileDigest:
    """Hash in chunks so an hour-long recording never sits in memory at once."""
    sha = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            sha.update(chunk)
            size += len(chunk)
    return FileDigest(size, sha.hexdigest())


def inspect_recording(path: Path, fmt: str) -> AudioFacts:
    """Digest the file and, for decodable formats, prove it is sane audio.

    Raises ``CorruptRecording`` with a message fit for the row's ``error`` column.
    """
    digest = digest_file(path)
    if fmt.lower() not in CHECKED_FORMATS:
        return AudioFacts(digest.size_bytes, digest.sha256, None, None, None)
    try:
        with soundfile.SoundFile(str(path)) as audio:
            samplerate, channels, declared = audio.samplerate, audio.channels, audio.frames
            # Decode it all: a header can be fine while the data behind it is not.
            frames = sum(len(block) for block in audio.blocks(blocksize=65536, dtype="int16"))
    except RuntimeError as exc:
        raise CorruptRecording(f"not readable as {fmt} audio: {exc}") from exc
    if samplerate not in SANE_RATES:
        raise CorruptRecording(f"implausible sample rate {samplerate} Hz")
    if channels < 1:
        raise CorruptRecording(f"implausible channel count {channels}")
    if declared < 0 or frames < 0:
        raise CorruptRecording(f"negative frame count {declared}")
    return AudioFacts(digest.size_bytes, digest.sha256, frames / samplerate, samplerate, channels)
