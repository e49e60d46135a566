"""A PCI pause on a call the service adopted after a restart (flow/resync.py), through the
real flow on the scripted fake Asterisk (SQLite and PostgreSQL): the recording's name
and row come from the call's state, so the agent's *5 / *6 mute and unmute the running
recording and are stored against its row, and a pause that was on when the service
stopped is the adopted call's: *6 or the time limit ends that very pause.
"""

from __future__ import annotations

from database_fixtures import db_url, migrated_url, pg_database, sessions
from fake_ari import Caller
from flow_rig import EndedCall, FlowRig
from sqlalchemy import select
from test_flow_branches import bridge_recording, connected, rig

from pbx_bridge.calls.models import RecordingPause

__all__ = ["db_url", "migrated_url", "pg_database", "rig", "sessions"]  # fixtures, for pytest


async def _adopted_while_talking(rig: FlowRig, *, before: str = "") -> tuple[str, str, str]:
    """A consenting caller's recorded call; the agent presses ``before``, then the
    service restarts and adopts the call. (caller, agent, the recording's name)."""
    caller = rig.asterisk.call_in(Caller(keys=[("disclosure", "1")]))
    await rig.asterisk.until(lambda: connected(rig) and bridge_recording(rig))
    (agent,) = rig.asterisk.agent_channels()
    (name,) = rig.asterisk.live
    if before:
        rig.asterisk.press(agent, before)
        await rig.asterisk.until(lambda: len(_requests(rig)) == 1)
        await rig.asterisk.until(lambda: "agent-recording-paused" in rig.asterisk.prompts(agent))
    await rig.restart()
    await rig.asterisk.until(lambda: rig.app is not None and rig.app.live_calls == 1)
    return caller, agent, name


def _requests(rig: FlowRig) -> list[tuple[str, str]]:
    return [(r.method, r.target) for r in rig.asterisk.requests
            if r.method in ("mute_recording", "unmute_recording")]


async def _pauses(rig: FlowRig) -> list[RecordingPause]:
    async with rig.sessions() as session:
        return list((await session.scalars(select(RecordingPause))).all())


async def _ended(rig: FlowRig, caller: str) -> EndedCall:
    rig.asterisk.hang_up(caller)
    return await rig.ended_call()


async def test_star_five_and_six_pause_the_recording_of_an_adopted_call(rig: FlowRig) -> None:
    caller, agent, name = await _adopted_while_talking(rig)
    rig.asterisk.press(agent, "*5")
    await rig.asterisk.until(lambda: len(_requests(rig)) == 1)
    rig.asterisk.press(agent, "*6")
    await rig.asterisk.until(lambda: len(_requests(rig)) == 2)
    ended = await _ended(rig, caller)

    assert _requests(rig) == [("mute_recording", name), ("unmute_recording", name)]
    assert rig.asterisk.prompts(agent)[-2:] == ["agent-recording-paused",
                                                "agent-recording-resumed"]
    (conversation,) = ended.of_kind("conversation")
    assert conversation.asterisk_name == name and conversation.status == "stored"
    (pause,) = await _pauses(rig)
    assert pause.recording_id == conversation.id
    assert (pause.paused_by, pause.resumed_by) == ("agent:100", "agent:100")
    # Offsets into the recording, counted from its row's start: the call has run a while.
    assert pause.end_s is not None and 0 < pause.start_s <= pause.end_s


async def test_a_pause_on_when_the_service_stopped_is_ended_by_star_six(rig: FlowRig) -> None:
    caller, agent, name = await _adopted_while_talking(rig, before="*5")
    rig.asterisk.press(agent, "*6")
    await rig.asterisk.until(lambda: len(_requests(rig)) == 2)
    await _ended(rig, caller)

    # Muted once (before the restart), unmuted once: the same pause, not a second one.
    assert _requests(rig) == [("mute_recording", name), ("unmute_recording", name)]
    assert rig.asterisk.prompts(agent)[-1] == "agent-recording-resumed"
    (pause,) = await _pauses(rig)
    assert (pause.paused_by, pause.resumed_by) == ("agent:100", "agent:100")


async def test_a_pause_on_when_the_service_stopped_still_resumes_by_itself(
    rig: FlowRig,
) -> None:
    rig.call = rig.call.model_copy(update={"pci_pause_max_minutes": 0.01})  # 0.6 s
    await rig.restart()
    caller, agent, name = await _adopted_while_talking(rig, before="*5")
    # Nothing more happens on the call: the adopted pause's own deadline wakes the flow.
    await rig.asterisk.until(lambda: len(_requests(rig)) == 2, timeout_s=5.0)
    await rig.asterisk.until(
        lambda: rig.asterisk.prompts(agent)[-1] == "agent-pause-auto-resumed")
    await _ended(rig, caller)

    assert _requests(rig) == [("mute_recording", name), ("unmute_recording", name)]
    (pause,) = await _pauses(rig)
    assert pause.resumed_by == "auto"


async def test_a_call_ending_during_an_adopted_pause_closes_it(rig: FlowRig) -> None:
    caller, _, _ = await _adopted_while_talking(rig, before="*5")
    await _ended(rig, caller)
    (pause,) = await _pauses(rig)
    assert pause.resumed_by == "recording-end" and pause.end_s is not None
