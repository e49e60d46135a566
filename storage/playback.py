"""Playing a stored recording from any position: the best readable copy, opened for ranges.

A listener seeks into an hour-long call; fetching (and decrypting) the whole file first
would make them wait for all of it and leave a plaintext copy on disk. Instead a copy is
opened where it lies and only the asked bytes are read: a plain copy with a ranged read
of its backend, an encrypted one from the chunk that holds the first asked byte, each
chunk authenticated before any of its bytes is given out. So a tampered chunk stops the
stream with ``ChunkTampered`` exactly where it starts, and what came before it was the
real recording. Nothing is written to disk; memory per listener is a few chunks.

Which copy: the one the recording's ``location`` names (the first target's, usually the
local disk) first, then the other verified copies in the order the backends are
configured. A copy that cannot be opened (backend not configured or unreachable, object
missing, wrong size, data key not unwrappable) is skipped and named in the
``NoPlayableCopy`` raised when none opens. An erased recording (deleted row, or its data
key destroyed) is ``RecordingErased``: gone for good, not worth another copy.

Integrity: an encrypted copy is checked chunk by chunk as it streams. A plain copy is
checked only for its size here (its bytes against the recorded sha256 is what the copy
audit does, ``storage.audit``): a ranged read cannot hash the whole file.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage import crypto
from storage.backends.base import RANGE_PIECE_BYTES, Backend
from storage.errors import (
    ChunkTampered,
    CopyChanged,
    DataKeyDestroyed,
    DataKeyNotFound,
    DecryptionFailed,
    NoPlayableCopy,
    RecordingErased,
    RecordingNotFound,
    StorageError,
)
from storage.keyring import Keyring
from storage.keys import unwrap_data_key
from storage.legs import STEREO_LEGS, Layout
from storage.models import CopyStatus, DataKey, Recording, RecordingCopy, RecordingStatus

# Stored format (``recordings.format``) -> the media type a browser's <audio> expects.
MEDIA_TYPES: dict[str, str] = {
    "wav": "audio/wav",
    "wav16": "audio/wav",
    "flac": "audio/flac",
    "opus": "audio/ogg; codecs=opus",
    "ogg": "audio/ogg",
    "gsm": "audio/x-gsm",
    "mp3": "audio/mpeg",
}
FALLBACK_MEDIA_TYPE = "application/octet-stream"
_ERASED = frozenset({RecordingStatus.DELETING.value, RecordingStatus.DELETED.value})


def media_type_for(fmt: str) -> str:
    return MEDIA_TYPES.get(fmt.lower(), FALLBACK_MEDIA_TYPE)


@dataclass(frozen=True)
class _Opened:
    """How to read one opened copy: the plain bytes, or the sealed layout and data key."""

    backend: Backend
    key: str
    layout: crypto.SealedLayout | None = None
    data_key: bytes = field(default=b"", repr=False)


@dataclass(frozen=True)
class PlaybackSource:
    """One recording opened for ranged reads of its plaintext (never holds the file)."""

    recording_id: str
    backend: str  # the copy being read, for the listen's audit entry
    encrypted: bool
    size: int  # of the plaintext
    format: str
    media_type: str
    channels: int
    # What each channel is, left to right: ("caller", "agent") for a stereo recording.
    channel_names: tuple[str, ...]
    duration_s: float | None
    sha256: str | None  # of the plaintext, as recorded (a strong validator: ETag)
    _opened: _Opened = field(repr=False)

    def read_range(self, start: int, end: int) -> AsyncIterator[bytes]:
        """Plaintext bytes ``start``..``end`` (inclusive, as HTTP counts) in pieces of at
        most a few hundred KiB. Raises ``ChunkTampered`` (encrypted) or ``CopyChanged``
        (plain) where the copy stops being what was stored; backend errors pass through.
        """
        if not 0 <= start <= end < self.size:
            raise ValueError(f"range {start}-{end} outside 0-{self.size - 1}")
        if self._opened.layout is None:
            return _plain_range(self._opened, start, end)
        return _sealed_range(self._opened, self.recording_id, start, end)


class Player:
    """Opens recordings for playback; one per process, shared by every request."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        backends: Mapping[str, Backend],
        keyring: Keyring | None,
    ) -> None:
        self._sessions = sessions
        self._backends = backends
        self._keyring = keyring

    async def close(self) -> None:
        """Close the backends it was given (S3 keeps a connection pool)."""
        await asyncio.gather(*(b.close() for b in self._backends.values()),
                             return_exceptions=True)

    async def open(self, recording_id: str) -> PlaybackSource:
        """The recording's first copy that opens; raises ``RecordingNotFound``,
        ``RecordingErased`` or ``NoPlayableCopy`` (naming each copy's problem)."""
        async with self._sessions() as session:
            row = await session.get(Recording, recording_id)
            if row is None:
                raise RecordingNotFound(f"no recording {recording_id}")
            if row.status in _ERASED:
                raise RecordingErased(f"recording {recording_id} is {row.status}")
            copies = (
                await session.scalars(
                    select(RecordingCopy).where(
                        RecordingCopy.recording_id == recording_id,
                        RecordingCopy.status == CopyStatus.VERIFIED.value,
                    )
                )
            ).all()
            # Read with the rows, not in a session of its own: one query less per request.
            key_row = (
                await session.get(DataKey, recording_id)
                if any(c.encrypted for c in copies) else None
            )
        problems: list[str] = []
        data_key: bytes | None = None
        for copy in self._in_order(row, copies):
            backend = self._backends.get(copy.backend)
            if backend is None:
                problems.append(f"{copy.backend}: not configured")
                continue
            try:
                if copy.encrypted and data_key is None:
                    data_key = self._data_key(recording_id, key_row)
                opened, plain_size = await self._open_copy(
                    backend, copy, row, data_key if copy.encrypted else None
                )
            except RecordingErased:
                raise
            except (StorageError, OSError) as exc:
                problems.append(f"{copy.backend}: {exc}")
                continue
            stereo = row.layout == Layout.STEREO.value
            return PlaybackSource(
                recording_id=row.id,
                backend=copy.backend,
                encrypted=copy.encrypted,
                size=plain_size,
                format=row.format,
                media_type=media_type_for(row.format),
                channels=2 if stereo else 1,
                channel_names=tuple(leg.value for leg in STEREO_LEGS) if stereo else ("mixed",),
                duration_s=row.duration_s,
                sha256=row.sha256,
                _opened=opened,
            )
        detail = "; ".join(problems) if problems else f"no verified copy (status {row.status})"
        raise NoPlayableCopy(f"recording {recording_id}: {detail}")

    def _in_order(self, row: Recording, copies: Sequence[RecordingCopy]) -> list[RecordingCopy]:
        rank = {name: index for index, name in enumerate(self._backends)}
        return sorted(
            copies,
            key=lambda c: (
                c.location is None or c.location != row.location,
                rank.get(c.backend, len(rank)),
                c.backend,
            ),
        )

    def _data_key(self, recording_id: str, row: DataKey | None) -> bytes:
        if self._keyring is None:
            raise DecryptionFailed("the copy is encrypted and no master key is loaded")
        if row is None:
            raise DataKeyNotFound(f"recording {recording_id} has no data key")
        try:
            # 32 bytes under AES-GCM: microseconds, fine on the loop.
            return unwrap_data_key(self._keyring, row)
        except DataKeyDestroyed as exc:
            raise RecordingErased(f"recording {recording_id}: {exc}") from exc

    async def _open_copy(
        self, backend: Backend, copy: RecordingCopy, row: Recording, data_key: bytes | None
    ) -> tuple[_Opened, int]:
        stored_size = copy.size_bytes
        if data_key is None:
            # The size from the backend itself: a missing or replaced copy is found here,
            # while another copy can still be tried.
            info = await backend.stat(copy.key)
            if info is None:
                raise CopyChanged(f"no object under {copy.key!r}")
            if stored_size is not None and info.size != stored_size:
                raise CopyChanged(f"holds {info.size} bytes, its verified copy {stored_size}")
            return _Opened(backend, copy.key), info.size
        if stored_size is None:
            info = await backend.stat(copy.key)
            if info is None:
                raise CopyChanged(f"no object under {copy.key!r}")
            stored_size = info.size
        # One small read, no stat: the verified row says the size, and a copy cut off or
        # altered since fails its chunk's tag when that chunk is read.
        header = b"".join([
            piece async for piece in backend.read_range(copy.key, 0, crypto.HEADER_BYTES)
        ])
        layout = crypto.sealed_layout(header, stored_size, f"{copy.backend}:{copy.key}")
        if row.size_bytes is not None and layout.plain_size != row.size_bytes:
            raise CopyChanged(
                f"decrypts to {layout.plain_size} bytes, the recording has {row.size_bytes}"
            )
        return _Opened(backend, copy.key, layout, data_key), layout.plain_size


async def _plain_range(opened: _Opened, start: int, end: int) -> AsyncIterator[bytes]:
    wanted = end - start + 1
    got = 0
    async with contextlib.aclosing(
        opened.backend.read_range(opened.key, start, wanted, piece_bytes=RANGE_PIECE_BYTES)
    ) as pieces:
        async for piece in pieces:
            got += len(piece)
            yield piece
    if got < wanted:
        raise CopyChanged(
            f"backend {opened.backend.name}: copy {opened.key!r} ended {wanted - got} bytes "
            "early (replaced or cut off since it was verified)"
        )


async def _sealed_range(
    opened: _Opened, recording_id: str, start: int, end: int
) -> AsyncIterator[bytes]:
    layout = opened.layout
    assert layout is not None
    source = f"{opened.backend.name}:{opened.key}"
    step = layout.chunk_size + crypto.TAG_BYTES
    first, last = layout.chunk_of(start), layout.chunk_of(end)
    skip = start - first * layout.chunk_size  # bytes of the first chunk before ``start``
    left = end - start + 1
    index = first
    buffer = bytearray()

    async def decrypt(sealed: bytes) -> bytes:
        nonlocal index, skip, left
        try:
            chunks = await asyncio.to_thread(
                crypto.open_chunks, opened.data_key, layout, index, sealed, recording_id, source
            )
        except DecryptionFailed as exc:
            raise ChunkTampered(str(exc)) from None
        index += len(chunks)
        plain = b"".join(chunks)[skip : skip + left]
        skip = 0
        left -= len(plain)
        return plain

    async with contextlib.aclosing(
        opened.backend.read_range(
            opened.key, layout.sealed_offset(first), layout.sealed_length(first, last)
        )
    ) as pieces:
        async for piece in pieces:
            buffer += piece
            whole = len(buffer) - len(buffer) % step
            if whole:
                sealed = bytes(buffer[:whole])
                del buffer[:whole]
                if plain := await decrypt(sealed):
                    yield plain
    # The file's last chunk is shorter than the others (or cut off: refused).
    if buffer and (plain := await decrypt(bytes(buffer))):
        yield plain
    if left > 0:
        raise ChunkTampered(
            f"{source}: ended before chunk {index} (cut off since it was verified)"
        )


__all__ = ["MEDIA_TYPES", "PlaybackSource", "Player", "media_type_for"]
