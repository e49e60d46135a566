"""A share link in the browser, after a real call: the caller presses 1 through the
sandboxed Asterisk and sipp, the real service stores the recording (the fixture of
test_call_page_browser.py). The extension's supervisor makes a link from the call page's
form in chromium; a fresh, signed-out browser opens it and the audio plays (the media
element's time advances, every media answer was 206); the supervisor revokes it on the
Shares page, and the recipient's page then answers 410 with its message. The calls list
renders in English and, after the user chose it, Turkish (screenshots of both).

Sync tests only (Playwright's sync API holds an event loop in this thread).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from browser_fixtures import browser, new_page, play_until, screenshot
from e2e_harness import ServiceHarness, recordings_of
from playwright.sync_api import Browser, Response, expect
from test_call_page_browser import called, sign_in
from web_harness import WebConsole

pytestmark = [pytest.mark.asterisk, pytest.mark.browser]

__all__ = ["browser", "called"]  # fixtures, used by name


def test_a_supervisor_shares_a_recording_it_plays_signed_out_and_revoked_is_410(
    browser: Browser, called: tuple[ServiceHarness, WebConsole, dict[str, Any]]
) -> None:
    service, console, call = called
    (conversation,) = recordings_of(call, "conversation")
    assert conversation["status"] == "stored"
    page = sign_in(browser, console, "selim")  # on the calls list, in English
    expect(page.get_by_role("heading", level=1)).to_have_text("Calls")
    expect(page.locator(f'tr[data-call-id="{call["id"]}"]')).to_have_count(1)
    screenshot(page, "calls-after-call-en")
    page.locator(f'tr[data-call-id="{call["id"]}"] a').click()
    expect(page).to_have_url(console.url + f"/calls/{call['id']}")

    # The share form of the conversation's recording, on the call page.
    item = page.locator(f'li[data-recording-id="{conversation["id"]}"]')
    form = item.locator("form.share-form")
    form.locator('input[name="expires_days"]').fill("2")
    form.locator('input[name="note"]').fill("for the insurer")
    with page.expect_response(console.url + f"/recordings/{conversation['id']}/share") as made:
        form.get_by_role("button", name="Share by link").click()
    assert made.value.status == 201
    url = page.locator("#new-share-url").input_value()
    assert url.startswith(console.url + "/s/")
    screenshot(page, "share-link-created-en")

    # A fresh browser, signed out: the page and its audio.
    recipient = new_page(browser)
    media: list[Response] = []
    recipient.on("response", lambda r: media.append(r) if r.url == url + "/media" else None)
    opened = recipient.goto(url)
    assert opened is not None and opened.status == 200
    assert not recipient.context.cookies() or all(
        c["name"] != "pbxb_session" for c in recipient.context.cookies())
    assert call["caller"] not in recipient.content() and "insurer" not in recipient.content()
    audio = recipient.locator("#shared-audio")
    expect(audio).to_have_attribute("preload", "none")
    play_until(recipient, audio)
    screenshot(recipient, "share-link-playing-en")
    assert media and all(r.status == 206 for r in media), [(r.url, r.status) for r in media]

    # The supervisor revokes it on the Shares page.
    page.goto(console.url + "/shares")
    (row,) = page.locator("#shares tbody tr").all()
    expect(row).to_have_attribute("data-state", "live")
    share_id = row.get_attribute("data-share-id")
    row.get_by_role("button", name="Revoke").click()
    expect(page).to_have_url(console.url + "/shares")
    expect(page.locator(f'tr[data-share-id="{share_id}"]')).to_have_attribute(
        "data-state", "revoked")

    # The recipient's page now says the link is gone, with 410; so does its audio.
    gone = recipient.goto(url)
    assert gone is not None and gone.status == 410
    expect(recipient.get_by_role("heading", level=1)).to_have_text("Link no longer valid")
    assert recipient.request.get(url + "/media", headers={"Range": "bytes=0-"}).status == 410
    screenshot(recipient, "share-link-revoked-en")
    recipient.context.close()

    trail = json.loads(service.cli("audit", "list", "--action", "share.*", "--json").stdout)
    actions = [e["action"] for e in trail]
    assert {"share.created", "share.revoked", "share.opened"} <= set(actions)
    opens = [e for e in trail if e["action"] == "share.opened"]
    assert {e["details"]["via"] for e in opens if e["outcome"] == "ok"} == {"page", "media"}
    assert any(e["outcome"] == "refused" for e in opens)  # the opens after the revoke
    assert all(e["actor"] == f"share:{share_id}" for e in opens)
    assert url.rsplit("/", 1)[1] not in json.dumps(trail)  # the token is in no entry

    # The same list in Turkish, once the user chose it.
    console.cli("users", "set", "selim", "--language", "tr")
    page.goto(console.url + "/calls")
    expect(page.locator("html")).to_have_attribute("lang", "tr")
    expect(page.get_by_role("heading", level=1)).to_have_text("Görüşmeler")
    expect(page.locator(f'tr[data-call-id="{call["id"]}"]')).to_have_count(1)
    screenshot(page, "calls-after-call-tr")
    page.context.close()
