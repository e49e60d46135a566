"""The command queue to the service that owns a call, on SQLite and PostgreSQL: one node
takes a command however many try (compare-and-set), an untaken one expires and is never
taken after, every step is audited; the service's taker wakes on NOTIFY (PostgreSQL) or
its poll (SQLite); and a PCI pause by command runs the agent's ``*5`` / ``*6`` code in
the conversation (fake ARI), with the asker as the pause's actor."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from database_fixtures import db_url, migrated_url, pg_database, sessions
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from test_agent_features_flow import (
    AGENT,
    CALLER,
    RECORD,
    FakeAri,
    _call_and_recording,
    _heard,
    _key,
    _session,
)
from test_early_keys import ROUTE, _channel, _event

from pbx_bridge.calls.models import CallCommand, RecordingPause
from pbx_bridge.commands import queue
from pbx_bridge.commands.queue import (
    CommandKind,
    CommandState,
    Outcome,
    PendingCommand,
    TakenCommand,
    command_state,
)
from pbx_bridge.commands.taker import CommandAnswer, CommandTaker
from pbx_bridge.flow.call_commands import LiveCallCommands, refusal
from pbx_bridge.flow.feature_codes import FeatureKind
from pbx_bridge.flow.inbox import CallerGone
from pbx_bridge.flow.session import CallSession
from storage.models import AuditEntry, utcnow

__all__ = ["db_url", "migrated_url", "pg_database", "sessions"]

ACTOR = "token:t1(selim)"


async def _audit(sessions: async_sessionmaker[AsyncSession]) -> list[AuditEntry]:
    async with sessions() as session:
        rows = await session.scalars(select(AuditEntry).where(
            AuditEntry.action.like("command.%")).order_by(AuditEntry.seq))
        return list(rows.all())


async def _submit(sessions: async_sessionmaker[AsyncSession], call_id: str = "c-1",
                  take_within_s: float = 5.0, kind: CommandKind = CommandKind.PAUSE) -> str:
    return await queue.submit(sessions, kind=kind, call_id=call_id, arguments={},
                              actor=ACTOR, take_within_s=take_within_s)


def test_a_commands_state_follows_its_row_and_the_clock() -> None:
    now = utcnow()
    later = now + timedelta(seconds=5)
    assert command_state(outcome=None, taken_at=None, expires_at=later, now=now) is (
        CommandState.PENDING)
    # Past its expiry and untaken: expired, even before anyone wrote it down.
    assert command_state(outcome=None, taken_at=None, expires_at=now, now=later) is (
        CommandState.EXPIRED)
    assert command_state(outcome=None, taken_at=now, expires_at=later, now=later) is (
        CommandState.TAKEN)
    # Taken and never answered: its service stopped in the middle.
    assert command_state(outcome=None, taken_at=now, expires_at=later,
                         now=now + timedelta(seconds=queue.ANSWER_WITHIN_S + 1)) is (
        CommandState.UNANSWERED)
    assert command_state(outcome="refused", taken_at=now, expires_at=later, now=now) is (
        CommandState.REFUSED)


def test_what_a_call_refuses_is_decided_before_anything_is_done() -> None:
    assert refusal(FeatureKind.PAUSE, recording=True, paused=False) is None
    assert "not being recorded" in str(refusal(FeatureKind.PAUSE, recording=False, paused=False))
    assert "already paused" in str(refusal(FeatureKind.PAUSE, recording=True, paused=True))
    assert refusal(FeatureKind.RESUME, recording=True, paused=True) is None
    assert "not paused" in str(refusal(FeatureKind.RESUME, recording=True, paused=False))


async def test_one_node_takes_a_command_however_many_try(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    command_id = await _submit(sessions)
    async with sessions() as session:
        (waiting,) = await queue.pending(session, utcnow())
    assert (waiting.id, waiting.call_id, waiting.kind) == (command_id, "c-1", "pause")
    takes = await asyncio.gather(*(queue.take(sessions, command_id, node=f"pbx-{n}")
                                   for n in range(6)))
    (taken,) = [t for t in takes if t is not None]
    assert taken.requested_by == ACTOR and taken.call_id == "c-1"
    async with sessions() as session:
        assert await queue.pending(session, utcnow()) == []
        row = await session.get(CallCommand, command_id)
        assert row is not None and row.taken_by is not None and row.taken_at is not None
    assert (await queue.read(sessions, command_id)).state is CommandState.TAKEN  # type: ignore[union-attr]

    await queue.finish(sessions, taken, node="pbx-1", outcome=Outcome.DONE,
                       result={"paused": True})
    view = await queue.wait_for_outcome(sessions, command_id, limit_s=1.0)
    assert view.state is CommandState.DONE and view.result == {"paused": True}
    requested, finished = await _audit(sessions)
    assert (requested.actor, requested.action, requested.target) == (
        ACTOR, "command.requested", "call:c-1")
    assert json.loads(requested.details)["command"] == command_id
    assert (finished.actor, finished.action, finished.outcome) == (
        "service:pbx-1", "command.finished", "ok")
    assert json.loads(finished.details)["requested_by"] == ACTOR


async def test_a_command_nobody_takes_expires_and_is_never_taken_after(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    command_id = await _submit(sessions, take_within_s=0.5)
    view = await queue.wait_for_outcome(sessions, command_id, limit_s=0.0)
    # The asker waits past its own limit until the command is taken or expires.
    assert view.state is CommandState.EXPIRED
    assert view.error is not None and "no pbx-bridge service owns this call" in view.error
    assert await queue.take(sessions, command_id, node="late") is None
    assert not await queue.expire(sessions, command_id)  # written once
    assert [(e.action, e.actor, e.outcome) for e in await _audit(sessions)] == [
        ("command.requested", ACTOR, "ok"), ("command.expired", ACTOR, "expired")]


class RecordingDesk:
    """Takes the commands of the calls it is told it owns, answers at once."""

    def __init__(self, owns: set[str]) -> None:
        self.owns = owns
        self.carried: list[TakenCommand] = []
        self.seen = asyncio.Event()

    def takes(self, command: PendingCommand) -> bool:
        return command.call_id in self.owns

    async def carry_out(self, command: TakenCommand) -> CommandAnswer:
        self.carried.append(command)
        self.seen.set()
        return CommandAnswer(Outcome.DONE, {"paused": True})


async def test_the_service_that_owns_the_call_takes_it_and_answers(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """PostgreSQL wakes the taker with NOTIFY (its poll is 100 s here, so only the
    NOTIFY can have it taken before it expires); SQLite's poll finds it."""
    engine = sessions.kw["bind"]
    listening = engine.dialect.name == "postgresql"
    mine, theirs = RecordingDesk({"c-1"}), RecordingDesk({"c-2"})
    poll_s = 10.0 if listening else 0.05
    async with (
        CommandTaker(engine, sessions, mine, node="pbx-1", poll_interval_s=poll_s),
        CommandTaker(engine, sessions, theirs, node="pbx-2", poll_interval_s=poll_s),
    ):
        await asyncio.sleep(0.3)  # the LISTEN connections are up
        command_id = await _submit(sessions, "c-1", take_within_s=3.0)
        view = await queue.wait_for_outcome(sessions, command_id, limit_s=3.0)
    assert view.state is CommandState.DONE, view
    assert view.taken_by == "pbx-1" and [c.id for c in mine.carried] == [command_id]
    assert theirs.carried == []


# -- a PCI pause by command, in the conversation (fake ARI, real database) -------------


async def _conversing(sessions: async_sessionmaker[AsyncSession]) -> tuple[
        CallSession, FakeAri, str, asyncio.Task[tuple[str, str]]]:
    call_id, recording_id = await _call_and_recording(sessions)
    ari = FakeAri()
    flow = _session(sessions, ari, call_id, recording_id)
    running = asyncio.create_task(flow._converse(ROUTE, RECORD))
    for _ in range(500):  # the conversation starts its recording, then reads its inbox
        if flow.conversing:
            break
        await asyncio.sleep(0.01)
    assert flow.conversing
    return flow, ari, recording_id, running


async def _command(desk: LiveCallCommands, call_id: str, kind: CommandKind,
                   actor: str = "user:selim") -> CommandAnswer:
    taken = TakenCommand(id=f"cmd-{kind.value}", call_id=call_id, kind=kind.value,
                         arguments={}, requested_by=actor)
    assert desk.takes(PendingCommand(taken.id, call_id, None, kind.value))
    return await desk.carry_out(taken)


async def test_a_pause_by_command_is_the_agents_star_five_with_the_asker_as_actor(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    flow, ari, recording_id, running = await _conversing(sessions)
    assert flow.call_id is not None
    desk = LiveCallCommands(lambda call_id: flow if call_id == flow.call_id else None)
    assert not desk.takes(PendingCommand("x", "another-call", None, "pause"))

    paused = await _command(desk, flow.call_id, CommandKind.PAUSE)
    assert paused == CommandAnswer(Outcome.DONE, {"paused": True})
    again = await _command(desk, flow.call_id, CommandKind.PAUSE)
    assert again.outcome is Outcome.REFUSED and "already paused" in str(again.error)
    # The agent's own *6 ends a pause the API began.
    flow.inbox.put(_key(AGENT, "*"))
    flow.inbox.put(_key(AGENT, "6"))
    await asyncio.sleep(0.1)
    not_paused = await _command(desk, flow.call_id, CommandKind.RESUME)
    assert not_paused.outcome is Outcome.REFUSED and "not paused" in str(not_paused.error)
    await _command(desk, flow.call_id, CommandKind.PAUSE, actor="token:t9(selim)")
    resumed = await _command(desk, flow.call_id, CommandKind.RESUME)
    assert resumed == CommandAnswer(Outcome.DONE, {"paused": False})

    flow.inbox.put(_event("ChannelHangupRequest", channel=_channel(CALLER)))
    with pytest.raises(CallerGone):
        await asyncio.wait_for(running, 5.0)
    name = f"pbxb-{recording_id}"
    assert ari.made("mute_recording", "unmute_recording") == [
        ("mute_recording", name), ("unmute_recording", name),
        ("mute_recording", name), ("unmute_recording", name),
    ]
    # The agent hears what happened, as with their own codes; a refusal says nothing.
    assert _heard(ari) == ["agent-recording-paused", "agent-recording-resumed",
                           "agent-recording-paused", "agent-recording-resumed"]
    async with sessions() as session:
        pauses = (await session.scalars(
            select(RecordingPause).order_by(RecordingPause.started_at))).all()
        entries = (await session.scalars(select(AuditEntry).where(
            AuditEntry.action == "recording.paused").order_by(AuditEntry.seq))).all()
    assert [(p.paused_by, p.resumed_by) for p in pauses] == [
        ("user:selim", "agent:100"), ("token:t9(selim)", "user:selim")]
    assert [e.actor for e in entries] == ["user:selim", "token:t9(selim)"]


async def test_a_call_not_yet_talking_refuses_and_an_ended_one_is_not_taken(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    call_id, recording_id = await _call_and_recording(sessions)
    flow = _session(sessions, FakeAri(), call_id, recording_id)
    live: dict[str, CallSession] = {call_id: flow}
    desk = LiveCallCommands(live.get)
    ringing = await _command(desk, call_id, CommandKind.PAUSE)
    assert ringing.outcome is Outcome.REFUSED and "not connected yet" in str(ringing.error)
    del live[call_id]
    assert not desk.takes(PendingCommand("x", call_id, None, "pause"))
