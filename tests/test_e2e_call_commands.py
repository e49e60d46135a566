"""A PCI pause by API through the real Asterisk and sipp: the service (`pbx-bridge run`, a
process of its own) holds a live call; the REST API (in-process, on the same database)
asks for ``POST /api/v1/calls/{id}/pause`` and, 6 s later, ``/resume``; the command goes
through the queue to the service, which mutes the recording as the agent's ``*5`` does.

The caller sends 440 Hz and the agent 1000 Hz all through the call: the stored file has
silence of the pause's length in that span, both tones before and after it, the whole
conversation's length, and the pause is the API user's in the row and the trail.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import numpy as np
import pytest
import soundfile
from console_clients import bearer_header
from e2e_harness import ServiceHarness, parse_time, recordings_of
from test_call_flow import CALLER, DID, assert_asterisk_kept_nothing, assert_intact
from test_e2e_agent_features import (
    EDGE_S,
    SILENT,
    audit_actions,
    longest_silence_s,
    show,
    span,
    tone_amplitude,
)

from pbx_bridge.config import AuthSettings, Role, WebSettings, load_settings
from pbx_bridge.sandbox import sipp
from pbx_bridge.sandbox.audio import AGENT_TONE_HZ, CALLER_TONE_HZ
from pbx_bridge.users import accounts, tokens
from pbx_bridge.users.console_accounts import UsersAccounts
from pbx_bridge.web.app import create_app
from storage.database import make_engine, make_session_factory

pytestmark = pytest.mark.asterisk

PAUSE_S = 6.0
SECRET = "test-secret-key-" + "0123456789abcdef" * 2


@dataclass
class Api:
    client: httpx.AsyncClient
    headers: dict[str, str]


@pytest.fixture
async def api(service: ServiceHarness) -> AsyncIterator[Api]:
    """The console's API on the service's database, with a supervisor of extension 100."""
    settings = load_settings(service.config_path).model_copy(update={
        "web": WebSettings(secret_key=SECRET),
        "auth": AuthSettings(argon2_time_cost=1, argon2_memory_kib=8, argon2_parallelism=1),
    })
    engine = make_engine(settings.database.url)
    sessions = make_session_factory(engine)
    try:
        async with sessions() as session:
            await accounts.add_user(
                session, name="selim", role=Role.SUPERVISOR, password="correct horse battery",
                auth=settings.auth, actor="cli:root", default_target="100",
                extensions=["100"],
            )
            await session.commit()
            _, bearer = await tokens.create_token(
                session, user_name="selim", scopes=["calls.pause"], days=1, actor="cli:root"
            )
            await session.commit()
        users = await UsersAccounts.from_settings(settings, sessions)
        app = create_app(settings, users, sessions)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://127.0.0.1:8090") as client:
            yield Api(client, bearer_header(bearer))
    finally:
        await engine.dispose()


def _live_conversation(service: ServiceHarness) -> tuple[str, str] | None:
    """The live call's id and its conversation recording's, once it records."""
    with sqlite3.connect(service.workdir / "pbx-bridge.db") as db:
        row = db.execute(
            "SELECT calls.id, recordings.id FROM calls JOIN recordings"
            " ON recordings.call_id = calls.id WHERE recordings.kind = 'conversation'"
            " AND calls.ended_at IS NULL"
        ).fetchone()
    return None if row is None else (row[0], row[1])


async def _recording_call(service: ServiceHarness, timeout_s: float = 60.0) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while (found := _live_conversation(service)) is None:
        assert loop.time() < deadline, "the call's conversation never started recording"
        await asyncio.sleep(0.2)
    return found[0]


async def test_a_pause_by_api_is_silence_of_its_length_in_the_stored_file(
    service: ServiceHarness, api: Api
) -> None:
    service.start()
    agent = await sipp.start_agent(service.asterisk.agent_ports["100"], "answer", ring_s=0.5)
    caller = asyncio.create_task(sipp.call(
        service.asterisk.sip_address, DID, CALLER, dtmf=[(2.0, "1")], hangup_after_s=30.0,
    ))
    call_id = await _recording_call(service)
    await asyncio.sleep(3.0)  # the parties talk, recorded, before the card details
    loop = asyncio.get_running_loop()
    pause_asked = loop.time()
    paused = await api.client.post(f"/api/v1/calls/{call_id}/pause", headers=api.headers)
    pause_answered = loop.time()
    assert paused.status_code == 200, paused.text
    assert paused.json()["result"] == {"paused": True}
    again = await api.client.post(f"/api/v1/calls/{call_id}/pause", headers=api.headers)
    assert again.status_code == 409 and "already paused" in again.json()["detail"]
    await asyncio.sleep(PAUSE_S)  # the caller reads out the card (their 440 Hz goes on)
    resume_asked = loop.time()
    resumed = await api.client.post(f"/api/v1/calls/{call_id}/resume", headers=api.headers)
    resume_answered = loop.time()
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["result"] == {"paused": False}
    result = await caller
    await agent.wait(timeout_s=30)
    assert result.answered and result.hangup_by == "caller", result

    (call,) = await service.wait_for_calls(1, timeout_s=90)
    # The call has ended: a pause is refused before any command is written.
    ended = await api.client.post(f"/api/v1/calls/{call_id}/pause", headers=api.headers)
    assert ended.status_code == 409 and "ended" in ended.json()["detail"]
    (conversation,) = recordings_of(call, "conversation")
    path = assert_intact(conversation)
    detail = show(service, conversation["id"])
    (pause,) = detail["pauses"]
    actor = paused.json()["requested_by"]
    assert actor.startswith("token:") and actor.endswith("(selim)")
    assert (pause["paused_by"], pause["resumed_by"]) == (actor, actor)
    # Muted once the pause was asked and before it was answered; likewise unmuted.
    length = pause["end_s"] - pause["start_s"]
    assert resume_asked - pause_answered - 0.1 < length, (length, pause)
    assert length < resume_answered - pause_asked + 0.1, (length, pause)

    samples, rate = soundfile.read(str(path), dtype="float64")
    samples = np.asarray(samples)
    duration = samples.size / rate
    written = parse_time(detail["finished_at"]) - parse_time(detail["started_at"])
    clock = duration / written.total_seconds()  # Asterisk's frames against wall time
    assert 0.85 < clock <= 1.02, (duration, written)
    start_s, end_s = pause["start_s"] * clock, pause["end_s"] * clock
    during = span(samples, rate, start_s + EDGE_S, end_s - EDGE_S)
    assert float(np.abs(during).max()) < SILENT, float(np.abs(during).max())
    assert tone_amplitude(during, rate, CALLER_TONE_HZ) < 1e-4
    assert tone_amplitude(during, rate, AGENT_TONE_HZ) < 1e-4
    for around in (span(samples, rate, start_s - 2.0, start_s - EDGE_S),
                   span(samples, rate, end_s + EDGE_S, end_s + 2.5)):
        assert tone_amplitude(around, rate, CALLER_TONE_HZ) > 0.01
        assert tone_amplitude(around, rate, AGENT_TONE_HZ) > 0.01
    assert abs(longest_silence_s(samples, rate) - (end_s - start_s)) < 0.6
    connected = (parse_time(call["ended_at"]) - parse_time(call["answered_at"])).total_seconds()
    assert duration > connected - PAUSE_S + 2.0, (duration, connected)  # muted, not cut

    (paused_entry,) = audit_actions(service, "recording.paused")
    assert paused_entry[:2] == (actor, f"recording:{conversation['id']}")
    requested = audit_actions(service, "command.requested")
    assert [(a, t, d["kind"]) for a, t, d in requested] == [
        (actor, f"call:{call_id}", "pause"), (actor, f"call:{call_id}", "pause"),
        (actor, f"call:{call_id}", "resume")]
    assert [a.startswith("service:") for a, _, _ in audit_actions(
        service, "command.finished")] == [True, True, True]
    assert_asterisk_kept_nothing(service)
