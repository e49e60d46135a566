"""A ring group through the real Asterisk and sipp: the first member does not take the
call (it rings out its seconds in turn, or declines busy while all ring at once), the
second answers; the recording holds the second agent's voice (its own tone, found by
FFT), never the first's, and the call's row names the second extension.
"""

from __future__ import annotations

import pytest
from e2e_harness import ServiceHarness, recordings_of
from test_call_flow import CALLER, DID, assert_asterisk_kept_nothing, assert_intact

from pbx_bridge.sandbox import sipp
from pbx_bridge.sandbox.audio import AGENT_TONE_HZ, CALLER_TONE_HZ, tone_power

pytestmark = pytest.mark.asterisk

# The second member's phone sends its own tone, so the recording tells whose voice it holds
# (the first member's phone would send the usual AGENT_TONE_HZ, were it ever connected).
SECOND_AGENT_HZ = 1500.0


@pytest.mark.parametrize(
    ("strategy", "first", "hung_up_as"),
    [("order", "no-answer", "remote-cancel"), ("all", "busy", "agent-busy")],
    ids=["order-first-rings-out", "all-first-declines"],
)
async def test_ring_group_answered_by_the_second_extension(
    service: ServiceHarness, strategy: str, first: str, hung_up_as: str
) -> None:
    made = service.cli("group", "set", "sales", "--members", "100:5,101:20",
                       "--strategy", strategy)
    assert "routes ring it with --target group:sales" in made.stdout
    service.cli("route", "set", DID, "--target", "group:sales")
    service.cli("ext", "set", "101", "--recording", "always")
    service.start()
    first_phone = await sipp.start_agent(service.asterisk.agent_ports["100"], first,
                                         max_wait_s=60)
    second_phone = await sipp.start_agent(service.asterisk.agent_ports["101"], "answer",
                                          ring_s=1.0, tone_hz=SECOND_AGENT_HZ)
    result = await sipp.call(
        service.asterisk.sip_address, DID, CALLER, dtmf=[(2.0, "1")], hangup_after_s=26.0
    )
    assert result.answered and result.hangup_by == "caller", result
    first_result = await first_phone.wait(timeout_s=60)
    assert not first_result.answered and first_result.hangup_by == hung_up_as, first_result
    assert (await second_phone.wait(timeout_s=30)).answered

    (call,) = await service.wait_for_calls(1, timeout_s=120)
    assert (call["disposition"], call["extension"]) == ("answered", "101")
    assert call["consent"]["decision"] == "granted"
    (conversation,) = recordings_of(call, "conversation")
    path = assert_intact(conversation)
    floor = tone_power(path, 700.0) + 1e-9
    assert tone_power(path, SECOND_AGENT_HZ) > 20 * floor, "the second agent's voice"
    assert tone_power(path, CALLER_TONE_HZ) > 20 * floor, "the caller's voice"
    assert tone_power(path, AGENT_TONE_HZ) < 20 * floor, "the first member was never bridged"
    log = service.log_text()
    assert "101 answered" in log
    assert_asterisk_kept_nothing(service)
