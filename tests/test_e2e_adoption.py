"""A call adopted after the service was killed keeps the route and legal basis it started
with, through the real Asterisk and sipp (the fast branches are in test_flow_branches.py).

While the service is down an admin changes the call's route (another legal basis,
another extension that never records). The call still live in Asterisk is adopted by
the restarted service from its row's route snapshot: what it records, and under which
basis, is what the caller was told and answered, not what the route says now. The
agent's PCI pause works on the adopted call's recording as on any other.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
import soundfile
from e2e_harness import ServiceHarness, recordings_of
from test_call_flow import CALLER, DID, assert_asterisk_kept_nothing, assert_hears, assert_intact
from test_e2e_agent_features import SILENT, audit_actions, show, span, tone_amplitude
from test_metrics_e2e import eventually
from test_recovery import wait_until_recording

from pbx_bridge.sandbox import sipp
from pbx_bridge.sandbox.audio import CALLER_TONE_HZ

pytestmark = pytest.mark.asterisk


async def wait_for_log(service: ServiceHarness, text: str) -> None:
    async def logged() -> bool:
        return text in service.log_text()

    await eventually(logged, timeout_s=40.0)


async def adopted_to_the_end(
    service: ServiceHarness, caller: sipp.SippProcess, agent: sipp.SippProcess
) -> dict[str, Any]:
    """SIGKILL the service mid-call and start it again; once it adopted the call and the
    caller hung up: the call as stored."""
    service.kill()
    service.start()
    await wait_for_log(service, "adopted after restart")
    result = await caller.wait(timeout_s=150)
    await agent.wait(timeout_s=30)
    assert result.answered and result.hangup_by == "caller", result
    (call,) = await service.wait_for_calls(1, timeout_s=90)
    return call


async def test_a_killed_service_adopts_a_recorded_call_under_its_original_basis(
    service: ServiceHarness,
) -> None:
    """Recorded with consent; the route now sends its DID to a `never` extension under
    legitimate interest; SIGKILL and restart: the recording goes on to the end of the
    call, one row, under consent, and the call is still extension 100's."""
    service.cli("ext", "set", "300", "--recording", "never")
    service.start()
    agent = await sipp.start_agent(service.asterisk.agent_ports["100"], "answer", max_wait_s=120)
    caller = await sipp.start_caller(
        service.asterisk.sip_address, DID, CALLER, dtmf=[(2.0, "1")], hangup_after_s=50.0,
        max_wait_s=120.0,
    )
    await wait_until_recording(service, timeout_s=40.0)
    recording_began = time.monotonic()
    # Changed under the live call (the CLI is slow on a loaded machine: not while the
    # service is down, or the caller might hang up before the restart).
    service.cli("route", "set", DID, "--target", "300", "--legal-basis", "legitimate-interest",
                "--announcement", "notice-only")
    assert "legitimate-interest" in service.cli("route", "list").stdout

    service.kill()
    service.start()
    await wait_for_log(service, "adopted after restart")

    result = await caller.wait(timeout_s=120)
    call_ended = time.monotonic()
    await agent.wait(timeout_s=30)
    assert result.answered and result.hangup_by == "caller", result

    (call,) = await service.wait_for_calls(1, timeout_s=90)
    assert call["extension"] == "100" and call["legal_basis"] == "consent"
    assert call["consent"]["decision"] == "granted"
    (conversation,) = recordings_of(call, "conversation")
    assert conversation["legal_basis"] == "consent"
    path = assert_intact(conversation)
    # Recorded to the end of the call, not only until the kill.
    assert conversation["duration_s"] > (call_ended - recording_began) - 3.0, conversation
    assert_hears(path, caller=True, agent=True)
    assert_asterisk_kept_nothing(service)


async def test_a_killed_service_does_not_record_an_adopted_declined_call(
    service: ServiceHarness,
) -> None:
    """Declined under consent; the route now records under a legal obligation; SIGKILL
    and restart: the adopted call is still the caller's declined one, and nothing is
    recorded (the route as it reads now would record it)."""
    service.start()
    agent = await sipp.start_agent(service.asterisk.agent_ports["100"], "answer", max_wait_s=120)
    caller = await sipp.start_caller(
        service.asterisk.sip_address, DID, CALLER, dtmf=[(2.0, "2")], hangup_after_s=50.0,
        max_wait_s=120.0,
    )
    await wait_for_log(service, ": recording none (")  # connected, decided: not recorded
    service.cli("route", "set", DID, "--legal-basis", "legal-obligation",
                "--announcement", "notice-only")

    call = await adopted_to_the_end(service, caller, agent)
    assert call["legal_basis"] == "consent" and call["disposition"] == "answered"
    assert call["consent"]["decision"] == "declined"
    assert recordings_of(call, "conversation") == []
    assert_asterisk_kept_nothing(service)


async def test_the_agent_pauses_the_recording_of_an_adopted_call(
    service: ServiceHarness,
) -> None:
    """SIGKILL and restart mid-call; then the agent's *5 and *6 (at 40 s and 46 s after
    answering, well after the adoption): the adopted call's recording is muted for that
    span, silence in the stored file between the parties' tones, and the pause is
    stored against that recording's row."""
    service.start()
    keys = [(40.0, "*"), (40.3, "5"), (46.0, "*"), (46.3, "6")]
    agent = await sipp.start_agent(service.asterisk.agent_ports["100"], "answer",
                                   dtmf=keys, max_wait_s=150)
    caller = await sipp.start_caller(
        service.asterisk.sip_address, DID, CALLER, dtmf=[(2.0, "1")], hangup_after_s=62.0,
        max_wait_s=150.0,
    )
    await wait_until_recording(service, timeout_s=40.0)
    call = await adopted_to_the_end(service, caller, agent)
    (conversation,) = recordings_of(call, "conversation")
    path = assert_intact(conversation)
    pauses = show(service, conversation["id"])["pauses"]
    assert len(pauses) == 1, (pauses, "adopted later than the agent's *5 at 40 s?")
    (pause,) = pauses
    assert (pause["paused_by"], pause["resumed_by"]) == ("agent:100", "agent:100")
    assert abs((pause["end_s"] - pause["start_s"]) - 6.0) < 1.0, pause
    samples, rate = soundfile.read(str(path), dtype="float64")
    # Judged well inside the span: the offsets count from the row's start, and a loaded
    # Asterisk writes a few per cent fewer frames than wall time.
    during = span(samples, rate, pause["start_s"] + 1.5, pause["end_s"] - 1.5)
    assert float(np.abs(during).max()) < SILENT
    assert tone_amplitude(during, rate, CALLER_TONE_HZ) < 1e-4
    assert tone_amplitude(span(samples, rate, pause["end_s"] + 2.0, pause["end_s"] + 5.0),
                          rate, CALLER_TONE_HZ) > 0.01  # recorded again after *6
    (paused,) = audit_actions(service, "recording.paused")
    assert paused[:2] == ("agent:100", f"recording:{conversation['id']}")
    assert_asterisk_kept_nothing(service)
