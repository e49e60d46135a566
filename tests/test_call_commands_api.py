"""``POST /api/v1/calls/{id}/pause`` / ``/resume`` and ``GET /api/v1/commands/{id}``,
in-process on the call page's fixture (real users, tokens and audit trail) with a real
command taker answering as a service would, on SQLite and PostgreSQL: who may, what each
outcome answers (200, 202 and its poll, 409, 502, 504), and what is audited."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from sqlalchemy import func, select, update
from storage_fakes import db_url, sessions
from test_call_page import Console, web

from pbx_bridge.calls.models import Call, CallCommand
from pbx_bridge.commands.queue import Outcome, PendingCommand, TakenCommand
from pbx_bridge.commands.taker import CommandAnswer, CommandTaker
from pbx_bridge.config import CommandSettings
from storage.models import AuditEntry

__all__ = ["db_url", "sessions", "web"]  # fixtures


class Desk:
    """A service holding ``call_id``: answers each command with ``answer``."""

    def __init__(self, call_id: str, answer: CommandAnswer, delay_s: float = 0.0) -> None:
        self.call_id = call_id
        self.answer = answer
        self.delay_s = delay_s
        self.carried: list[TakenCommand] = []

    def takes(self, command: PendingCommand) -> bool:
        return command.call_id == self.call_id

    async def carry_out(self, command: TakenCommand) -> CommandAnswer:
        self.carried.append(command)
        await asyncio.sleep(self.delay_s)
        return self.answer


async def _live(web: Console, take_within_s: float = 1.0, wait_s: float = 1.0) -> None:
    """The fixture's call is live; commands expire and are waited for briefly."""
    async with web.sessions() as session:
        await session.execute(update(Call).where(Call.id == web.call_id)
                              .values(disposition=None, ended_at=None))
        await session.commit()
    app = web.client._transport.app  # type: ignore[attr-defined]
    state = app.state.web
    settings = CommandSettings(take_within_s=take_within_s, wait_s=wait_s)
    app.state.web = dataclasses.replace(
        state, config=state.config.model_copy(update={"commands": settings}))


@asynccontextmanager
async def _service(web: Console, desk: Desk) -> AsyncIterator[None]:
    engine = web.sessions.kw["bind"]
    async with CommandTaker(engine, web.sessions, desk, node="pbx-1", poll_interval_s=0.05):
        yield


async def _pause(web: Console, user: str, call_id: str | None = None,
                 verb: str = "pause") -> httpx.Response:
    return await web.client.post(f"/api/v1/calls/{call_id or web.call_id}/{verb}",
                                 headers=web.api(user))


async def _commands(web: Console) -> int:
    async with web.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(CallCommand)) or 0)


async def test_a_supervisor_pauses_their_live_call_and_reads_the_command(web: Console) -> None:
    await _live(web)
    desk = Desk(web.call_id, CommandAnswer(Outcome.DONE, {"paused": True}))
    async with _service(web, desk):
        paused = await _pause(web, "selim")
    assert paused.status_code == 200, paused.text
    body = paused.json()
    assert (body["state"], body["kind"], body["call_id"]) == ("done", "pause", web.call_id)
    assert body["result"] == {"paused": True} and body["taken_by"] == "pbx-1"
    (command,) = desk.carried
    # The service acts with the real actor: the pause's row and entry name the token.
    assert command.requested_by == body["requested_by"]
    assert command.requested_by.startswith("token:") and command.requested_by.endswith("(selim)")

    mine = await web.client.get(f"/api/v1/commands/{body['id']}", headers=web.api("selim"))
    assert mine.status_code == 200 and mine.json()["state"] == "done"
    # Only whoever asked sees a command; who may send none is refused outright.
    theirs = await web.client.get(f"/api/v1/commands/{body['id']}", headers=web.api("other"))
    assert theirs.status_code == 404
    for user in ("deniz", "ayse", "aydin"):
        refused = await web.client.get(f"/api/v1/commands/{body['id']}", headers=web.api(user))
        assert refused.status_code == 403, user
    async with web.sessions() as session:
        entries = (await session.scalars(select(AuditEntry).where(
            AuditEntry.action.like("command.%")).order_by(AuditEntry.seq))).all()
    assert [(e.action, e.actor, e.target) for e in entries] == [
        ("command.requested", command.requested_by, f"call:{web.call_id}"),
        ("command.finished", "service:pbx-1", f"call:{web.call_id}"),
    ]


async def test_who_may_pause_and_what_is_refused_before_any_command(web: Console) -> None:
    await _live(web)
    # Another extension's supervisor, the dpo, the admin, the auditor.
    for user in ("other", "deniz", "ayse", "aydin"):
        for verb in ("pause", "resume"):
            refused = await _pause(web, user, verb=verb)
            assert refused.status_code == 403, (user, verb)
            assert refused.headers["content-type"] == "application/problem+json"
    assert (await _pause(web, "selim", str(uuid.uuid4()))).status_code == 404
    for bad in ("..", "1 OR 1=1", "%00"):
        assert (await _pause(web, "selim", bad)).status_code in (404, 422), bad
    async with web.sessions() as session:
        await session.execute(update(Call).where(Call.id == web.call_id)
                              .values(disposition="answered"))
        await session.commit()
    ended = await _pause(web, "selim")
    assert ended.status_code == 409 and "ended" in ended.json()["detail"]
    assert await _commands(web) == 0


async def test_each_outcome_is_its_own_answer(web: Console) -> None:
    await _live(web)
    refused = Desk(web.call_id, CommandAnswer(
        Outcome.REFUSED, error="the call's recording is not paused"))
    async with _service(web, refused):
        answer = await _pause(web, "selim", verb="resume")
    assert answer.status_code == 409, answer.text
    problem = answer.json()
    assert problem["detail"] == "the call's recording is not paused"
    assert problem["state"] == "refused" and problem["instance"].endswith(problem["command"])

    failed = Desk(web.call_id, CommandAnswer(Outcome.FAILED, error="Asterisk refused: gone"))
    async with _service(web, failed):
        answer = await _pause(web, "selim")
    assert answer.status_code == 502 and answer.json()["detail"] == "Asterisk refused: gone"

    # No service owns the call: nobody takes the command, and the asker is told so.
    nobody = await _pause(web, "selim")
    assert nobody.status_code == 504, nobody.text
    assert nobody.headers["content-type"] == "application/problem+json"
    assert "no pbx-bridge service owns this call" in nobody.json()["detail"]
    assert nobody.json()["state"] == "expired"
    async with web.sessions() as session:
        expired = (await session.scalars(select(AuditEntry).where(
            AuditEntry.action == "command.expired"))).one()
    assert expired.actor.endswith("(selim)") and expired.outcome == "expired"


async def test_a_slow_answer_is_202_and_the_command_is_polled(web: Console) -> None:
    await _live(web, wait_s=0.2)
    slow = Desk(web.call_id, CommandAnswer(Outcome.DONE, {"paused": True}), delay_s=0.8)
    async with _service(web, slow):
        accepted = await _pause(web, "selim")
        assert accepted.status_code == 202, accepted.text
        location = accepted.headers["location"]
        assert location == f"/api/v1/commands/{accepted.json()['id']}"
        assert accepted.json()["state"] == "taken"
        for _ in range(100):
            polled = (await web.client.get(location, headers=web.api("selim"))).json()
            if polled["state"] != "taken":
                break
            await asyncio.sleep(0.05)
    assert polled["state"] == "done" and polled["result"] == {"paused": True}
