"""Blind and attended transfers by the agent, through the real flow over the scripted
fake Asterisk, a real database (SQLite and PostgreSQL) and the real storage pipeline:
who ends up with the caller, what each party heard, that the call keeps one recording
(or stops it for a `never` extension), and what is stored and audited. The same
through Asterisk and sipp, with each agent's tone in the file: test_e2e_transfers.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from database_fixtures import db_url, migrated_url, pg_database, sessions
from fake_ari import Caller
from flow_rig import EndedCall, FlowRig
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from test_flow_branches import bridge_recording, connected, rig

from pbx_bridge.calls.history import call_views
from pbx_bridge.calls.models import Call, CallTransfer, RecordingPause
from pbx_bridge.config import CallSettings
from storage.models import AuditEntry

__all__ = ["db_url", "migrated_url", "pg_database", "rig", "sessions"]  # fixtures


async def connected_call(rig: FlowRig) -> tuple[str, str]:
    """A consenting caller talking with extension 100, recorded: (caller, agent)."""
    caller = rig.asterisk.call_in(Caller(keys=[("disclosure", "1")]))
    await rig.asterisk.until(lambda: connected(rig) and bridge_recording(rig))
    (agent,) = rig.asterisk.agent_channels()
    return caller, agent


def bridge(rig: FlowRig, word: str = "call") -> list[str] | None:
    """The members of the call's bridge ("call") or the consultation's ("consult")."""
    for bridge_id, members in rig.asterisk.bridges.items():
        if bridge_id.startswith(f"pbxb-{word}-"):
            return members
    return None


def played(rig: FlowRig, channel_id: str) -> list[str]:
    """What was started on the channel, in order (prompt names, tones)."""
    return [m.split(",")[0].rsplit("/", 1)[-1] for m in rig.asterisk.media.get(channel_id, [])]


def other_agent(rig: FlowRig, first: str) -> str:
    (leg,) = [c for c in rig.asterisk.agent_channels() if c != first]
    return leg


async def transfers(rig: FlowRig) -> list[CallTransfer]:
    async with rig.sessions() as session:
        return list(await session.scalars(select(CallTransfer)
                                          .order_by(CallTransfer.requested_at)))


async def audited(rig: FlowRig, action: str) -> list[AuditEntry]:
    async with rig.sessions() as session:
        return list(await session.scalars(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)))


async def hang_up_and_end(rig: FlowRig, caller: str) -> EndedCall:
    rig.asterisk.hang_up(caller)
    ended = await rig.ended_call()
    assert not rig.asterisk.channels and not rig.asterisk.bridges  # nothing left behind
    return ended


def one_recording(ended: EndedCall) -> None:
    """One conversation recording for the whole call, stored."""
    (conversation,) = ended.of_kind("conversation")
    assert conversation.status == "stored"
    assert [r.kind for r in ended.recordings].count("conversation") == 1


async def blind_to_101(rig: FlowRig) -> tuple[str, str, str]:
    """A connected call the agent hands to 101 (which answers): caller, first, second."""
    rig.asterisk.agents["101"] = "answer"
    caller, first = await connected_call(rig)
    rig.asterisk.press(first, "*8101#")
    await rig.asterisk.until(lambda: first not in rig.asterisk.channels
                             and len(bridge(rig) or []) == 2)
    return caller, first, other_agent(rig, first)


def transfers_counted(mode: str, outcome: str) -> float:
    labels = {"mode": mode, "outcome": outcome}
    return REGISTRY.get_sample_value("pbx_bridge_transfers_total", labels) or 0.0


async def test_blind_transfer_hands_the_caller_over_in_one_recording(rig: FlowRig) -> None:
    counted = transfers_counted("blind", "completed")
    caller, first, second = await blind_to_101(rig)
    assert bridge(rig) == [caller, second]
    assert bridge_recording(rig)  # the same recording goes on
    (conversation,) = rig.asterisk.live
    assert conversation not in [r.target for r in rig.asterisk.made("stop_recording")]
    assert "tone:ring" in played(rig, caller) and "tone:ring" in played(rig, first)
    assert [r.target for r in rig.asterisk.made("create_channel")] == ["PJSIP/100", "PJSIP/101"]
    # The new agent's keys are the agent's now: *5 pauses, as extension 101.
    rig.asterisk.press(second, "*5")
    await rig.asterisk.until(lambda: bool(rig.asterisk.muted))
    ended = await hang_up_and_end(rig, caller)

    one_recording(ended)
    assert ended.call.disposition == "answered"
    (row,) = await transfers(rig)
    assert (row.mode, row.from_extension, row.to_extension, row.outcome, row.recording) == (
        "blind", "100", "101", "completed", "continued")
    assert row.requested_by == "agent:100" and row.answered_at is not None
    (entry,) = await audited(rig, "call.transferred")
    assert (entry.actor, entry.target) == ("agent:100", f"call:{ended.call.id}")
    assert json.loads(entry.details)["to"] == "101"
    async with rig.sessions() as session:
        (pause,) = (await session.scalars(select(RecordingPause))).all()
        call = await session.get(Call, ended.call.id)
        assert call is not None
        (view,) = await call_views(session, [call])
    assert pause.paused_by == "agent:101"
    assert transfers_counted("blind", "completed") == counted + 1
    assert [h["extension"] for h in view.handled_by] == ["100", "101"]
    assert [t.to_json()["outcome"] for t in view.transfers] == ["completed"]
    assert view.to_json()["transfers"] == [t.to_json() for t in view.transfers]


@pytest.mark.parametrize(("behaviour", "prompt"), [
    ("busy", "agent-transfer-busy"), ("no-answer", "agent-transfer-no-answer"),
    ("unreachable", "agent-transfer-failed"),
])
async def test_a_target_that_does_not_answer_brings_the_agent_back(
    rig: FlowRig, behaviour: str, prompt: str
) -> None:
    rig.asterisk.agents["101"] = behaviour  # type: ignore[assignment]
    caller, first = await connected_call(rig)
    rig.asterisk.press(first, "*8101#")
    await rig.asterisk.until(lambda: prompt in played(rig, first))
    assert bridge(rig) == [caller, first]
    assert bridge_recording(rig) and rig.asterisk.agent_channels() == [first]
    ended = await hang_up_and_end(rig, caller)

    one_recording(ended)
    (row,) = await transfers(rig)
    assert (row.outcome, row.answered_at, row.recording) == (behaviour, None, None)
    assert await audited(rig, "call.transferred") == []


async def consulting_101(rig: FlowRig) -> tuple[str, str, str]:
    """The agent asks 101 (which answers) first; the caller holds to the music."""
    rig.asterisk.agents["101"] = "answer"
    caller, first = await connected_call(rig)
    rig.asterisk.press(first, "*9101#")
    await rig.asterisk.until(lambda: len(bridge(rig, "consult") or []) == 2
                             and bool(rig.asterisk.music))
    return caller, first, other_agent(rig, first)


@pytest.mark.parametrize("how", ["hash", "hang-up"])
async def test_attended_transfer_holds_the_caller_then_completes(rig: FlowRig, how: str) -> None:
    caller, first, second = await consulting_101(rig)
    assert bridge(rig, "consult") == [first, second]  # the agents talk apart
    assert bridge(rig) == [caller]  # the caller holds, still recorded
    assert bridge_recording(rig)
    assert played(rig, caller)[-1] == "transfer-hold"
    assert [r.detail for r in rig.asterisk.made("start_bridge_moh")] == ["default"]
    if how == "hash":
        rig.asterisk.press(first, "#")
    else:
        rig.asterisk.hang_up(first)
    await rig.asterisk.until(lambda: bridge(rig) == [caller, second]
                             and bridge(rig, "consult") is None)
    assert first not in rig.asterisk.channels and not rig.asterisk.music
    assert bridge_recording(rig)
    ended = await hang_up_and_end(rig, caller)

    one_recording(ended)
    (row,) = await transfers(rig)
    assert (row.mode, row.outcome, row.recording) == ("attended", "completed", "continued")
    (entry,) = await audited(rig, "call.transferred")
    assert entry.actor == "agent:100" and json.loads(entry.details)["mode"] == "attended"


@pytest.mark.parametrize("how", ["star", "target-hangs-up"])
async def test_attended_transfer_cancelled_brings_the_agent_back(
    rig: FlowRig, how: str
) -> None:
    rig.asterisk.agents["101"] = "answer"
    caller, first = await connected_call(rig)
    rig.asterisk.press(first, "*9101#")
    await rig.asterisk.until(lambda: len(bridge(rig, "consult") or []) == 2)
    second = other_agent(rig, first)
    if how == "star":
        rig.asterisk.press(first, "*")
    else:
        rig.asterisk.hang_up(second)
    await rig.asterisk.until(lambda: "agent-transfer-cancelled" in played(rig, first))
    assert bridge(rig) == [caller, first] and bridge(rig, "consult") is None
    assert second not in rig.asterisk.channels and not rig.asterisk.music
    ended = await hang_up_and_end(rig, caller)

    one_recording(ended)
    (row,) = await transfers(rig)
    assert (row.mode, row.outcome) == ("attended", "cancelled")
    assert await audited(rig, "call.transferred") == []


@pytest.mark.parametrize(("mode", "keys"), [("blind", "*8102#"), ("attended", "*9102#")])
async def test_a_transfer_to_a_never_extension_stops_the_recording_before_it_joins(
    rig: FlowRig, mode: str, keys: str
) -> None:
    await rig.extension("102", "never")
    rig.asterisk.agents["102"] = "answer"
    caller, first = await connected_call(rig)
    rig.asterisk.press(first, keys)
    if mode == "attended":
        await rig.asterisk.until(lambda: len(bridge(rig, "consult") or []) == 2)
        assert bridge_recording(rig)  # still the first extension's call while consulting
        rig.asterisk.press(first, "#")
    await rig.asterisk.until(lambda: len(bridge(rig) or []) == 2
                             and first not in (bridge(rig) or []))
    second = other_agent(rig, first)
    assert not bridge_recording(rig)
    await rig.asterisk.until(lambda: "agent-transfer-not-recorded" in played(rig, second))
    requests = rig.asterisk.requests
    stopped = next(i for i, r in enumerate(requests) if r.method == "stop_recording")
    joined = next(i for i, r in enumerate(requests) if r.method == "add_channel"
                  and r.target.startswith("pbxb-call-") and r.detail == second)
    assert stopped < joined  # nothing of extension 102 reaches the recording
    # *1 on a never extension is refused: not recorded.
    rig.asterisk.press(second, "*1")
    await rig.asterisk.until(lambda: "agent-recording-not-allowed" in played(rig, second))
    ended = await hang_up_and_end(rig, caller)

    one_recording(ended)
    (row,) = await transfers(rig)
    assert (row.mode, row.outcome, row.recording) == (mode, "completed", "stopped")


async def test_a_transfer_to_an_on_demand_extension_stops_until_its_star_one(
    rig: FlowRig,
) -> None:
    await rig.extension("101", "on-demand")
    caller, _first, second = await blind_to_101(rig)
    assert not bridge_recording(rig)
    rig.asterisk.press(second, "*1")
    await rig.asterisk.until(lambda: bridge_recording(rig))
    assert played(rig, second) == ["agent-transfer-on-demand", "agent-recording-started"]
    ended = await hang_up_and_end(rig, caller)
    assert [r.status for r in ended.of_kind("conversation")] == ["stored", "stored"]


@pytest.mark.parametrize("phase", ["ringing", "consulting"])
async def test_the_caller_hanging_up_mid_transfer_loses_nothing(
    rig: FlowRig, phase: str
) -> None:
    rig.asterisk.agents["101"] = "ring" if phase == "ringing" else "answer"
    caller, first = await connected_call(rig)
    rig.asterisk.press(first, "*9101#")
    if phase == "ringing":
        await rig.asterisk.until(lambda: bool(rig.asterisk.ringing))
    else:
        await rig.asterisk.until(lambda: len(bridge(rig, "consult") or []) == 2)
    ended = await hang_up_and_end(rig, caller)

    one_recording(ended)
    assert ended.call.disposition == "answered"
    (row,) = await transfers(rig)
    assert row.outcome == "caller-left"


async def first_leaves_while_101_rings(rig: FlowRig, keys: str) -> tuple[str, str]:
    """The agent types ``keys`` (to 101, which rings) and hangs up: (caller, 101's leg)."""
    rig.asterisk.agents["101"] = "ring"
    caller, first = await connected_call(rig)
    rig.asterisk.press(first, keys)
    await rig.asterisk.until(lambda: bool(rig.asterisk.ringing))
    rig.asterisk.hang_up(first)
    second = other_agent(rig, first)
    await rig.asterisk.until(lambda: first not in rig.asterisk.channels)
    return caller, second


async def test_the_agent_hanging_up_while_the_target_rings_makes_it_blind(
    rig: FlowRig,
) -> None:
    caller, second = await first_leaves_while_101_rings(rig, "*9101#")
    rig.asterisk.pick_up(second)
    await rig.asterisk.until(lambda: bridge(rig) == [caller, second])
    assert bridge_recording(rig)
    ended = await hang_up_and_end(rig, caller)
    one_recording(ended)
    (row,) = await transfers(rig)
    assert row.outcome == "completed"


async def test_a_busy_target_after_the_agent_left_tells_the_caller_and_ends(
    rig: FlowRig,
) -> None:
    caller, second = await first_leaves_while_101_rings(rig, "*8101#")
    rig.asterisk.hang_up(second, cause=17)  # busy
    ended = await rig.ended_call()

    assert played(rig, caller)[-1] == "busy"
    assert ended.call.disposition == "answered" and "transfer busy" in (
        ended.call.hangup_cause or "")
    one_recording(ended)
    (row,) = await transfers(rig)
    assert row.outcome == "busy"


@pytest.mark.parametrize("keys", ["*8100#", "*8#"])
async def test_a_transfer_to_no_extension_or_the_same_is_refused(
    rig: FlowRig, keys: str
) -> None:
    caller, first = await connected_call(rig)
    rig.asterisk.press(first, keys)
    await rig.asterisk.until(lambda: "agent-transfer-failed" in played(rig, first))
    assert bridge(rig) == [caller, first]
    assert [r.target for r in rig.asterisk.made("create_channel")] == ["PJSIP/100"]
    await hang_up_and_end(rig, caller)
    (row,) = await transfers(rig)
    assert (row.outcome, row.to_extension) == ("refused", keys[2:-1])


@pytest.fixture
async def stereo_rig(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> AsyncIterator[FlowRig]:
    async with FlowRig(sessions, tmp_path, call=CallSettings(ring_timeout_s=5, stereo=True)
                       ).running() as rig:
        yield rig


async def test_stereo_legs_are_both_on_the_caller_so_they_outlast_the_first_agent(
    stereo_rig: FlowRig,
) -> None:
    rig = stereo_rig
    rig.asterisk.agents["101"] = "answer"
    caller = rig.asterisk.call_in(Caller(keys=[("disclosure", "1")]))
    await rig.asterisk.until(lambda: connected(rig) and len(rig.asterisk.live) == 2)
    (first,) = rig.asterisk.agent_channels()
    snoops = rig.asterisk.made("snoop")
    # The evidence clip's snoop, then the caller's own voice and what reaches the caller.
    assert [(r.target, r.detail) for r in snoops[-2:]] == [(caller, "in"), (caller, "out")]
    legs = set(rig.asterisk.live)
    rig.asterisk.press(first, "*8101#")
    await rig.asterisk.until(lambda: first not in rig.asterisk.channels
                             and len(bridge(rig) or []) == 2)
    assert set(rig.asterisk.live) == legs  # both legs still recording
    ended = await hang_up_and_end(rig, caller)
    (conversation,) = ended.of_kind("conversation")
    assert conversation.status == "stored" and conversation.layout == "stereo"


async def test_a_restart_mid_transfer_leaves_the_first_agent_with_the_caller(
    rig: FlowRig,
) -> None:
    """The service stops while the agents consult: the target's leg goes, the first agent
    is back with the caller, and the next start adopts a plain call, still recorded."""
    caller, first, second = await consulting_101(rig)
    await rig.restart()
    await rig.asterisk.until(lambda: bridge(rig) == [caller, first])
    assert second not in rig.asterisk.channels and bridge(rig, "consult") is None
    assert not rig.asterisk.music and bridge_recording(rig)
    # The adopted call is the first agent's: it can hand it on again.
    rig.asterisk.press(first, "*8101#")
    await rig.asterisk.until(lambda: first not in rig.asterisk.channels
                             and len(bridge(rig) or []) == 2)
    ended = await hang_up_and_end(rig, caller)
    one_recording(ended)
