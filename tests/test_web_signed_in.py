"""Signed in, in a real browser: through the users module (argon2, sessions, lockout,
roles), what each role sees on the calls list and through the API."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from browser_fixtures import browser, new_page, screenshot
from browser_fixtures import sign_in as signed_in
from playwright.sync_api import Browser, Page, expect
from web_harness import WebConsole

pytestmark = pytest.mark.browser

__all__ = ["browser"]  # a fixture, used by name

PASSWORD = "correct horse battery staple"
SCRIPT = "<script>window.pwned = 1</script>"
MARKUP_DID = "<b>2125550199</b>"
USERS = {
    # name: (role, extra options)
    "dilek": ("dpo", ["--language", "en"]),
    "selim": ("supervisor", ["--extensions", "101", "--language", "tr"]),
    "ayse": ("admin", []),
    "kilit": ("dpo", []),
}


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebConsole]:
    """A console with four users and three calls: two to extension 101 (one whose caller
    ID is markup), one to 102."""
    console = WebConsole(tmp_path_factory.mktemp("web"))
    console.cli("db", "upgrade")
    for extension in ("101", "102"):
        console.cli("ext", "set", extension, "--recording", "always")
    for name, (role, options) in USERS.items():
        console.cli("users", "add", name, "--role", role, "--password-stdin", *options,
                    stdin=PASSWORD + "\n")
    console.add_calls(
        {"caller": "05321234567", "extension": "101"},
        {"caller": "+905441112233", "extension": "102"},
        {"caller": SCRIPT, "did": MARKUP_DID, "extension": "101"},
    )
    console.start()
    try:
        yield console
    finally:
        console.stop()


def sign_in(browser: Browser, console: WebConsole, name: str, *, locale: str = "en-GB",
            password: str = PASSWORD) -> Page:
    return signed_in(browser, console, name, password, locale=locale)


def table_rows(page: Page) -> list[list[str]]:
    return [
        [cell.strip() for cell in row.locator("td").all_inner_texts()]
        for row in page.locator("table.calls tbody tr").all()
    ]


def test_a_dpo_signs_in_and_sees_every_call_unmasked_in_their_own_language(
    browser: Browser, console: WebConsole
) -> None:
    # The browser asks for Turkish; the user chose English: the user's choice wins.
    page = sign_in(browser, console, "dilek", locale="tr-TR")
    expect(page).to_have_url(console.url + "/dashboard")  # the page after sign-in
    page.goto(console.url + "/calls")
    expect(page.get_by_role("heading", level=1)).to_have_text("Calls")
    expect(page.get_by_text("Signed in as dilek (dpo)")).to_be_visible()
    callers = sorted(row[1] for row in table_rows(page))
    assert callers == sorted(["05321234567", "+905441112233", SCRIPT])
    # The markup in the caller ID and the DID is text: nothing ran, no element was made.
    expect(page.get_by_role("cell", name=SCRIPT)).to_be_visible()
    expect(page.get_by_role("cell", name=MARKUP_DID)).to_be_visible()
    assert page.evaluate("window.pwned") is None
    assert page.locator("table.calls b").count() == 0
    expect(page.get_by_label("Caller number")).to_be_visible()
    screenshot(page, "calls-dpo-en")
    page.context.close()


def test_the_dashboard_after_sign_in_draws_both_charts_with_their_numbers(
    browser: Browser, console: WebConsole
) -> None:
    page = sign_in(browser, console, "selim", locale="en-GB")  # Turkish, by choice
    expect(page).to_have_url(console.url + "/dashboard")
    expect(page.get_by_role("heading", level=1)).to_have_text("Özet")
    expect(page.get_by_role("img", name="Günlük görüşmeler, son 30 gün")).to_be_visible()
    expect(page.get_by_role("img", name="Günlük rıza oranı, son 30 gün")).to_be_visible()  # noqa: RUF001
    expect(page.locator("#calls-window")).to_have_text("2")  # only extension 101's
    # The DID with markup is text in the per-route table.
    expect(page.get_by_role("rowheader", name=MARKUP_DID)).to_be_visible()
    assert page.locator("table.per-route b").count() == 0
    expect(page.locator(".dsar-badge")).to_have_count(0)
    screenshot(page, "dashboard-supervisor-tr")
    page.context.close()


def test_a_supervisor_sees_only_their_extensions_calls_masked(
    browser: Browser, console: WebConsole
) -> None:
    page = sign_in(browser, console, "selim", locale="en-GB")
    expect(page).to_have_url(console.url + "/dashboard")  # the page after sign-in
    page.goto(console.url + "/calls")
    expect(page.get_by_role("heading", level=1)).to_have_text("Görüşmeler")
    rows = table_rows(page)
    assert sorted(row[3] for row in rows) == ["101", "101"]
    assert "0532***4567" in [row[1] for row in rows]
    assert "05321234567" not in page.content() and "+905441112233" not in page.content()
    # No number filter for who may not see numbers, and asking for one is refused.
    assert page.locator("#number").count() == 0
    refused = page.goto(console.url + "/calls?number=05321234567")
    assert refused is not None and refused.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("İzin yok")
    screenshot(page, "calls-supervisor-tr")
    page.context.close()


def test_an_admin_may_not_list_calls(browser: Browser, console: WebConsole) -> None:
    page = sign_in(browser, console, "ayse")
    answer = page.goto(console.url + "/calls")
    assert answer is not None and answer.status == 403
    assert "0532" not in page.content()
    page.context.close()


def test_a_session_id_planted_before_sign_in_is_never_the_signed_in_one(
    browser: Browser, console: WebConsole
) -> None:
    page = new_page(browser)
    page.context.add_cookies([{"name": "pbxb_session", "value": "planted", "url": console.url}])
    page.goto(console.url + "/sign-in")
    page.locator("#username").fill("dilek")
    page.locator("#password").fill(PASSWORD)
    page.locator("form.stacked button[type=submit]").click()
    expect(page).to_have_url(console.url + "/dashboard")
    (session,) = [c for c in page.context.cookies() if c["name"] == "pbxb_session"]
    assert session["value"] != "planted" and session["httpOnly"]
    assert session["sameSite"] == "Lax"
    # Signing out ends the session on the server: its id, replayed, opens nothing.
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(console.url + "/sign-in?signed_out=true")
    expect(page.get_by_role("status")).to_have_text("You have signed out.")
    replay = new_page(browser)
    replay.context.add_cookies([{"name": "pbxb_session", "value": session["value"],
                                 "url": console.url}])
    replay.goto(console.url + "/calls")
    expect(replay).to_have_url(console.url + "/sign-in?next=/calls")
    page.context.close()
    replay.context.close()


def test_wrong_passwords_lock_the_account(browser: Browser, console: WebConsole) -> None:
    page = new_page(browser)
    for _ in range(5):
        page.goto(console.url + "/sign-in")
        page.locator("#username").fill("kilit")
        page.locator("#password").fill("not the password")
        page.locator("form.stacked button[type=submit]").click()
        expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("locked")
    # Now even the right password is refused, with the same message.
    page.locator("#password").fill(PASSWORD)
    page.locator("form.stacked button[type=submit]").click()
    expect(page.get_by_role("alert")).to_contain_text("locked")
    expect(page).to_have_url(console.url + "/sign-in")
    page.context.close()


def token_for(console: WebConsole, user: str, *scopes: str) -> str:
    args = [arg for scope in scopes for arg in ("--scope", scope)]
    return console.cli("tokens", "create", "--user", user, *args).strip().splitlines()[-1]


def api_calls(console: WebConsole, token: str, **params: str) -> httpx.Response:
    return httpx.get(console.url + "/api/v1/calls", params=params,
                     headers={"Authorization": f"Bearer {token}"})


def cli_calls(console: WebConsole, *options: str) -> list[dict[str, object]]:
    listed: list[dict[str, object]] = json.loads(console.cli("calls", "list", "--json", *options))
    return listed


def test_the_api_lists_what_calls_list_json_lists_for_the_tokens_role(
    console: WebConsole,
) -> None:
    dpo = token_for(console, "dilek", "calls.read", "numbers.unmask")
    assert api_calls(console, dpo).json() == cli_calls(console, "--unmasked")
    # A token's scopes narrow its user's role: without numbers.unmask, masked.
    narrow = token_for(console, "dilek", "calls.read")
    assert api_calls(console, narrow).json() == cli_calls(console)
    supervisor = token_for(console, "selim", "calls.read")
    assert api_calls(console, supervisor).json() == [
        call for call in cli_calls(console) if call["extension"] == "101"
    ]
    filtered = api_calls(console, dpo, number="+905321234567")
    assert [c["caller"] for c in filtered.json()] == ["05321234567"]
    refused = api_calls(console, supervisor, number="05321234567")
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    bad = api_calls(console, dpo, since="yesterday")
    assert bad.status_code == 422 and "since" in bad.json()["detail"]
    admin = token_for(console, "ayse", "routes.read")
    assert api_calls(console, admin).status_code == 403


def test_the_api_pages_by_cursor_like_calls_list(console: WebConsole) -> None:
    dpo = token_for(console, "dilek", "calls.read", "numbers.unmask")
    seen: list[object] = []
    params = {"limit": "1"}
    while True:
        page = api_calls(console, dpo, **params)
        assert page.status_code == 200 and len(page.json()) == 1
        seen.extend(call["id"] for call in page.json())
        following = page.headers.get("next-cursor")
        if following is None:
            break
        assert page.headers["link"].endswith('rel="next"')
        params = {"limit": "1", "cursor": following}
    assert seen == [call["id"] for call in cli_calls(console, "--unmasked")]
    # A cursor is signed with the filters it was made for.
    first = api_calls(console, dpo, limit="1")
    other = api_calls(console, dpo, limit="1", extension="101",
                      cursor=first.headers["next-cursor"])
    assert other.status_code == 422 and "cursor" in other.json()["detail"]
    assert api_calls(console, dpo, disposition="maybe").status_code == 422


def test_the_page_filters_pages_and_audits_who_saw_numbers(
    browser: Browser, console: WebConsole
) -> None:
    page = sign_in(browser, console, "dilek")
    page.goto(console.url + "/calls?limit=2")
    assert len(table_rows(page)) == 2
    page.get_by_role("link", name="Older calls").click()
    assert len(table_rows(page)) == 1
    page.get_by_label("Extension").fill("102")
    page.get_by_role("button", name="Apply").click()
    assert [row[1] for row in table_rows(page)] == ["+905441112233"]
    page.get_by_label("Disposition").select_option("busy")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_text("No calls match.")).to_be_visible()
    page.context.close()
    trail = console.cli("audit", "list", "--action", "calls.unmasked")
    assert "user:dilek" in trail
