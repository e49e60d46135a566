"""Write a file so that it appears under its name whole or not at all.

Decryption must never leave partial plaintext behind, and a crash while transcoding must
never leave a half file that looks finished. The temporary file sits beside the target
(same file system, so the rename is atomic) and is named ``<name>.<random>.part``: the spool
treats anything ending in ``.part`` as unfinished and belonging to the recording whose id
starts the name, so a crash leftover is discarded like any other partial fetch.

Blocking: call from a worker thread.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMP_SUFFIX = ".part"


def fsync_file(path: Path) -> None:
    with path.open("rb") as fh:
        os.fsync(fh.fileno())


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_output(dest: Path) -> Iterator[Path]:
    """Yield a private (0600) temporary path; on success it replaces ``dest`` durably.

    On any failure (including cancellation of the thread's caller raising inside the block)
    the temporary file is removed and ``dest`` is left as it was.
    """
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f"{dest.name}.", suffix=TEMP_SUFFIX)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(dest.parent)
