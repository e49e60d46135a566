"""``recordings show|get|delete|retain|hold|release`` and ``purge`` on SQLite, with real files."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cli_support import clean_pbx_env, cli  # noqa: F401  (clean_pbx_env: autouse fixture)
from sqlalchemy import select

from pbx_bridge.calls.models import Call
from storage.database import make_engine, make_session_factory
from storage.models import CopyStatus, Recording, RecordingCopy

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
ENDED = T0 + timedelta(minutes=2)
CALL_ID = "11111111-2222-3333-4444-555555555555"
REC = "aaaaaaaa-0000-0000-0000-000000000001"
OLD = "aaaaaaaa-0000-0000-0000-000000000002"
KEY = f"2026/03/01/{CALL_ID}/{REC}.wav"
OLD_KEY = f"2026/03/01/{CALL_ID}/{OLD}.wav"
AUDIO = bytes(range(256)) * 64


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "pbx-bridge.toml"
    path.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/var/pbx-bridge.db"\n'
        f'[storage]\nspool_dir = "{tmp_path}/spool"\n'
        f'[storage.local]\npath = "{tmp_path}/recordings"\n'
    )
    return path


def _seed(config: Path) -> None:
    tmp = config.parent
    for key in (KEY, OLD_KEY):
        path = tmp / "recordings" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(AUDIO)
    digest = hashlib.sha256(AUDIO).hexdigest()

    async def insert() -> None:
        engine = make_engine(f"sqlite+aiosqlite:///{tmp}/var/pbx-bridge.db")
        try:
            async with make_session_factory(engine)() as session:
                session.add(
                    Call(
                        id=CALL_ID,
                        linkedid="1700000000.1",
                        channel_id="1700000000.1",
                        direction="inbound",
                        caller="+905321234567",
                        did="902121112233",
                        extension="101",
                        announcement="before-connect",
                        legal_basis="consent",
                        retention_class="default",
                        language="tr",
                        started_at=T0,
                        ended_at=ENDED,
                        disposition="answered",
                    )
                )
                for rid, key, until in (
                    (REC, KEY, ENDED + timedelta(days=60)),
                    (OLD, OLD_KEY, ENDED + timedelta(days=1)),
                ):
                    session.add(
                        Recording(
                            id=rid,
                            call_id=CALL_ID,
                            kind="conversation",
                            status="stored",
                            asterisk_name=f"pbxb-{rid}",
                            legal_basis="consent",
                            retention_class="default",
                            retention_days=60,
                            retain_until=until,
                            sha256=digest,
                            size_bytes=len(AUDIO),
                            duration_s=2.0,
                            location=f"local:{key}",
                            started_at=T0,
                        )
                    )
                    await session.flush()
                    session.add(
                        RecordingCopy(
                            recording_id=rid,
                            backend="local",
                            key=key,
                            status=CopyStatus.VERIFIED.value,
                            sha256=digest,
                            size_bytes=len(AUDIO),
                            location=(tmp / "recordings" / key).as_uri(),
                            verified_at=T0,
                        )
                    )
                await session.commit()
        finally:
            await engine.dispose()

    asyncio.run(insert())


@pytest.fixture
def seeded(config: Path) -> Path:
    result = cli(config, "db", "upgrade")
    assert result.exit_code == 0, result.output
    _seed(config)
    return config


def test_show_masks_the_caller_and_lists_copies(seeded: Path) -> None:
    result = cli(seeded, "recordings", "show", REC)
    assert result.exit_code == 0, result.output
    assert "+9053***4567" in result.output and "+905321234567" not in result.output
    assert "local" in result.output and KEY in result.output and "verified" in result.output
    assert re.search(r"^legal hold:\s+no$", result.output, re.MULTILINE)

    unmasked = cli(seeded, "recordings", "show", REC, "--unmasked", "--json")
    data = json.loads(unmasked.output)
    assert data["caller"] == "+905321234567"
    assert data["copies"][0]["backend"] == "local" and data["tombstone"] is None

    missing = cli(seeded, "recordings", "show", "nope")
    assert missing.exit_code == 2 and "no recording nope" in missing.output
    assert "Traceback" not in missing.output


def test_every_show_is_audited(seeded: Path) -> None:
    assert cli(seeded, "recordings", "show", REC).exit_code == 0
    assert cli(seeded, "recordings", "show", REC, "--unmasked", "--json").exit_code == 0
    assert cli(seeded, "recordings", "show", "nope").exit_code == 2
    result = cli(seeded, "audit", "list", "--action", "recording.viewed", "--json")
    entries = json.loads(result.stdout)
    assert [(e["target"], e["details"]) for e in reversed(entries)] == [
        (f"recording:{REC}", {"unmasked": False}),
        (f"recording:{REC}", {"unmasked": True}),
    ]


def test_get_writes_the_stored_bytes(seeded: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.wav"
    result = cli(seeded, "recordings", "get", REC, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == AUDIO
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    again = cli(seeded, "recordings", "get", REC, "--out", str(out))
    assert again.exit_code == 2 and "exists" in again.output


def test_retain_hold_delete_release_round_trip(seeded: Path, tmp_path: Path) -> None:
    assert cli(seeded, "retention", "set", "legal", "3650").exit_code == 0
    retain = cli(seeded, "recordings", "retain", REC, "--class", "legal")
    assert retain.exit_code == 0, retain.output
    assert (ENDED + timedelta(days=3650)).strftime("%Y-%m-%d %H:%M:%S") in retain.output
    unknown = cli(seeded, "recordings", "retain", REC, "--class", "nope")
    assert unknown.exit_code == 2 and "unknown retention class" in unknown.output

    held = cli(seeded, "recordings", "hold", REC, "--reason", "court call from 05321234567")
    assert held.exit_code == 0, held.output
    shown = cli(seeded, "recordings", "show", REC).output
    assert "court call from 0532***4567" in shown and "05321234567" not in shown

    refused = cli(seeded, "recordings", "delete", REC, "--reason", "asked", "--yes")
    assert refused.exit_code == 2 and "legal hold" in refused.output
    assert (tmp_path / "recordings" / KEY).exists()

    assert cli(seeded, "recordings", "release", REC).exit_code == 0
    not_held = cli(seeded, "recordings", "release", REC)
    assert not_held.exit_code == 2 and "not on hold" in not_held.output

    aborted = cli(seeded, "recordings", "delete", REC, "--reason", "asked", input="n\n")
    assert aborted.exit_code != 0 and (tmp_path / "recordings" / KEY).exists()

    deleted = cli(seeded, "recordings", "delete", REC, "--reason", "data subject asked", "--yes")
    assert deleted.exit_code == 0, deleted.output
    assert "deleted" in deleted.output
    assert not (tmp_path / "recordings" / KEY).exists()

    data = json.loads(cli(seeded, "recordings", "show", REC, "--json").output)
    assert data["status"] == "deleted" and data["delete_reason"] == "manual"
    tomb = data["tombstone"]
    assert tomb["reason"] == "manual" and tomb["note"] == "data subject asked"
    assert tomb["actor"].startswith("cli")
    assert [w["backend"] for w in tomb["deleted_where"]] == ["local"]
    assert data["copies"][0]["status"] == "deleted"
    text = cli(seeded, "recordings", "show", REC).output
    assert "tombstone: deleted" in text and "because manual" in text

    late = cli(seeded, "recordings", "hold", REC, "--reason", "too late")
    assert late.exit_code == 2 and "deleted" in late.output
    gone = cli(seeded, "recordings", "get", REC, "--out", str(tmp_path / "x.wav"))
    assert gone.exit_code == 2 and "deleted" in gone.output


def test_purge_dry_run_then_purge(seeded: Path, tmp_path: Path) -> None:
    day_after = (ENDED + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    dry = cli(seeded, "purge", "--dry-run", "--as-of", day_after)
    assert dry.exit_code == 0, dry.output
    assert OLD in dry.output and REC not in dry.output
    assert "1 recording(s) would be deleted" in dry.output
    assert (tmp_path / "recordings" / OLD_KEY).exists()

    future = cli(seeded, "purge", "--as-of", "2999-01-01")
    assert future.exit_code == 2 and "--dry-run" in future.output
    bad = cli(seeded, "purge", "--dry-run", "--as-of", "tomorrow")
    assert bad.exit_code == 2

    # Both recordings expired long before today; hold one, purge deletes the other.
    assert cli(seeded, "recordings", "hold", REC, "--reason", "audit").exit_code == 0
    purge = cli(seeded, "purge")
    assert purge.exit_code == 0, purge.output
    assert "1 deleted, 0 pending, 1 kept on legal hold" in purge.output
    assert not (tmp_path / "recordings" / OLD_KEY).exists()
    assert (tmp_path / "recordings" / KEY).exists()
    data = json.loads(cli(seeded, "recordings", "show", OLD, "--json").output)
    assert data["status"] == "deleted" and data["tombstone"]["reason"] == "retention"


def _copy_of(config: Path, recording_id: str) -> RecordingCopy:
    async def load() -> RecordingCopy:
        engine = make_engine(f"sqlite+aiosqlite:///{config.parent}/var/pbx-bridge.db")
        try:
            async with make_session_factory(engine)() as session:
                copy = (
                    await session.scalars(
                        select(RecordingCopy).where(RecordingCopy.recording_id == recording_id)
                    )
                ).one()
                if copy.sidecar_key is None:
                    copy.sidecar_key = copy.key + ".json"
                    await session.commit()
                return copy
        finally:
            await engine.dispose()

    return asyncio.run(load())


def test_retain_marks_the_sidecars_for_rewriting(seeded: Path) -> None:
    """The sidecar on the customer's server states retain_until: the sweeper rewrites it."""
    assert _copy_of(seeded, REC).sidecar_stale_since is None
    assert cli(seeded, "retention", "set", "legal", "3650").exit_code == 0
    assert cli(seeded, "recordings", "retain", REC, "--class", "legal").exit_code == 0
    assert _copy_of(seeded, REC).sidecar_stale_since is not None
