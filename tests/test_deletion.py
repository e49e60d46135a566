"""Deleting a recording everywhere, with real files on two local backends, on both databases.

The helpers here (a backend that can be taken down, rows with real copies) are shared
with the retention purge tests.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from database_fixtures import db_url, migrated_url, pg_database, sessions
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from storage_fakes import DirSource

import pbx_bridge.calls.models  # noqa: F401  (registers the call tables on Base.metadata)
from storage.backends.base import Backend
from storage.backends.local import LocalBackend
from storage.deletion import (
    DeletionNotRequested,
    RecordingBusy,
    RecordingDeleter,
    RecordingOnHold,
)
from storage.errors import BackendUnavailable, RecordingNotFound
from storage.keys import destroy_data_key
from storage.models import (
    CopyStatus,
    DataKey,
    Recording,
    RecordingCopy,
    RecordingStatus,
    Tombstone,
)
from storage.retention import HoldError, hold, release

__all__ = ["db_url", "migrated_url", "pg_database", "sessions"]

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
AUDIO = b"RIFF-not-really-audio-but-real-bytes" * 100


class SwitchableBackend(LocalBackend):
    """A local backend that can be made unreachable, as an FTP server behind a dead link."""

    def __init__(self, root: Path, name: str) -> None:
        super().__init__(root)
        self.name = name
        self.down = False
        self.deletes: list[str] = []

    async def delete(self, key: str) -> None:
        if self.down:
            raise BackendUnavailable(f"{self.name}: connection refused")
        self.deletes.append(key)
        await super().delete(key)


@pytest.fixture
def backends(tmp_path: Path) -> dict[str, SwitchableBackend]:
    return {
        "primary": SwitchableBackend(tmp_path / "primary", "primary"),
        "ftp": SwitchableBackend(tmp_path / "ftp", "ftp"),
    }


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    path = tmp_path / "spool"
    path.mkdir()
    return path


async def add_recording(
    sessions: async_sessionmaker[AsyncSession],
    backends: Mapping[str, Backend],
    *,
    status: str = RecordingStatus.STORED.value,
    retain_until: datetime | None = T0 + timedelta(days=30),
    copies: tuple[str, ...] = ("primary", "ftp"),
    kind: str = "conversation",
    call_id: str = "call-1",
    started_at: datetime = T0,
    spool_dir: Path | None = None,
    data_key: bool = False,
    hold_reason: str | None = None,
) -> str:
    """A recording row with a verified copy (real file + sidecar) on each named backend."""
    rid = str(uuid.uuid4())
    key = f"2026/03/01/{call_id}/{rid}.wav"
    async with sessions() as session:
        session.add(
            Recording(
                id=rid,
                call_id=call_id,
                kind=kind,
                status=status,
                asterisk_name=f"pbxb-{rid}",
                legal_basis="consent",
                retention_class="default",
                retention_days=30,
                retain_until=retain_until,
                sha256="ab" * 32,
                size_bytes=len(AUDIO),
                started_at=started_at,
                hold_reason=hold_reason,
                held_at=started_at if hold_reason else None,
            )
        )
        await session.flush()
        for name in copies:
            backend = backends[name]
            assert isinstance(backend, LocalBackend)
            path = backend.path_for(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(AUDIO)
            backend.path_for(key + ".json").write_text(json.dumps({"recording": rid}))
            session.add(
                RecordingCopy(
                    recording_id=rid,
                    backend=name,
                    key=key,
                    status=CopyStatus.VERIFIED.value,
                    size_bytes=len(AUDIO),
                    sha256="ab" * 32,
                    location=path.as_uri(),
                    sidecar_key=key + ".json",
                    verified_at=started_at,
                )
            )
        if data_key:
            session.add(DataKey(recording_id=rid, master_key_id="m1", wrapped_key=b"x" * 60))
        await session.commit()
    if spool_dir is not None:
        (spool_dir / f"{rid}.wav").write_bytes(AUDIO)
    return rid


def copy_path(backend: Backend, rid: str, call_id: str = "call-1") -> Path:
    assert isinstance(backend, LocalBackend)
    return backend.path_for(f"2026/03/01/{call_id}/{rid}.wav")


async def tombstones(sessions: async_sessionmaker[AsyncSession], rid: str) -> list[Tombstone]:
    async with sessions() as session:
        rows = await session.scalars(select(Tombstone).where(Tombstone.recording_id == rid))
        return list(rows.all())


async def recording(sessions: async_sessionmaker[AsyncSession], rid: str) -> Recording:
    async with sessions() as session:
        row = await session.get(Recording, rid)
    assert row is not None
    return row


async def copy_statuses(sessions: async_sessionmaker[AsyncSession], rid: str) -> dict[str, str]:
    async with sessions() as session:
        rows = await session.execute(
            select(RecordingCopy.backend, RecordingCopy.status).where(
                RecordingCopy.recording_id == rid
            )
        )
        return {backend: status for backend, status in rows.all()}


def make_deleter(
    sessions: async_sessionmaker[AsyncSession],
    backends: Mapping[str, Backend],
    spool_dir: Path,
    **kwargs: object,
) -> RecordingDeleter:
    async def destroy(recording_id: str) -> None:
        await destroy_data_key(sessions, recording_id)

    return RecordingDeleter(
        sessions, backends, spool_dir=spool_dir, destroy_key=destroy, **kwargs  # type: ignore[arg-type]
    )


async def test_manual_delete_clears_every_place_and_writes_one_tombstone(
    sessions: async_sessionmaker[AsyncSession],
    backends: dict[str, SwitchableBackend],
    spool_dir: Path,
) -> None:
    rid = await add_recording(sessions, backends, spool_dir=spool_dir, data_key=True)
    other = await add_recording(sessions, backends, spool_dir=spool_dir)
    (spool_dir / f"{rid}.flac.part").write_bytes(b"half")
    deleter = make_deleter(sessions, backends, spool_dir)

    outcome = await deleter.request(rid, reason="manual", note="asked by DPO", actor="cli:ayse")

    assert outcome.done and outcome.pending == ()
    for backend in backends.values():
        assert not copy_path(backend, rid).exists()
        assert not copy_path(backend, rid).with_suffix(".wav.json").exists()
        assert copy_path(backend, other).exists()  # the neighbour is untouched
    assert sorted(os.listdir(spool_dir)) == [f"{other}.wav"]
    row = await recording(sessions, rid)
    assert row.status == RecordingStatus.DELETED
    assert row.deleted_at is not None
    assert (row.call_id, row.sha256, row.delete_reason) == ("call-1", "ab" * 32, "manual")
    assert await copy_statuses(sessions, rid) == {"primary": "deleted", "ftp": "deleted"}
    async with sessions() as session:
        key_row = await session.get(DataKey, rid)
    assert key_row is not None and key_row.destroyed_at is not None
    assert key_row.wrapped_key is None

    [tomb] = await tombstones(sessions, rid)
    assert (tomb.reason, tomb.note, tomb.actor) == ("manual", "asked by DPO", "cli:ayse")
    assert (tomb.call_id, tomb.kind, tomb.legal_basis) == ("call-1", "conversation", "consent")
    assert tomb.retain_until == T0 + timedelta(days=30)
    assert tomb.sha256 == "ab" * 32
    assert tomb.requested_at <= tomb.deleted_at == row.deleted_at
    where = json.loads(tomb.deleted_where)
    places = sorted((w["backend"], Path(w["key"]).name) for w in where)
    assert places == sorted(
        [
            ("primary", f"{rid}.wav"),
            ("ftp", f"{rid}.wav"),
            ("spool", f"{rid}.wav"),
            ("spool", f"{rid}.flac.part"),
            ("data_key", rid),
        ]
    )
    assert all(w["deleted_at"].endswith("Z") for w in where)
    assert outcome.tombstone_id == tomb.id

    again = await deleter.request(rid, reason="manual", note="twice", actor="cli:ayse")
    assert again == outcome
    assert await deleter.finish(rid) == outcome
    assert len(await tombstones(sessions, rid)) == 1


async def test_unreachable_backend_keeps_the_recording_deleting_until_it_is_back(
    sessions: async_sessionmaker[AsyncSession],
    backends: dict[str, SwitchableBackend],
    spool_dir: Path,
) -> None:
    rid = await add_recording(sessions, backends, spool_dir=spool_dir)
    deleter = make_deleter(sessions, backends, spool_dir)
    backends["ftp"].down = True

    outcome = await deleter.request(rid, reason="manual", note=None, actor="admin")

    assert not outcome.done
    assert outcome.status == RecordingStatus.DELETING
    [blocker] = outcome.pending
    assert blocker.place == "ftp" and "connection refused" in blocker.why
    assert not copy_path(backends["primary"], rid).exists()
    assert copy_path(backends["ftp"], rid).exists()
    assert await copy_statuses(sessions, rid) == {"primary": "deleted", "ftp": "deleting"}
    assert (await recording(sessions, rid)).status == RecordingStatus.DELETING
    assert await tombstones(sessions, rid) == []
    assert await deleter.pending() == [rid]

    # Still down: nothing changes, still no tombstone.
    assert not (await deleter.finish(rid)).done
    assert await tombstones(sessions, rid) == []

    backends["ftp"].down = False
    done = await deleter.finish(rid)
    assert done.done
    assert not copy_path(backends["ftp"], rid).exists()
    [tomb] = await tombstones(sessions, rid)
    assert {w["backend"] for w in json.loads(tomb.deleted_where)} == {"primary", "ftp", "spool"}
    assert tomb.actor == "admin"
    assert await deleter.pending() == []
    assert (await deleter.finish(rid)).tombstone_id == tomb.id
    assert len(await tombstones(sessions, rid)) == 1


async def test_a_new_deleter_finishes_from_the_rows_alone(
    sessions: async_sessionmaker[AsyncSession],
    backends: dict[str, SwitchableBackend],
    spool_dir: Path,
) -> None:
    rid = await add_recording(sessions, backends)
    backends["primary"].down = True
    first = make_deleter(sessions, backends, spool_dir)
    assert not (await first.request(rid, reason="manual")).done
    backends["primary"].down = False

    restarted = make_deleter(sessions, backends, spool_dir)
    assert await restarted.pending() == [rid]
    assert (await restarted.finish(rid)).done
    [tomb] = await tombstones(sessions, rid)
    assert {w["backend"] for w in json.loads(tomb.deleted_where)} == {"primary", "ftp"}
    assert tomb.reason == "manual"


async def test_after_a_restart_the_tombstone_still_names_what_the_first_pass_cleared(
    sessions: async_sessionmaker[AsyncSession],
    backends: dict[str, SwitchableBackend],
    spool_dir: Path,
) -> None:
    rid = await add_recording(sessions, backends, spool_dir=spool_dir, data_key=True)
    backends["ftp"].down = True
    first = make_deleter(sessions, backends, spool_dir)
    outcome = await first.request(rid, reason="manual")
    assert not outcome.done
    # The spool file and the data key went in the first pass; a second pass of the same
    # deleter sees the key again but must not list it twice.
    assert not (await first.finish(rid)).done
    backends["ftp"].down = False

    restarted = make_deleter(sessions, backends, spool_dir)  # nothing carried in memory
    assert (await restarted.finish(rid)).done
    [tomb] = await tombstones(sessions, rid)
    where = json.loads(tomb.deleted_where)
    places = [(w["backend"], w["key"]) for w in where]
    assert sorted(p for p, _ in places) == ["data_key", "ftp", "primary", "spool"]
    assert len(places) == len(set(places))
    assert (await recording(sessions, rid)).delete_progress is None


async def test_backend_removed_from_config_blocks_completion(
    sessions: async_sessionmaker[AsyncSession],
    backends: dict[str, SwitchableBackend],
    spool_dir: Path,
) -> None:
    rid = await add_recording(sessions, backends)
    deleter = make_deleter(sessions, {"primary": backends["primary"]}, spool_dir)
    outcome = await deleter.request(rid, reason="manual")
    assert not outcome.done
    assert [(p.place, p.why) for p in outcome.pending] == [
        ("ftp", "backend 'ftp' is not configured")
    ]
    assert copy_path(backends["ftp"], rid).exists()
    assert await tombstones(sessions, rid) == []


async def test_hold_and_pipeline_ownership_refuse_deletion(
    sessions: async_sessionmaker[AsyncSession],
    backends: dict[str, SwitchableBackend],
    spool_dir: Path,
) -> None:
    deleter = make_deleter(sessions, backends, spool_dir)
    rid = await add_recording(sessions, backends)
    await hold(sessions, rid, "court file 2026/123", actor="legal")
    with pytest.raises(RecordingOnHold, match="court file 2026/123"):
        await deleter.request(rid, reason="manual")
    assert copy_path(backends["primary"], rid).exists()
    assert (await recording(sessions, rid)).status == RecordingStatus.STORED
    with pytest.raises(HoldError, match="already on hold"):
        await hold(sessions, rid, "again")

    await release(sessions, rid, actor="legal")
    with pytest.raises(HoldError, match="not on hold"):
        await release(sessions, rid)
    assert (await deleter.request(rid, reason="manual")).done
    with pytest.raises(HoldError, match="deleted"):
        await hold(sessions, rid, "too late")

    spooled = await add_recording(sessions, backends, status="spooled", copies=())
    with pytest.raises(RecordingBusy, match="spooled"):
        await deleter.request(spooled, reason="manual")
    with pytest.raises(DeletionNotRequested):
        await deleter.finish(spooled)
    with pytest.raises(RecordingNotFound):
        await deleter.request("no-such-id", reason="manual")


async def test_failed_recording_loses_its_asterisk_copy(
    sessions: async_sessionmaker[AsyncSession],
    backends: dict[str, SwitchableBackend],
    spool_dir: Path,
    tmp_path: Path,
) -> None:
    source = DirSource(tmp_path / "asterisk")
    rid = await add_recording(sessions, backends, status="failed", copies=())
    source.put(f"pbxb-{rid}", AUDIO)
    source.always_unavailable = True
    deleter = make_deleter(sessions, backends, spool_dir, source=source)

    outcome = await deleter.request(rid, reason="manual")
    assert not outcome.done
    assert [p.place for p in outcome.pending] == ["asterisk"]
    assert source.has(f"pbxb-{rid}")

    source.always_unavailable = False
    done = await deleter.finish(rid)
    assert done.done
    assert not source.has(f"pbxb-{rid}")
    assert [w["backend"] for w in done.deleted_where] == ["asterisk"]
    async with sessions() as session:
        count = await session.scalar(select(func.count()).select_from(Tombstone))
    assert count == 1
