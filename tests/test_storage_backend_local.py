"""The local backend: atomic puts, verified digests, and keys that cannot escape the root."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from storage.backends.base import Backend, validate_key
from storage.backends.local import LocalBackend
from storage.errors import ObjectNotFound, UnsafeKey

UNSAFE_KEYS = [
    "",
    "/etc/passwd",
    "../outside.wav",
    "2025/../../outside.wav",
    "2025/./x.wav",
    "2025//x.wav",
    "2025/x.wav/",
    "nul\x00byte.wav",
    "back\\slash.wav",
    "x" * 2000,
]


@pytest.mark.parametrize("key", UNSAFE_KEYS)
async def test_unsafe_keys_are_refused_before_any_io(key: str, tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "store")
    src = tmp_path / "src.wav"
    src.write_bytes(b"data")
    with pytest.raises(UnsafeKey):
        validate_key(key)
    with pytest.raises(UnsafeKey):
        await backend.put(src, key)
    with pytest.raises(UnsafeKey):
        await backend.stat(key)
    with pytest.raises(UnsafeKey):
        await backend.delete(key)
    assert not (tmp_path / "store").exists()
    assert sorted(os.listdir(tmp_path)) == ["src.wav"]


async def test_symlink_out_of_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (root / "link").symlink_to(tmp_path / "elsewhere")
    src = tmp_path / "src.wav"
    src.write_bytes(b"data")
    with pytest.raises(UnsafeKey):
        await LocalBackend(root).put(src, "link/x.wav")
    assert list((tmp_path / "elsewhere").iterdir()) == []


async def test_put_stat_get_delete(tmp_path: Path) -> None:
    backend: Backend = LocalBackend(tmp_path / "store")
    data = b"RIFF" + bytes(range(256)) * 40
    src = tmp_path / "src.wav"
    src.write_bytes(data)
    key = "2025/03/01/call-1/rec-1.wav"

    stored = await backend.put(src, key)
    path = (tmp_path / "store" / key).resolve()
    assert stored.location == path.as_uri()
    assert stored.size == len(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert path.read_bytes() == data

    # A second put of the same key replaces: still exactly one file, no temporaries.
    src.write_bytes(data[::-1])
    again = await backend.put(src, key)
    assert again.sha256 == hashlib.sha256(data[::-1]).hexdigest()
    assert [p for p in (tmp_path / "store").rglob("*") if p.is_file()] == [path]

    info = await backend.stat(key)
    assert info is not None and info.size == len(data) and info.location == path.as_uri()
    dest = tmp_path / "back.wav"
    await backend.get(key, dest)
    assert dest.read_bytes() == data[::-1]

    await backend.delete(key)
    await backend.delete(key)  # idempotent
    assert await backend.stat(key) is None
    with pytest.raises(ObjectNotFound):
        await backend.get(key, tmp_path / "none.wav")


async def test_stat_of_a_folder_is_not_an_object(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "store")
    src = tmp_path / "src.wav"
    src.write_bytes(b"data")
    await backend.put(src, "2025/01/02/c/r.wav")
    assert await backend.stat("2025/01/02") is None
