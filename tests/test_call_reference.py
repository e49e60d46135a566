"""Call reference numbers: the check digit (pure), one unique reference per call written in
the call's own INSERT (SQLite and PostgreSQL), and finding a call by it: ``calls list
--reference`` (and the field in ``--json``), ``GET``-side filter, ``dsar open --reference``.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import pytest
from cli_support import clean_pbx_env, cli, migrated_config
from database_fixtures import db_url, migrated_url, pg_database, sessions
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from statement_counts import counted

from pbx_bridge.calls import journal as journal_module
from pbx_bridge.calls.history import ReferenceNotFound, caller_of_reference
from pbx_bridge.calls.journal import CallJournal
from pbx_bridge.calls.models import Call, DataSubjectRequest
from pbx_bridge.calls.reference import (
    LENGTH,
    InvalidReference,
    damm_digit,
    damm_valid,
    new_reference,
    parse_reference,
    spoken_digits,
)
from pbx_bridge.calls.search import CallFilter, CursorSigner, InvalidSearch, search_calls
from pbx_bridge.subjects.index import SubjectIndex
from pbx_bridge.subjects.numbers import SubjectKeyer
from storage.database import make_engine, make_session_factory

__all__ = ["clean_pbx_env", "db_url", "migrated_url", "pg_database", "sessions"]

SECRET = bytes(range(32))
INDEX = SubjectIndex(SubjectKeyer(SECRET), "TR")
SIGNER = CursorSigner(lambda: b"k" * 32)


# -- the number itself (pure) -------------------------------------------------------------


def test_damm_matches_the_published_example() -> None:
    # Damm's worked example: 572 has check digit 4.
    assert damm_digit("572") == "4"
    assert damm_valid("5724")
    assert not damm_valid("5723")


def test_every_single_wrong_digit_and_every_neighbour_swap_is_caught() -> None:
    for sample in range(0, 10**8, 7_654_321):
        body = f"{sample:08d}"
        good = body + damm_digit(body)
        assert damm_valid(good)
        for position in range(LENGTH):
            for digit in "0123456789":
                if digit != good[position]:
                    typo = good[:position] + digit + good[position + 1:]
                    assert not damm_valid(typo), (good, typo)
        for position in range(LENGTH - 1):
            a, b = good[position], good[position + 1]
            if a != b:
                swapped = good[:position] + b + a + good[position + 2:]
                assert not damm_valid(swapped), (good, swapped)


def test_new_references_are_nine_valid_digits_and_spread() -> None:
    drawn = [new_reference() for _ in range(2000)]
    assert all(len(r) == LENGTH and r.isdigit() and damm_valid(r) for r in drawn)
    assert len(set(drawn)) == len(drawn)
    first_digits = Counter(r[0] for r in drawn)
    assert len(first_digits) == 10  # all ten leading digits occur: nothing fixed
    assert spoken_digits(drawn[0]) == tuple(drawn[0])


def test_parse_reference_takes_spacing_and_refuses_wrong_check_digits() -> None:
    good = "12345678" + damm_digit("12345678")
    assert parse_reference(f" {good[:4]} {good[4:8]}-{good[8]} ") == good
    wrong = good[:-1] + str((int(good[-1]) + 1) % 10)
    with pytest.raises(InvalidReference, match="check digit does not match"):
        parse_reference(wrong)
    for bad in ("12345", "1234567890", "12345678x", "١٢٣٤٥٦٧٨٩", ""):
        with pytest.raises(InvalidReference, match="9 digits"):
            parse_reference(bad)


# -- stored on the call, in its one INSERT (both databases) ------------------------------


async def _open(journal: CallJournal, n: int, caller: str | None = "05321234567") -> str:
    return (await journal.open_call(
        linkedid=f"linked-{n}", channel_id=f"channel-{n}", direction="inbound",
        caller=caller, did="2125550100", extension="100", announcement="before-connect",
        legal_basis="consent", retention_class="default", language="tr",
    )).id


async def test_each_call_gets_its_own_reference_in_the_one_insert(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    journal = CallJournal(sessions, INDEX)
    with counted(sessions) as seen:
        opened = await journal.open_call(
            linkedid="l", channel_id="c-1", direction="inbound", caller="05321234567",
            did="2125550100", extension="100", announcement="before-connect",
            legal_basis="consent", retention_class="default", language="tr",
        )
    assert dict(seen) == {"INSERT calls": 1, "COMMIT": 1}
    assert opened.reference is not None and damm_valid(opened.reference)
    # The same channel again (a restart): the same call and the same reference.
    again = await journal.open_call(
        linkedid="l", channel_id="c-1", direction="inbound", caller="05321234567",
        did="2125550100", extension="100", announcement="before-connect",
        legal_basis="consent", retention_class="default", language="tr",
    )
    assert again == opened
    for n in range(2, 30):
        await _open(journal, n)
    async with sessions() as session:
        references = list(await session.scalars(select(Call.reference)))
    assert len(references) == 29 and len(set(references)) == 29
    assert opened.reference in references


async def test_a_reference_drawn_twice_is_drawn_again(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = CallJournal(sessions, INDEX)
    taken = (await journal.open_call(
        linkedid="l", channel_id="c-1", direction="inbound", caller=None, did="1",
        extension="100", announcement="none", legal_basis="consent",
        retention_class="default", language="tr",
    )).reference
    assert taken is not None
    fresh = "87654321" + damm_digit("87654321")
    draws = iter([taken, fresh])
    monkeypatch.setattr(journal_module, "new_reference", lambda: next(draws))
    second = await journal.open_call(
        linkedid="l2", channel_id="c-2", direction="inbound", caller=None, did="1",
        extension="100", announcement="none", legal_basis="consent",
        retention_class="default", language="tr",
    )
    assert second.reference == fresh
    async with sessions() as session:
        rows = (await session.execute(select(Call.channel_id, Call.reference))).all()
    assert sorted(rows) == [("c-1", taken), ("c-2", fresh)]


async def test_search_by_reference_finds_that_call_only(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    journal = CallJournal(sessions, INDEX)
    ids = [await _open(journal, n) for n in range(5)]
    async with sessions() as session:
        wanted = await session.scalar(select(Call.reference).where(Call.id == ids[2]))
        assert wanted is not None
        spaced = f"{wanted[:3]} {wanted[3:6]} {wanted[6:]}"
        page = await search_calls(session, CallFilter(reference=spaced), signer=SIGNER)
        assert [c.id for c in page.calls] == [ids[2]]
        assert page.calls[0].to_json()["reference"] == wanted
        # Outside a supervisor's scope it is not found either.
        scoped = CallFilter(reference=wanted, extensions=frozenset({"999"}))
        assert (await search_calls(session, scoped, signer=SIGNER)).calls == []
        wrong = wanted[:-1] + str((int(wanted[-1]) + 1) % 10)
        with pytest.raises(InvalidSearch, match="check digit"):
            await search_calls(session, CallFilter(reference=wrong), signer=SIGNER)
        assert await caller_of_reference(session, wanted) == "05321234567"
        unknown = "11111111" + damm_digit("11111111")
        with pytest.raises(ReferenceNotFound, match="no call has this reference"):
            await caller_of_reference(session, unknown)


# -- the CLI ------------------------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return migrated_config(tmp_path, subject_key=SECRET)


def _seed(config: Path) -> list[tuple[str, str]]:
    async def run() -> list[tuple[str, str]]:
        engine = make_engine(f"sqlite+aiosqlite:///{config.parent}/var/pbx-bridge.db")
        try:
            journal = CallJournal(make_session_factory(engine), INDEX)
            opened = []
            for n, caller in enumerate(["05321234567", "05559876543", None]):
                call = await journal.open_call(
                    linkedid=f"l{n}", channel_id=f"c{n}", direction="inbound", caller=caller,
                    did="2125550100", extension="100", announcement="before-connect",
                    legal_basis="consent", retention_class="default", language="tr",
                )
                assert call.reference is not None
                opened.append((call.id, call.reference))
            return opened
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_calls_list_shows_and_finds_the_reference(config: Path) -> None:
    calls = _seed(config)
    listed = cli(config, "calls", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert {c["id"]: c["reference"] for c in json.loads(listed.stdout)} == dict(calls)
    table = cli(config, "calls", "list")
    assert "REFERENCE" in table.stdout and all(ref in table.stdout for _, ref in calls)
    call_id, reference = calls[1]
    found = cli(config, "calls", "list", "--json", "--reference", reference)
    assert [c["id"] for c in json.loads(found.stdout)] == [call_id]
    wrong = reference[:-1] + str((int(reference[-1]) + 1) % 10)
    refused = cli(config, "calls", "list", "--reference", wrong)
    assert refused.exit_code == 2
    assert "check digit does not match" in refused.stderr and "Traceback" not in refused.output


def test_dsar_open_by_reference_opens_it_for_that_calls_caller(config: Path) -> None:
    calls = _seed(config)
    _, reference = calls[1]
    opened = cli(config, "dsar", "open", "--reference", reference, "--type", "access",
                 "--channel", "phone")
    assert opened.exit_code == 0, opened.output
    assert "0555***6543" in opened.stdout

    async def stored() -> DataSubjectRequest:
        engine = make_engine(f"sqlite+aiosqlite:///{config.parent}/var/pbx-bridge.db")
        try:
            async with make_session_factory(engine)() as session:
                return (await session.scalars(select(DataSubjectRequest))).one()
        finally:
            await engine.dispose()

    request = asyncio.run(stored())
    assert request.number == "+905559876543"
    assert request.subject_key == INDEX.key("+905559876543")
    assert request.note == f"opened from call reference {reference}"

    wrong = reference[:-1] + str((int(reference[-1]) + 1) % 10)
    for args, fragment in (
        (["--reference", wrong], "check digit does not match"),
        (["--reference", "11111111" + damm_digit("11111111")], "no call has this reference"),
        (["--reference", calls[2][1]], "no caller number"),
        (["--reference", reference, "--number", "05321234567"], "not both"),
        ([], "--number N or as --reference"),
    ):
        refused = cli(config, "dsar", "open", *args, "--type", "access", "--channel", "phone")
        assert refused.exit_code == 2, refused.output
        assert fragment in refused.stderr, refused.stderr
