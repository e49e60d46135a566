"""A route ringing a ring group in the admin's console and API (SQLite and PostgreSQL):
shown with its members and strategy, refused with the CLI's message where wrong."""

from __future__ import annotations

import re

from database_fixtures import db_url, migrated_url, pg_database, sessions
from test_admin_console import Console, clean_pbx_env, field_error, web

from pbx_bridge.calls.models import Extension, Route
from pbx_bridge.calls.ring_groups import Member, set_group
from pbx_bridge.config import RingStrategy

__all__ = ["clean_pbx_env", "db_url", "migrated_url", "pg_database", "sessions", "web"]

SALES = {"name": "sales", "strategy": "order",
         "members": [{"extension": "100", "ring_s": 15}, {"extension": "101", "ring_s": 20}]}


async def sales_group(web: Console) -> None:
    async with web.sessions() as session:
        await set_group(session, "sales", members=[Member("100", 15), Member("101", 20)],
                        strategy=RingStrategy.ORDER)
        await session.commit()


async def test_the_api_shows_a_routes_ring_group_and_refuses_what_cannot_be(
    web: Console,
) -> None:
    await sales_group(web)
    put = await web.client.put("/api/v1/routes/2125550100", headers=web.api(),
                               json={"target": "group:sales"})
    assert put.status_code == 200, put.text
    route = put.json()
    assert (route["target"], route["ring_group"], route["recording"]) == (
        "group:sales", SALES, None)
    assert (await web.client.get("/api/v1/routes/2125550100", headers=web.api())).json() == route
    assert (await web.client.get("/api/v1/routes", headers=web.api())).json() == [route]

    for body, field, message in [
        ({"target": "group:nobody"}, "target", "no ring group 'nobody'"),
        ({"target": "group:Bad!"}, "target", "invalid ring group name 'Bad!'"),
        ({"recording": "never"}, "recording",
         "route 2125550100 rings ring group sales: the member that answers records as its "
         "own policy says"),
    ]:
        refused = await web.client.put("/api/v1/routes/2125550100", headers=web.api(),
                                       json=body)
        assert refused.status_code == 422, body
        problem = refused.json()
        assert problem["field"] == field and message in problem["detail"], problem
    async with web.sessions() as session:
        assert await session.get(Extension, "100") is None  # no member's policy changed
        stored = await session.get(Route, "2125550100")
        assert stored is not None and stored.target == "group:sales"


async def test_the_routes_screen_shows_the_group_and_each_members_own_policy(
    web: Console,
) -> None:
    await sales_group(web)
    saved = await web.post("/admin/routes", {
        "did": "2125550100", "target": "group:sales", "recording": "never",
        "announcement": "before-connect", "legal_basis": "consent",
        "retention_class": "default", "language": "en", "timeout_means": "declined",
        "prompt_timeout_s": "8", "require_jurisdiction": ""})
    assert saved.status_code == 303, saved.text
    listed = await web.client.get(saved.headers["location"], headers=await web.signed_in())
    row = re.search(r'<tr data-did="2125550100">(.*?)</tr>', listed.text, re.S)
    assert row is not None
    assert "group:sales" in row.group(1)
    assert "(order: 100:15, 101:20)" in row.group(1)
    assert '<td data-field="recording">' in row.group(1)
    assert ("each member" in row.group(1)) or ("her üyenin" in row.group(1))
    async with web.sessions() as session:
        assert await session.get(Extension, "100") is None  # the form's mode is not applied

    unknown = await web.post("/admin/routes", {
        "did": "2125550100", "target": "group:nobody", "prompt_timeout_s": "8"})
    assert unknown.status_code == 422
    assert "no ring group 'nobody'" in field_error(unknown.text, "target")


async def test_ring_groups_api_sets_reads_refuses_and_deletes_as_the_cli(web: Console) -> None:
    put = await web.client.put("/api/v1/ring-groups/sales", headers=web.api(), json={
        "members": SALES["members"], "strategy": "order"})
    assert put.status_code == 200, put.text
    assert put.json() == {**SALES, "rung_by": []}
    routed = await web.client.put("/api/v1/routes/2125550100", headers=web.api(),
                                  json={"target": "group:sales"})
    assert routed.status_code == 200, routed.text
    shown = {**SALES, "rung_by": ["route(s) 2125550100"]}
    assert (await web.client.get("/api/v1/ring-groups/sales", headers=web.api())).json() == shown
    assert (await web.client.get("/api/v1/ring-groups", headers=web.api())).json() == [shown]
    (created,) = await web.entries("ring_group.created")
    assert created.actor.startswith("token:") and created.target == "ring_group:sales"

    for body, message in [
        ({"members": []}, "ring group sales: no members"),
        ({"members": [{"extension": "1 0", "ring_s": 15}]}, "member invalid extension '1 0'"),
        ({"members": [{"extension": "100", "ring_s": 1}]}, "each member rings between 5 and 300"),
        ({"members": [{"extension": "100", "ring_s": 15}, {"extension": "100", "ring_s": 20}]},
         "extension 100 is a member twice"),
    ]:
        refused = await web.client.put("/api/v1/ring-groups/sales", headers=web.api(),
                                       json=body)
        assert refused.status_code == 422, body
        problem = refused.json()
        assert problem["field"] == "members" and message in problem["detail"], problem
    new = await web.client.put("/api/v1/ring-groups/support", headers=web.api(), json={})
    assert new.status_code == 422 and "give its --members" in new.json()["detail"]
    bad = await web.client.get("/api/v1/ring-groups/Bad!", headers=web.api())
    assert bad.status_code == 422 and bad.json()["field"] == "name"
    assert (await web.client.get("/api/v1/ring-groups/nobody", headers=web.api())
            ).status_code == 404

    in_use = await web.client.delete("/api/v1/ring-groups/sales", headers=web.api())
    assert in_use.status_code == 409
    assert "rung by route(s) 2125550100" in in_use.json()["detail"]
    await web.client.put("/api/v1/routes/2125550100", headers=web.api(), json={"target": "100"})
    assert (await web.client.delete("/api/v1/ring-groups/sales", headers=web.api())
            ).status_code == 204
    assert (await web.client.get("/api/v1/ring-groups", headers=web.api())).json() == []
    assert (await web.client.delete("/api/v1/ring-groups/sales", headers=web.api())
            ).status_code == 404
