"""Recordings on a local (or mounted) filesystem, written so a crash never leaves half a file.

A put writes a temporary file in the destination folder, fsyncs it, renames it over the
final name and fsyncs the folder; then it reads the stored copy back to hash it, so the
digest it returns is the disk's word, not the source's.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncGenerator
from pathlib import Path
from stat import S_ISREG
from typing import BinaryIO

from storage.atomic_write import fsync_dir, fsync_file
from storage.audio_facts import digest_file
from storage.backends.base import (
    RANGE_PIECE_BYTES,
    Backend,
    ObjectInfo,
    StoredObject,
    validate_key,
)
from storage.disk import disk_errors, track_area
from storage.errors import ObjectNotFound, UnsafeKey

TEMP_MARK = ".tmp-"
LOCAL_AREA = "local"


class LocalBackend(Backend):
    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        track_area(LOCAL_AREA)

    def path_for(self, key: str) -> Path:
        """The absolute path for ``key``, proven to stay under the root (symlinks followed)."""
        validate_key(key)
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise UnsafeKey(f"key resolves outside the storage root: {key!r}")
        return path

    # Every operation resolves its path (lstat calls, symlinks followed) in the worker
    # thread with the rest of its file I/O, never on the event loop.

    async def put(self, src: Path, key: str) -> StoredObject:
        with disk_errors(LOCAL_AREA, self.root):  # full or read-only: named and counted
            return await asyncio.to_thread(self._put, src, key)

    def _put(self, src: Path, key: str) -> StoredObject:
        path = self.path_for(key)
        folder = path.parent
        folder.mkdir(parents=True, exist_ok=True)
        # Leftovers of an interrupted put of this same key are junk, never a second copy.
        for stale in folder.glob(f".{path.name}{TEMP_MARK}*"):
            stale.unlink(missing_ok=True)
        temp = folder / f".{path.name}{TEMP_MARK}{uuid.uuid4().hex}"
        try:
            shutil.copyfile(src, temp)
            fsync_file(temp)
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)
        fsync_dir(folder)
        digest = digest_file(path)
        return StoredObject(key, path.as_uri(), digest.size_bytes, digest.sha256)

    async def stat(self, key: str) -> ObjectInfo | None:
        return await asyncio.to_thread(self._stat, key)

    def _stat(self, key: str) -> ObjectInfo | None:
        path = self.path_for(key)
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        if not S_ISREG(st.st_mode):
            return None  # a folder on the way to other keys is not an object
        return ObjectInfo(key, path.as_uri(), st.st_size)

    async def get(self, key: str, dest: Path) -> None:
        await asyncio.to_thread(self._get, key, dest)

    def _get(self, key: str, dest: Path) -> None:
        try:
            shutil.copyfile(self.path_for(key), dest)
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"no object under {key!r}") from exc

    async def read_range(
        self, key: str, offset: int, length: int, *, piece_bytes: int = RANGE_PIECE_BYTES
    ) -> AsyncGenerator[bytes, None]:
        fh = await asyncio.to_thread(self._open_at, key, offset)
        try:
            left = length
            while left > 0:
                piece = await asyncio.to_thread(fh.read, min(piece_bytes, left))
                if not piece:
                    return
                left -= len(piece)
                yield piece
        finally:
            await asyncio.to_thread(fh.close)

    def _open_at(self, key: str, offset: int) -> BinaryIO:
        path = self.path_for(key)
        try:
            fh = path.open("rb")
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise ObjectNotFound(f"no object under {key!r}") from exc
        fh.seek(offset)
        return fh

    async def delete(self, key: str) -> None:
        with disk_errors(LOCAL_AREA, self.root):
            await asyncio.to_thread(self._delete, key)

    def _delete(self, key: str) -> None:
        self.path_for(key).unlink(missing_ok=True)
