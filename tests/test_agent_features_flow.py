"""The conversation's feature-code branches of the call session, against a fake ARI that
records every REST request, with a real database (both backends): which requests each
code makes, what the agent hears, what is stored, and that the caller's keys and a call
without codes make none. The same through Asterisk and sipp: test_e2e_agent_features.py.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, cast

import pytest
from database_fixtures import db_url, migrated_url, pg_database, sessions
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from test_early_keys import ROUTE, Ownership, Prompts, _channel, _event

from pbx_bridge.ari import Channel
from pbx_bridge.calls.models import Call, RecordingPause
from pbx_bridge.calls.retention import set_class
from pbx_bridge.config import CallSettings, RetentionSettings, RouteSettings
from pbx_bridge.flow.call_state import CallState
from pbx_bridge.flow.context import FlowContext
from pbx_bridge.flow.inbox import CallerGone
from pbx_bridge.flow.policy import RecordingDecision, RecordingPlan
from pbx_bridge.flow.recorder import ConversationRecorder
from pbx_bridge.flow.session import CallSession
from storage.models import AuditEntry, Recording, RecordingKind

__all__ = ["db_url", "migrated_url", "pg_database", "sessions"]

CALLER, AGENT = "caller-1", "agent-1"
RECORD = RecordingDecision(RecordingPlan.RECORD, "test")


class FakeAri:
    """Every REST request the session makes, in order; each answers at once."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, ...]] = []

    def __getattr__(self, name: str) -> Any:
        async def request(*args: Any, **kwargs: Any) -> None:
            self.requests.append((name, *(str(a) for a in args)))

        return request

    def made(self, *names: str) -> list[tuple[str, ...]]:
        return [r for r in self.requests if r[0] in names]


class Pipeline:
    def __init__(self, recording_id: str) -> None:
        self.recording_id = recording_id

    async def begin(self, **kw: Any) -> SimpleNamespace:
        return SimpleNamespace(id=self.recording_id, asterisk_name=f"pbxb-{self.recording_id}")


async def _call_and_recording(sessions: async_sessionmaker[AsyncSession]) -> tuple[str, str]:
    async with sessions() as session:
        await set_class(session, "sales", 730)
        call = Call(direction="inbound", caller="05321234567", did="2125550100",
                    extension="100", announcement="before-connect", legal_basis="consent",
                    retention_class="default", language="tr", channel_id=CALLER,
                    linkedid=CALLER)
        session.add(call)
        await session.flush()
        recording = Recording(call_id=call.id, kind=RecordingKind.CONVERSATION.value,
                              asterisk_name=f"pbxb-{call.id}", legal_basis="consent",
                              retention_class="default", retention_days=60)
        session.add(recording)
        await session.commit()
        return call.id, recording.id


def _session(sessions: async_sessionmaker[AsyncSession], ari: FakeAri, call_id: str,
             recording_id: str, **call: Any) -> CallSession:
    ctx = cast(FlowContext, SimpleNamespace(
        ari=ari, app="pbx-bridge", sessions=sessions, pipeline=Pipeline(recording_id),
        prompts=Prompts(), ownership=Ownership(),
        call=CallSettings(retention_codes={"7": "sales", "3": "nope"}, **call),
        retention=RetentionSettings(), default_route=RouteSettings(),
    ))
    state = CallState.arriving(Channel.from_json(_channel(CALLER)), direction="inbound",
                               did="2125550100")
    state.call_id, state.route, state.retention_class = call_id, ROUTE, "default"
    state.agent_id, state.agent_answered = AGENT, True
    state.bridge_id, state.joined = "pbxb-call-1", True
    flow = CallSession(ctx, state)
    flow._recorder = ConversationRecorder(ctx, state, flow.inbox, retention_days=60)
    return flow


def _key(channel_id: str, digit: str) -> Any:
    channel = {**_channel(CALLER), "id": channel_id}
    return _event("ChannelDtmfReceived", digit=digit, duration_ms=100, channel=channel)


async def _talk(flow: CallSession, keys: list[tuple[str, str]], *, then_s: float = 0.0) -> None:
    """Run the conversation, press ``keys`` (channel, digit), wait, and let the caller go."""
    running = asyncio.create_task(flow._converse(ROUTE, RECORD))
    for channel_id, digit in keys:
        flow.inbox.put(_key(channel_id, digit))
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1 + then_s)
    flow.inbox.put(_event("ChannelHangupRequest", channel=_channel(CALLER)))
    with pytest.raises(CallerGone):
        await asyncio.wait_for(running, 5.0)


@dataclass
class Talked:
    ari: FakeAri
    flow: CallSession
    call_id: str
    recording_id: str


async def _talked(sessions: async_sessionmaker[AsyncSession], keys: list[tuple[str, str]],
                  *, then_s: float = 0.0, **call: Any) -> Talked:
    """A call whose parties press ``keys`` (channel, digit) while they talk."""
    call_id, recording_id = await _call_and_recording(sessions)
    ari = FakeAri()
    flow = _session(sessions, ari, call_id, recording_id, **call)
    await _talk(flow, keys, then_s=then_s)
    return Talked(ari, flow, call_id, recording_id)


def _heard(ari: FakeAri) -> list[str]:
    return [r[2].rsplit("/", 1)[-1] for r in ari.made("play") if r[1] == AGENT]


async def _actions(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[str, str]]:
    async with sessions() as session:
        rows = await session.scalars(select(AuditEntry).order_by(AuditEntry.seq))
        return [(e.actor, e.action) for e in rows.all()]


async def test_a_call_without_codes_makes_no_request_and_no_row(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # The caller's own *5, *6, *7: theirs, not the agent's.
    t = await _talked(sessions, [(CALLER, "*"), (CALLER, "5"), (CALLER, "*"), (CALLER, "7")])
    assert [r[0] for r in t.ari.requests] == ["record_bridge"]
    async with sessions() as session:
        assert (await session.scalars(select(RecordingPause))).all() == []
    assert [a for a in await _actions(sessions) if a[1].startswith(("recording.", "call."))] == []


async def test_star_five_mutes_star_six_unmutes_and_both_are_stored(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    t = await _talked(sessions, [(AGENT, "*"), (AGENT, "5"), (CALLER, "*"), (CALLER, "6"),
                                 (AGENT, "*"), (AGENT, "6"), (AGENT, "*"), (AGENT, "6")])
    name = f"pbxb-{t.recording_id}"
    assert t.ari.made("mute_recording", "unmute_recording") == [
        ("mute_recording", name), ("unmute_recording", name)
    ]
    assert _heard(t.ari) == ["agent-recording-paused", "agent-recording-resumed",
                             "agent-not-recording"]  # a second *6: no pause to end
    async with sessions() as session:
        (pause,) = (await session.scalars(select(RecordingPause))).all()
    assert (pause.paused_by, pause.resumed_by) == ("agent:100", "agent:100")
    assert pause.end_s is not None and pause.end_s >= pause.start_s
    actions = [a for a in await _actions(sessions) if a[1].startswith("recording.")]
    assert actions == [("agent:100", "recording.paused"), ("agent:100", "recording.resumed")]


async def test_a_pause_left_on_resumes_by_itself_and_the_agent_is_told(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    t = await _talked(sessions, [(AGENT, "*"), (AGENT, "5")], then_s=0.6,
                      pci_pause_max_minutes=0.005)  # 0.3 s
    assert [r[0] for r in t.ari.made("mute_recording", "unmute_recording")] == [
        "mute_recording", "unmute_recording"
    ]
    assert _heard(t.ari) == ["agent-recording-paused", "agent-pause-auto-resumed"]
    async with sessions() as session:
        (pause,) = (await session.scalars(select(RecordingPause))).all()
    assert pause.resumed_by == "auto"


async def test_a_call_ending_while_paused_closes_the_pause(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    t = await _talked(sessions, [(AGENT, "*"), (AGENT, "5")])
    assert t.flow._recorder is not None
    await t.flow._recorder.stop()
    async with sessions() as session:
        (pause,) = (await session.scalars(select(RecordingPause))).all()
    assert pause.resumed_by == "recording-end" and pause.end_s is not None


async def test_star_seven_keeps_the_call_per_its_class(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # *3 names a class that does not exist: refused, nothing changes.
    t = await _talked(sessions, [(AGENT, "*"), (AGENT, "3"), (AGENT, "*"), (AGENT, "7")])
    assert _heard(t.ari) == ["agent-retention-failed", "agent-retention-set"]
    async with sessions() as session:
        row = await session.get(Recording, t.recording_id)
        call = await session.get(Call, t.call_id)
        assert row is not None and call is not None
        assert (row.retention_class, row.retention_days) == ("sales", 730)
        assert call.retention_class == "sales"
        entry = (await session.scalars(select(AuditEntry).where(
            AuditEntry.action == "call.retention_changed"))).one()
    assert entry.actor == "agent:100"
    assert json.loads(entry.details)["class"] == {"from": "default", "to": "sales"}
    assert t.flow.state.retention_class == "sales"
