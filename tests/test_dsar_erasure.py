"""Erasure, anonymisation, withdrawal and objection requests, on both databases.

Recordings are stored for real (the local backend's files, and a real vsftpd where the
FTP backend is involved) and deleted through the storage pipeline's delete. One subject
calls from two number formats; a second subject's rows must never be touched.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from backend_servers import FtpServer
from cli_support import clean_pbx_env  # noqa: F401  (clean_pbx_env: autouse fixture)
from database_fixtures import db_url, migrated_url, pg_database, sessions
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner, Result

from pbx_bridge.calls.models import Call, Consent, DataSubjectRequest, DoNotRecord
from pbx_bridge.cli.main import app
from pbx_bridge.config import (
    DatabaseSettings,
    LocalStorageSettings,
    PrivacySettings,
    Settings,
    StorageSettings,
)
from pbx_bridge.recordings_admin import backends_from_settings
from pbx_bridge.subjects.env import RequestEnv
from pbx_bridge.subjects.erasure import (
    DecisionRequired,
    answer_anonymise,
    answer_erasure,
    answer_withdraw,
)
from pbx_bridge.subjects.handling import RequestClosed, handle_request
from pbx_bridge.subjects.index import SubjectIndex
from pbx_bridge.subjects.numbers import SubjectKeyer
from pbx_bridge.subjects.register import (
    RequestChannel,
    RequestType,
    get_request,
    open_request,
    reject,
)
from storage.backends.base import Backend
from storage.backends.local import LocalBackend
from storage.database import make_engine, make_session_factory
from storage.models import (
    AuditEntry,
    CopyStatus,
    Recording,
    RecordingCopy,
    RecordingStatus,
    Tombstone,
)

pytest_plugins = ["backend_servers"]
__all__ = ["db_url", "migrated_url", "pg_database", "sessions"]

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
A_NATIONAL = "05321234567"
A_E164 = "+905321234567"
A_LETTER = "+90 532 123 45 67"  # how the subject wrote it in their request
A_DIGITS = "5321234567"  # found in no row, log line or audit entry after erasure
B_NATIONAL = "0555 987 65 43"
SECRET = b"\x07" * 32
INDEX = SubjectIndex(SubjectKeyer(SECRET), "TR")


@dataclass
class World:
    """The service's storage as configured, and rows about two subjects."""

    env: RequestEnv
    tmp: Path
    backends: dict[str, Backend]
    ftp_disk: Path | None = None
    keys: dict[str, str] = field(default_factory=dict)
    minute: int = 0

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        return self.env.sessions

    async def call(
        self,
        caller: str,
        *,
        basis: str = "consent",
        decision: str = "granted",
        ended: bool = True,
    ) -> str:
        self.minute += 5
        start = T0 + timedelta(minutes=self.minute)
        call = Call(
            id=str(uuid.uuid4()),
            linkedid=f"1700000000.{self.minute}",
            channel_id=f"chan-{uuid.uuid4()}",
            direction="inbound",
            caller=caller,
            caller_key=INDEX.key_of(caller),
            did="2125550100",
            extension="100",
            announcement="before-connect",
            legal_basis=basis,
            retention_class="default",
            language="tr",
            started_at=start,
            answered_at=start + timedelta(seconds=12),
            ended_at=start + timedelta(minutes=3) if ended else None,
            disposition="answered" if ended else None,
            hangup_cause="caller hung up (normal)" if ended else None,
        )
        async with self.sessions() as session:
            session.add(call)
            await session.flush()
            session.add(
                Consent(
                    call_id=call.id,
                    caller=caller,
                    caller_key=call.caller_key,
                    decision=decision,
                    digit="1" if decision == "granted" else None,
                    language="tr",
                    prompt_name="disclosure",
                    prompt_version="v1",
                    times_played=1,
                    decided_at=start + timedelta(seconds=10),
                )
            )
            await session.commit()
        return call.id

    async def recording(
        self,
        call_id: str,
        *,
        basis: str = "consent",
        kind: str = "conversation",
        hold: str | None = None,
        status: str = RecordingStatus.STORED.value,
        copies: tuple[str, ...] = ("local",),
    ) -> str:
        """A recording with a verified copy really stored on each named backend."""
        rid = str(uuid.uuid4())
        key = f"2026/03/01/{call_id}/{rid}.wav"
        self.keys[rid] = key
        audio = b"RIFF" + os.urandom(2000) + rid.encode()
        src = self.tmp / f"src-{rid}.wav"
        src.write_bytes(audio)
        stored = {name: await self.backends[name].put(src, key) for name in copies}
        src.unlink()
        async with self.sessions() as session:
            session.add(
                Recording(
                    id=rid,
                    call_id=call_id,
                    kind=kind,
                    status=status,
                    asterisk_name=f"pbxb-{rid}",
                    legal_basis=basis,
                    retention_class="default",
                    retention_days=60,
                    retain_until=T0 + timedelta(days=60),
                    size_bytes=len(audio),
                    duration_s=42.5,
                    started_at=T0 + timedelta(minutes=self.minute),
                    hold_reason=hold,
                    held_at=T0 if hold else None,
                    held_by="dpo" if hold else None,
                )
            )
            await session.flush()
            for name, obj in stored.items():
                session.add(
                    RecordingCopy(
                        recording_id=rid,
                        backend=name,
                        key=key,
                        status=CopyStatus.VERIFIED.value,
                        size_bytes=obj.size,
                        sha256=obj.sha256,
                        location=obj.location,
                        verified_at=T0,
                    )
                )
            await session.commit()
        return rid

    def local_file(self, rid: str) -> Path:
        backend = self.backends["local"]
        assert isinstance(backend, LocalBackend)
        return backend.path_for(self.keys[rid])

    def ftp_file(self, rid: str) -> Path:
        assert self.ftp_disk is not None
        return self.ftp_disk / self.keys[rid]

    async def open(self, kind: RequestType, number: str = A_LETTER) -> str:
        async with self.sessions() as session:
            request = await open_request(
                session,
                INDEX,
                number=number,
                type=kind,
                channel=RequestChannel.LETTER,
                actor="cli:dpo",
                due_days=30,
                now=NOW - timedelta(days=1),
            )
            await session.commit()
            return request.reference

    async def request(self, ref: str) -> DataSubjectRequest:
        async with self.sessions() as session:
            return await get_request(session, ref)

    async def row(self, model: type[Recording] | type[Call], key: str) -> Recording | Call:
        async with self.sessions() as session:
            found = await session.get(model, key)
        assert found is not None
        return found


def _settings(tmp: Path, url: str, backends: dict[str, object] | None = None) -> Settings:
    storage: dict[str, object] = {
        "spool_dir": tmp / "spool",
        "local": LocalStorageSettings(path=tmp / "recordings"),
    }
    if backends:
        storage["backends"] = backends
        storage["targets"] = ["local", *backends]
    return Settings(
        database=DatabaseSettings(url=url),
        storage=StorageSettings.model_validate(storage),
        privacy=PrivacySettings(export_dir=tmp / "exports"),
    )


def _world(
    tmp: Path, url: str, sessions: async_sessionmaker[AsyncSession], **kwargs: object
) -> World:
    settings = _settings(tmp, url, kwargs.pop("backends", None))  # type: ignore[arg-type]
    (tmp / "spool").mkdir(exist_ok=True)
    env = RequestEnv(settings, sessions, INDEX, "cli:dpo", lambda: NOW)
    return World(env, tmp, backends_from_settings(settings), **kwargs)  # type: ignore[arg-type]


@pytest.fixture
async def world(
    tmp_path: Path, migrated_url: str, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[World]:
    built = _world(tmp_path, migrated_url, sessions)
    try:
        yield built
    finally:
        for backend in built.backends.values():
            await backend.close()


@pytest.fixture
def ftp_up(ftp_server: FtpServer) -> Iterator[FtpServer]:
    ftp_server.server.start()  # a test that failed while it was stopped must not leak that
    try:
        yield ftp_server
    finally:
        ftp_server.server.start()


@pytest.fixture
async def ftp_world(
    tmp_path: Path,
    migrated_url: str,
    sessions: async_sessionmaker[AsyncSession],
    ftp_up: FtpServer,
) -> AsyncIterator[World]:
    folder = f"t-{uuid.uuid4().hex[:10]}"
    built = _world(
        tmp_path,
        migrated_url,
        sessions,
        backends={"ftp": ftp_up.settings(base_dir=f"/{folder}")},
        ftp_disk=ftp_up.root / folder,
    )
    try:
        yield built
    finally:
        for backend in built.backends.values():
            await backend.close()


async def _audit(world: World) -> list[AuditEntry]:
    async with world.sessions() as session:
        return list((await session.scalars(select(AuditEntry).order_by(AuditEntry.seq))).all())


async def _all_text(world: World, model: type[object]) -> str:
    """Every column of every row of a table, as one text to search for a number."""
    async with world.sessions() as session:
        rows = (await session.scalars(select(model))).all()
    return json.dumps(
        [{k: str(v) for k, v in vars(row).items() if not k.startswith("_")} for row in rows]
    )


def _exists(path: Path) -> bool:
    return path.exists()


def _ids(entries: object) -> set[str]:
    assert isinstance(entries, list)
    return {str(entry["recording_id"]) for entry in entries}


# -- erasure ----------------------------------------------------------------------------


async def test_erasure_deletes_every_recording_but_held_and_legally_required_ones(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    consented = await world.call(A_NATIONAL)
    conversation = await world.recording(consented)
    evidence = await world.recording(consented, kind="evidence")
    interest = await world.call(A_E164, basis="legitimate-interest", decision="not-asked")
    interest_rec = await world.recording(interest, basis="legitimate-interest")
    obliged = await world.call(A_NATIONAL, basis="legal-obligation", decision="not-asked")
    obliged_rec = await world.recording(obliged, basis="legal-obligation")
    held = await world.call(A_E164)
    held_rec = await world.recording(held, hold="court case 2026/17")
    other = await world.call(B_NATIONAL)
    other_rec = await world.recording(other)
    ref = await world.open(RequestType.ERASURE)

    result = await handle_request(world.env, ref)

    assert result["complete"] is True and result["nothing_new"] is False
    recordings = result["recordings"]
    assert isinstance(recordings, dict)
    assert _ids(recordings["deleted"]) == {conversation, evidence, interest_rec}
    assert recordings["pending"] == [] and recordings["already_deleted"] == []
    kept = {str(e["recording_id"]): str(e["why"]) for e in recordings["kept"]}
    assert set(kept) == {obliged_rec, held_rec}
    assert "legal obligation" in kept[obliged_rec]
    assert "legal hold (court case 2026/17)" in kept[held_rec]

    # The files are gone from the disk; the kept ones and the other subject's are not.
    for rid in (conversation, evidence, interest_rec):
        assert not world.local_file(rid).exists()
        row = await world.row(Recording, rid)
        assert isinstance(row, Recording) and row.status == RecordingStatus.DELETED
        assert row.duration_s == 42.5  # the metadata stays
    for rid in (obliged_rec, held_rec, other_rec):
        assert world.local_file(rid).exists()
        row = await world.row(Recording, rid)
        assert isinstance(row, Recording) and row.status == RecordingStatus.STORED

    async with world.sessions() as session:
        tombstones = (await session.scalars(select(Tombstone))).all()
        calls = {c.id: c for c in (await session.scalars(select(Call))).all()}
        consents = {c.call_id: c for c in (await session.scalars(select(Consent))).all()}
    assert {t.recording_id for t in tombstones} == {conversation, evidence, interest_rec}
    assert all(t.reason == "erasure" and t.note == ref and t.actor == "cli:dpo"
               for t in tombstones)

    # Personal fields removed; the subject key, times and outcomes stay.
    for call_id in (consented, interest):
        call = calls[call_id]
        assert call.caller is None and call.redaction == "erased"
        assert call.redacted_at == NOW
        assert call.caller_key == INDEX.key_of(A_NATIONAL)
        assert call.disposition == "answered" and call.hangup_cause is not None
        assert consents[call_id].caller is None
        assert consents[call_id].decision in ("granted", "not-asked")
    # Calls whose recording is kept stay attributable, and the result says why.
    for call_id in (obliged, held):
        assert calls[call_id].caller is not None and calls[call_id].redaction is None
    rows = result["rows"]
    assert isinstance(rows, dict)
    assert {k["call_id"] for k in rows["calls"]["kept"]} == {obliged, held}
    assert calls[other].caller == B_NATIONAL and consents[other].caller == B_NATIONAL

    request = await world.request(ref)
    assert request.status == "done" and request.number is None
    assert request.number_masked == "0532***4567"
    stored_result = json.loads(request.result or "{}")
    assert _ids(stored_result["recordings"]["deleted"]) == {conversation, evidence, interest_rec}

    audit = await _audit(world)
    deletions = [e for e in audit if e.action == "recording.deletion_requested"]
    assert {e.target for e in deletions} == {
        f"recording:{rid}" for rid in (conversation, evidence, interest_rec)
    }
    assert {e.target for e in audit if e.action == "call.redacted"} == {
        f"call:{consented}", f"call:{interest}"
    }
    assert all(A_DIGITS not in e.details for e in audit)
    assert A_DIGITS not in await _all_text(world, Tombstone)
    info = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert not [line for line in info if A_DIGITS in line]


async def test_erasure_deletes_the_reports_and_exports_made_for_the_subject(
    world: World,
) -> None:
    call = await world.call(A_NATIONAL)
    await world.recording(call)
    access = await world.open(RequestType.ACCESS)
    export = await world.open(RequestType.EXPORT)
    reported = await handle_request(world.env, access)
    exported = await handle_request(world.env, export)
    report_dir = Path(str(reported["report_dir"]))
    zip_path = Path(str(exported["export_path"]))
    assert _exists(report_dir) and _exists(zip_path)

    erase = await world.open(RequestType.ERASURE)
    result = await handle_request(world.env, erase)

    assert result["complete"] is True
    assert not _exists(report_dir) and not _exists(zip_path)
    answers = result["answers_deleted"]
    assert isinstance(answers, list)
    assert {a["reference"] for a in answers} == {access, export}
    assert (await world.request(export)).export_path is None
    again = await answer_erasure(world.env, await world.request(erase))
    assert again["answers_deleted"] == [] and again["nothing_new"] is True


async def test_erasure_is_idempotent_and_a_done_request_is_not_run_again(world: World) -> None:
    call = await world.call(A_NATIONAL)
    rid = await world.recording(call)
    ref = await world.open(RequestType.ERASURE)
    first = await handle_request(world.env, ref)
    assert first["complete"] is True
    audit_before = len(await _audit(world))

    with pytest.raises(RequestClosed, match=rf"{ref} is done.*dsar show {ref}"):
        await handle_request(world.env, ref)

    again = await answer_erasure(world.env, await world.request(ref))
    assert again["nothing_new"] is True and again["complete"] is True
    assert "nothing new" in str(again["summary"])
    recordings = again["recordings"]
    assert isinstance(recordings, dict)
    assert recordings["deleted"] == []
    (already,) = recordings["already_deleted"]
    assert already["recording_id"] == rid and already["reason"] == "erasure"
    assert already["note"] == ref
    rows = again["rows"]
    assert isinstance(rows, dict)
    assert rows["calls"]["redacted"] == [] and rows["calls"]["already_redacted"] == [call]
    assert len(await _audit(world)) == audit_before  # nothing new, nothing audited


async def test_rejected_request_is_refused(world: World) -> None:
    ref = await world.open(RequestType.ERASURE)
    async with world.sessions() as session:
        await reject(session, await get_request(session, ref), actor="dpo", reason="not the caller")
        await session.commit()
    with pytest.raises(RequestClosed, match="rejected"):
        await handle_request(world.env, ref)


async def test_recording_still_in_the_pipeline_keeps_the_request_in_progress(
    world: World,
) -> None:
    live = await world.call(A_NATIONAL, ended=False)
    busy = await world.recording(live, status=RecordingStatus.SPOOLED.value)
    ref = await world.open(RequestType.ERASURE)

    result = await handle_request(world.env, ref)

    assert result["complete"] is False
    recordings = result["recordings"]
    rows = result["rows"]
    assert isinstance(recordings, dict) and isinstance(rows, dict)
    assert _ids(recordings["pending"]) == {busy}
    assert rows["calls"]["live"] == [live]
    request = await world.request(ref)
    assert request.status == "in-progress"
    assert json.loads(request.result or "{}")["complete"] is False


async def test_backend_down_leaves_the_deletion_pending_and_a_rerun_finishes_it(
    ftp_world: World, ftp_up: FtpServer
) -> None:
    """Erasure removes the files from the local and the FTP backend, even across an outage."""
    world = ftp_world
    call = await world.call(A_NATIONAL)
    rid = await world.recording(call, copies=("local", "ftp"))
    evidence = await world.recording(call, kind="evidence", copies=("local", "ftp"))
    assert world.ftp_file(rid).exists() and world.local_file(rid).exists()
    ref = await world.open(RequestType.ERASURE)

    await ftp_up.server.astop()
    try:
        first = await handle_request(world.env, ref)
    finally:
        await ftp_up.server.astart()

    assert first["complete"] is False
    recordings = first["recordings"]
    assert isinstance(recordings, dict)
    assert _ids(recordings["pending"]) == {rid, evidence}
    pending = recordings["pending"][0]
    assert [p["place"] for p in pending["places_pending"]] == ["ftp"]
    assert "local" in pending["places_cleared"]
    assert not world.local_file(rid).exists()
    assert world.ftp_file(rid).exists()
    row = await world.row(Recording, rid)
    assert isinstance(row, Recording) and row.status == RecordingStatus.DELETING
    request = await world.request(ref)
    assert request.status == "in-progress"
    # The rows are redacted at once: waiting for a backend is no reason to keep the number.
    redacted = await world.row(Call, call)
    assert isinstance(redacted, Call) and redacted.caller is None

    second = await handle_request(world.env, ref)

    assert second["complete"] is True
    recordings = second["recordings"]
    assert isinstance(recordings, dict)
    assert _ids(recordings["deleted"]) == {rid, evidence}
    assert not world.ftp_file(rid).exists() and not world.ftp_file(evidence).exists()
    row = await world.row(Recording, rid)
    assert isinstance(row, Recording) and row.status == RecordingStatus.DELETED
    async with world.sessions() as session:
        (tombstone,) = (
            await session.scalars(select(Tombstone).where(Tombstone.recording_id == rid))
        ).all()
    assert {w["backend"] for w in json.loads(tombstone.deleted_where)} >= {"local", "ftp"}
    request = await world.request(ref)
    assert request.status == "done" and request.number is None
    trail = [(e.action, e.outcome) for e in await _audit(world) if e.target == f"recording:{rid}"]
    assert trail == [
        ("recording.deletion_requested", "pending"),
        ("recording.deleted", "ok"),  # written by the deleter with the tombstone
        ("recording.deletion_requested", "ok"),
    ]


# -- anonymisation ---------------------------------------------------------------------


async def test_anonymise_masks_numbers_keeps_statistics_and_deletes_audio(world: World) -> None:
    first = await world.call(A_E164)
    first_rec = await world.recording(first)
    second = await world.call(A_NATIONAL, basis="legal-obligation", decision="not-asked")
    kept_rec = await world.recording(second, basis="legal-obligation")
    third = await world.call("905321234567")
    ref = await world.open(RequestType.ANONYMISE, number=A_NATIONAL)

    result = await handle_request(world.env, ref)

    assert result["complete"] is True
    recordings = result["recordings"]
    assert isinstance(recordings, dict)
    assert _ids(recordings["deleted"]) == {first_rec}
    assert _ids(recordings["kept"]) == {kept_rec}
    assert not world.local_file(first_rec).exists() and world.local_file(kept_rec).exists()
    async with world.sessions() as session:
        calls = {c.id: c for c in (await session.scalars(select(Call))).all()}
        consents = {c.call_id: c for c in (await session.scalars(select(Consent))).all()}
        tombstone = await session.scalar(select(Tombstone))
    for call_id in (first, third):
        assert calls[call_id].caller == "0532***4567"  # the national style, however written
        assert consents[call_id].caller == "0532***4567"
        assert calls[call_id].redaction == "anonymised"
        assert calls[call_id].disposition == "answered"
        assert calls[call_id].ended_at is not None and calls[call_id].answered_at is not None
    assert calls[second].caller == A_NATIONAL  # kept with its recording
    assert tombstone is not None and tombstone.reason == "anonymisation"
    row = await world.row(Recording, first_rec)
    assert isinstance(row, Recording) and row.duration_s == 42.5

    again = await answer_anonymise(world.env, await world.request(ref))
    assert again["nothing_new"] is True

    # An erasure afterwards removes even the masked number.
    erase = await world.open(RequestType.ERASURE, number=A_NATIONAL)
    await handle_request(world.env, erase)
    erased = await world.row(Call, first)
    assert isinstance(erased, Call) and erased.caller is None and erased.redaction == "erased"


async def test_anonymise_keeps_the_country_of_a_foreign_number(world: World) -> None:
    call = await world.call("+4915112345678")
    ref = await world.open(RequestType.ANONYMISE, number="+49 1511 2345678")
    await handle_request(world.env, ref)
    row = await world.row(Call, call)
    assert isinstance(row, Call) and row.caller == "+4915***5678"


# -- withdrawal and objection -----------------------------------------------------------


async def test_withdraw_deletes_consent_based_recordings_and_lists_the_subject(
    world: World,
) -> None:
    consented = await world.call(A_NATIONAL)
    consent_rec = await world.recording(consented)
    consent_evidence = await world.recording(consented, kind="evidence")
    interest = await world.call(A_E164, basis="legitimate-interest", decision="not-asked")
    interest_rec = await world.recording(interest, basis="legitimate-interest")
    contract = await world.call(A_E164, basis="contract", decision="not-asked")
    contract_rec = await world.recording(contract, basis="contract")
    ref = await world.open(RequestType.WITHDRAW)

    result = await handle_request(world.env, ref)

    assert result["complete"] is True
    recordings = result["recordings"]
    assert isinstance(recordings, dict)
    assert _ids(recordings["deleted"]) == {consent_rec, consent_evidence}
    kept = {str(e["recording_id"]): e for e in recordings["kept"]}
    assert set(kept) == {interest_rec, contract_rec}
    assert kept[interest_rec]["legal_basis"] == "legitimate-interest"
    assert "not consent" in str(kept[contract_rec]["why"])
    assert not world.local_file(consent_rec).exists()
    assert world.local_file(interest_rec).exists() and world.local_file(contract_rec).exists()
    request = await world.request(ref)
    async with world.sessions() as session:
        listed = await session.get(DoNotRecord, INDEX.subject_key(A_LETTER))
        call = await session.get(Call, consented)
    assert listed is not None and listed.reason == "withdraw"
    assert listed.request_id == request.id and listed.added_by == "cli:dpo"
    assert call is not None and call.caller == A_NATIONAL  # a withdrawal erases nothing else
    assert request.status == "done" and request.number == A_E164
    listing = result["do_not_record"]
    assert isinstance(listing, dict) and listing["added_now"] is True
    assert any(e.action == "subject.do_not_record_added" for e in await _audit(world))

    again = await answer_withdraw(world.env, request)
    assert again["nothing_new"] is True
    listing = again["do_not_record"]
    assert isinstance(listing, dict) and listing["added_now"] is False


async def test_object_needs_the_dpo_decision_and_covers_legitimate_interest_only(
    world: World,
) -> None:
    consented = await world.call(A_NATIONAL)
    consent_rec = await world.recording(consented)
    interest = await world.call(A_E164, basis="legitimate-interest", decision="not-asked")
    interest_rec = await world.recording(interest, basis="legitimate-interest")
    ref = await world.open(RequestType.OBJECT)

    with pytest.raises(DecisionRequired, match="--dpo-decision"):
        await handle_request(world.env, ref)
    assert (await world.request(ref)).status == "open"  # nothing was started
    assert world.local_file(interest_rec).exists()

    decision = "upheld by the DPO, 2026-03-10: no overriding interest"
    result = await handle_request(world.env, ref, decision=decision)

    assert result["complete"] is True and result["dpo_decision"] == decision
    recordings = result["recordings"]
    assert isinstance(recordings, dict)
    assert _ids(recordings["deleted"]) == {interest_rec}
    assert _ids(recordings["kept"]) == {consent_rec}
    assert not world.local_file(interest_rec).exists() and world.local_file(consent_rec).exists()
    async with world.sessions() as session:
        listed = await session.get(DoNotRecord, INDEX.subject_key(A_NATIONAL))
        tombstone = await session.scalar(select(Tombstone))
    assert listed is not None and listed.reason == "object"
    assert tombstone is not None and tombstone.reason == "objection"
    decisions = [e for e in await _audit(world) if e.action == "dsar.dpo_decision"]
    assert len(decisions) == 1 and decision not in decisions[0].details


# -- the command ------------------------------------------------------------------------


def test_dsar_run_command_asks_for_the_dpo_decision_and_refuses_a_done_request(
    tmp_path: Path, db_url: str
) -> None:
    config = tmp_path / "pbx-bridge.toml"
    secret = base64.b64encode(SECRET).decode()
    config.write_text(
        f'[database]\nurl = "{db_url}"\n'
        f'[storage]\nspool_dir = "{tmp_path / "spool"}"\n'
        f'[storage.local]\npath = "{tmp_path / "recordings"}"\n'
        f'[privacy]\nsubject_key = "{secret}"\n'
    )

    def cli(*args: str) -> Result:
        return CliRunner().invoke(app, ["--config", str(config), *args])

    assert cli("db", "upgrade").exit_code == 0

    async def seed() -> tuple[str, Path]:
        engine = make_engine(db_url)
        try:
            world = _world(tmp_path, db_url, make_session_factory(engine))
            call = await world.call(A_NATIONAL, basis="legitimate-interest")
            rid = await world.recording(call, basis="legitimate-interest")
            return rid, world.local_file(rid)
        finally:
            await engine.dispose()

    _, path = asyncio.run(seed())
    opened = cli("dsar", "open", "--number", A_LETTER, "--type", "object", "--channel", "email")
    assert opened.exit_code == 0, opened.output
    reference = opened.stdout.split()[0]

    undecided = cli("dsar", "run", reference)
    assert undecided.exit_code == 2 and "--dpo-decision" in undecided.stderr
    assert path.exists()

    decided = cli("dsar", "run", reference, "--dpo-decision", "upheld by the DPO")
    assert decided.exit_code == 0, decided.output
    assert "1 recording(s) deleted" in decided.stdout
    assert "put on the do-not-record list" in decided.stdout
    assert decided.stdout.strip().endswith(f"{reference} done")
    assert not path.exists()

    again = cli("dsar", "run", reference, "--json")
    assert again.exit_code == 2
    assert f"{reference} is done" in again.stderr and f"dsar show {reference}" in again.stderr
