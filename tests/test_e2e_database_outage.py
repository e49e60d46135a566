"""The database goes away for a while (a real PostgreSQL behind a proxy the test cuts):
calls go on, callers are never cut off for it, and nothing is lost once it is back."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from database_fixtures import pg_database, pg_url
from e2e_harness import ServiceHarness, parse_time, recordings_of
from sqlalchemy.engine import make_url
from tcp_proxy import ThreadedProxy
from test_call_flow import CALLER, DID, assert_asterisk_kept_nothing, assert_hears, assert_intact

from pbx_bridge.sandbox import AsteriskSandbox, sipp

pytestmark = pytest.mark.asterisk

__all__ = ["pg_database", "pg_url"]  # fixtures, imported for pytest


@pytest.fixture
def proxied_service(
    asterisk: AsteriskSandbox, built_prompts: Path, tmp_path: Path, pg_url: str
) -> Iterator[tuple[ServiceHarness, ThreadedProxy]]:
    direct = make_url(pg_url)
    assert direct.host is not None and direct.port is not None
    with ThreadedProxy(direct.host, direct.port) as proxy:
        url = direct.set(port=proxy.port).render_as_string(hide_password=False)
        harness = ServiceHarness(asterisk, tmp_path, built_prompts, database_url=url)
        harness.cli("db", "upgrade")
        try:
            yield harness, proxy
        finally:
            harness.stop()


async def wait_for_log(service: ServiceHarness, pattern: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if re.search(pattern, service.log_text()):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{pattern!r} not in the log:\n{service.log_tail()}")


async def start_consenting_call(
    service: ServiceHarness, *, hangup_after_s: float
) -> tuple[sipp.SippProcess, sipp.SippProcess]:
    """An agent who answers and a caller who presses 1 at 2 s, both running meanwhile."""
    agent = await sipp.start_agent(service.asterisk.agent_ports["100"], "answer", max_wait_s=60)
    caller = await sipp.start_caller(
        service.asterisk.sip_address, DID, CALLER, dtmf=[(2.0, "1")],
        hangup_after_s=hangup_after_s, max_wait_s=60.0,
    )
    return agent, caller


async def test_a_call_that_ends_during_an_outage_is_closed_and_stored_after_it(
    proxied_service: tuple[ServiceHarness, ThreadedProxy],
) -> None:
    service, proxy = proxied_service
    service.start()
    pid = service.pid
    agent, caller = await start_consenting_call(service, hangup_after_s=16.0)
    await wait_for_log(service, r"recording \S+ started")  # consent given, recording
    await asyncio.sleep(2.0)

    await asyncio.to_thread(proxy.cut)
    caller_result = await caller.wait(timeout_s=60)  # hangs up while the database is away
    await agent.wait(timeout_s=30)
    await wait_for_log(service, "database unavailable")
    await asyncio.sleep(2.0)
    assert service.running() and service.pid == pid, "an outage must not stop the service"
    assert caller_result.answered and caller_result.hangup_by == "caller", caller_result

    restored_at = datetime.now(UTC)
    await asyncio.to_thread(proxy.restore)
    (call,) = await service.wait_for_calls(1, timeout_s=90)
    assert call["disposition"] == "answered"
    assert parse_time(call["ended_at"]) < restored_at  # the real end, written late
    assert "its end (answered) written after the database outage" in service.log_text()
    assert call["consent"]["decision"] == "granted"
    (conversation,) = recordings_of(call, "conversation")
    assert_hears(assert_intact(conversation), caller=True, agent=True)
    assert conversation["duration_s"] > 5.0  # recorded through the outage, not cut by it
    assert_asterisk_kept_nothing(service)
    assert "calls and recordings reconciled with Asterisk" in service.log_text()


async def test_a_caller_during_an_outage_goes_to_the_dialplan_fallback_unrecorded(
    proxied_service: tuple[ServiceHarness, ThreadedProxy],
) -> None:
    service, proxy = proxied_service
    asterisk = service.asterisk
    service.start()
    asterisk.cli("dialplan set global PBX_BRIDGE_FALLBACK_DIAL PJSIP/100")
    try:
        await asyncio.to_thread(proxy.cut)
        before = sorted(p.name for p in asterisk.recordings_dir.iterdir())
        agent = await sipp.start_agent(asterisk.agent_ports["100"], "answer", ring_s=0.5)
        result = await sipp.call(asterisk.sip_address, DID, CALLER, hangup_after_s=5.0)
        agent_result = await agent.wait(timeout_s=30)
        assert result.answered and result.hangup_by == "caller", result
        assert agent_result.answered, agent_result  # connected by the dialplan
        assert sorted(p.name for p in asterisk.recordings_dir.iterdir()) == before
        assert "caller handed to the dialplan fallback" in service.log_text()
    finally:
        asterisk.cli("dialplan set global PBX_BRIDGE_FALLBACK_DIAL \"\"")

    await asyncio.to_thread(proxy.restore)
    agent = await sipp.start_agent(asterisk.agent_ports["100"], "answer")
    result = await sipp.call(asterisk.sip_address, DID, CALLER, dtmf=[(2.0, "1")],
                             hangup_after_s=14.0)
    await agent.wait(timeout_s=30)
    assert result.answered, result
    (call,) = await service.wait_for_calls(1, timeout_s=60)  # the first never opened a row
    (conversation,) = recordings_of(call, "conversation")
    assert_hears(assert_intact(conversation), caller=True, agent=True)
    assert service.running()
