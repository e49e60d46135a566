"""Routes, extensions, retention classes and call history queries, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from database_fixtures import db_url, migrated_url, pg_database, session
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from pbx_bridge.calls.extensions import (
    DEFAULT_RECORDING_MODE,
    ExtensionInfo,
    InvalidExtension,
    extension_recording,
    list_extensions,
    set_extension,
)
from pbx_bridge.calls.history import CallView, list_consents, list_recordings
from pbx_bridge.calls.journal import CallJournal, CallNotFound
from pbx_bridge.calls.models import Call, Consent
from pbx_bridge.calls.retention import (
    InvalidRetentionClass,
    RetentionClassInfo,
    UnknownRetentionClass,
    class_days,
    list_classes,
    set_class,
)
from pbx_bridge.calls.routes import InvalidRoute, list_routes, resolve_route, set_route
from pbx_bridge.calls.search import CallFilter, CursorSigner, search_calls
from pbx_bridge.config import (
    Announcement,
    Language,
    LegalBasis,
    RecordingMode,
    RetentionSettings,
    RouteSettings,
    TimeoutRule,
)
from pbx_bridge.subjects.index import SubjectIndex
from pbx_bridge.subjects.numbers import SubjectKeyer
from storage.database import make_session_factory
from storage.models import Recording

__all__ = ["db_url", "migrated_url", "pg_database", "session"]  # fixtures, imported for pytest

RETENTION = RetentionSettings(default_days=60)
DEFAULT_ROUTE = RouteSettings(target="100", prompt_timeout_s=8)
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


# --- retention -------------------------------------------------------------------------


async def test_default_class_exists_from_config_before_any_row(session: AsyncSession) -> None:
    assert await list_classes(session, RETENTION) == [RetentionClassInfo("default", 60, "config")]
    assert await class_days(session, "default", RetentionSettings(default_days=15)) == 15


async def test_set_class_round_trip_and_default_override(session: AsyncSession) -> None:
    await set_class(session, "sales", 365)
    await set_class(session, "sales", 400)
    await set_class(session, "default", 90)
    await session.commit()
    assert await list_classes(session, RETENTION) == [
        RetentionClassInfo("default", 90, "database"),
        RetentionClassInfo("sales", 400, "database"),
    ]
    assert await class_days(session, "sales", RETENTION) == 400
    assert await class_days(session, "default", RETENTION) == 90


@pytest.mark.parametrize(
    ("name", "days", "problem"),
    [
        ("sales", -5, "between 0 and 36500"),
        ("sales", 36501, "between 0 and 36500"),
        ("Sales", 10, "invalid retention class name 'Sales'"),
        ("-x", 10, "invalid retention class name"),
        ("", 10, "invalid retention class name"),
        ("a" * 65, 10, "invalid retention class name"),
    ],
)
async def test_set_class_rejects_bad_input(
    session: AsyncSession, name: str, days: int, problem: str
) -> None:
    with pytest.raises(InvalidRetentionClass, match=problem):
        await set_class(session, name, days)


async def test_unknown_class_raises(session: AsyncSession) -> None:
    with pytest.raises(UnknownRetentionClass, match="'nosuch'"):
        await class_days(session, "nosuch", RETENTION)


# --- extensions ------------------------------------------------------------------------


async def test_unknown_extension_records_by_default(session: AsyncSession) -> None:
    assert DEFAULT_RECORDING_MODE is RecordingMode.ALWAYS
    assert await extension_recording(session, "999") is RecordingMode.ALWAYS


async def test_set_extension_round_trip_and_partial_update(session: AsyncSession) -> None:
    await set_class(session, "sales", 365)
    await set_extension(session, "101", RecordingMode.NEVER, "sales")
    await set_extension(session, "102", RecordingMode.ON_DEMAND)
    # Without a retention class the existing one is kept.
    await set_extension(session, "101", RecordingMode.ON_DEMAND)
    await session.commit()
    assert await list_extensions(session) == [
        ExtensionInfo("101", RecordingMode.ON_DEMAND, "sales"),
        ExtensionInfo("102", RecordingMode.ON_DEMAND, None),
    ]
    assert await extension_recording(session, "101") is RecordingMode.ON_DEMAND


async def test_set_extension_validates(session: AsyncSession) -> None:
    with pytest.raises(UnknownRetentionClass):
        await set_extension(session, "101", RecordingMode.NEVER, "nosuch")
    with pytest.raises(InvalidExtension):
        await set_extension(session, "10 1", RecordingMode.NEVER)
    assert await list_extensions(session) == []


# --- routes ----------------------------------------------------------------------------


async def test_unknown_did_resolves_to_the_configured_default(session: AsyncSession) -> None:
    route = await resolve_route(session, "902121112233", DEFAULT_ROUTE, Language.EN)
    assert route.is_default
    assert route.did == "902121112233"
    assert route.target == "100"
    assert route.language is Language.EN  # config language None -> prompts default
    assert route.announcement is Announcement.BEFORE_CONNECT
    assert route.legal_basis is LegalBasis.CONSENT
    assert route.retention_class == "default"

    with_language = RouteSettings(language=Language.TR)
    assert (await resolve_route(session, "1", with_language, Language.EN)).language is Language.TR


async def test_new_route_takes_unset_fields_from_default_then_updates_partially(
    session: AsyncSession,
) -> None:
    await set_class(session, "support", 180)
    created = await set_route(
        session, "902121112233", default=DEFAULT_ROUTE, default_language=Language.TR, target="101"
    )
    assert created.target == "101"
    assert created.language is Language.TR
    assert created.prompt_timeout_s == 8
    assert created.retention_class == "default"
    assert not created.is_default

    await set_route(
        session,
        "902121112233",
        default=DEFAULT_ROUTE,
        default_language=Language.TR,
        announcement=Announcement.NOTICE_ONLY,
        legal_basis=LegalBasis.LEGITIMATE_INTEREST,
        retention_class="support",
        language=Language.EN,
        timeout_means=TimeoutRule.HANGUP,
        prompt_timeout_s=12,
    )
    await session.commit()
    resolved = await resolve_route(session, "902121112233", DEFAULT_ROUTE, Language.TR)
    assert resolved.target == "101"  # untouched by the second call
    assert resolved.announcement is Announcement.NOTICE_ONLY
    assert resolved.legal_basis is LegalBasis.LEGITIMATE_INTEREST
    assert resolved.retention_class == "support"
    assert resolved.language is Language.EN
    assert resolved.timeout_means is TimeoutRule.HANGUP
    assert resolved.prompt_timeout_s == 12
    assert not resolved.is_default
    assert [r.did for r in await list_routes(session)] == ["902121112233"]


async def test_set_route_validates(session: AsyncSession) -> None:
    set_with_defaults = partial(set_route, default=DEFAULT_ROUTE, default_language=Language.TR)
    with pytest.raises(UnknownRetentionClass, match="nosuch"):
        await set_with_defaults(session, "123", retention_class="nosuch")
    with pytest.raises(InvalidRoute, match="prompt timeout"):
        await set_with_defaults(session, "123", prompt_timeout_s=0)
    with pytest.raises(InvalidRoute, match="DID"):
        await set_with_defaults(session, "12 3")
    with pytest.raises(InvalidExtension):
        await set_with_defaults(session, "123", target="1 0")
    # A configured default naming a class nobody created cannot be copied into a route.
    with pytest.raises(UnknownRetentionClass, match="ghost"):
        await set_route(
            session,
            "123",
            default=RouteSettings(retention_class="ghost"),
            default_language=Language.TR,
        )
    assert await list_routes(session) == []


# --- history ---------------------------------------------------------------------------


def _call(n: int, caller: str | None, started: datetime, **extra: object) -> Call:
    values: dict[str, object] = {
        "id": f"00000000-0000-0000-0000-00000000000{n}",
        "linkedid": f"link-{n}",
        "channel_id": f"chan-{n}",
        "direction": "inbound",
        "caller": caller,
        "caller_key": SUBJECTS.key_of(caller),  # as the journal writes it
        "did": "902121112233",
        "extension": "101",
        "announcement": "before-connect",
        "legal_basis": "consent",
        "retention_class": "default",
        "language": "tr",
        "started_at": started,
    }
    values.update(extra)
    return Call(**values)


SUBJECTS = SubjectIndex(SubjectKeyer(b"k" * 32), "TR")


async def list_calls(
    session: AsyncSession, *, number: str | None = None, since: datetime | None = None,
    limit: int = 50,
) -> list[CallView]:
    """The first page of the call search, as ``calls list`` asks it."""
    page = await search_calls(
        session, CallFilter(number=number, since=since), subjects=SUBJECTS,
        signer=CursorSigner(lambda: b"s" * 32), limit=limit,
    )
    return page.calls


def _recording(call_id: str, rid: str, kind: str, started: datetime) -> Recording:
    return Recording(
        id=rid,
        call_id=call_id,
        kind=kind,
        status="stored",
        asterisk_name=f"rec-{rid}",
        legal_basis="consent",
        retention_class="default",
        retention_days=60,
        retain_until=started + timedelta(days=60),
        format="wav",
        sha256="ab" * 32,
        size_bytes=16000,
        duration_s=12.5,
        location=f"local:{rid}.wav",
        started_at=started,
    )


async def _seed(session: AsyncSession) -> None:
    first = _call(
        1,
        "+905321234567",
        T0,
        answered_at=T0 + timedelta(seconds=20),
        ended_at=T0 + timedelta(minutes=3),
        disposition="answered",
    )
    second = _call(2, "05321234567", T0 + timedelta(hours=1))  # live: no end
    third = _call(3, "+441632960001", T0 + timedelta(hours=2), disposition="abandoned")
    fourth = _call(4, "100", T0 + timedelta(hours=3))  # internal caller
    session.add_all([first, second, third, fourth])
    await session.flush()
    session.add(
        Consent(
            call_id=first.id,
            caller=first.caller,
            decision="granted",
            digit="1",
            language="tr",
            prompt_name="disclosure",
            prompt_version="v3",
            prompt_sha256="cd" * 32,
            times_played=1,
            evidence_recording_id="ev-1",
            decided_at=T0 + timedelta(seconds=15),
        )
    )
    session.add_all(
        [
            _recording(first.id, "rec-b", "conversation", T0 + timedelta(seconds=21)),
            _recording(first.id, "rec-a", "evidence", T0 + timedelta(seconds=1)),
            _recording("no-such-call", "rec-orphan", "conversation", T0 + timedelta(hours=5)),
        ]
    )
    await session.commit()


async def test_list_calls_nests_consent_and_recordings(session: AsyncSession) -> None:
    await _seed(session)
    calls = await list_calls(session)
    assert [c.linkedid for c in calls] == ["link-4", "link-3", "link-2", "link-1"]
    first = calls[-1]
    assert first.consent is not None
    assert first.consent.decision == "granted"
    assert [r.id for r in first.recordings] == ["rec-a", "rec-b"]  # in recording order
    assert calls[0].consent is None and calls[0].recordings == ()

    data = first.to_json()
    assert data["started_at"] == "2026-03-01T09:00:00Z"
    assert data["ended_at"] == "2026-03-01T09:03:00Z"
    assert data["disposition"] == "answered"
    assert data["consent"] == {
        "decision": "granted",
        "digit": "1",
        "prompt_version": "v3",
        "prompt_sha256": "cd" * 32,
        "at": "2026-03-01T09:00:15Z",
        "language": "tr",
        "evidence_recording_id": "ev-1",
        "prompt_name": "disclosure",
        "times_played": 1,
        "disclosure_started_at": None,
        "answer_to_disclosure_s": None,
        "early_keys": [],
        "key_history": [],
        "prompt_segments": [],
    }
    assert data["reference"] is None  # a call row written without one (before 0010)
    recordings = data["recordings"]
    assert isinstance(recordings, list)
    assert recordings[0]["retain_until"] == "2026-04-30T09:00:01Z"
    assert recordings[0]["kind"] == "evidence"
    assert calls[2].to_json()["disposition"] is None  # live call


@pytest.mark.parametrize("query", ["+905321234567", "05321234567", "5321234567", "0532 123 45 67"])
async def test_number_filter_matches_any_spelling(session: AsyncSession, query: str) -> None:
    await _seed(session)
    found = await list_calls(session, number=query)
    assert sorted(c.linkedid for c in found) == ["link-1", "link-2"]


async def test_short_numbers_match_exactly_only(session: AsyncSession) -> None:
    await _seed(session)
    assert [c.linkedid for c in await list_calls(session, number="100")] == ["link-4"]
    assert await list_calls(session, number="4567") == []


async def test_since_and_limit(session: AsyncSession) -> None:
    await _seed(session)
    later = await list_calls(session, since=T0 + timedelta(minutes=30))
    assert [c.linkedid for c in later] == ["link-4", "link-3", "link-2"]
    assert [c.linkedid for c in await list_calls(session, limit=1)] == ["link-4"]


async def test_masked_views_hide_the_caller(session: AsyncSession) -> None:
    await _seed(session)
    first = (await list_calls(session, number="+905321234567"))[-1].masked()
    assert first.caller == "+9053***4567"
    assert first.consent is not None and first.consent.caller == "+9053***4567"
    assert "5321234567" not in str(first.to_json())


async def test_list_recordings_and_consents(session: AsyncSession) -> None:
    await _seed(session)
    recordings = await list_recordings(session)
    assert [r.id for r in recordings] == ["rec-orphan", "rec-b", "rec-a"]
    assert recordings[0].caller is None  # no call row: still listed
    assert recordings[1].caller == "+905321234567"
    assert [r.id for r in await list_recordings(session, number="05321234567")] == [
        "rec-b",
        "rec-a",
    ]
    consents = await list_consents(session, number="5321234567")
    assert [(c.decision, c.digit) for c in consents] == [("granted", "1")]
    assert consents[0].to_json()["call_id"] == "00000000-0000-0000-0000-000000000001"


async def test_ended_calls_whose_recordings_never_got_their_retention_are_found(
    session: AsyncSession,
) -> None:
    """A crash between closing the call and closing its recordings must not leave them
    waiting for ever: the resync finds them through this query."""
    ended = T0 + timedelta(minutes=3)
    session.add_all(
        [
            _call(1, "+905321234567", T0, ended_at=ended, disposition="answered"),
            _call(2, "+905321234567", T0, ended_at=ended, disposition="answered"),
            _call(3, "+905321234567", T0),  # still live
            _call(4, "+905321234567", T0, ended_at=ended, disposition="answered"),
        ]
    )
    await session.flush()
    waiting = _recording("00000000-0000-0000-0000-000000000001", "r1", "conversation", T0)
    waiting.retain_until, waiting.status = None, "prepared"
    done = _recording("00000000-0000-0000-0000-000000000002", "r2", "conversation", T0)
    live = _recording("00000000-0000-0000-0000-000000000003", "r3", "conversation", T0)
    live.retain_until, live.status = None, "recording"
    failed = _recording("00000000-0000-0000-0000-000000000004", "r4", "conversation", T0)
    failed.retain_until, failed.status = None, "failed"
    session.add_all([waiting, done, live, failed])
    await session.commit()

    journal = CallJournal(
        make_session_factory(session.bind),  # type: ignore[arg-type]
        SubjectIndex(SubjectKeyer(b"k" * 32), "TR"),
    )
    assert await journal.ended_without_retention() == [
        ("00000000-0000-0000-0000-000000000001", ended)
    ]


async def test_journal_answer_and_end_keep_the_first_and_cost_one_statement(
    session: AsyncSession,
) -> None:
    """The first answer and the first end stay (a resync writes them again); on the way
    every call takes, each is a single UPDATE (the CPU per call, bench/README.md)."""
    journal = CallJournal(
        make_session_factory(session.bind),  # type: ignore[arg-type]
        SubjectIndex(SubjectKeyer(b"k" * 32), "TR"),
    )
    call_id = await journal.open(
        linkedid="l1", channel_id="c1", direction="inbound", caller="+905551112233",
        did="100", extension="200", announcement="a", legal_basis="consent",
        retention_class="default", language="tr",
    )
    statements: list[str] = []
    engine = session.bind.sync_engine  # type: ignore[union-attr]

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement.split()[0].upper())

    event.listen(engine, "before_cursor_execute", count)
    try:
        await journal.answered(call_id, T0)
        first_end = await journal.close(call_id, "answered", cause="16", ended_at=T0)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert statements == ["UPDATE", "UPDATE"]
    assert first_end == T0

    await journal.answered(call_id, T0 + timedelta(seconds=5))
    later = await journal.close(call_id, "failed", ended_at=T0 + timedelta(seconds=9))
    assert later == T0
    call = await session.get(Call, call_id, populate_existing=True)
    assert call is not None
    assert (call.answered_at, call.ended_at, call.disposition, call.hangup_cause) == (
        T0, T0, "answered", "16"
    )
    with pytest.raises(CallNotFound):
        await journal.answered("no-such-call")
    with pytest.raises(CallNotFound):
        await journal.close("no-such-call", "answered")
