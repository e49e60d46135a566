"""Retention purge with a controlled clock, legal hold, 0-day classes, retention changes."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from test_deletion import (
    T0,
    SwitchableBackend,
    add_recording,
    backends,
    copy_path,
    copy_statuses,
    db_url,
    make_deleter,
    migrated_url,
    pg_database,
    recording,
    sessions,
    spool_dir,
    tombstones,
)

from pbx_bridge.calls.models import Call, RetentionClassRow
from pbx_bridge.calls.retention import UnknownRetentionClass
from pbx_bridge.config import RetentionSettings
from pbx_bridge.recordings_admin import RecordingGone, change_call_retention, change_retention
from storage.models import Recording, RecordingStatus, Tombstone
from storage.retention import (
    Purger,
    hold,
    purge_expired,
    purge_recording_if_expired,
    release,
)

__all__ = ["backends", "db_url", "migrated_url", "pg_database", "sessions", "spool_dir"]

DAY = T0 + timedelta(days=30)


async def test_purge_deletes_on_the_day_keeps_holds_and_dry_run_changes_nothing(
    sessions: async_sessionmaker[AsyncSession],
    backends: dict[str, SwitchableBackend],
    spool_dir: Path,
) -> None:
    due = [await add_recording(sessions, backends, retain_until=DAY) for _ in range(3)]
    held = await add_recording(sessions, backends, retain_until=DAY, hold_reason="dispute")
    later = await add_recording(sessions, backends, retain_until=DAY + timedelta(days=1))
    failed = await add_recording(
        sessions, backends, status="failed", copies=(), retain_until=DAY - timedelta(days=1)
    )
    live = await add_recording(sessions, backends, status="recording", copies=(), retain_until=DAY)
    deleter = make_deleter(sessions, backends, spool_dir)

    before = await purge_expired(sessions, deleter, now=DAY - timedelta(days=1, seconds=1))
    assert (before.deleted, before.still_pending_count) == (0, 0)

    dry = await purge_expired(sessions, deleter, now=DAY, dry_run=True, batch=2)
    assert sorted(c.recording_id for c in dry.would_delete) == sorted([*due, failed])
    first = next(c for c in dry.would_delete if c.recording_id == due[0])
    assert first.retain_until == DAY and first.kind == "conversation"
    assert sorted(first.where) == sorted(
        f"{name}:2026/03/01/call-1/{due[0]}.wav" for name in ("primary", "ftp")
    )
    assert dry.skipped_on_hold == [held]
    assert dry.deleted == 0
    for rid in due:
        assert copy_path(backends["primary"], rid).exists()
        assert (await recording(sessions, rid)).status == RecordingStatus.STORED

    report = await purge_expired(sessions, deleter, now=DAY, batch=2)
    assert report.deleted == 4 and report.still_pending_count == 0
    assert report.skipped_on_hold == [held]
    for rid in [*due, failed]:
        row = await recording(sessions, rid)
        assert row.status == RecordingStatus.DELETED and row.delete_reason == "retention"
        [tomb] = await tombstones(sessions, rid)
        assert tomb.reason == "retention"
    for rid in due:
        assert not copy_path(backends["ftp"], rid).exists()
    for rid, status in ((held, "stored"), (later, "stored"), (live, "recording")):
        assert (await recording(sessions, rid)).status == status
    assert copy_path(backends["primary"], held).exists()

    await release(sessions, held)
    again = await purge_expired(sessions, deleter, now=DAY)
    assert again.deleted == 1 and again.skipped_on_hold == []
    assert not copy_path(backends["primary"], held).exists()
    assert (await recording(sessions, later)).status == RecordingStatus.STORED


async def test_purge_resumes_pending_deletions_and_reports_why(
    sessions: async_sessionmaker[AsyncSession],
    backends: dict[str, SwitchableBackend],
    spool_dir: Path,
) -> None:
    rids = [await add_recording(sessions, backends, retain_until=DAY) for _ in range(3)]
    deleter = make_deleter(sessions, backends, spool_dir)
    backends["ftp"].down = True
    report = await purge_expired(sessions, deleter, now=DAY)
    assert report.deleted == 0 and report.still_pending_count == 3
    assert {p.recording_id for p in report.still_pending} == set(rids)
    assert all(p.places[0].place == "ftp" for p in report.still_pending)
    assert await copy_statuses(sessions, rids[0]) == {"primary": "deleted", "ftp": "deleting"}

    backends["ftp"].down = False
    # The clock no longer matters: a requested deletion is finished whatever the date.
    report = await purge_expired(sessions, deleter, now=T0)
    assert report.deleted == 3 and report.still_pending_count == 0
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Tombstone)) == 3


async def test_zero_day_recording_goes_as_soon_as_it_is_stored(
    sessions: async_sessionmaker[AsyncSession],
    backends: dict[str, SwitchableBackend],
    spool_dir: Path,
) -> None:
    ended = T0 + timedelta(minutes=3)
    zero = await add_recording(sessions, backends, retain_until=ended)
    kept = await add_recording(sessions, backends, retain_until=ended + timedelta(days=60))
    deleter = make_deleter(sessions, backends, spool_dir)
    stored_at = ended + timedelta(seconds=5)

    outcome = await purge_recording_if_expired(sessions, deleter, zero, now=stored_at)
    assert outcome is not None and outcome.done
    assert await purge_recording_if_expired(sessions, deleter, kept, now=stored_at) is None
    row = await recording(sessions, zero)
    assert row.status == RecordingStatus.DELETED
    assert row.sha256 == "ab" * 32 and row.call_id == "call-1"  # the metadata stays
    assert (await recording(sessions, kept)).status == RecordingStatus.STORED

    await hold(sessions, kept, "audit")
    next_year = DAY + timedelta(days=365)
    assert await purge_recording_if_expired(sessions, deleter, kept, now=next_year) is None


async def test_purger_runs_at_start_and_on_each_tick_with_its_clock(
    sessions: async_sessionmaker[AsyncSession],
    backends: dict[str, SwitchableBackend],
    spool_dir: Path,
) -> None:
    rid = await add_recording(sessions, backends, retain_until=DAY)
    clock = [DAY - timedelta(hours=1)]
    purger = Purger(
        sessions, make_deleter(sessions, backends, spool_dir), interval_s=0.05, now=lambda: clock[0]
    )
    await purger.start()
    try:
        for _ in range(100):
            if purger.runs >= 1:
                break
            await asyncio.sleep(0.01)
        assert purger.last_report is not None and purger.last_report.deleted == 0
        assert (await recording(sessions, rid)).status == RecordingStatus.STORED
        clock[0] = DAY
        for _ in range(200):
            if (await recording(sessions, rid)).status == RecordingStatus.DELETED:
                break
            await asyncio.sleep(0.02)
        assert (await recording(sessions, rid)).status == RecordingStatus.DELETED
    finally:
        await purger.stop()
    runs = purger.runs
    await asyncio.sleep(0.15)
    assert purger.runs == runs  # stopped means stopped


async def test_purger_survives_an_unexpected_error_and_purges_on_its_next_run(
    sessions: async_sessionmaker[AsyncSession],
    backends: dict[str, SwitchableBackend],
    spool_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Before the one job runner, any error but a storage, SQL or OS one ended the purger
    until the next restart, and expired recordings stayed without a word."""
    rid = await add_recording(sessions, backends, retain_until=DAY)
    reads = 0

    def clock() -> datetime:
        nonlocal reads
        reads += 1
        if reads == 1:
            raise RuntimeError("a bug in the first run")
        return DAY

    pauses: list[float] = []
    second_pause = asyncio.Event()

    async def sleep(seconds: float) -> None:  # no real waiting: each pause ends at once
        pauses.append(seconds)
        if len(pauses) >= 2:
            second_pause.set()
            await asyncio.Event().wait()

    failures = REGISTRY.get_sample_value(
        "pbx_bridge_job_failures_total", {"job": "purge", "kind": "unexpected"}
    ) or 0.0
    purger = Purger(sessions, make_deleter(sessions, backends, spool_dir), interval_s=300,
                    now=clock, sleep=sleep)
    async with purger:
        await asyncio.wait_for(second_pause.wait(), 10)
    assert pauses == [60, 300]  # retried sooner after the failure, then the interval
    assert (await recording(sessions, rid)).status == RecordingStatus.DELETED
    assert purger.runs == 1 and purger.last_report is not None
    assert purger.last_report.deleted == 1 and purger.last_error is None
    assert REGISTRY.get_sample_value(
        "pbx_bridge_job_failures_total", {"job": "purge", "kind": "unexpected"}
    ) == failures + 1
    assert "retention purge failed unexpectedly" in caplog.text
    assert "RuntimeError: a bug in the first run" in caplog.text


async def _call(sessions: async_sessionmaker[AsyncSession], ended_at: datetime | None) -> None:
    async with sessions() as session:
        session.add(RetentionClassRow(name="legal", days=3650))
        session.add(
            Call(
                id="call-1",
                linkedid="1.1",
                channel_id="1.1",
                direction="inbound",
                caller="+905321234567",
                did="902121112233",
                announcement="before-connect",
                legal_basis="consent",
                retention_class="default",
                language="tr",
                started_at=T0,
                ended_at=ended_at,
            )
        )
        await session.commit()


async def test_retention_change_counts_from_the_call_end(
    sessions: async_sessionmaker[AsyncSession],
    backends: dict[str, SwitchableBackend],
    spool_dir: Path,
) -> None:
    ended = T0 + timedelta(minutes=4)
    await _call(sessions, ended)
    rid = await add_recording(sessions, backends, retain_until=ended + timedelta(days=30))
    evidence = await add_recording(sessions, backends, kind="evidence", retain_until=ended)
    settings = RetentionSettings(default_days=60)

    change = await change_retention(sessions, rid, "legal", settings)
    assert change.retain_until == ended + timedelta(days=3650)
    assert change.old_retain_until == ended + timedelta(days=30)
    row = await recording(sessions, rid)
    assert (row.retention_class, row.retention_days) == ("legal", 3650)
    assert row.retain_until == ended + timedelta(days=3650)

    back = await change_retention(sessions, rid, "default", settings)
    assert back.retain_until == ended + timedelta(days=60)

    with pytest.raises(UnknownRetentionClass):
        await change_retention(sessions, rid, "nope", settings)

    changes = await change_call_retention(sessions, "call-1", "legal", settings)
    assert [c.recording_id for c in changes] == [rid]  # consent evidence keeps its own
    assert (await recording(sessions, evidence)).retain_until == ended
    async with sessions() as session:
        call = await session.get(Call, "call-1")
        assert call is not None and call.retention_class == "legal"

    deleter = make_deleter(sessions, backends, spool_dir)
    await deleter.request(evidence, reason="manual")
    with pytest.raises(RecordingGone):
        await change_retention(sessions, evidence, "legal", settings)


async def test_retention_change_while_the_call_is_live_leaves_the_date_open(
    sessions: async_sessionmaker[AsyncSession],
    backends: dict[str, SwitchableBackend],
) -> None:
    await _call(sessions, None)
    rid = await add_recording(sessions, backends, status="recording", retain_until=None)
    change = await change_retention(sessions, rid, "legal", RetentionSettings())
    assert change.retain_until is None
    async with sessions() as session:
        row = await session.get(Recording, rid)
        assert row is not None and row.retention_class == "legal" and row.retain_until is None
