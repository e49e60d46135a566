"""The admin's Outbound routes screen (/admin/outbound-routes) on SQLite and PostgreSQL,
in-process on the real users module and audit trail: a route made, changed and deleted
through the form as ``pbx-bridge outbound-route set|delete`` would, listed with the default
outbound route every other number takes; bad input refused with the CLI's message beside
its field and what was typed kept, nothing written; CSRF; only admin; in Turkish."""

from __future__ import annotations

import re

from database_fixtures import db_url, migrated_url, pg_database, sessions
from test_admin_console import Console, clean_pbx_env, field_error, input_value, web

from pbx_bridge.calls.models import OutboundRoute

__all__ = ["clean_pbx_env", "db_url", "migrated_url", "pg_database", "sessions", "web"]

PAGE = "/admin/outbound-routes"
UK = {"prefix": "+44", "announcement": "before-connect", "legal_basis": "consent",
      "retention_class": "default", "language": "en", "timeout_means": "declined",
      "prompt_timeout_s": "8", "dial_template": "PJSIP/{number}@uk"}


def route_row(html: str, prefix: str) -> list[str]:
    row = re.search(rf'<tr data-prefix="{re.escape(prefix)}">(.*?)</tr>', html, re.S)
    assert row is not None, f"no row for outbound route {prefix}"
    return [re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)][:8]


async def test_the_form_creates_changes_and_deletes_an_outbound_route(web: Console) -> None:
    empty = await web.client.get(PAGE, headers=await web.signed_in())
    assert empty.status_code == 200 and f'action="{PAGE}"' in empty.text
    default = re.search(r'<tr data-default="true">(.*?)</tr>', empty.text, re.S)
    assert default is not None and "(any other number)" in default.group(1)
    assert "notice-only" in default.group(1) and "legitimate-interest" in default.group(1)

    made = await web.post(PAGE, UK)
    assert made.status_code == 303 and made.headers["location"] == f"{PAGE}?saved=%2B44"
    page = await web.client.get(made.headers["location"], headers=await web.signed_in())
    assert "Outbound route +44 saved." in page.text
    assert route_row(page.text, "+44") == ["+44", "before-connect", "consent", "default", "en",
                                           "declined", "8 s", "PJSIP/{number}@uk"]
    async with web.sessions() as session:
        stored = await session.get(OutboundRoute, "+44")
        assert stored is not None and stored.dial_template == "PJSIP/{number}@uk"
    (created,) = await web.entries("outbound_route.created")
    assert created.actor == "user:ayse" and created.target == "outbound_route:+44"

    editing = await web.client.get(f"{PAGE}?edit=%2B44", headers=await web.signed_in())
    assert "Change an outbound route" in editing.text
    assert input_value(editing.text, "dial_template") == "PJSIP/{number}@uk"
    changed = await web.post(PAGE, {**UK, "dial_template": "", "language": "tr"})
    assert changed.status_code == 303
    page = await web.client.get(PAGE, headers=await web.signed_in())
    row = route_row(page.text, "+44")
    assert row[4] == "tr" and row[7] == (
        f"{web.settings.call.outbound_dial_template} (the default)")
    assert [e.actor for e in await web.entries("outbound_route.changed")] == ["user:ayse"]

    done = await web.post(f"{PAGE}/%2B44/delete", {})
    assert done.status_code == 303 and done.headers["location"] == f"{PAGE}?deleted=%2B44"
    page = await web.client.get(done.headers["location"], headers=await web.signed_in())
    assert "Outbound route +44 deleted" in page.text and 'data-prefix="+44"' not in page.text
    async with web.sessions() as session:
        assert await session.get(OutboundRoute, "+44") is None
    missing = await web.post(f"{PAGE}/%2B44/delete", {})
    assert missing.status_code == 404 and "no outbound route for prefix '+44'" in field_error(
        missing.text, "delete")
    bad = await web.post(f"{PAGE}/44x/delete", {})
    assert bad.status_code == 422 and "invalid outbound prefix" in field_error(bad.text,
                                                                               "delete")


async def test_bad_input_is_refused_beside_its_field_with_the_clis_message(
    web: Console,
) -> None:
    assert (await web.post(PAGE, UK)).status_code == 303
    for data, field, message in [
        ({"prefix": "44x"}, "prefix", "invalid outbound prefix '44x'"),
        ({"dial_template": "PJSIP/uk"}, "dial_template", "must contain {number}"),
        ({"prompt_timeout_s": "0"}, "prompt_timeout_s", "invalid prompt timeout 0s"),
        ({"prompt_timeout_s": "soon"}, "prompt_timeout_s", "invalid prompt timeout 'soon'"),
        ({"announcement": "on-connect"}, "form", "on-connect on an outbound route"),
        ({"announcement": "notice-only"}, "form", "nobody is asked"),
        ({"legal_basis": "whim"}, "legal_basis", "invalid legal basis 'whim'"),
        ({"retention_class": "nosuch"}, "retention_class", "unknown retention class 'nosuch'"),
    ]:
        refused = await web.post(PAGE, {**UK, **data})
        assert refused.status_code == 422, data
        heading = "Add an outbound route" if field == "prefix" else "Change an outbound route"
        assert heading in refused.text, data  # +44 exists: its change was refused
        assert message in field_error(refused.text, field), (data, refused.text)
        if field in ("prefix", "dial_template", "prompt_timeout_s"):
            assert input_value(refused.text, field) == data[field]  # kept as typed
    async with web.sessions() as session:
        stored = await session.get(OutboundRoute, "+44")
        assert stored is not None and stored.announcement == "before-connect"
        assert stored.dial_template == "PJSIP/{number}@uk"  # nothing half-written
        assert await session.get(OutboundRoute, "44x") is None
    assert await web.entries("outbound_route.changed") == []

    headers, _ = await web.form()
    web.client.cookies.clear()
    forged = await web.client.post(PAGE, headers=headers, data={**UK, "prefix": "0090",
                                                                 "csrf_token": "forged"})
    assert forged.status_code == 403
    async with web.sessions() as session:
        assert await session.get(OutboundRoute, "0090") is None


async def test_only_admin_reaches_the_screen_and_it_speaks_turkish(web: Console) -> None:
    assert (await web.post(PAGE, UK)).status_code == 303
    for user in ("selim", "deniz", "aydin"):
        cookie = await web.signed_in(user)
        assert (await web.client.get(PAGE, headers=cookie)).status_code == 403, user
        dashboard = await web.client.get("/dashboard", headers=cookie)
        assert f'href="{PAGE}"' not in dashboard.text
        made = await web.post(PAGE, {**UK, "prefix": "0090"}, user=user)
        assert made.status_code == 403, user
        gone = await web.post(f"{PAGE}/%2B44/delete", {}, user=user)
        assert gone.status_code == 403, user
    async with web.sessions() as session:
        assert await session.get(OutboundRoute, "0090") is None
        assert await session.get(OutboundRoute, "+44") is not None
    admin = await web.client.get("/dashboard", headers=await web.signed_in())
    assert f'<a href="{PAGE}">Outbound routes</a>' in admin.text

    turkish = await web.client.get(PAGE, headers=await web.signed_in("aylin"))
    assert turkish.status_code == 200 and turkish.headers["content-language"] == "tr"
    assert "Dış arama yönlendirmesi ekle" in turkish.text  # noqa: RUF001
    assert "(diğer tüm numaralar)" in turkish.text
