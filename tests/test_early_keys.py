"""Keys pressed before the disclosure began: kept, shown in the consent row, never an answer.

A scripted fake ARI stands in for Asterisk below the call session: it answers the REST
calls of the evidence clip and the dialogue and sends the events Asterisk would, with
the caller's keys at scripted moments of the flow. The consent row is written to a real
database (both backends). The path through Asterisk and sipp is in
tests/test_e2e_early_keys.py.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

from database_fixtures import db_url, migrated_url, pg_database, sessions
from fake_ari import Parties
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.ari import events as ev
from pbx_bridge.ari.events import parse_event
from pbx_bridge.calls.history import list_consents
from pbx_bridge.calls.journal import CallJournal
from pbx_bridge.calls.models import Consent
from pbx_bridge.calls.routes import ResolvedRoute
from pbx_bridge.config import Announcement, Language, LegalBasis, TimeoutRule
from pbx_bridge.flow.call_state import CallState
from pbx_bridge.flow.context import FlowContext
from pbx_bridge.flow.inbox import CallInbox
from pbx_bridge.flow.policy import ConsentOutcome, key_answers
from pbx_bridge.flow.prompts import Prompt
from pbx_bridge.flow.session import CallSession
from pbx_bridge.subjects.index import SubjectIndex
from pbx_bridge.subjects.numbers import SubjectKeyer
from pbx_bridge.subjects.report import build_report, render_xml, report_to_json
from storage.models import AuditEntry

__all__ = ["db_url", "migrated_url", "pg_database", "sessions"]

CALLER = "caller-1"
INDEX = SubjectIndex(SubjectKeyer(b"\x07" * 32), "TR")
DISCLOSURE_S = 0.4  # how long the fake disclosure plays when nobody interrupts it


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def _channel(channel_id: str) -> dict[str, Any]:
    return {
        "id": channel_id, "name": f"PJSIP/{channel_id}", "state": "Up", "protocol_id": "",
        "caller": {"name": "", "number": "05321234567"},
        "connected": {"name": "", "number": ""}, "accountcode": "",
        "creationtime": "2026-12-01T09:00:00.000+0000", "language": "tr",
        "dialplan": {"context": "pbx-bridge-inbound", "exten": "s", "priority": 1,
                     "app_name": "Stasis", "app_data": "pbx-bridge"},
    }


def _event(type_: str, **fields: Any) -> ev.Event:
    return parse_event({"type": type_, "timestamp": _now(), "asterisk_id": "a",
                        "application": "pbx-bridge", **fields})


def _key(digit: str) -> ev.Event:
    return _event("ChannelDtmfReceived", digit=digit, duration_ms=200, channel=_channel(CALLER))


class ScriptedAri:
    """Asterisk as the clip and the dialogue see it, with the caller's keys scripted.

    ``while_clip_starts``: keys sent while the evidence clip waits for RecordingStarted;
    ``before_audio``: keys sent after the disclosure is requested, before its first
    audio; ``during_disclosure``: keys sent once the (first) disclosure is playing.
    """

    def __init__(
        self,
        *,
        while_clip_starts: tuple[str, ...] = (),
        before_audio: tuple[str, ...] = (),
        during_disclosure: tuple[str, ...] = (),
    ) -> None:
        self.inbox = CallInbox(Parties())
        self._while_clip_starts = while_clip_starts
        self._before_audio = before_audio
        self._during_disclosure = during_disclosure
        self._disclosures = 0
        self._playing: dict[str, asyncio.Task[None]] = {}
        # (prompt, "whole" or "interrupted"), in the order the caller heard them.
        self.heard: list[tuple[str, str]] = []
        self._names: dict[str, str] = {}

    async def snoop(self, channel_id: str, **kw: Any) -> None:
        self.inbox.put(_event("StasisStart", args=["snoop"], channel=_channel(kw["snoop_id"])))

    async def record(self, channel_id: str, name: str, **kw: Any) -> None:
        for digit in self._while_clip_starts:
            self.inbox.put(_key(digit))
        self.inbox.put(_event("RecordingStarted", recording={"name": name, "state": "recording"}))

    async def play(self, channel_id: str, media: str, *, playback_id: str) -> None:
        name = media.rsplit("/", 1)[-1]
        self._names[playback_id] = name
        first_disclosure = name == "disclosure" and self._disclosures == 0
        self._disclosures += name == "disclosure"
        self._playing[playback_id] = asyncio.create_task(
            self._run_playback(playback_id, first_disclosure)
        )

    async def _run_playback(self, playback_id: str, first_disclosure: bool) -> None:
        playback = {"id": playback_id, "target_uri": f"channel:{CALLER}", "state": "playing"}
        if first_disclosure:
            for digit in self._before_audio:
                self.inbox.put(_key(digit))
        await asyncio.sleep(0.01)
        self.inbox.put(_event("PlaybackStarted", playback=playback))
        if first_disclosure:
            await asyncio.sleep(0.05)
            for digit in self._during_disclosure:
                self.inbox.put(_key(digit))
        await asyncio.sleep(DISCLOSURE_S)
        self._playing.pop(playback_id, None)
        self.heard.append((self._names[playback_id], "whole"))
        self.inbox.put(_event("PlaybackFinished", playback={**playback, "state": "done"}))

    async def stop_playback(self, playback_id: str) -> None:
        task = self._playing.pop(playback_id, None)
        if task is None:
            return
        task.cancel()
        self.heard.append((self._names[playback_id], "interrupted"))
        playback = {"id": playback_id, "target_uri": f"channel:{CALLER}", "state": "done"}
        self.inbox.put(_event("PlaybackFinished", playback=playback))

    async def stop_recording(self, name: str) -> None:
        pass

    async def hangup(self, channel_id: str) -> None:
        pass


class Prompts:
    def get(self, language: str, name: str) -> Prompt:
        return Prompt(name, language, "v1", "a" * 64, "b" * 64, 1.0,
                      f"sound:pbx-bridge/{language}/{name}")

    def compose(self, name: str, parts: object, language: str) -> Prompt:
        """A composed prompt (the disclosure) plays here as one prompt of its name."""
        return self.get(language, name)


class Pipeline:
    async def begin(self, **kw: Any) -> SimpleNamespace:
        return SimpleNamespace(id="evidence-1", asterisk_name="pbxb-evidence-1")


class Ownership:
    def claim(self, object_id: str, inbox: CallInbox) -> None:
        pass

    def release(self, object_id: str) -> None:
        pass


ROUTE = ResolvedRoute(
    did="2125550100", target="100", announcement=Announcement.BEFORE_CONNECT,
    language=Language.TR, legal_basis=LegalBasis.CONSENT,
    timeout_means=TimeoutRule.DECLINED, prompt_timeout_s=1, retention_class="default",
    is_default=False,
)


async def ask(
    sessions: async_sessionmaker[AsyncSession], ari: ScriptedAri
) -> tuple[ConsentOutcome, Consent]:
    """The before-connect consent step of one call, as CallSession runs it."""
    journal = CallJournal(sessions, INDEX)
    ctx = cast(FlowContext, SimpleNamespace(
        ari=ari, app="pbx-bridge", sessions=sessions, journal=journal, pipeline=Pipeline(),
        prompts=Prompts(), ownership=Ownership(), call=SimpleNamespace(max_repeats=2),
        retention=SimpleNamespace(evidence_days=730),
        default_route=SimpleNamespace(retention_class="default"),
    ))
    caller = parse_event({"type": "StasisStart", "timestamp": _now(), "asterisk_id": "a",
                          "application": "pbx-bridge", "args": ["inbound"],
                          "channel": _channel(CALLER)})
    assert isinstance(caller, ev.StasisStart)
    state = CallState.arriving(caller.channel, direction="inbound", did=ROUTE.did)
    state.route, state.retention_days = ROUTE, 60  # the days are read with the route
    session = CallSession(ctx, state)
    ari.inbox = session.inbox  # Asterisk's events for this call go to its inbox
    state.call_id = await journal.open(
        linkedid=CALLER, channel_id=CALLER, direction="inbound", caller="05321234567",
        did=ROUTE.did, extension="100", announcement="before-connect", legal_basis="consent",
        retention_class="default", language="tr",
    )
    outcome = await asyncio.wait_for(session._ask_consent(ROUTE), 10)
    async with sessions() as db:
        row = await db.scalar(select(Consent).where(Consent.call_id == session.call_id))
    assert row is not None
    return outcome, row


def history(row: Consent) -> list[tuple[str, bool]]:
    assert row.key_history is not None
    return [(k["digit"], k["before_disclosure"]) for k in json.loads(row.key_history)]


def test_only_a_key_after_the_disclosure_began_answers() -> None:
    assert key_answers(disclosure_began=True)
    assert not key_answers(disclosure_began=False)


async def test_a_key_while_the_clip_starts_is_kept_early_and_is_not_consent(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """1 pressed while the evidence clip waits for RecordingStarted, then silence."""
    ari = ScriptedAri(while_clip_starts=("1",))
    outcome, row = await ask(sessions, ari)

    assert outcome is ConsentOutcome.TIMEOUT
    assert row.decision == "timeout" and row.digit is None
    assert history(row) == [("1", True)]
    # The caller heard the disclosure whole, then was told the call is not recorded.
    assert ari.heard == [("disclosure", "whole"), ("confirm-timeout", "whole")]
    assert row.disclosure_started_at is not None
    (key,) = json.loads(row.key_history or "")
    assert datetime.fromisoformat(key["at"]) <= row.disclosure_started_at
    assert row.answer_to_disclosure_s is not None and 0 <= row.answer_to_disclosure_s < 5

    async with sessions() as db:
        (view,) = await list_consents(db)
        audit = await db.scalar(select(AuditEntry).where(AuditEntry.action == "consent.recorded"))
        report = await build_report(db, INDEX.key_of("05321234567") or "",
                                    generated_at=datetime.now(UTC))
    assert view.to_json()["early_keys"] == ["1"]
    assert audit is not None and json.loads(audit.details)["early_keys"] == ["1"]
    # The subject's own report shows it too, in each of its renderings.
    (entry,) = cast(list[dict[str, Any]], report_to_json(report)["consents"])
    assert entry["early_keys"] == ["1"] and entry["decision"] == "timeout"
    assert b"<early-keys count=\"1\">" in render_xml(report)


async def test_an_early_key_then_one_during_the_disclosure_consents(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    ari = ScriptedAri(before_audio=("1",), during_disclosure=("1",))
    outcome, row = await ask(sessions, ari)

    assert outcome is ConsentOutcome.GRANTED
    assert row.decision == "granted" and row.digit == "1"
    assert history(row) == [("1", True), ("1", False)]
    # The early key did not interrupt it; the informed one did (barge-in).
    assert ari.heard[0] == ("disclosure", "interrupted")


async def test_an_early_decline_then_silence_times_out_rather_than_declines(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    ari = ScriptedAri(while_clip_starts=("2",), before_audio=("9",))
    outcome, row = await ask(sessions, ari)

    assert outcome is ConsentOutcome.TIMEOUT
    assert row.decision == "timeout" and row.times_played == 1  # the early 9 repeated nothing
    assert history(row) == [("2", True), ("9", True)]
    assert ari.heard[0] == ("disclosure", "whole")


async def test_keys_after_the_disclosure_began_answer_as_before(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    ari = ScriptedAri(during_disclosure=("2",))
    outcome, row = await ask(sessions, ari)

    assert outcome is ConsentOutcome.DECLINED
    assert row.digit == "2" and history(row) == [("2", False)]
    assert row.answer_to_disclosure_s is not None and row.answer_to_disclosure_s >= 0


async def test_a_silent_caller_has_an_empty_history(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    outcome, row = await ask(sessions, ScriptedAri())
    assert outcome is ConsentOutcome.TIMEOUT
    assert row.key_history == "[]"
