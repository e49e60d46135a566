"""Where finished recordings come from, seen from the storage layer.

The upper layer adapts its ARI client to ``RecordingSource`` (``GET
/recordings/stored/{name}/file`` and friends), so Asterisk may run on another host and the
pipeline never learns about HTTP or ARI.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Protocol, runtime_checkable

from storage.errors import StorageError, TransientStorageError


class SourceState(StrEnum):
    LIVE = "live"  # Asterisk is still writing it; its RecordingFinished will come
    STORED = "stored"  # finished, the file can be fetched
    MISSING = "missing"  # Asterisk knows no such recording


class SourceUnavailable(TransientStorageError):
    """The source cannot be reached right now (connection refused, timeout, 5xx).

    Adapters raise this for anything a retry may cure; the pipeline waits and retries
    instead of failing the recording.
    """


class SourceMissing(StorageError):
    """The source answered, and the recording is not there (ARI 404)."""


@runtime_checkable
class RecordingSource(Protocol):
    """The four things the pipeline needs from Asterisk's stored recordings."""

    async def fetch(self, name: str, format: str, dest: Path) -> int:
        """Write the recording's file to ``dest`` (created or truncated); return its size.

        Raises ``SourceMissing`` if there is no such recording, ``SourceUnavailable`` on a
        transient failure. Must not block the event loop.
        """
        ...

    async def delete(self, name: str, format: str) -> None:
        """Delete the recording in the source; deleting one that is gone is not an error."""
        ...

    async def state(self, name: str) -> SourceState:
        """Whether the recording is still being written, finished, or unknown."""
        ...

    async def list_stored(self) -> list[str]:
        """Names of all finished recordings the source holds (ours and anyone else's)."""
        ...
