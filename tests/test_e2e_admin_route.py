"""A route the admin makes in the console is the one the next real call takes: the real
service beside the sandboxed Asterisk, ``pbx-bridge web`` on the same database, an admin
signed in over HTTP who posts the routes form (with its CSRF token), then sipp calls.
First the route records (always): the consenting call is recorded; then the admin sets
it to never in the console: the next consenting call to that DID is connected, and not
recorded."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_harness import ServiceHarness, recordings_of
from web_harness import WebConsole

from pbx_bridge.sandbox import sipp

pytestmark = pytest.mark.asterisk

CALLER = "05321234567"
DID = "2125550140"
PASSWORD = "correct horse battery staple"


def _token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


async def _signed_in_admin(console: WebConsole) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=console.url, timeout=30)
    page = await client.get("/sign-in")
    signed = await client.post("/sign-in", data={
        "username": "ayse", "password": PASSWORD, "csrf_token": _token(page.text)})
    assert signed.status_code == 303, signed.text
    return client


async def _set_route(client: httpx.AsyncClient, recording: str) -> None:
    form = await client.get("/admin/routes")
    assert form.status_code == 200
    saved = await client.post("/admin/routes", data={
        "csrf_token": _token(form.text), "did": DID, "target": "101",
        "recording": recording, "announcement": "before-connect", "legal_basis": "consent",
        "retention_class": "default", "language": "tr", "timeout_means": "declined",
        "prompt_timeout_s": "3", "require_jurisdiction": ""})
    assert saved.status_code == 303, saved.text
    listed = await client.get(saved.headers["location"])
    row = re.search(rf'<tr data-did="{DID}">(.*?)</tr>', listed.text, re.S)
    assert row is not None and f'<td data-field="recording">{recording}</td>' in row.group(1)


async def _consenting_call(service: ServiceHarness, count: int) -> dict[str, Any]:
    agent = await sipp.start_agent(service.asterisk.agent_ports["101"], "answer", ring_s=0.5)
    result = await sipp.call(service.asterisk.sip_address, DID, CALLER, dtmf=[(2.0, "1")],
                             hangup_after_s=13.0)
    agent_result = await agent.wait(timeout_s=30)
    assert result.answered and agent_result.answered, (result, agent_result)
    calls = await service.wait_for_calls(count)
    return calls[0]  # newest first


async def test_a_route_set_to_never_in_the_console_stops_the_next_calls_recording(
    service: ServiceHarness, tmp_path: Path
) -> None:
    console = WebConsole(tmp_path / "web",
                         database_url=f"sqlite+aiosqlite:///{service.workdir}/pbx-bridge.db")
    console.cli("users", "add", "ayse", "--role", "admin", "--password-stdin",
                stdin=PASSWORD + "\n")
    console.start()
    service.start()
    client = await _signed_in_admin(console)
    try:
        await _set_route(client, "always")
        recorded = await _consenting_call(service, 1)
        assert recorded["did"] == DID and recorded["extension"] == "101"
        assert len(recordings_of(recorded, "conversation")) == 1

        await _set_route(client, "never")
        unrecorded = await _consenting_call(service, 2)
        assert unrecorded["id"] != recorded["id"]
        assert unrecorded["extension"] == "101" and unrecorded["disposition"] == "answered"
        consent = unrecorded["consent"]
        assert consent["decision"] == "granted"
        assert recordings_of(unrecorded, "conversation") == []
        assert "extension never records" in service.log_text()
    finally:
        await client.aclose()
        console.stop()
    trail = service.cli("audit", "list", "--target", "extension:101", "--json").stdout
    assert "user:ayse" in trail and "extension.created" in trail
    routes = service.cli("audit", "list", "--target", f"route:{DID}", "--json").stdout
    assert "user:ayse" in routes and "route.created" in routes
