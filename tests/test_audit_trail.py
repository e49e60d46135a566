"""The audit trail's hash chain on SQLite and PostgreSQL: appending, concurrent writers,
the database's refusal to change entries, and ``verify`` naming the first tampered entry."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from audit_fixtures import SWAP_2_AND_4, pg_roles, run_as, tamper
from database_fixtures import db_url, migrated_url, pg_database, sessions
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from storage_fakes import DirSource, wav_bytes

from pbx_bridge.calls.extensions import set_extension
from pbx_bridge.calls.journal import CallJournal, ConsentProof
from pbx_bridge.calls.retention import set_class
from pbx_bridge.calls.routes import set_route
from pbx_bridge.config import (
    Language,
    LegalBasis,
    RecordingMode,
    RetentionSettings,
    RouteSettings,
)
from pbx_bridge.recordings_admin import change_retention
from pbx_bridge.subjects.index import SubjectIndex
from pbx_bridge.subjects.numbers import SubjectKeyer
from storage.audit_trail import (
    GENESIS,
    AuditEvent,
    VerifyReport,
    entry_hash,
    list_entries,
    record_event,
    record_events,
    verify,
)
from storage.backends.local import LocalBackend
from storage.database import make_engine, make_session_factory, upgrade
from storage.deletion import RecordingDeleter
from storage.models import AuditEntry, AuditHead, Base, Recording, RecordingKind
from storage.pipeline import RecordingPipeline
from storage.retention import HoldError, hold, purge_expired, release

__all__ = ["db_url", "migrated_url", "pg_database", "sessions"]  # fixtures, imported for pytest

REPO = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 5, 4, 10, 30, 15, 123456, tzinfo=UTC)


async def _append(
    sessions: async_sessionmaker[AsyncSession], count: int, *, actor: str = "cli:alice"
) -> None:
    for i in range(1, count + 1):
        async with sessions() as session:
            await record_event(
                session,
                actor=actor,
                action="recording.held",
                target=f"recording:r{i}",
                details={"reason": f"court file {i}", "n": i},
                at=T0 + timedelta(seconds=i),
            )
            await session.commit()


async def _entries(sessions: async_sessionmaker[AsyncSession]) -> list[AuditEntry]:
    async with sessions() as session:
        return list((await session.scalars(select(AuditEntry).order_by(AuditEntry.seq))).all())


async def _verify(
    sessions: async_sessionmaker[AsyncSession], anchor: tuple[int, str] | None = None
) -> VerifyReport:
    async with sessions() as session:
        return await verify(session, anchor=anchor)


# -- the chain ---------------------------------------------------------------------------


def _documented_hash(entry: AuditEntry) -> str:
    """The encoding as the module docstring documents it, written out independently."""
    payload = [
        "pbx-bridge-audit/1",
        entry.seq,
        entry.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        entry.actor,
        entry.action,
        entry.target,
        entry.outcome,
        entry.details,
        entry.prev_hash,
    ]
    encoded = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()


async def test_entries_link_by_hash_from_64_zeros(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        first = await record_event(
            session,
            actor="caller",
            action="consent.recorded",
            target="call:c1",
            details={"decision": "granted", "digit": "1", "prompt_version": "v3", "ü": "ç"},
            at=T0,
        )
        await session.commit()
    await _append(sessions, 2)
    entries = await _entries(sessions)

    assert first.seq == 1
    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[0].prev_hash == GENESIS
    assert entries[1].prev_hash == entries[0].hash
    assert entries[2].prev_hash == entries[1].hash
    assert entries[0].at == T0  # microseconds survive the round trip, so hashes re-check
    assert entries[0].details == (
        '{"decision":"granted","digit":"1","prompt_version":"v3","ü":"ç"}'
    )
    for entry in entries:
        assert entry.hash == _documented_hash(entry)
    report = await _verify(sessions)
    assert report.ok, report.message
    assert (report.checked, report.head_seq, report.head_hash) == (3, 3, entries[2].hash)
    assert "3 entries" in report.message


async def test_an_entry_commits_or_rolls_back_with_the_callers_work(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        await record_event(session, actor="service", action="recording.stored", target="r:1")
        await session.rollback()
    async with sessions() as session:
        entry = await record_event(
            session, actor="service", action="recording.stored", target="r:2"
        )
        await session.commit()
    assert entry.seq == 1
    assert entry.prev_hash == GENESIS
    assert entry.at.tzinfo is not None
    assert (await _verify(sessions)).ok


async def test_a_batch_is_appended_in_order_under_one_head_move(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await _append(sessions, 1)
    async with sessions() as session:
        entries = await record_events(
            session,
            [AuditEvent("retention", "recording.purged", f"recording:p{i}") for i in range(5)],
        )
        await session.commit()
    assert [e.seq for e in entries] == [2, 3, 4, 5, 6]
    assert [e.target for e in entries] == [f"recording:p{i}" for i in range(5)]
    async with sessions() as session:
        head = await session.get(AuditHead, 1)
        assert head is not None
        assert (head.seq, head.hash) == (6, entries[-1].hash)
    assert (await _verify(sessions)).ok


async def test_bad_fields_are_refused_before_anything_is_written(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        with pytest.raises(ValueError, match="non-empty actor"):
            await record_event(session, actor=" ", action="a.b", target="t")
        with pytest.raises(ValueError, match=r"target .* longer than 200"):
            await record_event(session, actor="x", action="a.b", target="t" * 201)
        with pytest.raises(ValueError, match="naive"):
            await record_event(
                session, actor="x", action="a.b", target="t", at=datetime(2026, 1, 1)
            )
        with pytest.raises(TypeError, match="cannot hold a object"):
            await record_event(session, actor="x", action="a.b", target="t",
                               details={"x": object()})
        await session.commit()
    assert await _entries(sessions) == []


async def test_list_entries_filters_newest_first(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        for i, (action, target) in enumerate(
            [
                ("recording.stored", "recording:a"),
                ("recording.held", "recording:a"),
                ("route.changed", "route:2125550100"),
                ("recording.released", "recording:b"),
                ("recording_x.odd", "recording:c"),
            ]
        ):
            await record_event(
                session, actor="cli:bob", action=action, target=target,
                at=T0 + timedelta(days=i),
            )
        await session.commit()
    async with sessions() as session:
        every = await list_entries(session, limit=None)
        assert [e.seq for e in every] == [5, 4, 3, 2, 1]
        assert [e.seq for e in await list_entries(session, limit=2)] == [5, 4]
        assert [e.seq for e in await list_entries(session, target="recording:a")] == [2, 1]
        assert [e.seq for e in await list_entries(session, action="recording.*")] == [4, 2, 1]
        assert [e.seq for e in await list_entries(session, action="route.changed")] == [3]
        since = T0 + timedelta(days=2)
        assert [e.seq for e in await list_entries(session, since=since)] == [5, 4, 3]
        assert await list_entries(session, target="nothing") == []
        with pytest.raises(ValueError, match="limit"):
            await list_entries(session, limit=0)


async def test_a_database_made_by_create_all_gets_its_head_on_first_append(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        sessions = make_session_factory(engine)
        assert (await _verify(sessions)).ok  # empty, no head yet
        other = make_engine(db_url)
        try:
            await asyncio.gather(_append(sessions, 5), _append(make_session_factory(other), 5))
        finally:
            await other.dispose()
        report = await _verify(sessions)
        assert report.ok, report.message
        assert report.head_seq == 10
    finally:
        await engine.dispose()


# -- concurrent writers ------------------------------------------------------------------

APPENDER = """
import asyncio, sys
from storage.audit_trail import record_event
from storage.database import make_engine, make_session_factory

async def main(url: str, actor: str, count: int) -> None:
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    try:
        for i in range(count):
            async with sessions() as session:
                await record_event(session, actor=actor, action="test.append",
                                   target=f"test:{actor}:{i}")
                await session.commit()
    finally:
        await engine.dispose()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


async def _slow_appender(url: str, rounds: int) -> None:
    """Holds the head for a while before each commit, so others must queue behind it."""
    engine = make_engine(url)
    try:
        sessions = make_session_factory(engine)
        for i in range(rounds):
            async with sessions() as session:
                await record_event(session, actor="slow", action="test.append",
                                   target=f"test:slow:{i}")
                await asyncio.sleep(0.05)
                await session.commit()
    finally:
        await engine.dispose()


async def test_concurrent_appenders_in_processes_and_sessions_never_fork(
    migrated_url: str,
) -> None:
    per_writer = 25
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", APPENDER, migrated_url, f"process{n}", str(per_writer),
            cwd=REPO, stderr=asyncio.subprocess.PIPE,
        )
        for n in range(2)
    ]
    engines = [make_engine(migrated_url) for _ in range(3)]
    try:
        await asyncio.gather(
            *(
                _append(make_session_factory(engine), per_writer, actor=f"session{n}")
                for n, engine in enumerate(engines)
            ),
            _slow_appender(migrated_url, 10),
        )
        for proc in processes:
            _, err = await proc.communicate()
            assert proc.returncode == 0, err.decode()
        sessions = make_session_factory(engines[0])
        entries = await _entries(sessions)
        total = 5 * per_writer + 10
        assert [e.seq for e in entries] == list(range(1, total + 1))
        actors = [e.actor for e in entries]
        for name in ("process0", "process1", "session0", "session1", "session2"):
            assert actors.count(name) == per_writer
        # Writers really interleaved (the test would prove nothing if they ran in turn).
        switches = sum(1 for a, b in itertools.pairwise(actors) if a != b)
        assert switches > 5
        report = await _verify(sessions)
        assert report.ok, report.message
        assert report.head_seq == total
    finally:
        for engine in engines:
            await engine.dispose()


# -- the database refuses changes --------------------------------------------------------


async def _refused(url: str, statement: str) -> str:
    engine = make_engine(url)
    try:
        with pytest.raises(DBAPIError) as caught:
            async with engine.begin() as conn:
                await conn.execute(text(statement))
        return str(caught.value.orig)
    finally:
        await engine.dispose()


async def test_triggers_refuse_changing_removing_or_replacing_entries(
    sessions: async_sessionmaker[AsyncSession], migrated_url: str
) -> None:
    await _append(sessions, 3)
    statements = [
        "UPDATE audit_log SET outcome = 'failed' WHERE seq = 2",
        "DELETE FROM audit_log WHERE seq = 2",
        "UPDATE audit_head SET seq = 1",
        "DELETE FROM audit_head",
    ]
    if migrated_url.startswith("sqlite"):
        statements.append(
            "INSERT OR REPLACE INTO audit_log (seq, at, actor, action, target, outcome, "
            "details, prev_hash, hash) SELECT seq, at, actor, action, target, 'failed', "
            "details, prev_hash, hash FROM audit_log WHERE seq = 2"
        )
    else:
        statements += ["TRUNCATE audit_log", "TRUNCATE audit_head"]
    # Even the PostgreSQL superuser these tests connect as is stopped by the triggers.
    for statement in statements:
        message = await _refused(migrated_url, statement)
        assert "append-only" in message or "only moves forward" in message, (statement, message)
    report = await _verify(sessions)
    assert report.ok, report.message
    assert report.head_seq == 3


@pytest.mark.postgres
async def test_the_service_role_cannot_update_delete_or_truncate_on_postgres() -> None:
    """One role owns the database, runs the migrations and runs the service."""
    async with pg_roles(separate_service_role=False) as roles:
        url = roles.url(roles.service)
        await upgrade(url)
        engine = make_engine(url)
        try:
            sessions = make_session_factory(engine)
            await _append(sessions, 3)  # appending still works for the role
            outcomes = await run_as(
                url,
                [
                    "UPDATE audit_log SET outcome = 'failed' WHERE seq = 2",
                    "DELETE FROM audit_log WHERE seq = 2",
                    "TRUNCATE audit_log",
                    "DELETE FROM audit_head",
                    "TRUNCATE audit_head",
                    "UPDATE audit_head SET seq = 0",
                ],
            )
            for outcome in outcomes[:5]:
                assert outcome.startswith("InsufficientPrivilegeError: permission denied"), outcome
            assert "only moves forward" in outcomes[5]
            checks = await run_as(
                url,
                [
                    f"DO $$ BEGIN ASSERT NOT has_table_privilege('{roles.service}', "
                    f"'audit_log', '{p}'); END $$"
                    for p in ("UPDATE", "DELETE", "TRUNCATE")
                ],
            )
            assert checks == ["", "", ""]
            report = await _verify(sessions)
            assert report.ok, report.message
            assert report.head_seq == 3
        finally:
            await engine.dispose()


@pytest.mark.postgres
async def test_a_separate_owner_role_leaves_the_service_unable_to_lift_the_protection() -> None:
    """The stronger set-up: migrations as an owner role, the service as a role granted
    table rights by default privileges; the migration takes the audit rights back."""
    async with pg_roles(separate_service_role=True) as roles:
        await upgrade(roles.url(roles.owner))
        service_url = roles.url(roles.service)
        engine = make_engine(service_url)
        try:
            sessions = make_session_factory(engine)
            await _append(sessions, 2)
            outcomes = await run_as(
                service_url,
                [
                    "UPDATE audit_log SET outcome = 'failed'",
                    "DELETE FROM audit_log",
                    "TRUNCATE audit_log",
                    "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change",
                    "DROP TRIGGER audit_log_no_change ON audit_log",
                    "DROP TABLE audit_log",
                    "SET session_replication_role = replica",
                    "UPDATE recordings SET error = NULL WHERE false",  # other tables: usable
                ],
            )
            for outcome in outcomes[:7]:
                assert outcome.startswith("InsufficientPrivilegeError"), outcome
            assert outcomes[7] == ""
            report = await _verify(sessions)
            assert report.ok, report.message
            assert report.head_seq == 2
        finally:
            await engine.dispose()


# -- tampering with the protection lifted -----------------------------------------------


async def _seeded(sessions: async_sessionmaker[AsyncSession]) -> list[AuditEntry]:
    await _append(sessions, 6)
    return await _entries(sessions)


async def test_a_changed_entry_is_named(
    sessions: async_sessionmaker[AsyncSession], migrated_url: str
) -> None:
    await _seeded(sessions)
    await tamper(migrated_url, "UPDATE audit_log SET details = '{\"n\": 99}' WHERE seq = 3")
    report = await _verify(sessions)
    assert not report.ok
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (3, "changed")
    assert "entry 3 was changed" in report.message
    assert report.checked == 2


async def test_a_removed_entry_is_named(
    sessions: async_sessionmaker[AsyncSession], migrated_url: str
) -> None:
    await _seeded(sessions)
    await tamper(migrated_url, "DELETE FROM audit_log WHERE seq = 3")
    report = await _verify(sessions)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (3, "removed")
    assert "entry 3 removed (entry 4 follows entry 2)" in report.message


async def test_removing_the_newest_entries_is_caught_by_the_head(
    sessions: async_sessionmaker[AsyncSession], migrated_url: str
) -> None:
    await _seeded(sessions)
    await tamper(migrated_url, "DELETE FROM audit_log WHERE seq >= 5")
    report = await _verify(sessions)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (5, "removed")
    assert "entries 5 to 6 removed" in report.message


async def test_swapped_entries_are_named_as_reordered(
    sessions: async_sessionmaker[AsyncSession], migrated_url: str
) -> None:
    await _seeded(sessions)
    await tamper(migrated_url, *SWAP_2_AND_4)
    report = await _verify(sessions)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (2, "reordered")
    assert "entry 2 was reordered: it was written as entry 4, after entry 3" in report.message


async def test_a_changed_entry_whose_hash_was_recomputed_is_named(
    sessions: async_sessionmaker[AsyncSession], migrated_url: str
) -> None:
    entries = await _seeded(sessions)
    third = entries[2]
    forged = entry_hash(
        seq=3, at=third.at, actor="cli:mallory", action=third.action, target=third.target,
        outcome=third.outcome, details=third.details, prev_hash=third.prev_hash,
    )
    await tamper(
        migrated_url,
        f"UPDATE audit_log SET actor = 'cli:mallory', hash = '{forged}' WHERE seq = 3",
    )
    report = await _verify(sessions)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (3, "changed")
    assert "entry 3 was changed (and its hash recomputed)" in report.message


async def test_a_rewrite_of_the_whole_tail_is_caught_by_an_anchor(
    sessions: async_sessionmaker[AsyncSession], migrated_url: str
) -> None:
    entries = await _seeded(sessions)
    anchor = (6, entries[5].hash)  # noted down elsewhere earlier, e.g. from `audit verify`
    statements: list[str] = []
    prev = entries[1].hash
    for entry in entries[2:]:
        actor = "cli:mallory" if entry.seq == 3 else entry.actor
        digest = entry_hash(
            seq=entry.seq, at=entry.at, actor=actor, action=entry.action, target=entry.target,
            outcome=entry.outcome, details=entry.details, prev_hash=prev,
        )
        statements.append(
            f"UPDATE audit_log SET actor = '{actor}', prev_hash = '{prev}', hash = '{digest}' "
            f"WHERE seq = {entry.seq}"
        )
        prev = digest
    statements.append(f"UPDATE audit_head SET hash = '{prev}'")
    await tamper(migrated_url, *statements)

    assert (await _verify(sessions)).ok  # a consistent rewrite: only an anchor tells
    report = await _verify(sessions, anchor=anchor)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (6, "anchor")
    assert "entry 6 has hash" in report.message
    assert (await _verify(sessions, anchor=(2, entries[1].hash))).ok
    beyond = await _verify(sessions, anchor=(9, entries[1].hash))
    assert beyond.problem is not None
    assert beyond.problem.kind == "anchor"


async def test_an_entry_inserted_beyond_the_head_is_named(
    sessions: async_sessionmaker[AsyncSession], migrated_url: str
) -> None:
    entries = await _seeded(sessions)
    await tamper(
        migrated_url,
        "INSERT INTO audit_log (seq, at, actor, action, target, outcome, details, prev_hash,"
        f" hash) VALUES (7, '2026-05-04 11:00:00', 'x', 'y.z', 't', 'ok', '{{}}',"
        f" '{entries[5].hash}', '{'f' * 64}')",
    )
    report = await _verify(sessions)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (7, "inserted")


async def test_appending_after_tampering_keeps_the_break_visible(
    sessions: async_sessionmaker[AsyncSession], migrated_url: str
) -> None:
    await _seeded(sessions)
    await tamper(migrated_url, "DELETE FROM audit_log WHERE seq = 6")
    await _append(sessions, 1)  # links to the head (entry 6), not to the last row left
    report = await _verify(sessions)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (6, "removed")


# -- what the system records -------------------------------------------------------------


async def _by_action(sessions: async_sessionmaker[AsyncSession]) -> dict[str, list[AuditEntry]]:
    found: dict[str, list[AuditEntry]] = {}
    for entry in await _entries(sessions):
        found.setdefault(entry.action, []).append(entry)
    return found


def _no_number(entry: AuditEntry, *numbers: str) -> None:
    for number in numbers:
        assert number not in entry.details and number not in entry.target, entry.details


def _proof(decision: str, digit: str | None) -> ConsentProof:
    return ConsentProof(
        decision=decision, digit=digit, language="tr", prompt_name="disclosure",
        prompt_version="v7", prompt_sha256="a" * 64, prompt_text_sha256="b" * 64,
        times_played=2, evidence_recording_id="ev-1", prompt_started_at=T0,
        decided_at=T0 + timedelta(seconds=9),
    )


async def test_consent_is_recorded_with_its_proof_and_without_the_number(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    journal = CallJournal(sessions, SubjectIndex(SubjectKeyer(bytes(32)), "TR"))
    calls = []
    for channel in ("ch-1", "ch-2"):
        calls.append(
            await journal.open(
                linkedid=channel, channel_id=channel, direction="inbound",
                caller="05321234567", did="2125550100", extension="101",
                announcement="before-connect", legal_basis="consent",
                retention_class="default", language="tr",
            )
        )
    await journal.save_consent(calls[0], "05321234567", _proof("granted", "1"))
    await journal.save_consent(calls[0], "05321234567", _proof("granted", "1"))  # repeat
    await journal.save_consent(calls[1], "05321234567", _proof("timeout", None))

    entries = (await _by_action(sessions))["consent.recorded"]
    assert [(e.target, e.actor) for e in entries] == [
        (f"call:{calls[0]}", "caller"),
        (f"call:{calls[1]}", "service"),
    ]
    assert json.loads(entries[0].details) == {
        "decision": "granted", "digit": "1", "language": "tr", "prompt": "disclosure",
        "prompt_version": "v7", "prompt_sha256": "a" * 64, "times_played": 2,
        "evidence_recording": "ev-1",
    }
    assert entries[0].at == T0 + timedelta(seconds=9)
    for entry in entries:
        _no_number(entry, "5321234567")
    assert (await _verify(sessions)).ok


async def test_stored_deleted_purged_held_released_and_retention_are_recorded(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    source = DirSource(tmp_path / "asterisk")
    backend = LocalBackend(tmp_path / "store")
    pipeline = RecordingPipeline(
        sessions, source, tmp_path / "spool", backend, retry_initial_s=0.01, retry_max_s=0.05
    )
    ids: list[str] = []
    async with pipeline:
        for call_id in ("call-1", "call-2", "call-3"):
            row = await pipeline.begin(
                call_id=call_id, kind=RecordingKind.CONVERSATION, legal_basis="consent",
                retention_class="default", retention_days=30,
            )
            source.put(row.asterisk_name, wav_bytes(0.5))
            await pipeline.finished(row.asterisk_name)
            ids.append(row.id)
        await pipeline.wait_idle()
    manual, expired, kept = ids
    deleter = RecordingDeleter(sessions, {"local": backend}, spool_dir=tmp_path / "spool")

    await hold(sessions, kept, "court file 2026/17, caller 0532 123 45 67", actor="cli:dpo")
    await release(sessions, kept, actor="cli:dpo")
    await deleter.request(manual, reason="manual", note="asked by 05321234567",
                          actor="cli:admin")
    async with sessions() as session:
        await session.execute(
            update(Recording).where(Recording.id == expired).values(retain_until=T0)
        )
        await session.commit()
    await purge_expired(sessions, deleter, now=T0 + timedelta(days=1))

    found = await _by_action(sessions)
    stored = {e.target: e for e in found["recording.stored"]}
    assert set(stored) == {f"recording:{rid}" for rid in ids}
    async with sessions() as session:
        sha = await session.scalar(select(Recording.sha256).where(Recording.id == kept))
    assert stored[f"recording:{kept}"].actor == "service"
    assert json.loads(stored[f"recording:{kept}"].details) == {
        "backends": ["local"], "call": "call-3", "kind": "conversation", "sha256": sha,
    }

    held, released = found["recording.held"][0], found["recording.released"][0]
    assert (held.actor, held.target) == ("cli:dpo", f"recording:{kept}")
    assert json.loads(held.details) == {"reason": "court file 2026/17, caller 0532***4567"}
    assert released.actor == "cli:dpo"
    assert "held_since" in json.loads(released.details)

    deleted = found["recording.deleted"][0]
    assert (deleted.actor, deleted.target) == ("cli:admin", f"recording:{manual}")
    details = json.loads(deleted.details)
    assert details["reason"] == "manual"
    assert details["call"] == "call-1"
    assert any(w.startswith("local:") for w in details["where"])
    _no_number(deleted, "5321234567")

    purged = found["recording.purged"][0]
    assert (purged.actor, purged.target) == ("retention", f"recording:{expired}")
    assert json.loads(purged.details)["reason"] == "retention"
    assert [e.target for e in found["recording.purged"]] == [f"recording:{expired}"]

    async with sessions() as session:
        await record_event(session, actor="x", action="noise", target="t")
        await session.commit()
    report = await _verify(sessions)
    assert report.ok, report.message


async def test_a_refused_action_leaves_no_entry(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        session.add(
            Recording(
                id="r-1", call_id="c-1", kind="conversation", status="stored",
                asterisk_name="pbxb-r-1", legal_basis="consent", retention_class="default",
                retention_days=30, started_at=T0,
            )
        )
        await session.commit()
    with pytest.raises(HoldError):
        await hold(sessions, "r-1", "   ", actor="cli:x")
    await hold(sessions, "r-1", "dispute", actor="cli:x")
    with pytest.raises(HoldError, match="already on hold"):
        await hold(sessions, "r-1", "again", actor="cli:x")
    assert [e.action for e in await _entries(sessions)] == ["recording.held"]


async def test_configuration_changes_are_recorded_from_and_to(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    default = RouteSettings()
    async with sessions() as session:
        await set_class(session, "sales", 365, actor="cli:ops")
        await set_class(session, "sales", 400, actor="cli:ops")
        await set_class(session, "sales", 400, actor="cli:ops")  # no change: no entry
        await set_extension(session, "101", RecordingMode.ALWAYS, actor="cli:ops")
        await set_extension(session, "101", RecordingMode.NEVER, "sales", actor="cli:ops")
        await set_route(session, "2125550100", default=default,
                        default_language=Language.TR, target="101", actor="cli:ops")
        await set_route(session, "2125550100", default=default, default_language=Language.TR,
                        legal_basis=LegalBasis.LEGITIMATE_INTEREST, actor="cli:ops")
        await set_route(session, "2125550100", default=default, default_language=Language.TR,
                        target="101", actor="cli:ops")  # no change
        await session.commit()
    entries = await _entries(sessions)
    assert [(e.action, e.target) for e in entries] == [
        ("retention.created", "retention:sales"),
        ("retention.changed", "retention:sales"),
        ("extension.created", "extension:101"),
        ("extension.changed", "extension:101"),
        ("route.created", "route:2125550100"),
        ("route.changed", "route:2125550100"),
    ]
    assert {e.actor for e in entries} == {"cli:ops"}
    details = [json.loads(e.details)["changes"] for e in entries]
    assert details[1] == {"days": {"from": 365, "to": 400}}
    assert details[3] == {
        "recording": {"from": "always", "to": "never"},
        "retention_class": {"from": None, "to": "sales"},
    }
    assert details[4]["target"] == {"from": None, "to": "101"}
    assert details[4]["legal_basis"] == {"from": None, "to": default.legal_basis.value}
    assert details[5] == {
        "legal_basis": {"from": default.legal_basis.value, "to": "legitimate-interest"}
    }


async def test_a_retention_change_of_a_recording_is_recorded(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        await set_class(session, "legal", 3650)
        session.add(
            Recording(
                id="r-1", call_id="c-1", kind="conversation", status="stored",
                asterisk_name="pbxb-r-1", legal_basis="consent", retention_class="default",
                retention_days=30, started_at=T0, finished_at=T0,
                retain_until=T0 + timedelta(days=30),
            )
        )
        await session.commit()
    await change_retention(sessions, "r-1", "legal", RetentionSettings(), actor="cli:dpo")
    entry = (await _by_action(sessions))["recording.retention_changed"][0]
    assert (entry.actor, entry.target) == ("cli:dpo", "recording:r-1")
    assert json.loads(entry.details) == {
        "class": {"from": "default", "to": "legal"},
        "days": 3650,
        "retain_until": {
            "from": "2026-06-03T10:30:15.123456Z",
            "to": "2036-05-01T10:30:15.123456Z",
        },
    }
