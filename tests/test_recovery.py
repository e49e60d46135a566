"""Nothing is lost when Asterisk or the service goes away: real restarts, a real SIGKILL."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest
from e2e_harness import ServiceHarness, recordings_of
from test_call_flow import (
    CALLER,
    DID,
    assert_asterisk_kept_nothing,
    assert_hears,
    assert_intact,
)

from pbx_bridge.sandbox import sipp

pytestmark = pytest.mark.asterisk


async def wait_until_recording(service: ServiceHarness, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        calls = await asyncio.to_thread(service.calls)
        if any(recordings_of(c, "conversation") for c in calls):
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"no conversation recording began:\n{service.log_tail()}")


async def test_asterisk_restart_mid_call_then_next_call_works(service: ServiceHarness) -> None:
    """(h) Asterisk restarts under a live, recorded call: the service stays up, reconnects,
    closes the interrupted call, keeps what was recorded of it, and takes the next call."""
    service.start()
    pid = service.pid
    agent = await sipp.start_agent(service.asterisk.agent_ports["100"], "answer", max_wait_s=40)
    caller = await sipp.start_caller(
        service.asterisk.sip_address, DID, CALLER, dtmf=[(2.0, "1")], max_wait_s=40.0
    )
    await wait_until_recording(service)
    await asyncio.sleep(3.0)  # a few seconds of conversation on file

    await asyncio.to_thread(service.asterisk.restart)
    await asyncio.gather(caller.wait(timeout_s=60), agent.wait(timeout_s=60))
    await asyncio.to_thread(service.wait_ready)
    assert service.running() and service.pid == pid, "the service itself must not restart"

    agent = await sipp.start_agent(service.asterisk.agent_ports["100"], "answer")
    result = await sipp.call(
        service.asterisk.sip_address, DID, CALLER, dtmf=[(2.0, "1")], hangup_after_s=14.0
    )
    await agent.wait(timeout_s=20)
    assert result.answered and result.hangup_by == "caller", result

    first, second = sorted(await service.wait_for_calls(2), key=lambda c: c["started_at"])
    assert first["disposition"] == "answered"
    (interrupted,) = recordings_of(first, "conversation")
    assert_intact(interrupted)
    assert interrupted["duration_s"] > 2.0
    assert second["consent"]["decision"] == "granted"
    (conversation,) = recordings_of(second, "conversation")
    assert_hears(assert_intact(conversation), caller=True, agent=True)
    assert_asterisk_kept_nothing(service)
    assert "reconnected" in service.log_text()


async def test_sigkill_between_finished_and_stored_stores_once_after_restart(
    service: ServiceHarness,
) -> None:
    """(i) Killed right after a recording finished, before it was stored: the restart
    stores it, exactly once, and cleans Asterisk."""
    service.cli(
        "route", "set", "2125550131", "--announcement", "none",
        "--legal-basis", "legitimate-interest",
    )
    service.start(failpoints=["recording-finished"])
    agent = await sipp.start_agent(service.asterisk.agent_ports["100"], "answer", max_wait_s=60)
    result = await sipp.call(
        service.asterisk.sip_address, "2125550131", CALLER, hangup_after_s=8.0
    )
    assert result.answered, result
    exit_code = await asyncio.to_thread(service.wait_exit, 20.0)
    assert exit_code == -signal.SIGKILL

    (call,) = service.calls()
    (recording,) = call["recordings"]
    assert recording["status"] == "finished"  # committed as finished, not yet stored
    assert len(list(service.asterisk.recordings_dir.glob("*"))) == 1

    service.start()
    (call,) = await service.wait_for_calls(1)
    await agent.wait(timeout_s=30)  # its leftover leg is hung up by the resync
    (stored,) = recordings_of(call, "conversation")
    assert stored["id"] == recording["id"]
    assert_hears(assert_intact(stored), caller=True, agent=True)
    assert [p.name for p in service.recordings_path.rglob("*.wav")] == [f"{stored['id']}.wav"]
    assert call["disposition"] == "answered"
    assert call["consent"]["decision"] == "not-asked"
    assert_asterisk_kept_nothing(service)


async def test_asterisk_crash_mid_call_closes_the_call_and_keeps_its_audio(
    service: ServiceHarness,
) -> None:
    """Asterisk dies (SIGKILL) under a recorded call: no hangup event ever comes, so the
    resync must find the call's channels gone, close it, and still keep the recording."""
    service.start()
    agent = await sipp.start_agent(service.asterisk.agent_ports["100"], "answer", max_wait_s=20)
    caller = await sipp.start_caller(
        service.asterisk.sip_address, DID, CALLER, dtmf=[(2.0, "1")], max_wait_s=20.0
    )
    await wait_until_recording(service)
    await asyncio.sleep(3.0)

    service.asterisk.kill()
    await asyncio.to_thread(service.asterisk.start)
    await asyncio.to_thread(service.wait_ready)

    (call,) = await service.wait_for_calls(1)
    assert call["disposition"] == "answered"
    (interrupted,) = recordings_of(call, "conversation")
    path = assert_intact(interrupted)
    assert interrupted["duration_s"] > 2.0
    assert_hears(path, caller=True, agent=True)
    assert_asterisk_kept_nothing(service)
    await asyncio.gather(caller.stop(), agent.stop())
