"""The web console in a real browser (Debian's chromium through Playwright) against a
real ``pbx-bridge web`` process: sign-in page, languages, CSRF, escaping, keyboard."""

from __future__ import annotations

import httpx
import pytest
from browser_fixtures import PHONE, browser, new_page, screenshot
from playwright.sync_api import Browser, Page, expect
from web_harness import WebConsole, web_console

pytestmark = pytest.mark.browser

__all__ = ["browser", "web_console"]  # fixtures, used by name

SCRIPT = "<script>window.pwned = 1</script>"



def sign_in_page(browser: Browser, console: WebConsole, locale: str = "en-GB") -> Page:
    page = new_page(browser, locale=locale)
    page.goto(console.url + "/sign-in")
    return page


@pytest.mark.parametrize(
    ("locale", "heading", "skip_link", "lang"),
    [("tr-TR", "Oturum aç", "İçeriğe geç", "tr"), ("en-GB", "Sign in", "Skip to content", "en")],
)
def test_sign_in_page_renders_in_the_browsers_language(
    browser: Browser, web_console: WebConsole, locale: str, heading: str, skip_link: str,
    lang: str,
) -> None:
    for name, viewport in (("laptop", None), ("phone", PHONE)):
        page = new_page(browser, locale=locale, **({"viewport": viewport} if viewport else {}))
        page.goto(web_console.url + "/")
        expect(page).to_have_url(web_console.url + "/sign-in")
        expect(page.locator("html")).to_have_attribute("lang", lang)
        expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        # Every field has its label (the accessible name comes from <label for=...>).
        for field in ("username", "password", "totp"):
            expect(page.locator(f"#{field}")).to_have_accessible_name(
                page.locator(f"label[for={field}]").inner_text()
            )
        screenshot(page, f"sign-in-{lang}-{name}")
        # Keyboard: the first Tab reaches the skip link, Enter moves focus to the content.
        page.keyboard.press("Tab")
        expect(page.locator(":focus")).to_have_text(skip_link)
        page.keyboard.press("Enter")
        expect(page.locator("main")).to_be_focused()
        page.context.close()


def test_wrong_password_says_so_without_telling_which(
    browser: Browser, web_console: WebConsole
) -> None:
    page = sign_in_page(browser, web_console)
    page.get_by_label("User name").fill("nobody")
    page.get_by_label("Password").fill("wrong")
    with page.expect_response(web_console.url + "/sign-in") as answer:
        page.get_by_role("button", name="Sign in").click()
    assert answer.value.status == 401
    expect(page.get_by_role("alert")).to_have_text("Wrong user name or password.")
    expect(page.get_by_label("User name")).to_have_value("nobody")
    expect(page.get_by_label("Password")).to_have_value("")
    assert not any(c["name"] == "pbxb_session" for c in page.context.cookies())
    screenshot(page, "sign-in-wrong-password-en")
    page.context.close()


def test_a_form_without_this_browsers_csrf_token_is_refused(
    browser: Browser, web_console: WebConsole
) -> None:
    page = sign_in_page(browser, web_console)
    token = page.locator("#content input[name=csrf_token]").get_attribute("value")
    assert token
    form = {"username": "nobody", "password": "wrong"}
    url, english = web_console.url + "/sign-in", {"Accept-Language": "en"}
    # The browser's own cookies go along (page.request shares them); only the token differs.
    missing = page.request.post(url, form=form, headers=english)
    assert missing.status == 403 and "Form expired" in missing.text()
    forged = page.request.post(url, form={**form, "csrf_token": "x"})
    assert forged.status == 403
    # Another browser's valid token is no good with this browser's cookie.
    other = sign_in_page(browser, web_console)
    foreign = other.locator("#content input[name=csrf_token]").get_attribute("value")
    assert foreign and foreign != token
    refused = page.request.post(url, form={**form, "csrf_token": foreign})
    assert refused.status == 403
    # The form's own token passes the check (and the sign-in itself then fails: 401).
    accepted = page.request.post(url, form={**form, "csrf_token": token}, headers=english)
    assert accepted.status == 401 and "Wrong user name or password." in accepted.text()
    # Sign-out is a form too.
    assert page.request.post(web_console.url + "/sign-out").status == 403
    page.goto(web_console.url + "/sign-in")
    page.context.close()
    other.context.close()


def test_markup_typed_into_the_form_is_shown_as_text(
    browser: Browser, web_console: WebConsole
) -> None:
    page = sign_in_page(browser, web_console)
    page.get_by_label("User name").fill(SCRIPT + '"><b>bold</b>')
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_label("User name")).to_have_value(SCRIPT + '"><b>bold</b>')
    assert page.evaluate("window.pwned") is None
    assert page.locator("b").count() == 0
    page.context.close()


def test_cookies_and_security_headers(browser: Browser, web_console: WebConsole) -> None:
    page = new_page(browser)
    response = page.goto(web_console.url + "/sign-in")
    assert response is not None
    headers = response.headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "'unsafe-inline'" not in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    (cookie,) = page.context.cookies()
    assert cookie["name"] == "pbxb_csrf" and cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    # base_url is http here, so not Secure (an https base_url makes it __Host-... Secure).
    assert not cookie["secure"]
    page.context.close()


def test_pages_need_a_session_and_unknown_pages_say_not_found(
    browser: Browser, web_console: WebConsole
) -> None:
    page = new_page(browser, locale="tr-TR")
    page.goto(web_console.url + "/calls?since=2026-01-01")
    expect(page).to_have_url(web_console.url + "/sign-in?next=/calls%3Fsince%3D2026-01-01")
    missing = page.goto(web_console.url + "/no-such-page")
    assert missing is not None and missing.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Bulunamadı")  # noqa: RUF001 (Turkish)
    screenshot(page, "not-found-tr")
    page.context.close()


def test_the_api_answers_problem_json_and_publishes_its_openapi(web_console: WebConsole) -> None:
    unauthenticated = httpx.get(web_console.url + "/api/v1/calls")
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["content-type"] == "application/problem+json"
    assert unauthenticated.headers["www-authenticate"].startswith("Bearer")
    body = unauthenticated.json()
    assert body["status"] == 401 and body["title"] == "Unauthorized" and body["detail"]
    unknown = httpx.get(web_console.url + "/api/v1/calls", headers={"Authorization": "Bearer x"})
    assert unknown.status_code == 401 and "invalid_token" in unknown.headers["www-authenticate"]
    missing = httpx.get(web_console.url + "/api/v1/nothing")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    openapi = httpx.get(web_console.url + "/api/v1/openapi.json").json()
    assert "/api/v1/calls" in openapi["paths"] and "/sign-in" not in openapi["paths"]
    assert openapi["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    health = httpx.get(web_console.url + "/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok", "database": "ok"}
