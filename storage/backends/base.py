"""One interface for every place a recording can be kept (local disk now; FTP, SFTP, S3 later).

Keys are relative, ``/``-separated paths such as ``2025/01/31/<call>/<recording>.wav``;
every backend validates them with ``validate_key`` before touching anything.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from storage.errors import RangeUnsupported, UnsafeKey

MAX_KEY_LENGTH = 1024
# What one piece of a ranged read holds at most: playback memory stays flat per listener.
RANGE_PIECE_BYTES = 256 * 1024


@dataclass(frozen=True)
class StoredObject:
    """What a backend vouches for after a put: read back from the stored copy itself."""

    key: str
    location: str  # a URI, e.g. file:///var/recordings/2025/... or s3://bucket/...
    size: int
    sha256: str
    # False where the backend could only confirm the size (e.g. an FTP server without
    # HASH); the sha256 is then what was sent.
    checksum_verified: bool = True


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    location: str
    size: int
    # Only where the backend knows it without reading the object back.
    sha256: str | None = None


def validate_key(key: str) -> str:
    """Refuse any key that could name something outside the backend's root.

    No absolute paths, no ``..`` or ``.`` segments, no empty segments, no NUL, no
    backslashes (which some servers treat as separators).
    """
    if not key or len(key) > MAX_KEY_LENGTH:
        raise UnsafeKey(f"key must be 1..{MAX_KEY_LENGTH} characters")
    if "\x00" in key or "\\" in key:
        raise UnsafeKey("key contains NUL or a backslash")
    if key.startswith("/"):
        raise UnsafeKey("key must be relative")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise UnsafeKey(f"key has an empty, '.' or '..' segment: {key!r}")
    return key


def validate_remote_key(key: str) -> str:
    """``validate_key``, and no control characters: a CR/LF in a key would end an FTP command
    line early and let the rest of the key be read as a second command."""
    validate_key(key)
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in key):
        raise UnsafeKey("key contains a control character")
    return key


async def save_pieces(pieces: AsyncIterable[bytes], dest: Path) -> None:
    """Write a download's pieces to ``dest`` as they arrive; the file work in threads."""
    fh = await asyncio.to_thread(dest.open, "wb")
    try:
        async for piece in pieces:
            await asyncio.to_thread(fh.write, piece)
    finally:
        await asyncio.to_thread(fh.close)


class Backend(ABC):
    """A place recordings are kept. Every method is idempotent for the same key."""

    name: str
    # ISO 3166 country the copies live in, where the admin declared it (KVKK art. 9).
    jurisdiction: str | None = None

    @abstractmethod
    async def put(self, src: Path, key: str) -> StoredObject:
        """Store ``src`` under ``key`` atomically, replacing any earlier copy."""

    @abstractmethod
    async def stat(self, key: str) -> ObjectInfo | None:
        """The object's facts, or None if there is no object under ``key``."""

    @abstractmethod
    async def get(self, key: str, dest: Path) -> None:
        """Copy the object to ``dest``; raises ``ObjectNotFound`` if it does not exist."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Delete the object; deleting a missing object is not an error."""

    async def read_range(
        self, key: str, offset: int, length: int, *, piece_bytes: int = RANGE_PIECE_BYTES
    ) -> AsyncGenerator[bytes, None]:
        """Yield ``length`` bytes of the object from ``offset``, in pieces of at most
        ``piece_bytes``, without fetching the rest of it (a player seeking into an hour).

        Stops early, without an error, if the object ends first: the caller knows the size
        it expects and decides what a short read means. Raises ``ObjectNotFound`` if there
        is no object under ``key``. Close the iterator (``aclose``) when stopping early so
        the connection it holds is released at once.
        """
        raise RangeUnsupported(f"backend {self.name}: cannot read part of an object")
        yield b""  # pragma: no cover - makes this an async generator like the overrides

    async def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release pooled connections or clients; the backend stays usable afterwards."""


class RemoteFolderBackend(Backend):
    """A backend keeping objects as files under a base folder of a server (FTP, SFTP)."""

    _base: PurePosixPath

    @property
    def location(self) -> str:
        return self._uri(self._base)

    def remote_path(self, key: str) -> PurePosixPath:
        """The key under the base folder; refused if it could escape it or inject commands."""
        validate_remote_key(key)
        return self._base / key

    def location_for(self, key: str) -> str:
        return self._uri(self.remote_path(key))

    @abstractmethod
    def _uri(self, path: PurePosixPath) -> str:
        """A URI for the path, with the protocol's scheme and never a password."""
