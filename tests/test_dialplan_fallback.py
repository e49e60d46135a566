"""The dialplan's fallback while pbx-bridge is down, through the real Asterisk.

No service runs in these tests: the Stasis app is not registered, so ``Stasis()``
returns at once and the caller reaches ``[pbx-bridge-fallback]``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pbx_bridge.sandbox import AsteriskSandbox, sipp

pytestmark = pytest.mark.asterisk

DID = "2125550190"
CALLER = "05321234567"


@pytest.fixture
def fallback_to_agent(asterisk: AsteriskSandbox) -> Iterator[AsteriskSandbox]:
    asterisk.cli("dialplan set global PBX_BRIDGE_FALLBACK_DIAL PJSIP/100")
    asterisk.cli("dialplan set global PBX_BRIDGE_FALLBACK_TIMEOUT 10")
    try:
        yield asterisk
    finally:
        asterisk.cli("dialplan set global PBX_BRIDGE_FALLBACK_DIAL \"\"")
        asterisk.cli("dialplan set global PBX_BRIDGE_FALLBACK_TIMEOUT \"\"")


async def test_by_default_callers_hear_the_service_is_unavailable(
    asterisk: AsteriskSandbox,
) -> None:
    agent = await sipp.start_agent(asterisk.agent_ports["100"], "answer", max_wait_s=12.0)
    result = await sipp.call(asterisk.sip_address, DID, CALLER, hangup_after_s=20.0)
    assert result.answered and result.hangup_by == "remote", result  # played, then hung up
    agent_result = await agent.wait(timeout_s=30)
    assert not agent_result.answered  # the department never rang


async def test_a_configured_fallback_connects_callers_unrecorded(
    fallback_to_agent: AsteriskSandbox,
) -> None:
    asterisk = fallback_to_agent
    before = sorted(p.name for p in asterisk.recordings_dir.iterdir())
    agent = await sipp.start_agent(asterisk.agent_ports["100"], "answer", ring_s=0.5)
    result = await sipp.call(asterisk.sip_address, DID, CALLER, hangup_after_s=4.0)
    agent_result = await agent.wait(timeout_s=30)
    assert result.answered and result.hangup_by == "caller", result
    assert agent_result.answered, agent_result
    assert sorted(p.name for p in asterisk.recordings_dir.iterdir()) == before
