"""Debian's chromium driven by Playwright for the console's browser tests.

Never a downloaded browser: Playwright is pointed at /usr/bin/chromium (``make test``
installs Debian's package). A missing chromium fails the tests; they never skip.
Screenshots go to var/screenshots/ (git-ignored), which CI keeps as artifacts.

Import the fixtures by name into a test module (``from browser_fixtures import browser``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright
from web_harness import WebConsole

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parent.parent / "var" / "screenshots"
# A phone (portrait) and a laptop screen: the console must work on both.
PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1366, "height": 768}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Module, not session: Playwright's sync API keeps an event loop running in this
    # thread while it is open, and every later test's asyncio.run() would then fail
    # ("cannot be called from a running event loop"). A browser test module therefore
    # holds sync tests only.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Browser, *, locale: str = "en-GB", viewport: dict[str, int] = LAPTOP) -> Page:
    context = browser.new_context(locale=locale, viewport=viewport)  # type: ignore[arg-type]
    return context.new_page()


def sign_in(
    browser: Browser,
    console: WebConsole,
    name: str,
    password: str,
    *,
    locale: str = "en-GB",
    lands: str | None = None,
) -> Page:
    """A new page signed in through the sign-in form, as a person does it; with
    ``lands``, it must arrive there (a path: ``/dashboard``)."""
    page = new_page(browser, locale=locale)
    page.goto(console.url + "/sign-in")
    page.locator("#username").fill(name)
    page.locator("#password").fill(password)
    page.locator("form.stacked button[type=submit]").click()
    if lands is not None:
        expect(page).to_have_url(console.url + lands)
    return page


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def play_until(page: Page, audio: Locator, seconds: float = 0.5) -> None:
    """Press play on a media element (after a click in the page, a user gesture, so the
    browser allows it) and wait until its time has advanced past ``seconds``."""
    page.locator("h1").click()
    audio.evaluate("a => a.play()")
    page.wait_for_function(
        f"a => a.currentTime > {seconds}", arg=audio.element_handle(), timeout=20_000
    )
