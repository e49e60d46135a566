"""The call search against its plain definition, on a table that mixes everything it filters.

The definition is computed here in Python from the rows inserted: filter, then sort by
(started_at, id) newest first. The search must give the same calls, page by page through
its cursors (a page of one: every boundary), whatever the filters, the scope and the
page size; and every page must be read along an index ending in (started_at, id), never
a scan of the calls table or a sort of all it matched, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from database_fixtures import BACKENDS, PG_HOST, _reset_schema, pg_database
from query_plans import prefer_indexes, query_plan
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.calls import search
from pbx_bridge.calls.models import Call, Consent
from pbx_bridge.calls.search import (
    MAX_LIMIT,
    CallFilter,
    CursorSigner,
    InvalidCursor,
    InvalidSearch,
    Keyset,
    page_query,
    search_calls,
)
from pbx_bridge.subjects.index import SubjectIndex
from pbx_bridge.subjects.numbers import SubjectKeyer
from storage.database import make_engine, make_session_factory, upgrade

__all__ = ["pg_database"]

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
SUBJECTS = SubjectIndex(SubjectKeyer(b"k" * 32), "TR")
SIGNER = CursorSigner(lambda: b"s" * 32)
# A caller as Asterisk may give them: the same subject in three spellings, a foreign
# number, an extension calling in, anonymous, none.
CALLERS = ["+905321234567", "05321234567", "905321234567", "+441632960001",
           "+905551112233", "100", "anonymous", None]
# Our numbers as the trunk writes them: one DID in two spellings, and another.
DIDS = ["902121112233", "02121112233", "2125550100"]
EXTENSIONS = ["101", "102", "103", None]
DISPOSITIONS = ["answered", "answered", "abandoned", "no-answer", "busy", "failed", None]
DECISIONS = ["granted", "declined", "timeout", "not-asked", "withdrawn", None, "granted"]


def _rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Calls four to a start time (ties), ids not in time order, every filter's values
    crossed so that combinations match some calls and not others."""
    calls: list[dict[str, Any]] = []
    consents: list[dict[str, Any]] = []
    n = itertools.count()
    for step in range(150):
        started = T0 + timedelta(minutes=step * 7)
        for _ in range(4):
            i = next(n)
            cid = f"{(i * 7919) % 10007:08x}-0000-4000-8000-{i:012x}"
            caller = CALLERS[i % len(CALLERS)]
            calls.append({
                "id": cid, "linkedid": f"l{i}", "channel_id": f"c{i}",
                "direction": "outbound" if i % 23 == 0 else "inbound",
                "caller": caller, "caller_key": SUBJECTS.key_of(caller),
                "did": DIDS[i % 3], "extension": EXTENSIONS[(i // 3) % 4],
                "announcement": "before-connect", "legal_basis": "consent",
                "retention_class": "default", "language": "tr", "started_at": started,
                "disposition": DISPOSITIONS[i % 7],
            })
            decision = DECISIONS[(i // 2) % 7]
            if decision is not None:
                consents.append({
                    "id": f"consent-{i}", "call_id": cid, "caller": caller,
                    "caller_key": SUBJECTS.key_of(caller), "decision": decision,
                    "language": "tr", "times_played": 1, "decided_at": started,
                })
    return calls, consents


def _expected(
    calls: list[dict[str, Any]], consents: list[dict[str, Any]], f: CallFilter
) -> list[str]:
    """The plain definition, spelled out without the search's code."""
    decision = {c["call_id"]: c["decision"] for c in consents}
    subject = SUBJECTS.key_of("+905321234567")
    main_did = {"902121112233", "02121112233"}

    def number_ok(row: dict[str, Any]) -> bool:
        if f.number is None:
            return True
        if f.number == "0532 123 45 67":
            return row["caller_key"] == subject
        if f.number == "0212 111 22 33":  # the number called, in any spelling
            return row["did"] in main_did
        return row["caller"] == f.number  # no public number: as written

    def keep(row: dict[str, Any]) -> bool:
        disposition = "live" if row["disposition"] is None else row["disposition"]
        return (
            (f.since is None or row["started_at"] >= f.since)
            and (f.until is None or row["started_at"] < f.until)
            and number_ok(row)
            and (f.did is None or row["did"] in (main_did if f.did == "+902121112233"
                                                 else {f.did}))
            and (f.extension is None or row["extension"] == f.extension)
            and (f.extensions is None or row["extension"] in f.extensions)
            and (f.disposition is None or disposition == f.disposition)
            and (f.consent is None or decision.get(row["id"], "none") == f.consent)
            and (f.direction is None or row["direction"] == f.direction)
        )

    kept = sorted((r for r in calls if keep(r)), key=lambda r: (r["started_at"], r["id"]),
                  reverse=True)
    return [r["id"] for r in kept]


SCOPE = frozenset({"101", "103"})
FILTERS = {
    "all": CallFilter(),
    "time range": CallFilter(since=T0 + timedelta(hours=3), until=T0 + timedelta(hours=11)),
    "caller in any spelling": CallFilter(number="0532 123 45 67"),
    "number called": CallFilter(number="0212 111 22 33"),
    "short number": CallFilter(number="100"),
    "did": CallFilter(did="+902121112233"),
    "extension": CallFilter(extension="102"),
    "disposition": CallFilter(disposition="busy"),
    "live": CallFilter(disposition="live"),
    "consent": CallFilter(consent="withdrawn"),
    "no consent": CallFilter(consent="none"),
    "direction": CallFilter(direction="outbound"),
    "scope": CallFilter(extensions=SCOPE),
    "empty scope": CallFilter(extensions=frozenset()),
    "scope and number": CallFilter(number="0532 123 45 67", extensions=SCOPE),
    "extension outside scope": CallFilter(extension="102", extensions=SCOPE),
    "disposition in scope": CallFilter(disposition="busy", extensions=SCOPE),
    "extension and disposition": CallFilter(extension="101", disposition="no-answer"),
    "combined": CallFilter(since=T0 + timedelta(hours=2), did="2125550100",
                           disposition="answered", consent="granted", extensions=SCOPE),
    "number, range, consent": CallFilter(number="0212 111 22 33", until=T0 + timedelta(hours=9),
                                         consent="declined", direction="inbound"),
}


Loaded = tuple[async_sessionmaker[AsyncSession], list[dict[str, Any]], list[dict[str, Any]]]


async def _load(url: str) -> None:
    await upgrade(url)
    calls, consents = _rows()
    engine = make_engine(url)
    try:
        async with make_session_factory(engine)() as session:
            await session.execute(insert(Call), calls)
            await session.execute(insert(Consent), consents)
            await session.commit()
            await session.execute(text("ANALYZE"))
            await session.commit()
    finally:
        await engine.dispose()


@pytest.fixture(scope="module", params=BACKENDS)
def loaded_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """One table per backend for the whole module: every test here only reads it."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('search')}/calls.db"
    else:
        name: str = request.getfixturevalue("pg_database")
        asyncio.run(_reset_schema(name))
        url = f"postgresql+asyncpg://{PG_HOST}/{name}"
    asyncio.run(_load(url))
    return url


@pytest.fixture
async def loaded(loaded_url: str) -> AsyncIterator[Loaded]:
    engine = make_engine(loaded_url)
    try:
        calls, consents = _rows()
        yield make_session_factory(engine), calls, consents
    finally:
        await engine.dispose()


async def _all_pages(
    sessions: async_sessionmaker[AsyncSession], f: CallFilter, limit: int
) -> list[str]:
    seen: list[str] = []
    cursor: str | None = None
    while True:
        async with sessions() as session:
            page = await search_calls(session, f, signer=SIGNER, subjects=SUBJECTS,
                                      cursor=cursor, limit=limit)
        assert len(page.calls) <= limit
        seen.extend(c.id for c in page.calls)
        if page.next_cursor is None:
            return seen
        assert len(page.calls) == limit  # only a full page has a next one
        cursor = page.next_cursor


@pytest.mark.parametrize("name", list(FILTERS))
async def test_pages_are_those_of_the_plain_definition(
    loaded: Loaded,
    name: str,
) -> None:
    sessions, calls, consents = loaded
    f = FILTERS[name]
    expected = _expected(calls, consents, f)
    if name not in ("all", "empty scope", "extension outside scope"):
        assert 0 < len(expected) < len(calls), name  # the filter really selects
    for limit in (7, 50, MAX_LIMIT):
        assert await _all_pages(sessions, f, limit) == expected, (name, limit)


@pytest.mark.parametrize("rare", [0, 5000], ids=["walked", "looked-up"])
@pytest.mark.parametrize("name", ["consent", "no consent", "combined", "number, range, consent"])
async def test_consent_pages_are_the_same_whichever_way_they_are_found(
    loaded: Loaded, name: str, rare: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A common answer walks the calls; a rare one (at most RARE_CONSENT) is looked up."""
    monkeypatch.setattr(search, "RARE_CONSENT", rare)
    sessions, calls, consents = loaded
    f = FILTERS[name]
    for limit in (1, 7, 50):
        assert await _all_pages(sessions, f, limit) == _expected(calls, consents, f), limit


@pytest.mark.parametrize("name", ["all", "scope", "caller in any spelling", "combined"])
async def test_a_page_of_one_crosses_every_boundary(
    loaded: Loaded,
    name: str,
) -> None:
    sessions, calls, consents = loaded
    f = FILTERS[name]
    if name == "all":  # every boundary of a tie of four, without 600 round trips
        f = CallFilter(until=T0 + timedelta(minutes=7 * 12))
    assert await _all_pages(sessions, f, 1) == _expected(calls, consents, f)


async def test_views_carry_consent_and_numbers_for_masking(
    loaded: Loaded,
) -> None:
    sessions, _, _ = loaded
    async with sessions() as session:
        page = await search_calls(session, CallFilter(consent="withdrawn"), signer=SIGNER,
                                  limit=3)
    assert [c.consent.decision if c.consent else None for c in page.calls] == ["withdrawn"] * 3
    assert page.calls[0].started_at >= page.calls[-1].started_at


async def test_bad_cursors_and_limits_are_clear_errors(
    loaded: Loaded,
) -> None:
    sessions, _, _ = loaded
    f = CallFilter(extensions=SCOPE)
    async with sessions() as session:
        first = await search_calls(session, f, signer=SIGNER, limit=5)
        assert first.next_cursor is not None
        raw = bytearray(base64.urlsafe_b64decode(first.next_cursor + "=="))
        raw[3] ^= 1  # another time, same signature
        edited = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
        wider = CallFilter()  # the same cursor, the scope taken off
        for cursor, filters in ((edited, f), ("not a cursor!", f), ("", f), ("QUJD", f),
                                (first.next_cursor, wider)):
            with pytest.raises(InvalidCursor, match="cursor"):
                await search_calls(session, filters, signer=SIGNER, cursor=cursor)
        other_key = CursorSigner(lambda: b"t" * 32)
        with pytest.raises(InvalidCursor, match="not valid for this search"):
            await search_calls(session, f, signer=other_key, cursor=first.next_cursor)
        for limit in (0, MAX_LIMIT + 1):
            with pytest.raises(InvalidSearch, match=f"limit: give 1 to {MAX_LIMIT}"):
                await search_calls(session, f, signer=SIGNER, limit=limit)


@pytest.mark.parametrize(
    ("filters", "problem"),
    [
        (CallFilter(disposition="hung"), "disposition: 'hung' is not one of answered"),
        (CallFilter(consent="yes"), "consent: 'yes' is not one of granted"),
        (CallFilter(direction="up"), "direction: 'up'"),
        (CallFilter(number=" "), "number: give 1 to 64"),
        (CallFilter(extension="1" * 65), "extension: give 1 to 64"),
        (CallFilter(since=T0, until=T0), r"since .* is not before until"),
        (CallFilter(since=datetime(2026, 1, 1)), "since: a time with its zone"),
    ],
)
def test_bad_filters_name_the_filter(filters: CallFilter, problem: str) -> None:
    with pytest.raises(InvalidSearch, match=problem):
        page_query(filters, subjects=SUBJECTS)


def test_a_number_filter_needs_the_subject_index() -> None:
    with pytest.raises(InvalidSearch, match=r"number: .*subject index"):
        page_query(CallFilter(number="05321234567"))


def test_cursor_round_trip_keeps_the_microsecond() -> None:
    at = datetime(2026, 11, 1, 8, 0, 0, 123457, tzinfo=UTC)
    position = Keyset(at, "abc-def")
    assert SIGNER.decode(SIGNER.encode(position, FILTERS["combined"]), FILTERS["combined"]) == (
        position
    )


PLANS: dict[str, tuple[CallFilter, str]] = {
    "first page": (CallFilter(), "ix_calls_started_at_id"),
    "time range": (FILTERS["time range"], "ix_calls_started_at_id"),
    "consent": (CallFilter(consent="granted"), "ix_calls_started_at_id"),
    "caller": (CallFilter(number="05321234567"), "ix_calls_caller_key_started_at"),
    "number called": (FILTERS["number called"], "ix_calls_did_started_at"),
    "short number": (FILTERS["short number"], "ix_calls_caller_started_at"),
    "did": (FILTERS["did"], "ix_calls_did_started_at"),
    "extension": (FILTERS["extension"], "ix_calls_extension_started_at"),
    "scope": (FILTERS["scope"], "ix_calls_extension_started_at"),
    "disposition": (FILTERS["disposition"], "ix_calls_disposition_started_at"),
    # SQLite keeps NULLs of an index in order too; PostgreSQL needs the partial index.
    "live": (FILTERS["live"], "ix_calls_live_started_at|ix_calls_disposition_started_at"),
    "direction": (FILTERS["direction"], "ix_calls_direction_started_at"),
    "extension and disposition": (CallFilter(extension="102", disposition="busy"),
                                  "ix_calls_extension_disposition_started_at"),
    "disposition in scope": (FILTERS["disposition in scope"],
                             "ix_calls_extension_disposition_started_at"),
    "combined": (FILTERS["combined"], "_started_at"),  # the planner's choice of two
}


@pytest.mark.parametrize("deep", [False, True], ids=["first", "deep"])
@pytest.mark.parametrize("name", list(PLANS))
async def test_each_page_is_read_along_an_index_in_page_order(
    loaded: Loaded,
    name: str,
    deep: bool,
) -> None:
    sessions, calls, _ = loaded
    f, index = PLANS[name]
    middle = sorted(calls, key=lambda r: (r["started_at"], r["id"]))[len(calls) // 2]
    after = Keyset(middle["started_at"], middle["id"]) if deep else None
    query = page_query(f, subjects=SUBJECTS, after=after, limit=51)
    async with sessions() as session:
        postgres = await prefer_indexes(session)
        if postgres and "ix_calls_started_at_id" not in index:
            # Walking started_at and filtering 600 rows is as cheap here as the filter's
            # own range; without it (dropped in this transaction, rolled back) the range
            # must be usable in page order, with no sort.
            await session.execute(text("DROP INDEX ix_calls_started_at_id"))
        if postgres and f.consent is not None:
            # Hashing 170 answers is as cheap here as the walk of calls checking each
            # call's (at a million, with an answer most calls have, it is not); the walk
            # is what this plan is about.
            await session.execute(text("DROP INDEX ix_consents_decision_call_id"))
        plan = await query_plan(session, query)
        await session.rollback()
    assert any(name in plan for name in index.split("|")), plan
    assert "Seq Scan" not in plan, plan
    lines = plan.splitlines()
    assert not any(line.startswith("SCAN calls") and "INDEX" not in line for line in lines), plan
    if sum("ix_calls_" in line for line in lines) == 1:
        # One range, already in page order: nothing to sort.
        assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan
    else:
        # Ranges merged: only the merge (at most a page from each range) is sorted, never
        # a range itself (a sort below a branch's limit would read all it matched).
        assert plan.count("TEMP B-TREE FOR ORDER BY") <= 1, plan
        assert "TEMP B-TREE FOR ORDER BY" not in "".join(lines[:-1]), plan
        if postgres:
            append = next(i for i, line in enumerate(lines) if "Append" in line)
            assert not any("Sort" in line for line in lines[append:]), plan


async def test_a_rare_consent_answer_is_read_from_its_own_index(loaded: Loaded) -> None:
    sessions, _, consents = loaded
    withdrawn = [c["call_id"] for c in consents if c["decision"] == "withdrawn"]
    f = FILTERS["consent"]
    async with sessions() as session:
        postgres = await prefer_indexes(session)
        assert sorted(await search.rare_consent_calls(session, f, SUBJECTS) or []) == sorted(
            withdrawn)
        probe = await query_plan(session, select(Consent.call_id).where(
            Consent.decision == "withdrawn").limit(search.RARE_CONSENT + 1))
        page = await query_plan(session, page_query(f, consent_calls=withdrawn, limit=51))
        # Something else drives: the answer is checked on that filter's calls instead.
        assert await search.rare_consent_calls(session, FILTERS["combined"], SUBJECTS) is None
    assert "ix_consents_decision_call_id" in probe, probe
    assert "SCAN calls" not in page and "Seq Scan" not in page, page
    assert "rare_consent" in page, page  # the few, materialised, then sorted
    if not postgres:  # (PostgreSQL reads any index of 600 rows whole as cheaply)
        assert "sqlite_autoindex_calls" in page, page
