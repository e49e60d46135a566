"""How many SQL statements the call journal and the audit trail cost on every call.

Each call opens its journal row, is answered, saves its consent proof with an audit
entry, and is closed (bench/README.md, "Database statements per call"). These counts are
exact on both backends, so a SELECT-before-INSERT or an ORM flush that creeps back shows
here, not in a benchmark. The audit chain's correctness under these shortcuts (another
writer in between, a transaction rolled back, many writers at once) is checked too.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta

from database_fixtures import db_url, migrated_url, pg_database, sessions
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from statement_counts import counted

from pbx_bridge.calls.journal import CallJournal, ConsentProof
from pbx_bridge.calls.models import Call, Consent
from pbx_bridge.subjects.index import SubjectIndex
from pbx_bridge.subjects.numbers import SubjectKeyer
from storage.audit_trail import record_event, verify
from storage.database import make_engine, make_session_factory
from storage.models import AuditEntry

__all__ = ["db_url", "migrated_url", "pg_database", "sessions"]  # fixtures, for pytest

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
INDEX = SubjectIndex(SubjectKeyer(b"\x05" * 32), "TR")


def _proof(at: datetime) -> ConsentProof:
    return ConsentProof(
        decision="granted", digit="1", language="tr", prompt_name="disclosure",
        prompt_version="v3", prompt_sha256="a" * 64, prompt_text_sha256="b" * 64,
        times_played=1, evidence_recording_id=None, prompt_started_at=at,
        decided_at=at + timedelta(seconds=2), disclosure_started_at=at,
        answer_to_disclosure_s=0.3,
    )


async def _consenting_call(journal: CallJournal, n: int) -> str:
    """The journal's writes of one consenting call, in the flow's order."""
    at = T0 + timedelta(minutes=n)
    call_id = await journal.open(
        linkedid=f"linked-{n}", channel_id=f"channel-{n}", direction="inbound",
        caller="05321234567", did="2125550100", extension="100",
        announcement="before-connect", legal_basis="consent", retention_class="default",
        language="tr",
    )
    await journal.answered(call_id, at)
    await journal.save_consent(call_id, "05321234567", _proof(at))
    await journal.close(call_id, "answered", cause="16", ended_at=at + timedelta(seconds=30))
    return call_id


async def _audit_ok(sessions: async_sessionmaker[AsyncSession], entries: int) -> None:
    async with sessions() as session:
        report = await verify(session)
        seqs = list(await session.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq)))
    assert report.ok, report.message
    assert seqs == list(range(1, entries + 1))
    assert report.head_seq == entries


async def test_a_consenting_call_costs_five_statements_and_four_commits(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    journal = CallJournal(sessions, INDEX)
    await _consenting_call(journal, 1)  # this process's first entry links to the head
    with counted(sessions) as seen:
        call_id = await _consenting_call(journal, 2)
    # Before: SELECT + INSERT calls, SELECT + INSERT consents, and three statements for
    # the audit entry (head moved, entry, head's hash): 9 statements.
    assert dict(seen) == {
        "INSERT calls": 1,  # INSERT ... ON CONFLICT (channel_id) DO NOTHING RETURNING id
        "UPDATE calls": 2,  # answered, closed: UPDATE ... WHERE not yet set RETURNING
        "INSERT consents": 1,  # ON CONFLICT (call_id) DO NOTHING RETURNING id
        "UPDATE audit_head": 1,  # compare-and-set to the new entry's seq and hash
        "INSERT audit_log": 1,
        "COMMIT": 4,  # open, answer, consent with its entry, close: each before going on
    }
    async with sessions() as session:
        call = await session.get(Call, call_id)
        consent = await session.scalar(select(Consent).where(Consent.call_id == call_id))
        entry = await session.scalar(
            select(AuditEntry).where(AuditEntry.target == f"call:{call_id}")
        )
    assert call is not None and call.channel_id == "channel-2"
    assert call.caller_key == INDEX.key_of("05321234567")
    assert (call.answered_at, call.disposition) == (T0 + timedelta(minutes=2), "answered")
    assert consent is not None and consent.decision == "granted"
    assert consent.caller_key == INDEX.key_of("05321234567")
    assert consent.decided_at == T0 + timedelta(minutes=2, seconds=2)
    assert entry is not None and entry.action == "consent.recorded" and entry.seq == 2
    await _audit_ok(sessions, 2)


async def test_a_reused_channel_and_a_repeated_consent_keep_the_first(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """After a restart the same channel re-enters the flow: one call, one proof, one entry."""
    journal = CallJournal(sessions, INDEX)
    call_id = await _consenting_call(journal, 1)
    with counted(sessions) as seen:
        again = await journal.open(
            linkedid="other", channel_id="channel-1", direction="inbound", caller=None,
            did="2125550100", extension="100", announcement="before-connect",
            legal_basis="consent", retention_class="default", language="tr",
        )
        await journal.save_consent(call_id, "05321234567", _proof(T0 + timedelta(hours=1)))
    assert again == call_id
    # The conflict clause inserted nothing; only the reused call is looked up.
    assert dict(seen) == {"INSERT calls": 1, "SELECT calls": 1, "INSERT consents": 1,
                          "COMMIT": 2}
    async with sessions() as session:
        calls = (await session.scalars(select(Call))).all()
        consents = (await session.scalars(select(Consent))).all()
    assert [c.linkedid for c in calls] == ["linked-1"]
    assert [c.decided_at for c in consents] == [T0 + timedelta(minutes=1, seconds=2)]
    await _audit_ok(sessions, 1)


async def test_a_language_chosen_by_key_costs_one_update_in_the_consents_transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The row opened in the route's language learns the one the caller chose by key,
    with the proof; a caller who chose and left before any proof, at the close."""
    journal = CallJournal(sessions, INDEX)
    await _consenting_call(journal, 1)
    chosen = await journal.open(
        linkedid="linked-2", channel_id="channel-2", direction="inbound", caller=None,
        did="2125550100", extension="100", announcement="before-connect",
        legal_basis="consent", retention_class="default", language="tr",
    )
    left = await journal.open(
        linkedid="linked-3", channel_id="channel-3", direction="inbound", caller=None,
        did="2125550100", extension="100", announcement="before-connect",
        legal_basis="consent", retention_class="default", language="tr",
    )
    with counted(sessions) as seen:
        await journal.save_consent(chosen, None, _proof(T0), call_language="en")
    assert dict(seen) == {"UPDATE calls": 1, "INSERT consents": 1, "UPDATE audit_head": 1,
                          "INSERT audit_log": 1, "COMMIT": 1}
    with counted(sessions) as closing:
        await journal.close(chosen, "answered", ended_at=T0 + timedelta(seconds=9))
        await journal.close(left, "abandoned", ended_at=T0 + timedelta(seconds=9),
                            language="en")
    assert dict(closing) == {"UPDATE calls": 2, "COMMIT": 2}  # no statement more
    async with sessions() as session:
        languages = {c.id: c.language for c in await session.scalars(select(Call))}
    assert (languages[chosen], languages[left]) == ("en", "en")
    assert list(languages.values()).count("tr") == 1  # the first call: not chosen, kept


async def _append(sessions: async_sessionmaker[AsyncSession], target: str) -> None:
    async with sessions() as session:
        await record_event(session, actor="service", action="test.append", target=target)
        await session.commit()


async def test_another_writer_in_between_costs_one_statement_and_keeps_the_chain(
    sessions: async_sessionmaker[AsyncSession], migrated_url: str
) -> None:
    """The CLI (another process) appends between two of the service's entries."""
    await _append(sessions, "test:service-1")
    other = make_engine(migrated_url)
    try:
        await _append(make_session_factory(other), "test:cli-1")
    finally:
        await other.dispose()
    with counted(sessions) as moved_on:
        await _append(sessions, "test:service-2")  # its guess is stale: links afresh
    with counted(sessions) as again:
        await _append(sessions, "test:service-3")
    assert dict(moved_on) == {"UPDATE audit_head": 3, "INSERT audit_log": 1, "COMMIT": 1}
    assert dict(again) == {"UPDATE audit_head": 1, "INSERT audit_log": 1, "COMMIT": 1}
    await _audit_ok(sessions, 4)
    async with sessions() as session:
        entries = (await session.scalars(select(AuditEntry).order_by(AuditEntry.seq))).all()
    assert [e.target for e in entries] == [
        "test:service-1", "test:cli-1", "test:service-2", "test:service-3"
    ]
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))


async def test_a_rolled_back_append_leaves_no_gap(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await _append(sessions, "test:1")
    async with sessions() as session:
        await record_event(session, actor="service", action="test.append", target="test:gone")
        await session.rollback()
    await _append(sessions, "test:2")
    await _append(sessions, "test:3")
    await _audit_ok(sessions, 3)
    async with sessions() as session:
        targets = list(await session.scalars(select(AuditEntry.target).order_by(AuditEntry.seq)))
    assert targets == ["test:1", "test:2", "test:3"]


async def test_concurrent_appenders_on_one_engine_and_another_never_fork(
    sessions: async_sessionmaker[AsyncSession], migrated_url: str
) -> None:
    """Transactions of one process guess the head another one of them has not committed
    yet; a second engine (another process) appends among them."""
    per_writer = 15

    async def writer(factory: async_sessionmaker[AsyncSession], name: str) -> None:
        for i in range(per_writer):
            async with factory() as session:
                await record_event(session, actor=name, action="test.append",
                                   target=f"test:{name}:{i}")
                await asyncio.sleep(0.001 * (i % 3))  # commits interleave
                await session.commit()

    other = make_engine(migrated_url)
    try:
        await asyncio.gather(
            *(writer(sessions, f"same{n}") for n in range(4)),
            writer(make_session_factory(other), "other"),
        )
    finally:
        await other.dispose()
    await _audit_ok(sessions, 5 * per_writer)
    async with sessions() as session:
        actors = list(await session.scalars(select(AuditEntry.actor).order_by(AuditEntry.seq)))
    assert sorted(Counter(actors).values()) == [per_writer] * 5
    assert sum(1 for a, b in itertools.pairwise(actors) if a != b) > 5
