"""The service's daily walk of the audit trail: it remembers the last intact head, so a
consistent rewrite of older entries, which a fresh walk cannot see, is still caught."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from audit_fixtures import tamper
from database_fixtures import db_url, migrated_url, pg_database, sessions
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.audit_watch import AuditTrailWatch
from storage.audit_trail import entry_hash, record_event, verify
from storage.models import AuditEntry

__all__ = ["db_url", "migrated_url", "pg_database", "sessions"]  # fixtures, imported for pytest

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


async def append(sessions: async_sessionmaker[AsyncSession], first: int, count: int) -> None:
    for i in range(first, first + count):
        async with sessions() as session:
            await record_event(session, actor="cli:alice", action="recording.held",
                               target=f"recording:r{i}", details={"n": i},
                               at=T0 + timedelta(seconds=i))
            await session.commit()


async def test_the_watch_follows_the_head_and_catches_a_consistent_rewrite(
    sessions: async_sessionmaker[AsyncSession], migrated_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="pbx_bridge.audit_watch")
    watch = AuditTrailWatch(sessions)
    assert (await watch.run_once()).ok and watch.anchor is None  # an empty trail
    await append(sessions, 1, 4)
    first = await watch.run_once()
    assert first.ok and first.checked == 4 and watch.anchor == (4, first.head_hash)
    assert f"head seq 4 hash {first.head_hash}" in caplog.text
    await append(sessions, 5, 2)
    second = await watch.run_once()
    assert second.ok and watch.anchor == (6, second.head_hash)

    # Entry 2 changed and every later hash recomputed: a fresh walk finds nothing.
    async with sessions() as session:
        entries = list(await session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
    statements, prev = [], entries[0].hash
    for entry in entries[1:]:
        actor = "cli:mallory" if entry.seq == 2 else entry.actor
        digest = entry_hash(seq=entry.seq, at=entry.at, actor=actor, action=entry.action,
                            target=entry.target, outcome=entry.outcome,
                            details=entry.details, prev_hash=prev)
        statements.append(f"UPDATE audit_log SET actor = '{actor}', prev_hash = '{prev}', "
                          f"hash = '{digest}' WHERE seq = {entry.seq}")
        prev = digest
    statements.append(f"UPDATE audit_head SET hash = '{prev}'")
    await tamper(migrated_url, *statements)
    async with sessions() as session:
        assert (await verify(session)).ok

    caplog.clear()
    broken = await watch.run_once()
    assert broken.problem is not None and broken.problem.kind == "anchor"
    assert broken.problem.seq == 6
    assert "audit trail check FAILED" in caplog.text and "entry 6 has hash" in caplog.text
    assert watch.anchor == (6, second.head_hash)  # kept: it fails again until looked at
    assert not (await watch.run_once()).ok
