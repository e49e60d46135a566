"""Who a number belongs to: normalisation, the subject key and its secret, and the rows
that carry it (calls and consents from the journal; older rows through reindex)."""

from __future__ import annotations

import base64
import hashlib
import re
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cli_support import clean_pbx_env  # noqa: F401  (clean_pbx_env: autouse fixture)
from database_fixtures import db_url, migrated_url, pg_database, sessions
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.calls.journal import CallJournal, ConsentProof
from pbx_bridge.calls.models import Call, Consent
from pbx_bridge.config import PrivacySettings, load_settings
from pbx_bridge.subjects.index import (
    InvalidNumber,
    SubjectIndex,
    SubjectKeyError,
    subject_index_from_settings,
)
from pbx_bridge.subjects.numbers import SubjectKeyer
from pbx_bridge.subjects.reindex import reindex

__all__ = ["db_url", "migrated_url", "pg_database", "sessions"]  # fixtures, imported for pytest

SECRET = bytes(range(32))
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def index() -> SubjectIndex:
    return SubjectIndex(SubjectKeyer(SECRET), "TR")


# --- normalisation and keys ---------------------------------------------------------------


@pytest.mark.parametrize(
    "written",
    [
        "0532 123 45 67",
        "+90 532 123 4567",
        "905321234567",
        "00905321234567",
        "05321234567",
        "5321234567",
        "(0532) 123-45-67",
    ],
)
def test_one_subject_however_the_number_is_written(index: SubjectIndex, written: str) -> None:
    assert index.normalise(written) == "+905321234567"
    assert index.key_of(written) == index.subject_key(written) == index.key("+905321234567")


def test_keys_differ_between_people_and_between_secrets(index: SubjectIndex) -> None:
    assert index.subject_key("05321234567") != index.subject_key("05321234568")
    other = SubjectIndex(SubjectKeyer(bytes(32)), "TR")
    assert other.subject_key("05321234567") != index.subject_key("05321234567")
    # Keyed: the plain sha256 of the number is not the key.
    assert index.key("+905321234567") != hashlib.sha256(b"+905321234567").hexdigest()


def test_foreign_numbers(index: SubjectIndex) -> None:
    assert index.normalise("+49 30 12345678") == "+493012345678"
    assert index.subject_key("0049 30 12345678") == index.subject_key("+493012345678")
    assert index.subject_key("+49 30 12345678") != index.subject_key("0312 345 67 89")
    # The same digits read in Germany are that German number.
    german = SubjectIndex(SubjectKeyer(SECRET), "DE")
    assert german.normalise("030 12345678") == "+493012345678"
    assert german.subject_key("030 12345678") == index.subject_key("+49 30 12345678")


@pytest.mark.parametrize("raw", [None, "", "100", "2001", "anonymous", "s", "Anonymous"])
def test_extensions_and_anonymous_callers_have_no_key(index: SubjectIndex, raw: str | None) -> None:
    assert index.key_of(raw) is None


@pytest.mark.parametrize("raw", ["100", "anonymous", "", "12"])
def test_typed_numbers_that_are_none_are_refused(index: SubjectIndex, raw: str) -> None:
    with pytest.raises(InvalidNumber, match=r"default region TR|not a phone number"):
        index.subject_key(raw)


def test_masked_in_the_national_style(index: SubjectIndex) -> None:
    assert index.masked("+905321234567") == "0532***4567"
    assert index.masked("+902125550100") == "0212***0100"
    assert index.masked("+493012345678") == "+4930***5678"


# --- the secret -------------------------------------------------------------------------


def test_key_file_is_created_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "var" / "subject.key"
    privacy = PrivacySettings(subject_key_file=path)
    first = subject_index_from_settings(privacy)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    content = path.read_bytes()
    assert len(base64.b64decode(content.strip())) == 32
    again = subject_index_from_settings(privacy)
    assert path.read_bytes() == content
    assert again.subject_key("05321234567") == first.subject_key("05321234567")
    assert [p.name for p in path.parent.iterdir()] == ["subject.key"]  # no temp file left


def test_key_from_the_environment_wins_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "subject.key"
    file_index = subject_index_from_settings(PrivacySettings(subject_key_file=path))
    monkeypatch.setenv("PBX_BRIDGE_PRIVACY__SUBJECT_KEY", base64.b64encode(SECRET).decode())
    config = tmp_path / "pbx-bridge.toml"
    config.write_text(f'[privacy]\nsubject_key_file = "{path}"\n')
    env_index = subject_index_from_settings(load_settings(config).privacy)
    expected = SubjectKeyer(SECRET).key("+905321234567")
    assert env_index.subject_key("0532 123 45 67") == expected
    assert file_index.subject_key("0532 123 45 67") != expected


def test_env_key_creates_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PBX_BRIDGE_PRIVACY__SUBJECT_KEY", base64.b64encode(SECRET).decode())
    config = tmp_path / "pbx-bridge.toml"
    config.write_text(f'[privacy]\nsubject_key_file = "{tmp_path / "subject.key"}"\n')
    subject_index_from_settings(load_settings(config).privacy)
    assert not (tmp_path / "subject.key").exists()


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("not base64!", "not valid base64"),
        (base64.b64encode(b"short").decode(), "at least 32 bytes"),
    ],
)
def test_bad_configured_key_names_the_setting(value: str, problem: str) -> None:
    with pytest.raises(SubjectKeyError) as caught:
        subject_index_from_settings(PrivacySettings(subject_key=value))  # type: ignore[arg-type]
    message = str(caught.value)
    assert "privacy.subject_key" in message and "PBX_BRIDGE_PRIVACY__SUBJECT_KEY" in message
    assert problem in message
    assert value not in message  # a secret is never echoed


def test_bad_key_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "subject.key"
    path.write_text("%%% not a key %%%\n")
    path.chmod(0o600)
    named = re.escape(str(path))
    with pytest.raises(SubjectKeyError, match=f"^{named}: subject key is not valid base64"):
        subject_index_from_settings(PrivacySettings(subject_key_file=path))
    path.write_text(base64.b64encode(b"too short").decode())
    with pytest.raises(SubjectKeyError, match=f"^{named}: .*at least 32 bytes"):
        subject_index_from_settings(PrivacySettings(subject_key_file=path))


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "subject.key"
    path.write_text(base64.b64encode(SECRET).decode())
    path.chmod(0o644)
    with pytest.raises(SubjectKeyError, match=r"group/others \(mode 0644\); run `chmod 600"):
        subject_index_from_settings(PrivacySettings(subject_key_file=path))


def test_key_file_in_an_unwritable_place_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    path = blocker / "subject.key"  # a folder that is a file
    with pytest.raises(SubjectKeyError, match=f"^{re.escape(str(path))}: cannot"):
        subject_index_from_settings(PrivacySettings(subject_key_file=path))


# --- rows that carry the key --------------------------------------------------------------


def _proof(decision: str = "granted") -> ConsentProof:
    return ConsentProof(
        decision=decision, digit="1", language="tr", prompt_name="disclosure",
        prompt_version="v1", prompt_sha256="a" * 64, prompt_text_sha256="b" * 64,
        times_played=1, evidence_recording_id=None, prompt_started_at=T0, decided_at=T0,
    )


async def _open(journal: CallJournal, channel: str, caller: str | None) -> str:
    return await journal.open(
        linkedid=channel, channel_id=channel, direction="inbound", caller=caller,
        did="2125550100", extension="100", announcement="before-connect",
        legal_basis="consent", retention_class="default", language="tr",
    )


async def test_journal_keys_calls_and_consents(
    sessions: async_sessionmaker[AsyncSession], index: SubjectIndex
) -> None:
    journal = CallJournal(sessions, index)
    national = await _open(journal, "ch-1", "05321234567")
    international = await _open(journal, "ch-2", "+905321234567")
    extension = await _open(journal, "ch-3", "101")
    anonymous = await _open(journal, "ch-4", None)
    for call_id, caller in ((national, "05321234567"), (international, "+905321234567"),
                            (extension, "101")):
        await journal.save_consent(call_id, caller, _proof())
    subject = index.subject_key("0532 123 45 67")
    async with sessions() as session:
        keys = dict((await session.execute(select(Call.id, Call.caller_key))).all())
        consent_keys = dict(
            (await session.execute(select(Consent.call_id, Consent.caller_key))).all()
        )
    assert keys == {national: subject, international: subject, extension: None, anonymous: None}
    assert consent_keys == {national: subject, international: subject, extension: None}


async def test_reindex_keys_older_rows_in_batches_and_is_idempotent(
    sessions: async_sessionmaker[AsyncSession], index: SubjectIndex
) -> None:
    callers = ["05321234567", "+905321234567", "905329876543", "100", "anonymous",
               "0532***4567"]
    async with sessions() as session:
        for n, caller in enumerate(callers):
            call_id = f"00000000-0000-0000-0000-{n:012d}"
            session.add(Call(
                id=call_id, linkedid=str(n), channel_id=f"old-{n}", direction="inbound",
                caller=caller, did="2125550100", extension="100",
                announcement="before-connect", legal_basis="consent",
                retention_class="default", language="tr", started_at=T0,
            ))
            session.add(Consent(call_id=call_id, caller=caller, decision="granted",
                                language="tr", decided_at=T0))
        # Already keyed, or erased (no caller): left as they are.
        session.add(Call(
            id="ffffffff-0000-0000-0000-000000000000", linkedid="k", channel_id="keyed",
            direction="inbound", caller="05321234567", caller_key="kept-as-is",
            did="2125550100", extension="100", announcement="before-connect",
            legal_basis="consent", retention_class="default", language="tr", started_at=T0,
        ))
        await session.commit()

    report = await reindex(sessions, index, batch=2)
    assert (report.calls.keyed, report.calls.no_public_number) == (3, 3)
    assert (report.consents.keyed, report.consents.no_public_number) == (3, 3)

    async with sessions() as session:
        rows = dict((await session.execute(select(Call.caller, Call.caller_key)
                                           .where(Call.channel_id != "keyed"))).all())
        kept = await session.scalar(select(Call.caller_key).where(Call.channel_id == "keyed"))
        consent_rows = (await session.execute(
            select(Consent.caller, Consent.caller_key))).all()
    first = index.subject_key("05321234567")
    assert rows == {
        "05321234567": first, "+905321234567": first,
        "905329876543": index.subject_key("05329876543"),
        "100": None, "anonymous": None, "0532***4567": None,
    }
    assert kept == "kept-as-is"
    assert sorted((c, k) for c, k in consent_rows if k) == sorted(
        (c, k) for c, k in rows.items() if k
    )

    again = await reindex(sessions, index, batch=2)
    assert (again.calls.keyed, again.consents.keyed) == (0, 0)
    assert again.calls.no_public_number == 3  # looked at, never keyed, no loop
