"""The audit trail in a real browser: an auditor signs in to a real ``pbx-bridge web``
process and lands on the trail, presses "Verify now", sees the chain verified, and after
one entry is changed in the database, sees where it breaks; in Turkish too."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from audit_fixtures import tamper
from browser_fixtures import browser, screenshot
from playwright.sync_api import Browser, expect
from test_web_signed_in import PASSWORD, sign_in
from web_harness import WebConsole, running_console

pytestmark = pytest.mark.browser

__all__ = ["browser"]  # a fixture, used by name

@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebConsole]:
    users = {"aydin": ["--role", "auditor", "--language", "en"],
             "denetci": ["--role", "auditor"]}
    with running_console(tmp_path_factory.mktemp("web"), recorded=["101"], users=users,
                         password=PASSWORD) as console:
        yield console


def _in_thread(console: WebConsole, *statements: str) -> None:
    # Playwright's sync API keeps a loop running in this thread.
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, tamper(console.database_url, *statements)).result()


def test_an_auditor_lands_on_the_trail_verifies_it_and_sees_a_tampered_entry(
    browser: Browser, console: WebConsole
) -> None:
    page = sign_in(browser, console, "aydin", locale="en-GB")
    expect(page).to_have_url(console.url + "/audit")  # the auditor's page after sign-in
    expect(page.get_by_role("heading", level=1)).to_have_text("Audit trail")
    expect(page.get_by_role("navigation").get_by_role("link")).to_have_text(["Audit trail"])
    state = page.locator("#chain-state")
    expect(state).to_contain_text("not been verified")
    # The sign-in itself is on the trail, its address masked for the auditor.
    signed_in = page.locator("#audit-trail tbody tr", has_text="auth.signed_in").first
    expect(signed_in).to_contain_text("user:aydin")
    expect(signed_in).to_contain_text("127.0.x.x")
    expect(signed_in).not_to_contain_text("127.0.0.1")
    page.get_by_role("button", name="Verify now").click()
    expect(page).to_have_url(console.url + "/audit#chain")
    expect(state).to_contain_text("Verified up to entry")
    expect(state).to_have_attribute("data-ok", "true")
    verified = page.locator("#audit-trail tbody tr", has_text="audit.verified")
    expect(verified).to_have_count(1)
    expect(verified).to_contain_text("user:aydin")
    screenshot(page, "audit-auditor-verified-en")
    # Filtering by action keeps the filter in the form and shows only those entries.
    page.get_by_label("Action").fill("auth.*")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_label("Action")).to_have_value("auth.*")
    actions = page.locator("#audit-trail tbody tr td:nth-child(4)").all_inner_texts()
    assert actions and all(action.startswith("auth.") for action in actions)
    # Someone with the database's rights changes the first entry; the next check names it.
    _in_thread(console, "UPDATE audit_log SET actor = 'cli:nobody' WHERE seq = 1")
    page.goto(console.url + "/audit")
    page.get_by_role("button", name="Verify now").click()
    expect(state).to_have_attribute("data-ok", "false")
    expect(state).to_contain_text("Broken at entry 1")
    expect(state).to_contain_text("entry 1 was changed")
    screenshot(page, "audit-auditor-broken-en")
    page.context.close()


def test_the_trail_in_turkish(browser: Browser, console: WebConsole) -> None:
    page = sign_in(browser, console, "denetci", locale="tr-TR")
    expect(page).to_have_url(console.url + "/audit")
    expect(page.get_by_role("heading", level=1)).to_have_text("Denetim kaydı")  # noqa: RUF001
    expect(page.get_by_role("button", name="Şimdi doğrula")).to_be_visible()
    expect(page.get_by_label("Yapan")).to_be_visible()
    screenshot(page, "audit-auditor-tr")
    page.context.close()
