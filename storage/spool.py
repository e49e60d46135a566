"""The local landing area between Asterisk and a backend.

A file only ever appears under its final name complete and on disk: it is fetched as
``<id>.<fmt>.part``, fsynced, renamed, and the folder fsynced. So after a crash a final-named
file can be trusted and a ``.part`` is always discarded.

Every file error here is a ``DiskError`` naming the spool (``storage.disk``): a full or
unwritable spool stops the intake, never a call, and the pipeline retries until it works.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from storage.atomic_write import fsync_dir, fsync_file
from storage.disk import disk_errors, track_area

PART_SUFFIX = ".part"
SPOOL_AREA = "spool"


@dataclass(frozen=True)
class SpoolEntry:
    """A file found in the spool: which recording it belongs to, and whether it is whole."""

    path: Path
    recording_id: str
    complete: bool


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        track_area(SPOOL_AREA)

    def disk_errors(self) -> contextlib.AbstractContextManager[None]:
        """For file work in the spool done outside this class (transcoding, checks)."""
        return disk_errors(SPOOL_AREA, self.directory)

    async def prepare(self) -> None:
        with self.disk_errors():
            await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)

    def path_for(self, recording_id: str, fmt: str) -> Path:
        return self.directory / f"{recording_id}.{fmt}"

    def part_path_for(self, recording_id: str, fmt: str) -> Path:
        return self.directory / f"{recording_id}.{fmt}{PART_SUFFIX}"

    async def receive(
        self,
        recording_id: str,
        fmt: str,
        write: Callable[[Path], Awaitable[int]],
    ) -> Path:
        """Let ``write`` fill a ``.part`` file, then make it durable under its final name."""
        part = self.part_path_for(recording_id, fmt)
        final = self.path_for(recording_id, fmt)
        with self.disk_errors():
            await asyncio.to_thread(part.unlink, missing_ok=True)
            try:
                await write(part)
                await asyncio.to_thread(self._commit, part, final)
            except BaseException:
                # A cancelled or failed fetch leaves nothing that looks like a spooled file.
                await asyncio.shield(asyncio.to_thread(self._discard, part))
                raise
        return final

    @staticmethod
    def _discard(part: Path) -> None:
        with contextlib.suppress(OSError):  # the error that brought us here is the news
            part.unlink(missing_ok=True)

    def commit(self, part: Path, final: Path) -> None:
        """Make a complete ``.part`` durable under its final name (blocking)."""
        with self.disk_errors():
            self._commit(part, final)

    async def remove_named(self, paths: Iterable[Path]) -> int:
        """Remove these files where they exist; returns how many there were.

        By name rather than by listing the folder: after a long outage the spool holds the
        whole backlog, and listing it once per stored recording would make catching up
        quadratic. Whoever calls this knows every name a recording's files can have; a
        crash leftover under a random name is for ``entries()`` at the next start.
        """
        with self.disk_errors():
            return await asyncio.to_thread(self._remove_named, list(paths))

    def _remove_named(self, paths: list[Path]) -> int:
        removed = 0
        for path in dict.fromkeys(paths):
            if path.parent != self.directory:
                raise ValueError(f"{path} is not in the spool {self.directory}")
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            removed += 1
        return removed

    def _commit(self, part: Path, final: Path) -> None:
        fsync_file(part)
        os.replace(part, final)
        fsync_dir(self.directory)

    async def exists(self, path: Path) -> bool:
        return await asyncio.to_thread(path.is_file)

    async def remove(self, path: Path) -> None:
        with self.disk_errors():
            await asyncio.to_thread(path.unlink, missing_ok=True)

    async def entries(self) -> list[SpoolEntry]:
        with self.disk_errors():
            return await asyncio.to_thread(self._entries)

    def _entries(self) -> list[SpoolEntry]:
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.iterdir():
            if not path.is_file():
                continue
            recording_id = path.name.split(".", 1)[0]
            found.append(SpoolEntry(path, recording_id, not path.name.endswith(PART_SUFFIX)))
        return found
