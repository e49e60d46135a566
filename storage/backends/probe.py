"""``pbx-bridge storage check``: prove a backend works end to end before recordings need it.

Writes a small file under a reserved key, reads its facts and bytes back, compares, and
deletes it. Every step is timed and reported; backend errors become failed steps, never
exceptions, so one broken backend does not hide the verdict on the others.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple, TypeVar

from storage.backends.base import Backend
from storage.errors import StorageError

PROBE_FOLDER = ".pbx-bridge-probe"
T = TypeVar("T")


class ProbeStep(NamedTuple):
    step: str
    ok: bool
    detail: str
    seconds: float


@dataclass
class ProbeResult:
    backend: str
    ok: bool = True
    steps: list[ProbeStep] = field(default_factory=list)


def probe_key() -> str:
    return f"{PROBE_FOLDER}/{uuid.uuid4().hex}.txt"


async def probe(backend: Backend) -> ProbeResult:
    result = ProbeResult(backend.name)
    key = probe_key()
    payload = (
        f"pbx-bridge storage check {datetime.now(UTC).isoformat()} {uuid.uuid4().hex}\n"
    ).encode()
    expected = hashlib.sha256(payload).hexdigest()
    folder = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="pbx-probe-"))
    src, back = folder / "probe.txt", folder / "back.txt"

    async def step(name: str, action: Callable[[], Awaitable[T]]) -> tuple[bool, T | None]:
        started = time.monotonic()
        try:
            value = await action()
        except (StorageError, OSError, TimeoutError) as exc:
            result.steps.append(ProbeStep(name, False, str(exc), time.monotonic() - started))
            result.ok = False
            return False, None
        result.steps.append(ProbeStep(name, True, "", time.monotonic() - started))
        return True, value

    try:
        await asyncio.to_thread(src.write_bytes, payload)
        put_ok, stored = await step("put", lambda: backend.put(src, key))
        if not put_ok:
            return result
        await step("stat", lambda: _check_stat(backend, key, len(payload)))
        read_ok, _ = await step("get", lambda: backend.get(key, back))
        if read_ok:
            await step("compare", lambda: _compare(back, expected))
        await step("delete", lambda: _delete(backend, key))
        if stored is not None and not stored.checksum_verified:
            result.steps.append(
                ProbeStep("checksum", True, "backend verifies size only, not sha256", 0.0)
            )
        return result
    finally:
        await asyncio.to_thread(_remove_folder, folder)


async def _check_stat(backend: Backend, key: str, size: int) -> None:
    info = await backend.stat(key)
    if info is None:
        raise StorageError("object not found right after put")
    if info.size != size:
        raise StorageError(f"size {info.size}, expected {size}")


async def _compare(path: Path, expected: str) -> None:
    data = await asyncio.to_thread(path.read_bytes)
    if hashlib.sha256(data).hexdigest() != expected:
        raise StorageError("bytes read back differ from bytes written")


async def _delete(backend: Backend, key: str) -> None:
    await backend.delete(key)
    if await backend.stat(key) is not None:
        raise StorageError("object still there after delete")


def _remove_folder(folder: Path) -> None:
    for child in folder.iterdir():
        child.unlink(missing_ok=True)
    folder.rmdir()
