"""A transfer by API: ``POST /api/v1/calls/{id}/transfer`` through the command queue to
the service that owns the call, where it runs as the agent's ``*8`` / ``*9`` with the API
user as actor. The API on the call page's fixture (real users, tokens, audit trail, a
command taker); the flow on the scripted fake Asterisk (tests/test_transfer_flow.py's
rig), SQLite and PostgreSQL."""

from __future__ import annotations

import json

from flow_rig import FlowRig
from sqlalchemy import select
from storage_fakes import db_url, sessions
from test_call_commands_api import Desk, _commands, _live, _service
from test_call_page import Console, web
from test_transfer_flow import audited, bridge, connected_call, other_agent, rig, transfers

from pbx_bridge.calls.models import CallCommand
from pbx_bridge.commands.queue import CommandKind, Outcome, PendingCommand, TakenCommand
from pbx_bridge.commands.taker import CommandAnswer
from pbx_bridge.flow.call_commands import LiveCallCommands

__all__ = ["db_url", "rig", "sessions", "web"]  # fixtures

RINGING = {"transfer": "ringing", "mode": "blind", "extension": "105"}


async def test_a_supervisor_transfers_their_live_call_by_api(web: Console) -> None:
    await _live(web)
    desk = Desk(web.call_id, CommandAnswer(Outcome.DONE, RINGING))
    async with _service(web, desk):
        answer = await web.client.post(f"/api/v1/calls/{web.call_id}/transfer",
                                       json={"extension": "105"}, headers=web.api("selim"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["kind"], body["state"], body["result"]) == ("transfer", "done", RINGING)
    (command,) = desk.carried
    assert command.arguments == {"extension": "105", "mode": "blind"}
    assert command.requested_by.startswith("token:") and command.requested_by.endswith("(selim)")


async def test_who_may_transfer_and_what_is_refused_before_any_command(web: Console) -> None:
    await _live(web)
    url = f"/api/v1/calls/{web.call_id}/transfer"
    for user in ("other", "deniz", "ayse", "aydin"):
        refused = await web.client.post(url, json={"extension": "105"}, headers=web.api(user))
        assert refused.status_code == 403, user
        assert "may not transfer" in refused.json()["detail"]
    for bad in ({"extension": "10a"}, {"extension": ""}, {"extension": "1" * 21},
                {"extension": "105", "mode": "conference"}, {"mode": "blind"},
                {"extension": "105", "to": "106"}):
        answer = await web.client.post(url, json=bad, headers=web.api("selim"))
        assert answer.status_code == 422, (bad, answer.text)
    assert await _commands(web) == 0


# -- in the service: the command runs the agent's transfer, the asker as actor ----------


def _desk(rig: FlowRig) -> LiveCallCommands:
    assert rig.app is not None
    app = rig.app
    return LiveCallCommands(lambda call_id: next(
        (s for s in app.sessions() if s.call_id == call_id), None))


async def _transfer(rig: FlowRig, extension: str, mode: str = "blind") -> CommandAnswer:
    desk = _desk(rig)
    (call_id,) = rig.app.live_call_ids() if rig.app else ()
    kind = CommandKind.TRANSFER.value
    assert desk.takes(PendingCommand("cmd-1", call_id, None, kind))
    return await desk.carry_out(TakenCommand(
        id="cmd-1", call_id=call_id, kind=kind,
        arguments={"extension": extension, "mode": mode}, requested_by="user:selim"))


async def test_a_transfer_by_command_is_the_agents_with_the_asker_as_actor(
    rig: FlowRig,
) -> None:
    rig.asterisk.agents["101"] = "answer"
    caller, first = await connected_call(rig)
    answer = await _transfer(rig, "101")
    assert answer == CommandAnswer(Outcome.DONE, {
        "transfer": "ringing", "mode": "blind", "extension": "101"})
    await rig.asterisk.until(lambda: first not in rig.asterisk.channels
                             and len(bridge(rig) or []) == 2)
    assert bridge(rig) == [caller, other_agent(rig, first)]
    rig.asterisk.hang_up(caller)
    await rig.ended_call()
    (row,) = await transfers(rig)
    assert (row.requested_by, row.outcome, row.from_extension, row.to_extension) == (
        "user:selim", "completed", "100", "101")
    (entry,) = await audited(rig, "call.transferred")
    assert entry.actor == "user:selim" and json.loads(entry.details)["to"] == "101"


async def test_a_transfer_to_the_extension_on_the_call_is_refused(rig: FlowRig) -> None:
    caller, first = await connected_call(rig)
    answer = await _transfer(rig, "100", "attended")
    assert answer.outcome is Outcome.REFUSED and "already at 100" in str(answer.error)
    assert bridge(rig) == [caller, first]
    async with rig.sessions() as session:
        assert (await session.scalars(select(CallCommand))).all() == []  # none queued here
    rig.asterisk.hang_up(caller)
    await rig.ended_call()
