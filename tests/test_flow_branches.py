"""Every branch of a call, through the real flow, in milliseconds: the scripted fake
Asterisk (tests/fake_ari.py) below the real StasisApp and sessions, a real database
(SQLite and PostgreSQL) and the real storage pipeline behind them.

Each test says what the caller (and the agent) heard, prompt by prompt in order, what
was recorded in Asterisk, and what the database holds afterwards: the call's end, the
consent proof, the recordings and their legal basis. What only Asterisk can prove (the
audio itself, SIP, timing under load) stays in the end-to-end tests (test_call_flow.py
and others, marker ``asterisk``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from database_fixtures import db_url, migrated_url, pg_database, sessions
from fake_ari import Caller
from flow_rig import INDEX, EndedCall, FlowRig
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.calls.models import DataSubjectRequest
from pbx_bridge.config import Announcement, CallSettings, LegalBasis, TimeoutRule
from pbx_bridge.flow import names
from pbx_bridge.subjects.do_not_record import ListReason, is_listed, put_on_list
from storage.models import utcnow

__all__ = ["db_url", "migrated_url", "pg_database", "sessions"]  # fixtures, for pytest

RING = "tone:ring"


@pytest.fixture
async def rig(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> AsyncIterator[FlowRig]:
    async with FlowRig(sessions, tmp_path).running() as rig:
        yield rig


def connected(rig: FlowRig) -> bool:
    """Caller and agent are both in the call's bridge."""
    return any(len(members) == 2 for members in rig.asterisk.bridges.values())


def bridge_recording(rig: FlowRig) -> bool:
    return any(r.target_uri.startswith("bridge:") for r in rig.asterisk.live.values())


async def talk_then_caller_hangs_up(rig: FlowRig, caller: str, *, recorded: bool) -> None:
    await rig.asterisk.until(lambda: connected(rig) and bridge_recording(rig) == recorded)
    rig.asterisk.hang_up(caller)


AGENT_HEARD_START_STOP_START = [
    "agent-recording-started", "agent-recording-stopped", "agent-recording-started"]


async def agent_keys(rig: FlowRig, agent: str, code: str) -> None:
    """The agent's *1 or *2, once the bridge's recording has started or stopped by it."""
    rig.asterisk.press(agent, code)
    await rig.asterisk.until(lambda: bridge_recording(rig) == (code == "*1"))


async def stop_and_start_again(rig: FlowRig, agent: str) -> None:
    await agent_keys(rig, agent, "*2")
    await agent_keys(rig, agent, "*1")


async def told_and_not_asked(rig: FlowRig, prompt: str, *, recorded: bool) -> EndedCall:
    """A silent caller who is told ``prompt`` (not asked), connected, then hangs up."""
    caller = rig.asterisk.call_in(Caller())
    await talk_then_caller_hangs_up(rig, caller, recorded=recorded)
    ended = await rig.ended_call()
    assert rig.asterisk.prompts(caller) == [prompt, RING]
    assert ended.consent is not None and ended.consent.decision == "not-asked"
    assert ended.consent.prompt_name == prompt  # the version told is the proof
    return ended


async def test_consent_granted_is_recorded_under_consent(rig: FlowRig) -> None:
    caller = rig.asterisk.call_in(Caller(keys=[("disclosure", "1")]))
    await talk_then_caller_hangs_up(rig, caller, recorded=True)
    ended = await rig.ended_call()

    assert rig.asterisk.prompts(caller) == ["disclosure", "confirm-granted", RING]
    assert rig.asterisk.heard(caller)[0].how == "interrupted"  # barge-in by the key
    assert ended.call.disposition == "answered" and ended.call.answered_at is not None
    assert ended.consent is not None
    assert (ended.consent.decision, ended.consent.digit) == ("granted", "1")
    assert ended.consent.prompt_name == "disclosure"
    assert ended.consent.prompt_segments and ended.consent.prompt_version  # composed
    (evidence,) = ended.of_kind("evidence")
    (conversation,) = ended.of_kind("conversation")
    assert ended.consent.evidence_recording_id == evidence.id
    assert [r.status for r in ended.recordings] == ["stored", "stored"]
    assert conversation.legal_basis == "consent" and conversation.retention_days == 60
    assert rig.asterisk.recorded == [evidence.asterisk_name, conversation.asterisk_name]
    assert not rig.asterisk.channels and not rig.asterisk.bridges  # nothing left behind


async def test_declined_is_connected_and_not_recorded(rig: FlowRig) -> None:
    caller = rig.asterisk.call_in(Caller(keys=[("disclosure", "2")]))
    await talk_then_caller_hangs_up(rig, caller, recorded=False)
    ended = await rig.ended_call()

    assert rig.asterisk.prompts(caller) == ["disclosure", "confirm-declined", RING]
    assert ended.consent is not None and ended.consent.decision == "declined"
    assert ended.call.disposition == "answered"
    assert [r.kind for r in ended.recordings] == ["evidence"]
    assert rig.asterisk.made("record_bridge") == []


async def test_silence_times_out_and_is_not_consent(rig: FlowRig) -> None:
    caller = rig.asterisk.call_in(Caller())
    await talk_then_caller_hangs_up(rig, caller, recorded=False)
    ended = await rig.ended_call()

    assert rig.asterisk.prompts(caller) == ["disclosure", "confirm-timeout", RING]
    assert rig.asterisk.heard(caller)[0].how == "whole"
    assert ended.consent is not None and ended.consent.decision == "timeout"
    assert ended.consent.digit is None and ended.consent.key_history == "[]"
    assert [r.kind for r in ended.recordings] == ["evidence"]


async def test_silence_on_a_route_that_hangs_up(rig: FlowRig) -> None:
    await rig.route(timeout_means=TimeoutRule.HANGUP)
    caller = rig.asterisk.call_in(Caller())
    ended = await rig.ended_call()

    assert rig.asterisk.prompts(caller) == ["disclosure", "timeout-hangup"]
    assert ended.call.disposition == "abandoned"
    assert ended.consent is not None and ended.consent.decision == "timeout"
    assert rig.asterisk.made("create_channel") == []  # the department never rang


async def test_a_key_before_the_disclosure_began_answers_nothing(rig: FlowRig) -> None:
    """1 pressed as soon as the caller is answered, then silence: a timeout, not consent;
    the early key is kept in the proof."""
    caller = rig.asterisk.call_in(Caller(early=("1",)))
    await talk_then_caller_hangs_up(rig, caller, recorded=False)
    ended = await rig.ended_call()

    assert rig.asterisk.heard(caller)[0].prompt == "disclosure"
    assert rig.asterisk.heard(caller)[0].how == "whole"  # the early key interrupted nothing
    assert ended.consent is not None and ended.consent.decision == "timeout"
    history = json.loads(ended.consent.key_history or "")
    assert [(k["digit"], k["before_disclosure"]) for k in history] == [("1", True)]
    assert [r.kind for r in ended.recordings] == ["evidence"]


async def test_an_early_key_then_an_informed_one_consents(rig: FlowRig) -> None:
    caller = rig.asterisk.call_in(Caller(early=("2",), keys=[("disclosure", "1")]))
    await talk_then_caller_hangs_up(rig, caller, recorded=True)
    ended = await rig.ended_call()

    assert ended.consent is not None and ended.consent.decision == "granted"
    history = json.loads(ended.consent.key_history or "")
    assert [(k["digit"], k["before_disclosure"]) for k in history] == [
        ("2", True), ("1", False)]


async def test_hanging_up_during_the_disclosure_abandons_without_a_proof(rig: FlowRig) -> None:
    caller = rig.asterisk.call_in(Caller(hang_up_at="disclosure"))
    ended = await rig.ended_call()

    assert rig.asterisk.heard(caller) == [rig.asterisk.heard(caller)[0]]
    assert rig.asterisk.heard(caller)[0].prompt == "disclosure"
    assert ended.call.disposition == "abandoned"
    assert ended.consent is None  # no answer, so no keys kept either
    assert rig.asterisk.made("create_channel") == []
    assert [r.kind for r in ended.recordings] == ["evidence"]


@pytest.mark.parametrize(
    ("behaviour", "message", "disposition"),
    [("no-answer", "no-answer", "no-answer"), ("busy", "busy", "busy"),
     ("unreachable", "unreachable", "failed")],
)
async def test_the_department_does_not_answer(
    rig: FlowRig, behaviour: str, message: str, disposition: str
) -> None:
    rig.asterisk.agents["100"] = behaviour  # type: ignore[assignment]
    caller = rig.asterisk.call_in(Caller(keys=[("disclosure", "1")]))
    ended = await rig.ended_call()

    assert rig.asterisk.prompts(caller) == ["disclosure", "confirm-granted", RING, message]
    assert ended.call.disposition == disposition and ended.call.answered_at is None
    assert ended.consent is not None and ended.consent.decision == "granted"
    assert [r.kind for r in ended.recordings] == ["evidence"]  # nobody to record
    assert rig.asterisk.made("create_bridge") == []
    assert not rig.asterisk.channels


async def test_pressing_8_withdraws_consent_for_good(rig: FlowRig) -> None:
    await rig.route(offer_withdrawal=True)
    caller = rig.asterisk.call_in(Caller(keys=[("withdrawal-offer", "8")]))
    await talk_then_caller_hangs_up(rig, caller, recorded=False)
    ended = await rig.ended_call()

    assert rig.asterisk.prompts(caller) == [
        "disclosure", "withdrawal-offer", "confirm-withdrawn", RING]
    assert ended.consent is not None
    assert (ended.consent.decision, ended.consent.digit) == ("withdrawn", "8")
    assert [r.kind for r in ended.recordings] == ["evidence"]
    async with rig.sessions() as session:
        assert await is_listed(session, INDEX.key_of(ended.call.caller))
        (request,) = await session.scalars(select(DataSubjectRequest))
    assert (request.type, request.channel) == ("withdraw", "keypress")


async def test_a_caller_on_the_do_not_record_list_is_told_and_not_asked(rig: FlowRig) -> None:
    caller_key = INDEX.key_of("05321234567")
    assert caller_key is not None
    async with rig.sessions() as session:
        await put_on_list(session, caller_key, reason=ListReason.OBJECT, request_id=None,
                          actor="dpo", now=utcnow())
        await session.commit()
    ended = await told_and_not_asked(rig, "do-not-record", recorded=False)
    assert ended.recordings == []  # not even an evidence clip: nothing was asked
    assert rig.asterisk.made("snoop") == []


async def test_on_demand_records_between_the_agents_star_one_and_star_two(
    rig: FlowRig,
) -> None:
    await rig.extension("100", "on-demand")
    caller = rig.asterisk.call_in(Caller(keys=[("disclosure", "1")]))
    await rig.asterisk.until(lambda: connected(rig))
    (agent,) = rig.asterisk.agent_channels()
    assert not bridge_recording(rig)  # granted, but on-demand waits for the agent

    await agent_keys(rig, agent, "*1")
    await stop_and_start_again(rig, agent)
    rig.asterisk.hang_up(caller)
    ended = await rig.ended_call()

    assert rig.asterisk.prompts(agent) == AGENT_HEARD_START_STOP_START
    conversations = ended.of_kind("conversation")
    assert len(conversations) == 2  # each *1 starts a recording of its own
    assert all(r.status == "stored" and r.legal_basis == "consent" for r in conversations)


async def test_on_demand_keys_on_a_declined_call_are_refused(rig: FlowRig) -> None:
    await rig.extension("100", "on-demand")
    caller = rig.asterisk.call_in(Caller(keys=[("disclosure", "2")]))
    await rig.asterisk.until(lambda: connected(rig))
    (agent,) = rig.asterisk.agent_channels()
    rig.asterisk.press(agent, "*1")
    await rig.asterisk.until(lambda: rig.asterisk.prompts(agent) != [])
    rig.asterisk.hang_up(caller)
    ended = await rig.ended_call()

    assert rig.asterisk.prompts(agent) == ["agent-recording-not-allowed"]
    assert [r.kind for r in ended.recordings] == ["evidence"]


async def test_notice_only_records_under_legitimate_interest(rig: FlowRig) -> None:
    await rig.route(announcement=Announcement.NOTICE_ONLY,
                    legal_basis=LegalBasis.LEGITIMATE_INTEREST)
    ended = await told_and_not_asked(rig, "notice", recorded=True)
    (conversation,) = ended.recordings
    assert conversation.legal_basis == "legitimate-interest"


async def test_the_agent_hanging_up_ends_the_call(rig: FlowRig) -> None:
    caller = rig.asterisk.call_in(Caller(keys=[("disclosure", "1")]))
    await rig.asterisk.until(lambda: connected(rig) and bridge_recording(rig))
    (agent,) = rig.asterisk.agent_channels()
    rig.asterisk.hang_up(agent)
    ended = await rig.ended_call()

    assert ended.call.disposition == "answered"
    assert ended.call.hangup_cause is not None and "agent hung up" in ended.call.hangup_cause
    assert caller not in rig.asterisk.channels  # the flow hung up the caller
    assert [r.status for r in ended.of_kind("conversation")] == ["stored"]


# -- an adopted call keeps what it started with -------------------------------------------


async def test_an_adopted_declined_call_stays_unrecorded_when_the_route_changed(
    rig: FlowRig,
) -> None:
    """Declined under a consent route; while the service is down the route becomes a
    legal obligation. The adopted call is the caller's: still not recorded."""
    caller = rig.asterisk.call_in(Caller(keys=[("disclosure", "2")]))
    await rig.asterisk.until(lambda: connected(rig))
    await rig.stop()
    await rig.route(legal_basis=LegalBasis.LEGAL_OBLIGATION,
                    announcement=Announcement.NOTICE_ONLY)
    requests_before = len(rig.asterisk.requests)
    await rig.start()
    await rig.asterisk.until(
        lambda: any(r.method == "get_bridge" for r in rig.asterisk.requests[requests_before:]))
    assert rig.app is not None
    await rig.asterisk.until(lambda: rig.app is not None and rig.app.live_calls == 1)
    assert not bridge_recording(rig)
    rig.asterisk.hang_up(caller)
    ended = await rig.ended_call()

    assert ended.call.legal_basis == "consent"
    assert ended.consent is not None and ended.consent.decision == "declined"
    assert [r.kind for r in ended.recordings] == ["evidence"]
    assert rig.asterisk.made("record_bridge") == []


async def test_an_adopted_recorded_call_keeps_its_route_and_basis(rig: FlowRig) -> None:
    """Recorded under consent on an on-demand extension; while the service is down the
    route moves to a `never` extension under another basis. After the restart the agent
    stops and starts again: the new recording is still under consent, on the rules of
    the extension the call started with."""
    await rig.extension("100", "on-demand")
    await rig.extension("300", "never")
    caller = rig.asterisk.call_in(Caller(keys=[("disclosure", "1")]))
    await rig.asterisk.until(lambda: connected(rig))
    (agent,) = rig.asterisk.agent_channels()
    await agent_keys(rig, agent, "*1")

    await rig.stop()
    await rig.route(target="300", legal_basis=LegalBasis.LEGITIMATE_INTEREST,
                    retention_class="default")
    await rig.start()
    await rig.asterisk.until(lambda: rig.app is not None and rig.app.live_calls == 1)
    assert bridge_recording(rig)  # the running recording went on
    await stop_and_start_again(rig, agent)
    rig.asterisk.hang_up(caller)
    ended = await rig.ended_call()

    assert ended.call.extension == "100" and ended.call.legal_basis == "consent"
    assert rig.asterisk.prompts(agent) == AGENT_HEARD_START_STOP_START
    conversations = ended.of_kind("conversation")
    assert [r.legal_basis for r in conversations] == ["consent", "consent"]
    assert all(r.status == "stored" for r in conversations)


async def test_an_adopted_stereo_call_keeps_its_legs_and_stops_them_at_the_end(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    """Stereo: each party on a snoop of its own. After a restart the snoops are the
    adopted call's (not strays to hang up), and at its end both legs stop and the one
    row is stored."""
    rig = FlowRig(sessions, tmp_path, call=CallSettings(ring_timeout_s=5, stereo=True))
    async with rig.pipeline:
        await rig.start()
        try:
            caller = rig.asterisk.call_in(Caller(keys=[("disclosure", "1")]))
            await rig.asterisk.until(lambda: connected(rig) and len(rig.asterisk.live) == 2)
            legs = sorted(rig.asterisk.live)
            await rig.restart()
            await rig.asterisk.until(lambda: rig.app is not None and rig.app.live_calls == 1)
            assert sorted(rig.asterisk.live) == legs  # still recording both
            assert all(s in rig.asterisk.channels for s in map(names.leg_snoop_id, legs))
            rig.asterisk.hang_up(caller)
            ended = await rig.ended_call()
        finally:
            await rig.stop()

    (conversation,) = ended.of_kind("conversation")
    assert (conversation.layout, conversation.status) == ("stereo", "stored")
    assert sorted(f"{conversation.asterisk_name}-{leg}" for leg in ("agent", "caller")) == legs
    assert not rig.asterisk.live and not rig.asterisk.channels  # snoops hung up
