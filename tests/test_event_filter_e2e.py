"""The running service has Asterisk keep the event types it never acts on away (about half
of a call's events), and a call is handled as before."""

from __future__ import annotations

import httpx
import pytest
from e2e_harness import ServiceHarness, recordings_of
from test_call_flow import CALLER, DID

from pbx_bridge.ari import events as ev
from pbx_bridge.sandbox import sipp

pytestmark = pytest.mark.asterisk


async def test_service_filters_unused_events_and_still_records_with_consent(
    service: ServiceHarness,
) -> None:
    service.start()
    asterisk = service.asterisk
    async with httpx.AsyncClient(
        base_url=asterisk.ari_url, auth=(asterisk.ari_username, asterisk.ari_password)
    ) as client:
        app = (await client.get("/ari/applications/pbx-bridge")).json()
    disallowed = {item["type"] for item in app["events_disallowed"]}
    assert disallowed == set(ev.UNUSED_EVENT_TYPES)

    agent = await sipp.start_agent(asterisk.agent_ports["100"], "answer")
    result = await sipp.call(asterisk.sip_address, DID, CALLER, dtmf=[(2.0, "1")],
                             hangup_after_s=10.0)
    await agent.wait(timeout_s=20)
    assert result.answered, result
    (call,) = await service.wait_for_calls(1)
    assert call["disposition"] == "answered" and call["consent"]["decision"] == "granted"
    for kind in ("conversation", "evidence"):
        (recording,) = recordings_of(call, kind)
        assert recording["status"] == "stored"
