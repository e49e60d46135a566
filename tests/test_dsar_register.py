"""The request register on SQLite and PostgreSQL: references, due dates, the status machine,
its audit entries, and the service's daily report of late requests (controlled clock)."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from database_fixtures import db_url, migrated_url, pg_database, session, sessions
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.calls.models import DataSubjectRequest
from pbx_bridge.subjects.due_report import DueRequestsReporter
from pbx_bridge.subjects.index import InvalidNumber, SubjectIndex
from pbx_bridge.subjects.numbers import SubjectKeyer
from pbx_bridge.subjects.register import (
    RequestChannel,
    RequestNotFound,
    RequestStateError,
    RequestStatus,
    RequestType,
    complete,
    due_state,
    get_request,
    list_requests,
    open_request,
    reject,
    start,
)
from storage.database import make_engine, make_session_factory
from storage.models import AuditEntry

# Fixtures, imported by name for pytest.
__all__ = ["db_url", "migrated_url", "pg_database", "session", "sessions"]

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
INDEX = SubjectIndex(SubjectKeyer(bytes(range(32))), "TR")
ACTOR = "cli:dpo"


async def _open(
    session: AsyncSession,
    number: str = "0532 123 45 67",
    type: RequestType = RequestType.ACCESS,
    *,
    now: datetime = T0,
    due_days: int = 30,
    note: str | None = None,
) -> DataSubjectRequest:
    return await open_request(
        session, INDEX, number=number, type=type, channel=RequestChannel.PHONE, actor=ACTOR,
        due_days=due_days, note=note, now=now,
    )


async def _audit(session: AsyncSession) -> list[AuditEntry]:
    return list((await session.scalars(select(AuditEntry).order_by(AuditEntry.seq))).all())


# --- opening --------------------------------------------------------------------------------


async def test_open_registers_the_request_with_its_due_date(session: AsyncSession) -> None:
    request = await _open(session, "+90 532 123 4567", RequestType.ERASURE, note="  by phone ")
    await session.commit()

    stored = await get_request(session, "DSAR-2026-0001")
    assert stored.id == request.id
    assert stored.reference == "DSAR-2026-0001"
    assert stored.number == "+905321234567"
    assert stored.number_masked == "0532***4567"
    assert stored.subject_key == INDEX.subject_key("05321234567")
    assert stored.type == "erasure" and stored.channel == "phone"
    assert stored.status == RequestStatus.OPEN
    assert stored.received_at == T0
    assert stored.due_at == T0 + timedelta(days=30)
    assert stored.opened_by == ACTOR
    assert stored.note == "by phone"
    assert stored.handled_by is None and stored.result is None


async def test_references_count_per_year_and_are_found_by_id_or_any_case(
    session: AsyncSession,
) -> None:
    first = await _open(session)
    second = await _open(session, "+49 30 12345678", now=T0 + timedelta(hours=1))
    next_year = await _open(session, now=datetime(2027, 1, 2, tzinfo=UTC))
    await session.commit()
    assert [first.reference, second.reference, next_year.reference] == [
        "DSAR-2026-0001", "DSAR-2026-0002", "DSAR-2027-0001",
    ]
    assert second.number_masked == "+4930***5678"
    assert (await get_request(session, "dsar-2026-0002")).id == second.id
    assert (await get_request(session, second.id)).reference == "DSAR-2026-0002"
    with pytest.raises(RequestNotFound, match="DSAR-2026-0099"):
        await get_request(session, "DSAR-2026-0099")


async def test_references_past_9999_keep_counting(session: AsyncSession) -> None:
    request = await _open(session)
    request.reference = "DSAR-2026-9999"
    await session.flush()
    assert (await _open(session)).reference == "DSAR-2026-10000"
    assert (await _open(session)).reference == "DSAR-2026-10001"


async def test_two_writers_at_once_get_different_references(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    sessions = make_session_factory(engine)

    async def one(number: str) -> str:
        async with sessions() as s:
            request = await _open(s, number)
            await s.commit()
            return request.reference

    try:
        references = await asyncio.gather(*(one(f"0532123456{n}") for n in range(4)))
    finally:
        await engine.dispose()
    assert sorted(references) == [f"DSAR-2026-000{n}" for n in range(1, 5)]


async def test_an_invalid_number_writes_nothing(session: AsyncSession) -> None:
    with pytest.raises(InvalidNumber, match="'1234'"):
        await _open(session, "1234")
    await session.commit()
    assert await session.scalar(select(func.count()).select_from(DataSubjectRequest)) == 0
    assert await _audit(session) == []


# --- listing and due states -----------------------------------------------------------------


async def test_list_by_status_overdue_and_due_soon(session: AsyncSession) -> None:
    # Received on different days: due T0+30, T0+35, T0+40 (and one closed, due T0+31).
    a = await _open(session, now=T0)
    b = await _open(session, now=T0 + timedelta(days=5))
    c = await _open(session, now=T0 + timedelta(days=10))
    closed = await _open(session, now=T0 + timedelta(days=1))
    await reject(session, closed, actor=ACTOR, reason="identity not proven", now=T0)
    await start(session, b, actor=ACTOR, now=T0 + timedelta(days=6))
    await session.commit()

    def refs(requests: list[DataSubjectRequest]) -> list[str]:
        return [r.reference for r in requests]

    assert refs(await list_requests(session)) == refs([a, closed, b, c])  # due first on top
    assert refs(await list_requests(session, status=RequestStatus.OPEN)) == refs([a, c])
    assert refs(await list_requests(session, status=RequestStatus.IN_PROGRESS)) == refs([b])

    day_33 = T0 + timedelta(days=33)  # a overdue, b due in 2 days, c in 7
    assert refs(await list_requests(session, overdue_only=True, now=day_33)) == refs([a])
    assert refs(await list_requests(session, due_within_days=3, now=day_33)) == refs([a, b])
    assert refs(await list_requests(session, due_within_days=7, now=day_33)) == refs([a, b, c])
    assert await list_requests(session, overdue_only=True, now=T0 + timedelta(days=29)) == []
    assert [due_state(r, day_33, 3) for r in (a, b, c, closed)] == [
        "overdue", "due-soon", "on-time", "closed",
    ]
    # Exactly at the due time it is not yet late.
    assert due_state(a, a.due_at, 0) == "due-soon"
    assert due_state(a, a.due_at + timedelta(seconds=1), 0) == "overdue"


# --- the status machine ---------------------------------------------------------------------


async def test_start_complete_with_audit_entries(session: AsyncSession) -> None:
    request = await _open(session, type=RequestType.ACCESS)
    await start(session, request, actor="cli:alice", now=T0 + timedelta(days=1))
    await start(session, request, actor="cli:bob", now=T0 + timedelta(days=2))  # re-run: no-op
    await complete(session, request, actor="cli:alice", now=T0 + timedelta(days=3),
                   result={"calls": 2, "recordings": ["r1", "r2"]})
    await session.commit()

    stored = await get_request(session, request.reference)
    assert stored.status == RequestStatus.DONE
    assert stored.handled_by == "cli:alice"
    assert stored.handled_at == T0 + timedelta(days=3)
    assert json.loads(stored.result or "") == {"calls": 2, "recordings": ["r1", "r2"]}
    assert stored.number == "+905321234567"  # an access request keeps the number

    entries = await _audit(session)
    assert [(e.action, e.actor, e.target, e.at) for e in entries] == [
        ("dsar.opened", ACTOR, f"dsar:{request.id}", T0),
        ("dsar.started", "cli:alice", f"dsar:{request.id}", T0 + timedelta(days=1)),
        ("dsar.done", "cli:alice", f"dsar:{request.id}", T0 + timedelta(days=3)),
    ]
    for entry in entries:
        details = json.loads(entry.details)
        assert details["reference"] == request.reference
        assert details["type"] == "access"
        assert details["number"] == "0532***4567"
        assert "5321234567" not in entry.details  # never the number itself


@pytest.mark.parametrize("kind", [RequestType.ERASURE, RequestType.ANONYMISE])
async def test_erasure_and_anonymisation_clear_the_number(
    session: AsyncSession, kind: RequestType
) -> None:
    request = await _open(session, type=kind)
    await start(session, request, actor=ACTOR)
    await complete(session, request, actor=ACTOR, result={"recordings_deleted": 3})
    await session.commit()
    stored = await get_request(session, request.reference)
    assert stored.number is None
    assert stored.number_masked == "0532***4567"
    assert stored.subject_key == INDEX.subject_key("05321234567")  # still findable


async def test_reject_needs_a_reason_and_closes(session: AsyncSession) -> None:
    request = await _open(session)
    for empty in ("", "   "):
        with pytest.raises(RequestStateError, match="needs a reason"):
            await reject(session, request, actor=ACTOR, reason=empty)
    assert request.status == RequestStatus.OPEN
    await reject(session, request, actor="cli:dpo2", reason=" not the caller's number ",
                 now=T0 + timedelta(days=2))
    await session.commit()
    stored = await get_request(session, request.reference)
    assert stored.status == RequestStatus.REJECTED
    assert stored.reject_reason == "not the caller's number"
    assert (stored.handled_by, stored.handled_at) == ("cli:dpo2", T0 + timedelta(days=2))
    assert [e.action for e in await _audit(session)] == ["dsar.opened", "dsar.rejected"]


async def test_in_progress_can_be_rejected(session: AsyncSession) -> None:
    request = await _open(session)
    await start(session, request, actor=ACTOR)
    await reject(session, request, actor=ACTOR, reason="manifestly unfounded")
    assert request.status == RequestStatus.REJECTED


async def test_illegal_transitions_are_refused_and_write_nothing(session: AsyncSession) -> None:
    fresh = await _open(session)
    with pytest.raises(RequestStateError, match=r"is open: it cannot be completed \(start it"):
        await complete(session, fresh, actor=ACTOR, result={})

    done = await _open(session)
    await start(session, done, actor=ACTOR)
    await complete(session, done, actor=ACTOR, result={"ok": True})
    rejected = await _open(session)
    await reject(session, rejected, actor=ACTOR, reason="duplicate")
    await session.commit()
    before = len(await _audit(session))

    for request, status in ((done, "done"), (rejected, "rejected")):
        with pytest.raises(RequestStateError, match=f"is {status}: it cannot be started"):
            await start(session, request, actor=ACTOR)
        with pytest.raises(RequestStateError, match=f"is {status}: it cannot be completed"):
            await complete(session, request, actor=ACTOR, result={})
        with pytest.raises(RequestStateError, match=f"is {status}: it cannot be rejected"):
            await reject(session, request, actor=ACTOR, reason="again")
    await session.commit()
    assert (await get_request(session, done.reference)).status == "done"
    assert (await get_request(session, rejected.reference)).status == "rejected"
    assert len(await _audit(session)) == before


async def test_nothing_is_committed_by_the_register(session: AsyncSession) -> None:
    await _open(session)
    await session.rollback()
    assert await session.scalar(select(func.count()).select_from(DataSubjectRequest)) == 0
    assert await _audit(session) == []


# --- the service's daily report ---------------------------------------------------------------


class FakeClock:
    """Time that moves only when the reporter sleeps, so a day passes in no time."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self.slept: list[float] = []
        self.woke = asyncio.Event()

    def __call__(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)
        self.woke.set()
        await asyncio.sleep(0)


async def test_daily_report_logs_overdue_and_due_soon_without_numbers(
    sessions: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    async with sessions() as s:
        late = await _open(s, "05321234567", now=T0 - timedelta(days=31))  # due T0-1d
        soon = await _open(s, "05329876543", now=T0 - timedelta(days=25))  # due T0+5d
        later = await _open(s, "05321112233", now=T0 - timedelta(days=22, hours=12))  # T0+7.5d
        await _open(s, "05324445566", now=T0)  # due T0+30d
        answered = await _open(s, "05327778899", now=T0 - timedelta(days=40))
        await reject(s, answered, actor=ACTOR, reason="duplicate")
        await s.commit()

    caplog.set_level(logging.INFO, logger="pbx_bridge.subjects.due_report")
    clock = FakeClock(T0)
    reporter = DueRequestsReporter(sessions, soon_days=7, now=clock, sleep=clock.sleep)
    async with reporter:
        # At start, then once a day: stop after the second report.
        while reporter.runs < 2:
            clock.woke.clear()
            await asyncio.wait_for(clock.woke.wait(), 10)
    assert clock.slept[:2] == [86_400.0, 86_400.0]

    records = [r for r in caplog.records if r.name == "pbx_bridge.subjects.due_report"]
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    infos = [r.getMessage() for r in records if r.levelno == logging.INFO]
    # Day 0: one overdue, one due within 7 days; day 1: "later" is now due within 7 days.
    assert warnings[:2] == [
        f"1 data-subject request(s) overdue: {late.reference} "
        "(`pbx-bridge dsar list --overdue`)",
    ] * 2
    assert infos[:2] == [
        f"1 data-subject request(s) due within 7 days: {soon.reference}",
        f"2 data-subject request(s) due within 7 days: {soon.reference}, {later.reference}",
    ]
    assert reporter.last_report is not None
    assert reporter.last_report.overdue == [late.reference]
    text = "\n".join(r.getMessage() for r in records)
    assert "532" not in text.replace("DSAR", "")


async def test_daily_report_says_when_nothing_is_due(
    sessions: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pbx_bridge.subjects.due_report")
    reporter = DueRequestsReporter(sessions, soon_days=7, now=lambda: T0)
    report = await reporter.run_once()
    assert (report.overdue, report.due_soon) == ([], [])
    assert "no data-subject request overdue or due within 7 days" in caplog.text
