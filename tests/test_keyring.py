"""Master keys (files, environment, permissions), data keys in the database (SQLite and
PostgreSQL), rotation, and the ``pbx-bridge keys`` commands."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from database_fixtures import db_url, pg_database  # noqa: F401  (fixtures)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner, Result

from pbx_bridge.cli.main import app
from storage.database import make_engine, make_session_factory
from storage.errors import (
    DataKeyDestroyed,
    DataKeyNotFound,
    DecryptionFailed,
    KeyringError,
    RecordingNotFound,
    UnknownMasterKey,
)
from storage.keyring import MASTER_KEY_ENV, Keyring, generate_master_key
from storage.keys import create_data_key, destroy_data_key, load_data_key, rotate
from storage.models import Base, DataKey, Recording

REC = "0b7d3c1e-5a2f-4c7e-9d1a-000000000001"


def _write_key(folder: Path, key_id: str, key: bytes | None = None, mode: int = 0o600) -> bytes:
    key = key if key is not None else os.urandom(32)
    path = folder / f"{key_id}.key"
    path.write_bytes(base64.b64encode(key) + b"\n")
    path.chmod(mode)
    return key


def _env(key_id: str, key: bytes) -> dict[str, str]:
    return {MASTER_KEY_ENV: f"{key_id}:{base64.b64encode(key).decode()}"}


# --- the keyring ----------------------------------------------------------------------------


def test_newest_key_by_name_is_active(tmp_path: Path) -> None:
    _write_key(tmp_path, "mk-2025")
    _write_key(tmp_path, "mk-2026")
    keyring = Keyring.load(tmp_path, environ={})
    assert keyring.active_id == "mk-2026"
    assert keyring.key_ids == {"mk-2025", "mk-2026"}


def test_active_file_names_the_active_key(tmp_path: Path) -> None:
    _write_key(tmp_path, "mk-2025")
    _write_key(tmp_path, "mk-2026")
    (tmp_path / "active").write_text("mk-2025\n")
    assert Keyring.load(tmp_path, environ={}).active_id == "mk-2025"


def test_active_file_naming_a_missing_key_is_refused(tmp_path: Path) -> None:
    _write_key(tmp_path, "mk-2025")
    (tmp_path / "active").write_text("mk-gone\n")
    with pytest.raises(KeyringError, match="mk-gone"):
        Keyring.load(tmp_path, environ={})


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660], ids=oct)
def test_key_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    _write_key(tmp_path, "mk-1", mode=mode)
    with pytest.raises(KeyringError, match=r"chmod 600"):
        Keyring.load(tmp_path, environ={})


def test_stricter_mode_is_accepted(tmp_path: Path) -> None:
    key = _write_key(tmp_path, "mk-1", mode=0o400)
    keyring = Keyring.load(tmp_path, environ={})
    _, wrapped = keyring.wrap(b"k" * 32, "ctx")
    assert Keyring({"mk-1": key}, "mk-1").unwrap("mk-1", wrapped, "ctx") == b"k" * 32


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (base64.b64encode(os.urandom(16)), "32 bytes, got 16"),
        (base64.b64encode(os.urandom(33)), "32 bytes, got 33"),
        (b"not base64 at all!", "base64"),
    ],
    ids=["16-bytes", "33-bytes", "not-base64"],
)
def test_malformed_key_file_is_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "mk-1.key"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(KeyringError, match=message):
        Keyring.load(tmp_path, environ={})


def test_missing_dir_and_no_key_are_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyringError, match="does not exist"):
        Keyring.load(tmp_path / "nowhere", environ={})
    with pytest.raises(KeyringError, match="no master key"):
        Keyring.load(tmp_path, environ={})
    with pytest.raises(KeyringError, match="no master key"):
        Keyring.load(None, environ={})


def test_environment_key(tmp_path: Path) -> None:
    key = os.urandom(32)
    keyring = Keyring.load(None, environ=_env("env-1", key))
    assert keyring.active_id == "env-1"
    key_id, wrapped = keyring.wrap(b"d" * 32, REC)
    assert key_id == "env-1"
    assert Keyring({"env-1": key}, "env-1").unwrap(key_id, wrapped, REC) == b"d" * 32


def test_environment_key_beside_files(tmp_path: Path) -> None:
    _write_key(tmp_path, "mk-2026")
    (tmp_path / "active").write_text("mk-2026")
    keyring = Keyring.load(tmp_path, environ=_env("mk-2025", os.urandom(32)))
    assert keyring.key_ids == {"mk-2025", "mk-2026"}
    assert keyring.active_id == "mk-2026"


def test_environment_conflicting_with_a_file_is_refused(tmp_path: Path) -> None:
    _write_key(tmp_path, "mk-1")
    with pytest.raises(KeyringError, match="different bytes"):
        Keyring.load(tmp_path, environ=_env("mk-1", os.urandom(32)))


@pytest.mark.parametrize("value", ["no-colon", "bad id!:AAAA", "mk:" + "A" * 10])
def test_malformed_environment_key_is_refused(value: str) -> None:
    with pytest.raises(KeyringError):
        Keyring.load(None, environ={MASTER_KEY_ENV: value})


def test_generate_writes_a_private_active_key(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    first = generate_master_key(folder)
    second = generate_master_key(folder)
    assert first != second
    for key_id in (first, second):
        path = folder / f"{key_id}.key"
        assert path.stat().st_mode & 0o777 == 0o600
        assert len(base64.b64decode(path.read_bytes().strip())) == 32
    assert (folder / "active").read_text().strip() == second
    assert folder.stat().st_mode & 0o077 == 0
    assert [p.name for p in folder.iterdir() if p.name.endswith(".part")] == []
    keyring = Keyring.load(folder, environ={})
    assert keyring.active_id == second
    assert keyring.key_ids == {first, second}


def test_wrap_is_bound_to_context_and_key(tmp_path: Path) -> None:
    keyring = Keyring({"a": os.urandom(32), "b": os.urandom(32)}, "a")
    data_key = os.urandom(32)
    key_id, wrapped = keyring.wrap(data_key, REC)
    assert key_id == "a"
    assert data_key not in wrapped
    assert keyring.unwrap("a", wrapped, REC) == data_key
    with pytest.raises(DecryptionFailed):
        keyring.unwrap("a", wrapped, "another-recording")
    with pytest.raises(DecryptionFailed):
        keyring.unwrap("b", wrapped, REC)
    with pytest.raises(DecryptionFailed):
        keyring.unwrap("a", wrapped[:-1] + bytes([wrapped[-1] ^ 1]), REC)
    with pytest.raises(UnknownMasterKey, match="'c'"):
        keyring.unwrap("c", wrapped, REC)


def test_repr_never_shows_key_material() -> None:
    key = os.urandom(32)
    text = repr(Keyring({"mk-1": key}, "mk-1"))
    assert "mk-1" in text
    assert base64.b64encode(key).decode() not in text and key.hex() not in text


# --- data keys in the database --------------------------------------------------------------


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:  # noqa: F811
    engine = make_engine(db_url)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    try:
        yield make_session_factory(engine)
    finally:
        await engine.dispose()


async def _add_recordings(sessions: async_sessionmaker[AsyncSession], ids: list[str]) -> None:
    async with sessions() as session:
        for recording_id in ids:
            session.add(
                Recording(
                    id=recording_id,
                    call_id="c0000000-0000-4000-8000-000000000000",
                    kind="conversation",
                    asterisk_name=recording_id,
                    legal_basis="consent",
                    retention_class="default",
                    retention_days=60,
                )
            )
        await session.commit()


def _ids(n: int) -> list[str]:
    return [f"0b7d3c1e-5a2f-4c7e-9d1a-{i:012d}" for i in range(1, n + 1)]


async def _rows(sessions: async_sessionmaker[AsyncSession]) -> dict[str, DataKey]:
    async with sessions() as session:
        rows = (await session.execute(select(DataKey))).scalars().all()
    return {row.recording_id: row for row in rows}


async def test_create_is_idempotent(sessions: async_sessionmaker[AsyncSession]) -> None:
    await _add_recordings(sessions, [REC])
    keyring = Keyring({"mk-1": os.urandom(32)}, "mk-1")
    first = await create_data_key(sessions, keyring, REC)
    again = await create_data_key(sessions, keyring, REC)
    assert len(first) == 32 and again == first
    assert await load_data_key(sessions, keyring, REC) == first
    rows = await _rows(sessions)
    assert list(rows) == [REC]
    assert rows[REC].master_key_id == "mk-1"
    wrapped = rows[REC].wrapped_key
    assert wrapped is not None
    assert first not in wrapped


async def test_concurrent_creates_agree(sessions: async_sessionmaker[AsyncSession]) -> None:
    await _add_recordings(sessions, [REC])
    keyring = Keyring({"mk-1": os.urandom(32)}, "mk-1")
    keys = await asyncio.gather(*(create_data_key(sessions, keyring, REC) for _ in range(4)))
    assert len(set(keys)) == 1
    assert await load_data_key(sessions, keyring, REC) == keys[0]


async def test_create_for_unknown_recording(sessions: async_sessionmaker[AsyncSession]) -> None:
    keyring = Keyring({"mk-1": os.urandom(32)}, "mk-1")
    with pytest.raises(RecordingNotFound):
        await create_data_key(sessions, keyring, REC)
    with pytest.raises(DataKeyNotFound):
        await load_data_key(sessions, keyring, REC)


async def test_destroy_makes_the_key_unrecoverable(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await _add_recordings(sessions, [REC])
    keyring = Keyring({"mk-1": os.urandom(32)}, "mk-1")
    await create_data_key(sessions, keyring, REC)
    assert await destroy_data_key(sessions, REC) is True
    assert await destroy_data_key(sessions, REC) is False
    assert await destroy_data_key(sessions, "never-had-a-key") is False
    with pytest.raises(DataKeyDestroyed):
        await load_data_key(sessions, keyring, REC)
    # A deleted recording is never quietly re-encrypted under a fresh key.
    with pytest.raises(DataKeyDestroyed):
        await create_data_key(sessions, keyring, REC)
    row = (await _rows(sessions))[REC]
    assert row.wrapped_key is None and row.destroyed_at is not None


async def test_rotate_rewraps_to_the_new_active_key(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    ids = _ids(7)
    await _add_recordings(sessions, ids)
    old, new = os.urandom(32), os.urandom(32)
    before = Keyring({"mk-1": old}, "mk-1")
    originals = {rid: await create_data_key(sessions, before, rid) for rid in ids}
    await destroy_data_key(sessions, ids[0])

    both = Keyring({"mk-1": old, "mk-2": new}, "mk-2")
    report = await rotate(sessions, both, batch_size=3)
    assert (report.rewrapped, report.already_current, report.failed) == (6, 0, 0)

    rows = await _rows(sessions)
    assert rows[ids[0]].wrapped_key is None and rows[ids[0]].master_key_id == "mk-1"
    only_new = Keyring({"mk-2": new}, "mk-2")
    for rid in ids[1:]:
        assert rows[rid].master_key_id == "mk-2" and rows[rid].rotated_at is not None
        assert await load_data_key(sessions, both, rid) == originals[rid]
        # The old master key is no longer needed for anything.
        assert await load_data_key(sessions, only_new, rid) == originals[rid]

    again = await rotate(sessions, both, batch_size=3)
    assert (again.rewrapped, again.already_current, again.failed) == (0, 6, 0)


async def test_rotate_reports_keys_it_cannot_unwrap(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    ids = _ids(3)
    await _add_recordings(sessions, ids)
    lost = Keyring({"mk-lost": os.urandom(32)}, "mk-lost")
    await create_data_key(sessions, lost, ids[0])
    current = Keyring({"mk-2": os.urandom(32)}, "mk-2")
    await create_data_key(sessions, current, ids[1])
    await create_data_key(sessions, current, ids[2])
    report = await rotate(sessions, current)
    assert (report.rewrapped, report.already_current, report.failed) == (0, 2, 1)
    assert report.failed_ids == (ids[0],)
    assert (await _rows(sessions))[ids[0]].master_key_id == "mk-lost"


class _Interrupted(RuntimeError):
    pass


class _CrashingKeyring(Keyring):
    """Dies on the n-th wrap, like a rotate killed half-way."""

    __slots__ = ("_left",)

    def __init__(self, keys: dict[str, bytes], active_id: str, wraps_before_crash: int) -> None:
        super().__init__(keys, active_id)
        self._left = wraps_before_crash

    def wrap(self, data_key: bytes, context: str) -> tuple[str, bytes]:
        if self._left == 0:
            raise _Interrupted("killed")
        self._left -= 1
        return super().wrap(data_key, context)


async def test_interrupted_rotate_reruns_cleanly(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    ids = _ids(8)
    await _add_recordings(sessions, ids)
    old, new = os.urandom(32), os.urandom(32)
    originals = {rid: await create_data_key(sessions, Keyring({"mk-1": old}, "mk-1"), rid)
                 for rid in ids}
    keys = {"mk-1": old, "mk-2": new}

    # Batches of 3: the first commits, the second dies after two wraps and rolls back.
    with pytest.raises(_Interrupted):
        await rotate(sessions, _CrashingKeyring(keys, "mk-2", wraps_before_crash=5),
                     batch_size=3)
    rows = await _rows(sessions)
    assert sorted(rid for rid, row in rows.items() if row.master_key_id == "mk-2") == ids[:3]

    report = await rotate(sessions, Keyring(keys, "mk-2"), batch_size=3)
    assert (report.rewrapped, report.already_current, report.failed) == (5, 3, 0)
    only_new = Keyring({"mk-2": new}, "mk-2")
    for rid in ids:
        assert await load_data_key(sessions, only_new, rid) == originals[rid]


# --- the CLI --------------------------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("PBX_BRIDGE_"):
            monkeypatch.delenv(name)
    path = tmp_path / "pbx-bridge.toml"
    path.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/var/pbx-bridge.db"\n'
        f'[storage]\nkeys_dir = "{tmp_path}/keys"\n'
    )
    return path


def _cli(config: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["--config", str(config), *args])


def test_cli_generate_and_rotate(config: Path, tmp_path: Path) -> None:
    assert _cli(config, "db", "upgrade").exit_code == 0
    keys_dir = tmp_path / "keys"

    first = _cli(config, "keys", "generate")
    assert first.exit_code == 0, first.output
    first_id = Keyring.load(keys_dir, environ={}).active_id
    assert first_id in first.output
    secret = (keys_dir / f"{first_id}.key").read_text().strip()
    assert secret not in first.output

    url = f"sqlite+aiosqlite:///{tmp_path}/var/pbx-bridge.db"
    ids = _ids(3)

    async def seed() -> dict[str, bytes]:
        engine = make_engine(url)
        try:
            sessions = make_session_factory(engine)
            await _add_recordings(sessions, ids)
            keyring = Keyring.load(keys_dir, environ={})
            return {rid: await create_data_key(sessions, keyring, rid) for rid in ids}
        finally:
            await engine.dispose()

    originals = asyncio.run(seed())

    second = _cli(config, "keys", "generate")
    assert second.exit_code == 0, second.output
    second_id = Keyring.load(keys_dir, environ={}).active_id
    assert second_id != first_id

    rotated = _cli(config, "keys", "rotate")
    assert rotated.exit_code == 0, rotated.output
    assert f"rotated to master key {second_id}: 3 re-wrapped, 0 already current, 0 failed" in (
        rotated.output
    )
    again = _cli(config, "keys", "rotate")
    assert "0 re-wrapped, 3 already current, 0 failed" in again.output

    # The old key file can now go: the new key alone opens every data key.
    (keys_dir / f"{first_id}.key").unlink()

    async def check() -> None:
        engine = make_engine(url)
        try:
            keyring = Keyring.load(keys_dir, environ={})
            for rid in ids:
                assert await load_data_key(make_session_factory(engine), keyring, rid) == (
                    originals[rid]
                )
        finally:
            await engine.dispose()

    asyncio.run(check())


def test_cli_rotate_fails_loudly_without_the_old_key(config: Path, tmp_path: Path) -> None:
    assert _cli(config, "db", "upgrade").exit_code == 0
    keys_dir = tmp_path / "keys"
    assert _cli(config, "keys", "generate").exit_code == 0
    old_id = Keyring.load(keys_dir, environ={}).active_id
    url = f"sqlite+aiosqlite:///{tmp_path}/var/pbx-bridge.db"

    async def seed() -> None:
        engine = make_engine(url)
        try:
            sessions = make_session_factory(engine)
            await _add_recordings(sessions, [REC])
            await create_data_key(sessions, Keyring.load(keys_dir, environ={}), REC)
        finally:
            await engine.dispose()

    asyncio.run(seed())
    assert _cli(config, "keys", "generate").exit_code == 0
    (keys_dir / f"{old_id}.key").unlink()
    result = _cli(config, "keys", "rotate")
    assert result.exit_code == 1
    assert "1 failed" in result.output and REC in result.output


def test_cli_refuses_loose_permissions_and_missing_keys_dir(config: Path, tmp_path: Path) -> None:
    assert _cli(config, "keys", "rotate").exit_code == 2  # keys_dir missing
    assert _cli(config, "keys", "generate").exit_code == 0
    key_file = next((tmp_path / "keys").glob("*.key"))
    key_file.chmod(0o644)
    result = _cli(config, "keys", "rotate")
    assert result.exit_code == 2
    assert "chmod 600" in result.output

    no_dir = tmp_path / "plain.toml"
    no_dir.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/var/x.db"\n')
    result = _cli(no_dir, "keys", "generate")
    assert result.exit_code == 2
    assert "keys_dir is not set" in result.output


def test_cli_rotate_with_environment_key(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_dir = tmp_path / "env.toml"
    no_dir.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/var/env.db"\n')
    assert _cli(no_dir, "db", "upgrade").exit_code == 0
    monkeypatch.setenv(MASTER_KEY_ENV, _env("env-1", os.urandom(32))[MASTER_KEY_ENV])
    result = _cli(no_dir, "keys", "rotate")
    assert result.exit_code == 0, result.output
    assert "rotated to master key env-1: 0 re-wrapped" in result.output
