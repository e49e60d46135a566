"""Finishing the header of a WAV file whose writer died before closing it.

Asterisk writes the RIFF and data sizes of a WAV only when the recording is closed. If
Asterisk crashes mid-call the audio is all on disk but the header says the data chunk is
empty, and players (and our own duration check) see a zero-length recording. Setting the
sizes to what is actually on disk recovers the audio; nothing else in the file changes.

Blocking; run it in a worker thread.
"""

from __future__ import annotations

import struct
from pathlib import Path

_RIFF_HEADER = 12  # "RIFF" size "WAVE"
_CHUNK_HEADER = 8  # id size


class NotAWav(ValueError):
    """The file does not start like a RIFF/WAVE file; there is no header to finish."""


def finish_wav_header(path: Path) -> bool:
    """Make the RIFF and data sizes match the file; True if they had to change."""
    file_size = path.stat().st_size
    with path.open("r+b") as fh:
        head = fh.read(_RIFF_HEADER)
        if len(head) < _RIFF_HEADER or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise NotAWav(f"{path.name}: not a RIFF/WAVE file")
        offset = _RIFF_HEADER
        while offset + _CHUNK_HEADER <= file_size:
            fh.seek(offset)
            chunk_id, size = struct.unpack("<4sI", fh.read(_CHUNK_HEADER))
            if chunk_id == b"data":
                data_offset = offset + _CHUNK_HEADER
                actual = file_size - data_offset
                riff_size = file_size - 8
                declared_riff: int = struct.unpack("<I", head[4:8])[0]
                changed: bool = size != actual or declared_riff != riff_size
                if changed:
                    fh.seek(4)
                    fh.write(struct.pack("<I", riff_size))
                    fh.seek(offset + 4)
                    fh.write(struct.pack("<I", actual))
                    fh.flush()
                return changed
            offset += _CHUNK_HEADER + size + (size & 1)
        raise NotAWav(f"{path.name}: no data chunk")
