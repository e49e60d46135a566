"""Listening in the browser: a real call through the sandboxed Asterisk and sipp (the
caller presses 1), stored by the real service; then a supervisor of the called extension
signs in to a real ``pbx-bridge web`` on the same database and storage, opens the call
page from the list and plays the recording in Debian's chromium. The media element's
time advances, the media request was answered 206, and the audit trail has the listen.

Sync tests only (Playwright's sync API holds an event loop in this thread): the async
call helpers run in a thread of their own.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from browser_fixtures import browser, play_until, screenshot
from browser_fixtures import sign_in as signed_in
from e2e_harness import ServiceHarness, recordings_of
from playwright.sync_api import Browser, Response, expect
from test_storage_e2e import place_consenting_call
from web_harness import SECRET_KEY, WebConsole

from pbx_bridge.sandbox import AsteriskSandbox

pytestmark = [pytest.mark.asterisk, pytest.mark.browser]

__all__ = ["browser"]  # fixture, used by name

PASSWORD = "correct horse battery"
T = TypeVar("T")


def in_thread(coroutine: Coroutine[Any, Any, T]) -> T:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@pytest.fixture
def called(
    asterisk: AsteriskSandbox, built_prompts: Path, tmp_path: Path
) -> Iterator[tuple[ServiceHarness, WebConsole, dict[str, Any]]]:
    """The service after one consenting call to extension 100, and the console on its
    config (same database, same recordings)."""
    console = WebConsole(tmp_path / "web")
    web = (f'[web]\nlisten = "127.0.0.1:{console.port}"\n'
           f'base_url = "{console.url}"\nsecret_key = "{SECRET_KEY}"\n')
    (tmp_path / "service").mkdir()
    service = ServiceHarness(asterisk, tmp_path / "service", built_prompts, extra_config=web)
    console.config_path = service.config_path
    service.cli("db", "upgrade")
    try:
        service.start()
        in_thread(place_consenting_call(service))
        (call,) = in_thread(service.wait_for_calls(1))
        for name, role, extensions in (("selim", "supervisor", "100"),
                                       ("other", "supervisor", "101"),
                                       ("ayse", "admin", None)):
            options = ["--extensions", extensions] if extensions else []
            if extensions == "101":
                console.cli("ext", "set", "101", "--recording", "always")
            console.cli("users", "add", name, "--role", role, "--password-stdin",
                        "--language", "en", *options, stdin=PASSWORD + "\n")
        console.start()
        yield service, console, call
    finally:
        console.stop()
        service.stop()


def sign_in(browser: Browser, console: WebConsole, name: str) -> Any:
    """Signed in (on the dashboard, the page after sign-in), then on the calls list."""
    page = signed_in(browser, console, name, PASSWORD, lands="/dashboard")
    page.goto(console.url + "/calls")
    return page


def test_a_supervisor_plays_the_recording_on_the_call_page(
    browser: Browser, called: tuple[ServiceHarness, WebConsole, dict[str, Any]]
) -> None:
    service, console, call = called
    (conversation,) = recordings_of(call, "conversation")
    assert conversation["status"] == "stored"
    page = sign_in(browser, console, "selim")
    page.locator(f'tr[data-call-id="{call["id"]}"] a').click()
    expect(page).to_have_url(console.url + f"/calls/{call['id']}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Call")
    expect(page.locator("#decision")).to_have_text(call["consent"]["decision"])
    expect(page.locator("#digit")).to_have_text("1")
    consent = call["consent"]
    expect(page.locator("#prompt-sha256")).to_have_text(consent["prompt_sha256"])
    expect(page.locator("#caller")).not_to_have_text(call["caller"])  # masked
    media: list[Response] = []
    page.on("response", lambda r: media.append(r) if "/media" in r.url else None)
    audio = page.locator(f'li[data-recording-id="{conversation["id"]}"] audio')
    expect(audio).to_have_attribute("preload", "none")
    assert media == []  # opening the page fetched no audio
    play_until(page, audio)
    screenshot(page, "call-page-playing-en")
    assert media and all(r.status == 206 for r in media), [(r.url, r.status) for r in media]
    assert all(r.url.endswith(f"/recordings/{conversation['id']}/media") for r in media)
    entries = json.loads(service.cli(
        "audit", "list", "--action", "recording.played", "--json"
    ).stdout)
    assert entries, "the listen is in the audit trail"
    assert {e["actor"] for e in entries} == {"user:selim"}
    assert {e["target"] for e in entries} == {f"recording:{conversation['id']}"}
    details = [e["details"] for e in entries]
    assert any(d["range"].startswith("0-") and d["status"] == 206 for d in details)
    assert all(d["via"] == "console" and d["call_id"] == call["id"] for d in details)
    page.reload()
    expect(page.locator('#audit-entries tr[data-action="recording.played"]').first
           ).to_contain_text("user:selim")
    page.context.close()

    # Another extension's supervisor: not in their list, 403 on the page and the media.
    other = sign_in(browser, console, "other")
    expect(other.locator(f'tr[data-call-id="{call["id"]}"]')).to_have_count(0)
    refused = other.goto(console.url + f"/calls/{call['id']}")
    assert refused is not None and refused.status == 403
    assert other.request.get(console.url + f"/recordings/{conversation['id']}/media"
                             ).status == 403
    other.context.close()
    # An admin cannot play a recording.
    admin = sign_in(browser, console, "ayse")
    assert admin.request.get(console.url + f"/recordings/{conversation['id']}/media",
                             headers={"Range": "bytes=0-"}).status == 403
    admin.context.close()
    after = json.loads(service.cli(
        "audit", "list", "--action", "recording.played", "--json"
    ).stdout)
    assert len(after) == len(entries)  # refusals play nothing
