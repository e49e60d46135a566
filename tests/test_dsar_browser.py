"""The DSAR register in a real browser: a real ``pbx-bridge web`` process, Debian's
chromium through Playwright. A dpo opens an access request from the register, runs it and
downloads the answer: the downloaded file is the report the CLI wrote, and the download
is in the audit trail under the dpo's name. Screenshots in var/screenshots/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_fixtures import browser, screenshot, sign_in
from playwright.sync_api import Browser, expect
from web_harness import WebConsole, running_console

pytestmark = pytest.mark.browser

__all__ = ["browser"]  # a fixture, used by name

PASSWORD = "correct horse battery staple"
CALLER = "05321234567"


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebConsole]:
    """A dpo, a supervisor, and two calls from the subject."""
    users = {"dilek": ["--role", "dpo", "--language", "en"],
             "selim": ["--role", "supervisor", "--extensions", "101"]}
    calls = [{"caller": CALLER}, {"caller": "+905321234567", "did": "2125550101"}]
    with running_console(tmp_path_factory.mktemp("web"), recorded=["101"], users=users,
                         password=PASSWORD, calls=calls) as console:
        yield console



def test_a_dpo_opens_runs_an_access_request_and_downloads_the_answer(
    browser: Browser, console: WebConsole, tmp_path: Path
) -> None:
    page = sign_in(browser, console, "dilek", PASSWORD, lands="/dashboard")
    page.get_by_role("link", name="Requests", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Data-subject requests")
    page.locator("#open-request").click()
    page.get_by_label("Subject's number").fill("0532 123 45 67")
    page.get_by_label("Type").select_option("access")
    page.get_by_label("Received by").select_option("email")
    page.get_by_label("Their reference").fill("mail-2026-11-30")
    page.locator("#open-submit").click()
    expect(page.locator("#notice")).to_have_text("The request is registered.")
    reference = page.get_by_role("heading", level=1).inner_text().split(" ")[0]
    assert reference.startswith("DSAR-")
    expect(page.locator("#request-status")).to_have_attribute("data-status", "open")
    expect(page.locator("#request-facts")).to_contain_text("+905321234567")
    expect(page.locator("#holdings")).to_contain_text("2")  # both calls, either spelling
    screenshot(page, "dsar-request-open-en")
    page.locator("#run-request").click()
    expect(page.locator("#notice")).to_have_text(
        "The request was carried out and is closed.")
    expect(page.locator("#request-status")).to_have_attribute("data-status", "done")
    with page.expect_download() as download_info:
        page.locator("#download-answer").click()
    download = download_info.value
    assert download.suggested_filename == f"{reference}-report.html"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    written = console.state / "exports" / reference / "report.html"
    assert saved.read_bytes() == written.read_bytes()  # the file `dsar run` writes
    assert reference in saved.read_text(encoding="utf-8")
    screenshot(page, "dsar-request-done-en")
    trail = console.cli("audit", "list", "--action", "dsar.answer-downloaded")
    assert "user:dilek" in trail and reference in trail
    page.get_by_role("link", name="Requests", exact=True).click()
    row = page.locator(f'tr[data-reference="{reference}"]')
    expect(row).to_contain_text("Done")
    screenshot(page, "dsar-register-en")
    page.context.close()


def test_a_supervisor_has_no_register(browser: Browser, console: WebConsole) -> None:
    page = sign_in(browser, console, "selim", PASSWORD, locale="tr-TR", lands="/dashboard")
    expect(page.get_by_role("link", name="Başvurular", exact=True)).to_have_count(0)
    answer = page.goto(console.url + "/dsar")
    assert answer is not None and answer.status == 403
    page.context.close()
