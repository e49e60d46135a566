"""Where answers to data-subject requests are written, and how: private and whole.

A report or an export is the subject's personal data collected in one place: files are
0600 and folders 0700, and every file appears under its name whole or not at all, so a
crash never leaves a half report someone could send out. The request's reference names
the files; it is checked before it becomes part of a path.

Blocking: call from a worker thread.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from storage.atomic_write import atomic_output

FILE_MODE = 0o600
DIR_MODE = 0o700
_SAFE_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class UnsafeReference(ValueError):
    """The request's reference cannot be used as a file name."""


def checked_reference(reference: str) -> str:
    if not _SAFE_REFERENCE.fullmatch(reference) or ".." in reference:
        raise UnsafeReference(
            f"request reference {reference!r} cannot name a file "
            "(letters, digits, '.', '_' and '-' only)"
        )
    return reference


def private_dir(path: Path) -> Path:
    """Create the folder (and its parents) if needed and make it 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    path.chmod(DIR_MODE)
    return path


def write_private(path: Path, data: bytes) -> int:
    """Replace ``path`` atomically with ``data`` as a 0600 file; returns its size."""
    with atomic_output(path) as tmp:
        tmp.chmod(FILE_MODE)
        tmp.write_bytes(data)
    return len(data)


def remove_leftovers(folder: Path, pattern: str) -> None:
    """Remove what an interrupted earlier run left (``.part`` files, staging folders)."""
    if not folder.is_dir():
        return
    for stale in folder.glob(pattern):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def absolute(path: Path) -> Path:
    return Path(os.path.abspath(path))
