"""The admin's Ring groups screen (/admin/ring-groups) on SQLite and PostgreSQL, in-process
on the real users module and audit trail: a group made, changed and deleted through the
form as ``pbx-bridge group set|delete`` would, shown with its members in ring order, their
seconds, its strategy and the routes that ring it; bad input refused with the CLI's
message beside its field and what was typed kept; a group a route rings not deleted (the
route named); CSRF; only admin (403 for supervisor, dpo and auditor); in Turkish."""

from __future__ import annotations

import re

from database_fixtures import db_url, migrated_url, pg_database, sessions
from test_admin_console import Console, clean_pbx_env, field_error, input_value, web

from pbx_bridge.calls.models import RingGroup, Route

__all__ = ["clean_pbx_env", "db_url", "migrated_url", "pg_database", "sessions", "web"]

PAGE = "/admin/ring-groups"


def group_row(html: str, name: str) -> str:
    row = re.search(rf'<tr data-group="{name}">(.*?)</tr>', html, re.S)
    assert row is not None, f"no row for ring group {name}"
    return row.group(1)


def members_shown(row: str) -> list[str]:
    return re.findall(r'<li data-member="[^"]+">([^<]*)</li>', row)


async def test_the_form_creates_and_changes_a_group_shown_in_ring_order(web: Console) -> None:
    empty = await web.client.get(PAGE, headers=await web.signed_in())
    assert empty.status_code == 200 and "No ring groups yet." in empty.text
    assert f'action="{PAGE}"' in empty.text

    made = await web.post(PAGE, {"name": "sales", "members": "101:20, 100", "strategy": "order"})
    assert made.status_code == 303 and made.headers["location"] == f"{PAGE}?saved=sales"
    page = await web.client.get(made.headers["location"], headers=await web.signed_in())
    assert "Ring group sales saved: routes ring it with the target group:sales." in page.text
    row = group_row(page.text, "sales")
    # In the order typed; a member without seconds rings [call] ring_timeout_s.
    ring_s = web.settings.call.ring_timeout_s
    assert members_shown(row) == ["101: 20 s", f"100: {ring_s} s"]
    assert '<td data-field="strategy">in turn</td>' in row
    assert '<td data-field="rung-by">no route</td>' in row
    async with web.sessions() as session:
        stored = await session.get(RingGroup, "sales")
        assert stored is not None
        assert (stored.strategy, stored.members) == ("order", f"101:20,100:{ring_s}")
    (created,) = await web.entries("ring_group.created")
    assert created.actor == "user:ayse" and created.target == "ring_group:sales"

    # The edit link fills the form with what is stored.
    editing = await web.client.get(f"{PAGE}?edit=sales", headers=await web.signed_in())
    assert "Change a ring group" in editing.text
    assert input_value(editing.text, "members") == f"101:20,100:{ring_s}"
    assert '<option value="order" selected>order</option>' in editing.text

    changed = await web.post(PAGE, {"name": "sales", "members": "100:15,101:20",
                                    "strategy": "all"})
    assert changed.status_code == 303
    routed = await web.post("/admin/routes", {
        "did": "2125550100", "target": "group:sales", "prompt_timeout_s": "8"})
    assert routed.status_code == 303, routed.text
    page = await web.client.get(PAGE, headers=await web.signed_in())
    row = group_row(page.text, "sales")
    assert members_shown(row) == ["100: 15 s", "101: 20 s"]
    assert '<td data-field="strategy">all at once</td>' in row
    assert '<a href="/admin/routes?edit=2125550100#route-form">2125550100</a>' in row
    (change,) = await web.entries("ring_group.changed")
    assert change.actor == "user:ayse"


async def test_bad_input_is_refused_beside_its_field_with_the_clis_message(
    web: Console,
) -> None:
    await web.post(PAGE, {"name": "sales", "members": "100:15", "strategy": "all"})
    for data, field, message in [
        ({"name": "Sales!", "members": "100:15"}, "name",
         "invalid ring group name 'Sales!': use 1-58 lowercase letters, digits, _ or -"),
        ({"name": "support", "members": ""}, "members",
         "ring group support: --members is empty; name at least one extension"),
        ({"name": "sales", "members": "100:15,,101"}, "members",
         "ring group sales: --members '100:15,,101' has an empty entry (two commas?)"),
        ({"name": "sales", "members": "100:2"}, "members",
         "ring group sales: member 100 rings 2s; each member rings between 5 and 300 seconds"),
        ({"name": "sales", "members": "100:soon"}, "members",
         "ring group sales: member 100: 'soon' is not a number of seconds (e.g. 100:15)"),
        ({"name": "sales", "members": "1 0:15"}, "members",
         "ring group sales: member invalid extension '1 0'"),
        ({"name": "sales", "members": "100:15,100:20"}, "members",
         "ring group sales: extension 100 is a member twice"),
        ({"name": "sales", "members": "100:15", "strategy": "random"}, "strategy",
         "invalid strategy 'random': use one of all, order"),
    ]:
        refused = await web.post(PAGE, {"strategy": "all", **data})
        assert refused.status_code == 422, data
        assert message in field_error(refused.text, field), data
        assert f'aria-describedby="{field}-error"' in refused.text
        heading = "Change a ring group" if data["name"] == "sales" else "Add a ring group"
        assert heading in refused.text, data
        if field != "strategy":
            assert input_value(refused.text, field) == data[field].strip()  # kept as typed
    async with web.sessions() as session:
        stored = await session.get(RingGroup, "sales")
        assert stored is not None and stored.members == "100:15"  # nothing half-written
        assert await session.get(RingGroup, "support") is None
    assert await web.entries("ring_group.changed") == []

    headers, _ = await web.form()
    web.client.cookies.clear()
    forged = await web.client.post(PAGE, headers=headers, data={
        "name": "forged", "members": "100:15", "csrf_token": "forged"})
    assert forged.status_code == 403
    no_csrf = await web.client.post(f"{PAGE}/sales/delete", headers=headers, data={})
    assert no_csrf.status_code == 403
    async with web.sessions() as session:
        assert await session.get(RingGroup, "forged") is None
        assert await session.get(RingGroup, "sales") is not None


async def test_a_group_a_route_rings_is_not_deleted_and_the_route_is_named(
    web: Console,
) -> None:
    await web.post(PAGE, {"name": "sales", "members": "100:15,101:20", "strategy": "all"})
    await web.post("/admin/routes", {"did": "2125550100", "target": "group:sales",
                                     "prompt_timeout_s": "8"})
    in_use = await web.post(f"{PAGE}/sales/delete", {})
    assert in_use.status_code == 409
    assert ("ring group 'sales' is rung by route(s) 2125550100 and cannot be removed: "
            "give them another --target first") in field_error(in_use.text, "delete")
    async with web.sessions() as session:
        assert await session.get(RingGroup, "sales") is not None
    assert await web.entries("ring_group.deleted") == []

    await web.post("/admin/routes", {"did": "2125550100", "target": "100",
                                     "prompt_timeout_s": "8"})
    done = await web.post(f"{PAGE}/sales/delete", {})
    assert done.status_code == 303 and done.headers["location"] == f"{PAGE}?deleted=sales"
    page = await web.client.get(done.headers["location"], headers=await web.signed_in())
    assert "Ring group sales deleted." in page.text and 'data-group="sales"' not in page.text
    async with web.sessions() as session:
        assert await session.get(RingGroup, "sales") is None
        route = await session.get(Route, "2125550100")
        assert route is not None and route.target == "100"
    assert [e.actor for e in await web.entries("ring_group.deleted")] == ["user:ayse"]

    missing = await web.post(f"{PAGE}/sales/delete", {})
    assert missing.status_code == 404 and "no ring group 'sales'" in field_error(missing.text,
                                                                                 "delete")
    bad = await web.post(f"{PAGE}/Bad!/delete", {})
    assert bad.status_code == 422 and "invalid ring group name" in field_error(bad.text,
                                                                               "delete")


async def test_only_admin_reaches_the_screen_and_it_speaks_turkish(web: Console) -> None:
    await web.post(PAGE, {"name": "sales", "members": "100:15", "strategy": "all"})
    for user in ("selim", "deniz", "aydin"):
        cookie = await web.signed_in(user)
        assert (await web.client.get(PAGE, headers=cookie)).status_code == 403, user
        dashboard = await web.client.get("/dashboard", headers=cookie)
        assert f'href="{PAGE}"' not in dashboard.text
        made = await web.post(PAGE, {"name": "stolen", "members": "100:15"}, user=user)
        assert made.status_code == 403, user
        gone = await web.post(f"{PAGE}/sales/delete", {}, user=user)
        assert gone.status_code == 403, user
    async with web.sessions() as session:
        assert await session.get(RingGroup, "stolen") is None
        assert await session.get(RingGroup, "sales") is not None
    admin = await web.client.get("/dashboard", headers=await web.signed_in())
    assert f'<a href="{PAGE}">Ring groups</a>' in admin.text

    turkish = await web.client.get(PAGE, headers=await web.signed_in("aylin"))
    assert turkish.status_code == 200 and turkish.headers["content-language"] == "tr"
    assert "Çalma grubu ekle" in turkish.text
    assert '<td data-field="strategy">hepsi aynı anda</td>' in turkish.text  # noqa: RUF001
    assert '<li data-member="100">100: 15 sn</li>' in turkish.text
