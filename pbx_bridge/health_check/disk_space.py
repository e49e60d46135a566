"""Free space where recordings wait and are kept: a full spool fails recordings mid-call."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from pbx_bridge.config import StorageSettings
from pbx_bridge.health_check.findings import Finding, ok, problem, warning
from pbx_bridge.storage_setup import LOCAL
from storage.backends.settings import LocalBackendSettings

MB = 1024 * 1024


def free_space_finding(label: str, path: Path, free: int, total: int, min_free: int) -> Finding:
    """A problem below `min_free` bytes, a warning below twice that."""
    details = {"path": str(path), "free_mb": free // MB, "total_mb": total // MB,
               "min_free_mb": min_free // MB}
    text = f"{label} {path}: {free // MB} MB free of {total // MB} MB"
    if free < min_free:
        return problem("storage.free_space", f"{text}, below the {min_free // MB} MB minimum: "
                       "free space or move it ([check] min_free_mb)", **details)
    if free < 2 * min_free:
        return warning("storage.free_space", f"{text}, near the {min_free // MB} MB minimum",
                       **details)
    return ok("storage.free_space", text, **details)


def local_folders(storage: StorageSettings) -> list[tuple[str, Path]]:
    folders = [("spool", storage.spool_dir)]
    for target in storage.targets:
        if target == LOCAL and LOCAL not in storage.backends:
            folders.append(("local storage", storage.local.path))
        elif isinstance(spec := storage.backends.get(target), LocalBackendSettings):
            folders.append((f"backend {target!r}", spec.path))
    return folders


def _existing(path: Path) -> Path:
    """The folder itself, or (not created yet) the nearest parent, whose disk it will use."""
    path = path.absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _usage(path: Path) -> tuple[Path, int, int]:
    where = _existing(path)
    usage = shutil.disk_usage(where)
    return where, usage.free, usage.total


async def check_free_space(storage: StorageSettings, min_free_mb: int) -> list[Finding]:
    findings = []
    for label, folder in local_folders(storage):
        try:
            _, free, total = await asyncio.to_thread(_usage, folder)
        except OSError as exc:
            findings.append(problem("storage.free_space",
                                    f"{label} {folder}: cannot measure free space: {exc}"))
            continue
        findings.append(free_space_finding(label, folder, free, total, min_free_mb * MB))
    return findings
