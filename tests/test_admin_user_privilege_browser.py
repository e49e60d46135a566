"""An admin cannot make someone who listens, in a real browser (chromium, against a real
``pbx-bridge web``): the admin edits a supervisor's extensions and is told the change
waits for a dpo (nothing changed yet); a token for the supervisor and making a dpo are
refused with root's command named (no token or password on the page); a dpo then
approves the change among the approvals waiting, and it is done. Screenshots
``admin-user-edit-waiting-en.png``, ``admin-token-refused-en.png``,
``admin-user-edit-dpo-refused-en.png`` and ``dsar-user-change-approved-en.png``."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from browser_fixtures import browser, screenshot
from playwright.sync_api import Browser, expect
from test_admin_browser import PASSWORD, sign_in
from web_harness import WebConsole

pytestmark = pytest.mark.browser

__all__ = ["browser"]  # a fixture, used by name


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebConsole]:
    console = WebConsole(tmp_path_factory.mktemp("web"))
    console.cli("db", "upgrade")
    for ext in ("101", "102"):
        console.cli("ext", "set", ext, "--recording", "always")
    for name, *role in (("ayse", "--role", "admin"), ("deniz", "--role", "dpo"),
                        ("selim", "--role", "supervisor", "--extensions", "101")):
        console.cli("users", "add", name, *role, "--password-stdin", "--language", "en",
                    stdin=PASSWORD + "\n")
    console.start()
    try:
        yield console
    finally:
        console.stop()


def extensions_of(console: WebConsole, name: str) -> list[str]:
    users = json.loads(console.cli("users", "list", "--json"))
    (user,) = [u for u in users if u["name"] == name]
    return list(user["extensions"])


def test_the_admin_asks_and_a_dpo_approves_a_supervisors_extensions(
    browser: Browser, console: WebConsole
) -> None:
    admin = sign_in(browser, console, "ayse", PASSWORD)
    admin.get_by_role("navigation").get_by_role("link", name="Users").click()
    admin.locator('tr[data-user="selim"]').get_by_role("link", name="Edit").click()
    expect(admin.get_by_role("heading", level=1)).to_have_text("Edit user selim")
    expect(admin.get_by_label("Extensions")).to_have_value("101")
    admin.get_by_label("Extensions").fill("101,102")
    admin.get_by_role("button", name="Save the user").click()
    expect(admin.get_by_role("status")).to_contain_text(
        "Nothing is changed yet: extension(s) 102 would show selim more calls: a dpo"
        " approves it.")
    waiting = admin.locator('#waiting-changes li[data-user="selim"]')
    expect(waiting).to_contain_text("change user selim: extensions 101,102")
    expect(admin.locator('tr[data-user="selim"]')).to_contain_text("101")
    assert extensions_of(console, "selim") == ["101"]
    screenshot(admin, "admin-user-edit-waiting-en")

    # A token that could listen: refused, root's command named, no bearer on the page.
    admin.get_by_role("navigation").get_by_role("link", name="API tokens").click()
    admin.get_by_label("User name").select_option("selim")
    admin.get_by_label("Scopes").fill("recordings.listen")
    admin.get_by_role("button", name="Make a token").click()
    expect(admin.get_by_role("alert")).to_contain_text(
        "selim is a supervisor: their tokens are made by root at the server:"
        " `pbx-bridge tokens create --user selim --scope ...`")
    expect(admin.locator("#new-token")).to_have_count(0)
    screenshot(admin, "admin-token-refused-en")

    # Making a dpo is root's: the refusal stands beside the role.
    admin.goto(console.url + "/admin/users/selim")
    admin.get_by_label("Role").select_option("dpo")
    admin.get_by_label("Extensions").fill("")
    admin.get_by_role("button", name="Save the user").click()
    expect(admin.locator("#role-error")).to_contain_text(
        "a dpo is made by root at the server: `pbx-bridge users set selim --role dpo`")
    expect(admin.get_by_label("Role")).to_have_attribute("aria-invalid", "true")
    screenshot(admin, "admin-user-edit-dpo-refused-en")

    # The dpo sees what waits and approves it; then it is done.
    dpo = sign_in(browser, console, "deniz", PASSWORD)
    dpo.get_by_role("navigation").get_by_role("link", name="Requests").click()
    row = dpo.locator("#approvals-table tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Give a user access to personal data")
    expect(row).to_contain_text("change user selim: extensions 101,102")
    expect(row).to_contain_text("user:ayse")
    row.get_by_role("button", name="Approve").click()
    expect(dpo.locator("#notice")).to_have_text("Approved, and done.")
    assert extensions_of(console, "selim") == ["101", "102"]
    screenshot(dpo, "dsar-user-change-approved-en")
    admin.goto(console.url + "/admin/users")
    expect(admin.locator("#waiting-changes")).to_have_count(0)
    expect(admin.locator('tr[data-user="selim"]')).to_contain_text("101,102")
