"""Agents' calls out through the real Asterisk and sipp (issue 11, "outbound"): sipp is the
agent's phone, placing a call from its own address into [pbx-bridge-outbound] (the
shipped pjsip.conf's agent endpoint), and sipp is the callee behind the trunk
(PJSIP/{number}@carrier, the shipped [carrier] aor).

- the default outbound route: the callee hears the short notice (what Asterisk played,
  in order, against the composition, with the call's reference digit by digit) before
  the agent is joined; the stored recording holds both parties' tones (FFT); the call
  is logged outbound with the agent's extension and found by the callee's number;
- an outbound route asking (consent): the callee presses 1 during the disclosure, and
  is recorded;
- the agent's outbound-external cell `never`: the callee is told, nothing is recorded;
- with the service down, the dialplan's fallback still sends the call out, unrecorded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from e2e_harness import ServiceHarness, recordings_of
from heard_prompts import assert_heard, in_language
from test_call_flow import assert_asterisk_kept_nothing, assert_hears, assert_intact
from test_e2e_disclosure import log_size, played_since

from pbx_bridge.config import LegalBasis
from pbx_bridge.disclosure import DisclosureFacts, disclosure, short_notice
from pbx_bridge.sandbox import AsteriskSandbox, sipp
from pbx_bridge.sandbox.audio import CALLER_TONE_HZ
from pbx_bridge.sandbox.instance import AGENT_ADDRESSES, TRUNK

pytestmark = pytest.mark.asterisk

NUMBER = "05321234567"


async def call_out(
    service: ServiceHarness, *, talk_s: float, callee_dtmf: sipp.Dtmf = ()
) -> dict[str, object]:
    """Agent 100 dials NUMBER; the callee answers, sends the caller's tone (and keys);
    the agent hangs up ``talk_s`` after being joined. The call as `calls list` has it."""
    asterisk = service.asterisk
    callee = await sipp.start_agent(asterisk.agent_ports[TRUNK], "answer", ring_s=0.5,
                                    dtmf=callee_dtmf, tone_hz=CALLER_TONE_HZ,
                                    max_wait_s=180)
    agent = await sipp.start_agent_call(
        asterisk.sip_address, NUMBER, "100", AGENT_ADDRESSES["100"],
        hangup_after_s=talk_s, answer_timeout_s=150.0,
    )
    result = await agent.wait(timeout_s=200)
    assert result.answered and result.hangup_by == "caller", result  # the agent hung up
    await callee.wait(timeout_s=30)
    (call,) = await service.wait_for_calls(1)
    return call


async def test_the_callee_hears_the_notice_and_both_are_recorded(
    service: ServiceHarness, built_prompts: Path
) -> None:
    service.start()
    offset = log_size(service.asterisk)
    call = await call_out(service, talk_s=8.0)

    assert (call["direction"], call["extension"]) == ("outbound", "100")
    reference = call["reference"]
    assert isinstance(reference, str) and len(reference) == 9
    facts = DisclosureFacts(LegalBasis.LEGITIMATE_INTEREST, 60, reference)
    expected = [f"tr/{name}" for name in short_notice(facts)]
    assert played_since(service.asterisk, offset) == expected
    consent = call["consent"]
    assert isinstance(consent, dict)
    assert (consent["decision"], consent["prompt_name"]) == ("not-asked", "notice")
    assert_heard(consent, built_prompts, in_language("tr", short_notice(facts)))

    (conversation,) = recordings_of(call, "conversation")
    assert conversation["legal_basis"] == "legitimate-interest"
    assert_hears(assert_intact(conversation), caller=True, agent=True)
    assert_asterisk_kept_nothing(service)
    # A DSAR finds it by the callee's number, however it is written.
    found = json.loads(service.cli("calls", "list", "--json", "--number",
                                   "+905321234567").stdout)
    assert [c["id"] for c in found] == [call["id"]]


async def test_a_keypress_route_records_the_consenting_callee(
    service: ServiceHarness, built_prompts: Path
) -> None:
    service.cli("outbound-route", "set", "0532", "--announcement", "before-connect",
                "--legal-basis", "consent", "--language", "en")
    service.start()
    offset = log_size(service.asterisk)
    call = await call_out(service, talk_s=8.0, callee_dtmf=[(6.0, "1")])

    played = played_since(service.asterisk, offset)
    assert played[0] == "en/disclosure-intro" and "en/confirm-granted" in played
    consent = call["consent"]
    assert isinstance(consent, dict)
    assert (consent["decision"], consent["digit"]) == ("granted", "1")
    (conversation,) = recordings_of(call, "conversation")
    assert conversation["legal_basis"] == "consent"
    assert_hears(assert_intact(conversation), caller=True, agent=True)
    reference = call["reference"]
    assert isinstance(reference, str)
    facts = DisclosureFacts(LegalBasis.CONSENT, 60, reference)
    assert disclosure(facts)[0] == "disclosure-intro"


async def test_an_outbound_external_never_cell_records_nothing(service: ServiceHarness) -> None:
    service.cli("ext", "set", "100", "--outbound-external", "never")
    service.start()
    offset = log_size(service.asterisk)
    call = await call_out(service, talk_s=5.0)

    assert played_since(service.asterisk, offset)[-1] == "tr/notice-full-offer"  # told
    assert recordings_of(call, "conversation") == []
    assert call["disposition"] == "answered"
    assert_asterisk_kept_nothing(service)


async def test_with_the_service_down_the_call_still_goes_out_unrecorded(
    asterisk: AsteriskSandbox,
) -> None:
    """No service: Stasis() fails at once, and [pbx-bridge-outbound-fallback] dials the
    number through the sample's PBX_BRIDGE_OUTBOUND_DIAL (PJSIP/{number}@carrier)."""
    before = sorted(p.name for p in asterisk.recordings_dir.iterdir())
    callee = await sipp.start_agent(asterisk.agent_ports[TRUNK], "answer", ring_s=0.5,
                                    tone_hz=CALLER_TONE_HZ, max_wait_s=60)
    agent = await sipp.start_agent_call(asterisk.sip_address, NUMBER, "100",
                                        AGENT_ADDRESSES["100"], hangup_after_s=3.0)
    result = await agent.wait(timeout_s=60)
    callee_result = await callee.wait(timeout_s=30)
    assert result.answered and result.hangup_by == "caller", result
    assert callee_result.answered, callee_result
    assert sorted(p.name for p in asterisk.recordings_dir.iterdir()) == before
