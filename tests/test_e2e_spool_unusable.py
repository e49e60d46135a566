"""The spool becomes unusable mid-call (its folder replaced by a regular file, as after a
failed mount or an admin's slip): a disk error, not a database outage. The caller is
connected and recorded as usual, the recordings wait in Asterisk, and once the spool is
back they are stored."""

from __future__ import annotations

import shutil

import pytest
from e2e_harness import ServiceHarness, recordings_of
from test_call_flow import assert_asterisk_kept_nothing, assert_hears, assert_intact
from test_e2e_database_outage import start_consenting_call, wait_for_log

pytestmark = pytest.mark.asterisk


async def test_an_unusable_spool_mid_call_keeps_the_caller_connected_and_loses_nothing(
    service: ServiceHarness,
) -> None:
    service.start()
    pid = service.pid
    agent, caller = await start_consenting_call(service, hangup_after_s=14.0)
    await wait_for_log(service, r"call \S+: inbound call from")  # in the disclosure
    shutil.rmtree(service.spool_path)
    service.spool_path.write_text("the spool is not a folder any more\n")

    caller_result = await caller.wait(timeout_s=60)
    agent_result = await agent.wait(timeout_s=30)
    assert caller_result.answered and caller_result.hangup_by == "caller", caller_result
    assert agent_result.answered, agent_result  # connected by the service, not the dialplan
    await wait_for_log(service, rf"spool folder {service.spool_path}: Not a directory")
    log = service.log_text()
    assert "kept in Asterisk, will retry" in log
    assert "database unavailable" not in log and "dialplan fallback" not in log
    # Waiting in Asterisk meanwhile: nothing given up, nothing stored yet.
    assert list(service.asterisk.recordings_dir.glob("*"))
    assert not any(r["status"] == "stored" for c in service.calls() for r in c["recordings"])

    service.spool_path.unlink()
    service.spool_path.mkdir()
    (call,) = await service.wait_for_calls(1, timeout_s=120)
    assert call["disposition"] == "answered"
    assert call["consent"]["decision"] == "granted"
    (conversation,) = recordings_of(call, "conversation")
    assert_hears(assert_intact(conversation), caller=True, agent=True)
    assert conversation["duration_s"] > 5.0
    (evidence,) = recordings_of(call, "evidence")
    assert_intact(evidence)
    assert_asterisk_kept_nothing(service)
    assert service.running() and service.pid == pid
