"""The admin in a real browser (chromium, against a real ``pbx-bridge web``): signs in,
follows the header's links, adds a user (whose one-time password then signs them in)
and a route that never records (then in ``route list`` and the extension's policy in
``ext list``), with a refused value shown beside its field first; and a ring group (then in
``group list`` and the audit trail), a refused member's seconds shown beside Members first.
Screenshots ``admin-users-en.png``, ``admin-routes-en.png``, ``admin-route-error-en.png`` and
``admin-ring-groups-en.png``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from browser_fixtures import browser, screenshot, sign_in
from playwright.sync_api import Browser, expect
from web_harness import WebConsole, running_console

pytestmark = pytest.mark.browser

__all__ = ["browser"]  # a fixture, used by name

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebConsole]:
    with running_console(tmp_path_factory.mktemp("web"), recorded=["101"], password=PASSWORD,
                         users={"ayse": ["--role", "admin", "--language", "en"]}) as console:
        yield console


def test_the_admin_adds_a_user_and_a_route_in_the_browser(
    browser: Browser, console: WebConsole
) -> None:
    page = sign_in(browser, console, "ayse", PASSWORD, lands="/dashboard")
    navigation = page.get_by_role("navigation")
    navigation.get_by_role("link", name="Users").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Users")
    # An auditor is the admin's to add (a supervisor waits for a dpo:
    # test_admin_user_privilege_browser.py).
    page.get_by_label("User name").fill("kerem")
    page.get_by_label("Role").select_option("auditor")
    page.get_by_role("button", name="Add a user").click()
    password = page.get_by_label("Password of kerem").input_value()
    assert len(password) >= 12
    expect(page.locator('tr[data-user="kerem"]')).to_contain_text("auditor")
    screenshot(page, "admin-users-en")

    navigation.get_by_role("link", name="Routes", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Routes")
    form = page.locator("#route-form")
    form.get_by_label("DID (dialled number)").fill("2125550150")
    form.get_by_label("Target extension").fill("101")
    form.get_by_label("Recording", exact=True).select_option("never")
    form.get_by_label("Legal basis").select_option("legitimate-interest")
    form.get_by_label("Seconds to wait for a key").fill("90")
    form.get_by_role("button", name="Save").click()
    error = page.locator("#prompt_timeout_s-error")
    expect(error).to_have_text("invalid prompt timeout 90s: must be between 1 and 60")
    expect(form.get_by_label("Seconds to wait for a key")).to_have_value("90")
    screenshot(page, "admin-route-error-en")
    form.get_by_label("Seconds to wait for a key").fill("6")
    form.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Route 2125550150 saved.")
    row = page.locator('tr[data-did="2125550150"]')
    expect(row.locator('td[data-field="recording"]')).to_have_text("never")
    expect(row).to_contain_text("legitimate-interest")
    screenshot(page, "admin-routes-en")

    routes = console.cli("route", "list")
    assert "2125550150" in routes and "legitimate-interest" in routes
    extensions = console.cli("ext", "list")
    assert any(line.split()[:2] == ["101", "never"] for line in extensions.splitlines())
    trail = console.cli("audit", "list", "--target", "route:2125550150")
    assert "user:ayse" in trail and "route.created" in trail

    kerem = sign_in(browser, console, "kerem", password, lands="/audit")  # an auditor
    routes_link = kerem.get_by_role("navigation").get_by_role("link", name="Routes", exact=True)
    expect(routes_link).to_have_count(0)
    assert kerem.goto(console.url + "/admin/routes").status == 403  # type: ignore[union-attr]


def test_the_admin_makes_a_ring_group_in_the_browser(
    browser: Browser, console: WebConsole
) -> None:
    page = sign_in(browser, console, "ayse", PASSWORD, lands="/dashboard")
    page.get_by_role("navigation").get_by_role("link", name="Ring groups").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Ring groups")
    form = page.locator("#group-form")
    form.get_by_label("Group", exact=True).fill("sales")
    form.get_by_label("Members", exact=True).fill("100:15,101:2")
    form.get_by_label("Strategy", exact=True).select_option("order")
    form.get_by_role("button", name="Save").click()
    expect(page.locator("#members-error")).to_have_text(
        "ring group sales: member 101 rings 2s; each member rings between 5 and 300 seconds")
    expect(form.get_by_label("Members", exact=True)).to_have_value("100:15,101:2")
    form.get_by_label("Members", exact=True).fill("100:15,101:20")
    form.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text(
        "Ring group sales saved: routes ring it with the target group:sales.")
    row = page.locator('tr[data-group="sales"]')
    expect(row.locator("li[data-member]")).to_have_text(["100: 15 s", "101: 20 s"])
    expect(row.locator('td[data-field="strategy"]')).to_have_text("in turn")
    screenshot(page, "admin-ring-groups-en")

    groups = console.cli("group", "list")
    assert any(line.split()[:4] == ["sales", "order", "100:15,", "101:20"]
               for line in groups.splitlines()), groups
    trail = console.cli("audit", "list", "--target", "ring_group:sales")
    assert "user:ayse" in trail and "ring_group.created" in trail
