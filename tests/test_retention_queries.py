"""The purge's queries on a table that years of service leave: mostly long-deleted rows.

Deleted recordings keep their retain_until, all of it in the past, so a query for "every
deletable status, expired by now, oldest first" along ``ix_recordings_retain_until`` reads
each of them before the first live one (3 s a page at 600,000 deleted, bench/README.md
finding 5). The purge asks one status at a time along ``ix_recordings_status_retain_until``
instead; these tests hold it to the same answers as the plain definition (computed here in
Python from the rows inserted) and to plans that use that index, on both databases.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import pytest
from database_fixtures import db_url, migrated_url, pg_database, sessions
from query_plans import prefer_indexes, query_plan
from sqlalchemy import Select, insert, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.deletion import DELETABLE
from storage.models import Recording
from storage.retention import (
    _refresh_sqlite_statistics,
    count_expired,
    count_expired_query,
    deleting_page_query,
    expired_page_query,
    held_query,
)

__all__ = ["db_url", "migrated_url", "pg_database", "sessions"]

NOW = datetime.fromisoformat("2026-06-01T00:00:00+00:00")
DELETED = 3000
# Every status a row can have, including the ones the purge must leave alone.
LIVE_STATUSES = (
    "stored", "prepared", "failed", "deleting", "recording", "finished", "spooled"
)


def _rows() -> list[dict[str, Any]]:
    """Long-deleted rows before the expired ones and among them; live rows of every status,
    four to a retain_until (ties across statuses), some held, some not yet due or undated.
    """
    rows: list[dict[str, Any]] = []
    n = itertools.count()

    def row(status: str, until: datetime | None, hold: str | None = None) -> None:
        i = next(n)
        rid = f"{i:08x}-0000-4000-9000-{(i * 7919) % 10**12:012x}"  # ids not in insert order
        rows.append({
            "id": rid, "call_id": rid, "kind": "conversation", "status": status,
            "asterisk_name": f"pbxb-{rid}", "legal_basis": "consent",
            "retention_class": "default", "retention_days": 30, "retain_until": until,
            "format": "wav", "layout": "mixed", "started_at": NOW - timedelta(days=60),
            "hold_reason": hold,
        })

    for i in range(DELETED):
        row("deleted", NOW - timedelta(days=40, minutes=i))
    for i in range(240):
        until = NOW - timedelta(days=10, minutes=i // 4)
        status = LIVE_STATUSES[i % len(LIVE_STATUSES)]
        row(status, until, hold="dispute" if i % 11 == 0 and status != "deleting" else None)
        if i % 3 == 0:
            row("deleted", until)  # erased before its retention ended, now past it
    for status in LIVE_STATUSES:
        row(status, NOW)  # due exactly now: included
        row(status, NOW + timedelta(seconds=1))
        row(status, None)
    row("deleted", NOW + timedelta(days=3))
    return rows


def _expected(rows: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """The definition: deletable, expired by now, not held, by (retain_until, id); held."""
    deletable = {s.value for s in DELETABLE}
    expired = [
        r for r in rows
        if r["status"] in deletable and r["retain_until"] is not None
        and r["retain_until"] <= NOW
    ]
    due = sorted((r for r in expired if r["hold_reason"] is None),
                 key=lambda r: (r["retain_until"], r["id"]))
    held = sorted(r["id"] for r in expired if r["hold_reason"] is not None)
    return [r["id"] for r in due], held


@pytest.fixture
async def loaded(
    sessions: async_sessionmaker[AsyncSession],
) -> tuple[async_sessionmaker[AsyncSession], list[dict[str, Any]]]:
    rows = _rows()
    async with sessions() as session:
        await session.execute(insert(Recording), rows)
        await session.commit()
        if session.bind.dialect.name == "postgresql":
            await session.execute(text("ANALYZE recordings"))
            await session.commit()
    await _refresh_sqlite_statistics(sessions)  # what every purge does first
    return sessions, rows


async def test_pages_counts_and_holds_are_those_of_the_plain_definition(
    loaded: tuple[async_sessionmaker[AsyncSession], list[dict[str, Any]]],
) -> None:
    sessions, rows = loaded
    due, held = _expected(rows)
    assert len(due) > 50 and held  # the table really mixes what it says
    for batch in (1, 3, 7, 500):
        seen: list[str] = []
        after: tuple[datetime, str] | None = None
        while True:
            async with sessions() as session:
                page = list((await session.scalars(expired_page_query(NOW, after, batch))).all())
            if not page:
                break
            assert len(page) <= batch
            seen.extend(r.id for r in page)
            last = page[-1]
            assert last.retain_until is not None
            after = (last.retain_until, last.id)
        assert seen == due, f"batch {batch}"
    assert await count_expired(sessions, NOW) == len(due)
    deleting = sorted(r["id"] for r in rows if r["status"] == "deleting")
    async with sessions() as session:
        first = list((await session.scalars(deleting_page_query(None, 5))).all())
        rest = list((await session.scalars(deleting_page_query(first[-1].id, 500))).all())
    assert [r.id for r in first + rest] == deleting
    async with sessions() as session:
        assert list((await session.scalars(held_query(NOW))).all()) == held


@pytest.mark.parametrize(
    "name", ["first page", "next page", "count", "held"]
)
async def test_each_query_steps_along_the_status_retain_until_index(
    loaded: tuple[async_sessionmaker[AsyncSession], list[dict[str, Any]]], name: str
) -> None:
    sessions, rows = loaded
    due, _ = _expected(rows)
    middle = next(r for r in rows if r["id"] == due[len(due) // 2])
    query: Select[Any] = {
        "first page": expired_page_query(NOW, None, 500),
        "next page": expired_page_query(NOW, (middle["retain_until"], middle["id"]), 500),
        "count": count_expired_query(NOW),
        "held": held_query(NOW),
    }[name]
    async with sessions() as session:
        postgres = await prefer_indexes(session)
        plan = await query_plan(session, query)
    assert "ix_recordings_retain_until" not in plan, plan
    assert "SCAN recordings" not in plan and "Seq Scan" not in plan, plan
    # One index range per deletable status. PostgreSQL may take the status index alone
    # for a status whose rows are all expired (as here): it reads that status's rows only.
    index = "ix_recordings_status" if postgres else "ix_recordings_status_retain_until"
    assert plan.count(index) == len(DELETABLE), plan


async def test_unfinished_deletions_are_paged_along_the_status_id_index(
    loaded: tuple[async_sessionmaker[AsyncSession], list[dict[str, Any]]],
) -> None:
    sessions, rows = loaded
    deleting = sorted(r["id"] for r in rows if r["status"] == "deleting")
    async with sessions() as session:
        postgres = await prefer_indexes(session)
        plan = await query_plan(session, deleting_page_query(deleting[0], 500))
    assert "SCAN recordings" not in plan and "Seq Scan" not in plan, plan
    # Not the primary key (every row, deleted ones included) but the deleting rows only.
    assert "autoindex" not in plan and "recordings_pkey" not in plan, plan
    assert ("ix_recordings_status" if postgres else "ix_recordings_status_id") in plan, plan
