"""Ring groups through the real flow over the scripted fake Asterisk (tests/fake_ari.py,
tests/flow_rig.py; SQLite and PostgreSQL): which legs were rung and for how long, which
one was bridged and recorded, what the caller heard, and what the call's row says.
"""

from __future__ import annotations

import pytest
from database_fixtures import db_url, migrated_url, pg_database, sessions
from fake_ari import Caller, segments_of
from flow_rig import FlowRig
from test_flow_branches import RING, bridge_recording, connected, rig, talk_then_caller_hangs_up

from pbx_bridge.calls.extensions import set_extension
from pbx_bridge.calls.retention import set_class
from pbx_bridge.calls.ring_groups import Member, set_group
from pbx_bridge.config import LegalBasis, RecordingMode, RingStrategy
from pbx_bridge.disclosure import DisclosureFacts, disclosure

__all__ = ["db_url", "migrated_url", "pg_database", "rig", "sessions"]  # fixtures, for pytest



def consenting() -> Caller:
    """A caller who presses 1 at the disclosure (a new script each call: keys are used up)."""
    return Caller(keys=[("disclosure", "1")])


async def group(rig: FlowRig, strategy: RingStrategy, *members: tuple[str, int]) -> None:
    """Ring group ``sales`` with these members; the test route rings it."""
    async with rig.sessions() as session:
        await set_group(session, "sales", members=[Member(e, s) for e, s in members],
                        strategy=strategy)
        await session.commit()
    await rig.route(target="group:sales")


def bridged_agents(rig: FlowRig) -> list[str]:
    return [c for members in rig.asterisk.bridges.values() for c in members
            if c.startswith("pbxb-agent-")]


def assert_nothing_left(rig: FlowRig) -> None:
    assert not rig.asterisk.channels and not rig.asterisk.bridges
    assert rig.app is not None and rig.app._ownership.owned() == {}


async def test_ringall_the_first_to_answer_takes_the_call_the_others_are_hung_up(
    rig: FlowRig,
) -> None:
    rig.asterisk.agents.update({"100": "ring", "101": "ring", "102": "ring"})
    await group(rig, RingStrategy.ALL, ("100", 15), ("101", 20), ("102", 25))
    caller = rig.asterisk.call_in(consenting())
    await rig.asterisk.until(lambda: len(list(rig.asterisk.ringing)) == 3, timeout_s=15)
    # Every member rings at once, each for its own seconds.
    assert sorted(rig.asterisk.dialled()) == ["100 15s", "101 20s", "102 25s"]
    second = rig.asterisk.leg_of("101")
    others = [rig.asterisk.leg_of("100"), rig.asterisk.leg_of("102")]
    rig.asterisk.pick_up(second)
    await rig.asterisk.until(lambda: connected(rig) and bridge_recording(rig), timeout_s=15)

    # The others were hung up at once, never bridged nor recorded.
    assert all(leg not in rig.asterisk.channels for leg in others)
    assert bridged_agents(rig) == [second]
    assert {r.target for r in rig.asterisk.made("hangup")} >= set(others)
    (live,) = rig.asterisk.live.values()
    assert live.target_uri.startswith("bridge:")
    rig.asterisk.hang_up(caller)
    ended = await rig.ended_call()
    assert ended.call.disposition == "answered" and ended.call.extension == "101"
    assert rig.asterisk.prompts(caller) == ["disclosure", "confirm-granted", RING]
    assert [r.kind for r in ended.recordings] == ["evidence", "conversation"]
    assert_nothing_left(rig)


async def test_ringall_two_answering_at_once_only_the_first_is_bridged(rig: FlowRig) -> None:
    rig.asterisk.agents.update({"100": "answer", "101": "answer"})
    await group(rig, RingStrategy.ALL, ("100", 15), ("101", 15))
    caller = rig.asterisk.call_in(consenting())
    await talk_then_caller_hangs_up(rig, caller, recorded=True)
    ended = await rig.ended_call()
    assert ended.call.extension == "100"  # dialled first, answered first
    (bridge,) = [r for r in rig.asterisk.made("add_channel")]
    assert bridge.detail == f"{caller},{rig.asterisk.made('dial')[0].target}"
    assert_nothing_left(rig)


async def test_ringall_a_busy_member_does_not_end_the_group(rig: FlowRig) -> None:
    rig.asterisk.agents.update({"100": "busy", "101": "answer"})
    await group(rig, RingStrategy.ALL, ("100", 15), ("101", 15))
    caller = rig.asterisk.call_in(consenting())
    await talk_then_caller_hangs_up(rig, caller, recorded=True)
    ended = await rig.ended_call()
    assert ended.call.disposition == "answered" and ended.call.extension == "101"
    assert rig.asterisk.prompts(caller) == ["disclosure", "confirm-granted", RING]  # no "busy"


async def test_order_rings_each_member_for_its_seconds_in_turn(rig: FlowRig) -> None:
    rig.asterisk.agents.update({"100": "no-answer", "101": "busy", "102": "answer"})
    await group(rig, RingStrategy.ORDER, ("100", 10), ("101", 12), ("102", 30))
    caller = rig.asterisk.call_in(consenting())
    await talk_then_caller_hangs_up(rig, caller, recorded=True)
    ended = await rig.ended_call()

    # One after another (100 timed out, 101 busy), each for its own time, in order.
    assert rig.asterisk.dialled() == ["100 10s", "101 12s", "102 30s"]
    assert ended.call.extension == "102"
    (add,) = rig.asterisk.made("add_channel")
    assert add.detail.split(",")[1] == rig.asterisk.made("dial")[2].target
    assert_nothing_left(rig)


async def test_nobody_answering_takes_the_routes_no_answer_path(rig: FlowRig) -> None:
    rig.asterisk.agents.update({"100": "no-answer", "101": "busy", "102": "unreachable"})
    await group(rig, RingStrategy.ALL, ("100", 15), ("101", 15), ("102", 15))
    caller = rig.asterisk.call_in(consenting())
    ended = await rig.ended_call()
    assert rig.asterisk.prompts(caller) == ["disclosure", "confirm-granted", RING, "no-answer"]
    assert ended.call.disposition == "no-answer" and ended.call.answered_at is None
    assert ended.call.extension == "group:sales"  # nobody took it
    assert [r.kind for r in ended.recordings] == ["evidence"]
    assert rig.asterisk.made("create_bridge") == []
    assert_nothing_left(rig)


async def test_every_member_busy_is_busy(rig: FlowRig) -> None:
    rig.asterisk.agents.update({"100": "busy", "101": "busy"})
    await group(rig, RingStrategy.ORDER, ("100", 15), ("101", 15))
    caller = rig.asterisk.call_in(consenting())
    ended = await rig.ended_call()
    assert rig.asterisk.prompts(caller)[-1] == "busy"
    assert ended.call.disposition == "busy"
    assert rig.asterisk.dialled() == ["100 15s", "101 15s"]


async def test_the_caller_hanging_up_while_the_group_rings_hangs_up_every_leg(
    rig: FlowRig,
) -> None:
    rig.asterisk.agents.update({"100": "ring", "101": "ring"})
    await group(rig, RingStrategy.ALL, ("100", 15), ("101", 15))
    caller = rig.asterisk.call_in(consenting())
    await rig.asterisk.until(lambda: len(list(rig.asterisk.ringing)) == 2, timeout_s=15)
    legs = list(rig.asterisk.ringing)
    rig.asterisk.hang_up(caller)
    ended = await rig.ended_call()
    assert ended.call.disposition == "abandoned"
    assert all(leg in {r.target for r in rig.asterisk.made("hangup")} for leg in legs)
    assert rig.asterisk.made("create_bridge") == []
    assert_nothing_left(rig)


@pytest.mark.parametrize(("answering", "recorded"), [("100", False), ("101", True)],
                         ids=["never-member-answers", "always-member-answers"])
async def test_the_answering_members_recording_mode_decides(
    rig: FlowRig, answering: str, recorded: bool
) -> None:
    """100 never records, 101 always does: whoever of them answers decides."""
    await rig.extension("100", "never")
    await rig.extension("101", "always")
    rig.asterisk.agents.update({"100": "no-answer", "101": "no-answer", answering: "answer"})
    await group(rig, RingStrategy.ORDER, ("100", 15), ("101", 15))
    caller = rig.asterisk.call_in(consenting())
    await talk_then_caller_hangs_up(rig, caller, recorded=recorded)
    ended = await rig.ended_call()
    assert ended.call.extension == answering
    kinds = ["evidence", "conversation"] if recorded else ["evidence"]
    assert [r.kind for r in ended.recordings] == kinds
    assert len(rig.asterisk.made("record_bridge")) == int(recorded)


async def test_the_answering_members_retention_class_keeps_the_call(rig: FlowRig) -> None:
    """101 keeps its calls 730 days (class sales): the notice told the longest any member
    keeps (730), and 101 answering keeps the recording 730 days; 100 answering would have
    kept it the route's 60."""
    async with rig.sessions() as session:
        await set_class(session, "sales", 730)
        await set_extension(session, "101", RecordingMode.ALWAYS, "sales")
        await session.commit()
    rig.asterisk.agents.update({"100": "busy", "101": "answer"})
    await group(rig, RingStrategy.ALL, ("100", 15), ("101", 15))
    caller = rig.asterisk.call_in(consenting())
    await talk_then_caller_hangs_up(rig, caller, recorded=True)
    ended = await rig.ended_call()

    facts = DisclosureFacts(LegalBasis.CONSENT, 730, ended.call.reference)
    assert segments_of(rig.asterisk.media[caller][0]) == [f"tr/{n}" for n in disclosure(facts)]
    (conversation,) = ended.of_kind("conversation")
    assert (conversation.retention_class, conversation.retention_days) == ("sales", 730)
    assert (ended.call.extension, ended.call.retention_class) == ("101", "sales")


async def test_a_default_route_naming_a_missing_group_is_unreachable(rig: FlowRig) -> None:
    rig.default_route = rig.default_route.model_copy(update={"target": "group:nobody"})
    await rig.restart()
    caller = rig.asterisk.call_in(consenting())
    ended = await rig.ended_call()
    assert rig.asterisk.prompts(caller)[-1] == "unreachable"
    assert ended.call.disposition == "failed"
    assert rig.asterisk.made("create_channel") == []
