""""My account" and the header's language switch in a real browser (Debian's chromium):
a user whose browser and own choice are Turkish switches to English on the account page
and the page, and the next ones, are in English; signed out, the sign-in page's switch
changes its language (a cookie) without an account. Screenshots under var/screenshots/."""

# ruff: noqa: RUF001  (Turkish words in the pages)

from __future__ import annotations

from collections.abc import Iterator

import pytest
from browser_fixtures import PHONE, browser, new_page, screenshot
from playwright.sync_api import Browser, expect
from web_harness import WebConsole, running_console

pytestmark = pytest.mark.browser

__all__ = ["browser"]  # a fixture, used by name

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebConsole]:
    with running_console(tmp_path_factory.mktemp("web"), password=PASSWORD,
                         users={"derya": ["--role", "dpo", "--language", "tr"]}) as console:
        yield console


def test_a_user_switches_to_english_on_the_account_page(
    browser: Browser, console: WebConsole
) -> None:
    page = new_page(browser, locale="tr-TR")
    page.goto(console.url + "/sign-in")
    page.get_by_label("Kullanıcı adı").fill("derya")
    page.get_by_label("Parola").fill(PASSWORD)
    page.get_by_role("button", name="Oturum aç").click()
    expect(page).to_have_url(console.url + "/dashboard")
    page.get_by_role("link", name="Hesabım").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Hesabım")
    expect(page.locator("html")).to_have_attribute("lang", "tr")
    screenshot(page, "account-tr")
    page.get_by_label("English").check()
    page.get_by_role("button", name="Dili kaydet").click()
    expect(page).to_have_url(console.url + "/account?done=language")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", level=1)).to_have_text("My account")
    expect(page.get_by_role("status")).to_have_text("Language saved.")
    expect(page.get_by_label("English")).to_be_checked()
    expect(page.get_by_role("heading", name="Your sessions")).to_be_visible()
    screenshot(page, "account-en")
    # The choice is the user's: the next page is English too, whatever the browser asks.
    page.get_by_role("link", name="Calls").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Calls")
    # Setting up an authenticator shows its QR code, drawn on the server.
    page.get_by_role("link", name="My account").click()
    page.get_by_role("button", name="Set up an authenticator app").click()
    expect(page.locator("svg.qr-code title")).to_have_text(
        "QR code of the authenticator set-up")
    box = page.locator("svg.qr-code").bounding_box()
    assert box is not None and box["width"] > 100
    expect(page.locator("#totp-uri")).to_contain_text("otpauth://totp/pbx-bridge:derya")
    screenshot(page, "account-totp-en")
    page.context.close()


def test_the_sign_in_page_switches_language_signed_out(
    browser: Browser, console: WebConsole
) -> None:
    page = new_page(browser, locale="tr-TR", viewport=PHONE)
    page.goto(console.url + "/sign-in")
    expect(page.get_by_role("heading", level=1)).to_have_text("Oturum aç")
    page.get_by_label("Dil").select_option("en")
    page.get_by_role("button", name="Değiştir").click()
    expect(page).to_have_url(console.url + "/sign-in")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.reload()  # the cookie keeps it
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    screenshot(page, "sign-in-switched-en-phone")
    page.context.close()
