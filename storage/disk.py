"""Disk errors named for what they are, and counted, so an alert can fire.

An ``OSError`` from a file operation says only "No space left on device"; up the stack it
would pass for anything, the database being away included. At the edge of each of our
folders (the spool, local storage) it becomes a ``DiskError`` naming the folder, and
``pbx_bridge_disk_errors_total{area}`` counts it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from storage.errors import DiskError
from storage.metrics import DISK_ERRORS


def track_area(area: str) -> None:
    """Show the area's counter at 0 from the start: an alert on its increase then fires
    on the very first error."""
    DISK_ERRORS.labels(area)


@contextmanager
def disk_errors(area: str, folder: Path) -> Iterator[None]:
    """Turn an ``OSError`` raised inside into a counted ``DiskError`` for ``folder``."""
    try:
        yield
    except DiskError:
        raise
    except OSError as exc:
        DISK_ERRORS.labels(area).inc()
        raise DiskError(area, str(folder), exc) from exc


__all__ = ["disk_errors", "track_area"]
