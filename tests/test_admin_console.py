"""The admin's pages and API, in-process (ASGI through httpx) on the real users module, a
migrated database (SQLite and PostgreSQL) and the real audit trail: routes, extensions,
retention classes, users, tokens and storage. Each form's success and its errors (the
CLI's messages, beside the field, what was typed kept), CSRF refused, the API's problems
naming the field (422), 404 and 409, every change audited with the admin as actor, other
roles 403 everywhere, admin links only for admin, no caller's number anywhere, the
storage numbers equal to ``storage status --json``'s, and the pages in Turkish."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from audit_fixtures import entries_of
from cli_support import clean_pbx_env, cli
from console_clients import add_users_with_tokens, bearer_header, session_cookie
from database_fixtures import db_url, migrated_url, pg_database, sessions
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.calls.models import Call, Extension, Route
from pbx_bridge.config import Role, Settings
from pbx_bridge.sandbox.ports import free_ports
from pbx_bridge.users.console_accounts import UsersAccounts
from pbx_bridge.web import csrf
from pbx_bridge.web.app import create_app
from storage.models import AuditEntry, Recording, RecordingCopy

__all__ = ["clean_pbx_env", "db_url", "migrated_url", "pg_database", "sessions"]  # fixtures

PASSWORD = "correct horse battery"
SECRET = "test-secret-key-" + "0123456789abcdef" * 2
CALLER = "+905321234567"
USERS = [
    ("selim", Role.SUPERVISOR, ["101"], "en"),
    ("deniz", Role.DPO, [], "en"),
    ("ayse", Role.ADMIN, [], "en"),
    ("aylin", Role.ADMIN, [], "tr"),
    ("aydin", Role.AUDITOR, [], "en"),
]
ADMIN_PAGES = ["/admin/routes", "/admin/ring-groups", "/admin/outbound-routes",
               "/admin/extensions", "/admin/retention", "/admin/users", "/admin/tokens",
               "/admin/storage"]
ADMIN_APIS = ["/api/v1/routes", "/api/v1/routes/2125550100", "/api/v1/extensions",
              "/api/v1/extensions/101", "/api/v1/retention-classes", "/api/v1/storage",
              "/api/v1/outbound-routes"]


@dataclass
class Console:
    client: httpx.AsyncClient
    users: UsersAccounts
    sessions: async_sessionmaker[AsyncSession]
    bearer: dict[str, str]
    settings: Settings
    config_path: Path

    def api(self, user: str = "ayse") -> dict[str, str]:
        return bearer_header(self.bearer[user])

    async def signed_in(self, user: str = "ayse") -> dict[str, str]:
        return await session_cookie(self.users, user, PASSWORD)

    async def form(self, user: str = "ayse") -> tuple[dict[str, str], str]:
        """Headers of a signed-in browser with its CSRF cookie, and its forms' token."""
        cookie = await self.signed_in(user)
        session_id = cookie["Cookie"].split("=", 1)[1]
        nonce = csrf.new_nonce()
        headers = {"Cookie": f"pbxb_session={session_id}; pbxb_csrf={nonce}"}
        return headers, csrf.token_for(SECRET.encode(), nonce, session_id)

    async def post(self, path: str, data: dict[str, str], user: str = "ayse") -> httpx.Response:
        headers, token = await self.form(user)
        self.client.cookies.clear()
        return await self.client.post(path, data={**data, "csrf_token": token},
                                      headers=headers)

    async def entries(self, action: str) -> list[AuditEntry]:
        return await entries_of(self.sessions, action)


@pytest.fixture
async def web(
    sessions: async_sessionmaker[AsyncSession], migrated_url: str, tmp_path: Path
) -> AsyncIterator[Console]:
    (closed_port,) = free_ports(1)  # nothing listens there: an unreachable backend
    settings = Settings(
        auth={"argon2_time_cost": 1, "argon2_memory_kib": 8, "argon2_parallelism": 1},
        web={"secret_key": SECRET},
        database={"url": migrated_url},
        storage={
            "local": {"path": str(tmp_path / "recordings")},
            "spool_dir": str(tmp_path / "spool"),
            "backends": {"offsite": {"type": "ftp", "host": "127.0.0.1", "port": closed_port,
                                     "jurisdiction": "DE", "timeout_s": 3}},
        },
    )
    config_path = tmp_path / "pbx-bridge.toml"
    config_path.write_text(
        f'[database]\nurl = "{migrated_url}"\n\n[storage]\nspool_dir = "{tmp_path}/spool"\n'
        f'\n[storage.local]\npath = "{tmp_path}/recordings"\n', encoding="utf-8")
    users = await UsersAccounts.from_settings(settings, sessions)
    async with sessions() as session:
        bearer = await add_users_with_tokens(session, USERS, password=PASSWORD,
                                             auth=settings.auth)
        await session.execute(insert(Call), [{
            "id": "00000000-0000-4000-8000-000000000001", "linkedid": "l1",
            "channel_id": "c1", "direction": "inbound", "caller": CALLER, "did": "2125550100",
            "extension": "101", "announcement": "before-connect", "legal_basis": "consent",
            "retention_class": "default", "language": "tr"}])
        await session.execute(insert(Recording), [
            {"id": f"rec-{i}", "call_id": "00000000-0000-4000-8000-000000000001",
             "kind": "conversation", "legal_basis": "consent", "retention_class": "default",
             "status": status, "asterisk_name": f"rec-{i}", "retention_days": 30}
            for i, status in enumerate(["stored", "stored", "prepared", "failed"])])
        await session.execute(insert(RecordingCopy), [
            {"id": f"copy-{i}", "recording_id": f"rec-{i % 3}", "backend": backend,
             "key": f"k{i}", "status": status}
            for i, (backend, status) in enumerate([
                ("local", "verified"), ("local", "verified"), ("local", "pending"),
                ("offsite", "pending"), ("offsite", "dead"), ("offsite", "verified")])])
        await session.commit()
    app = create_app(settings, users, sessions)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8090"
    ) as client:
        yield Console(client, users, sessions, bearer, settings, config_path)
    await app.state.web.dashboard.close()


def field_error(html: str, field: str) -> str:
    found = re.search(rf'<p class="error" id="{field}-error" role="alert">([^<]*)</p>', html)
    assert found is not None, f"no error shown for {field}"
    return found.group(1).replace("&#39;", "'").replace("&#34;", '"')


def input_value(html: str, field: str) -> str:
    found = re.search(rf'<input id="{field}" name="{field}" type="text" value="([^"]*)"', html)
    assert found is not None, field
    return found.group(1)


# -- API ---------------------------------------------------------------------------------

async def test_routes_api_sets_reads_deletes_and_audits_with_the_token(web: Console) -> None:
    put = await web.client.put("/api/v1/routes/2125550100", headers=web.api(), json={
        "target": "102", "legal_basis": "legitimate-interest", "recording": "never",
        "prompt_timeout_s": 5, "require_jurisdiction": "tr"})
    assert put.status_code == 200, put.text
    route = put.json()
    assert route == {
        "did": "2125550100", "target": "102", "announcement": "before-connect",
        "legal_basis": "legitimate-interest", "retention_class": "default",
        "language": "tr", "timeout_means": "declined", "prompt_timeout_s": 5,
        "require_jurisdiction": "TR", "offer_withdrawal": False, "languages": [],
        "language_keys": [], "language_by_country": False, "recording": "never",
        "ring_group": None}
    assert (await web.client.get("/api/v1/routes/2125550100", headers=web.api())).json() == route
    assert (await web.client.get("/api/v1/routes", headers=web.api())).json() == [route]
    (created,) = await web.entries("route.created")
    token_actor = created.actor
    assert re.fullmatch(r"token:[0-9a-f-]{36}\(ayse\)", token_actor)
    assert json.loads(created.details)["changes"]["legal_basis"]["to"] == "legitimate-interest"
    (extension,) = await web.entries("extension.created")
    assert extension.actor == token_actor and extension.target == "extension:102"
    async with web.sessions() as session:
        row = await session.get(Extension, "102")
        assert row is not None and row.recording == "never"

    # Refused input: 422 naming the field, the CLI's message, nothing written.
    for body, field, message in [
        ({"prompt_timeout_s": 99}, "prompt_timeout_s", "invalid prompt timeout 99s"),
        ({"retention_class": "nosuch"}, "retention_class", "unknown retention class 'nosuch'"),
        ({"target": "1 0"}, "target", "invalid extension '1 0'"),
        ({"require_jurisdiction": "TRX"}, "require_jurisdiction", "two-letter country code"),
        ({"require_jurisdiction": "DE"}, "require_jurisdiction",
         "route 2125550100 requires DE, but storage target 'local' keeps recordings in TR"),
    ]:
        refused = await web.client.put("/api/v1/routes/2125550100", headers=web.api(),
                                       json=body)
        assert refused.status_code == 422, body
        assert refused.headers["content-type"] == "application/problem+json"
        problem = refused.json()
        assert problem["field"] == field and message in problem["detail"], problem
    bad_did = await web.client.put("/api/v1/routes/a%20b", headers=web.api(), json={})
    assert bad_did.status_code == 422 and bad_did.json()["field"] == "did"
    bad_enum = await web.client.put("/api/v1/routes/2125550100", headers=web.api(),
                                    json={"announcement": "loud"})
    assert bad_enum.status_code == 422 and "announcement" in bad_enum.json()["detail"]
    assert (await web.client.get("/api/v1/routes/2125550100", headers=web.api())).json() == route
    assert len(await web.entries("route.changed")) == 0

    deleted = await web.client.delete("/api/v1/routes/2125550100", headers=web.api())
    assert deleted.status_code == 204
    (gone,) = await web.entries("route.deleted")
    assert gone.actor == token_actor and json.loads(gone.details)["before"]["target"] == "102"
    for method in ("GET", "DELETE"):
        missing = await web.client.request(method, "/api/v1/routes/2125550100",
                                           headers=web.api())
        assert missing.status_code == 404 and missing.json()["status"] == 404


async def test_outbound_routes_api_sets_lists_deletes_and_audits(web: Console) -> None:
    put = await web.client.put("/api/v1/outbound-routes/+44", headers=web.api(), json={
        "announcement": "before-connect", "legal_basis": "consent", "language": "en",
        "dial_template": "PJSIP/{number}@uk"})
    assert put.status_code == 200, put.text
    route = put.json()
    assert route == {
        "prefix": "+44", "announcement": "before-connect", "legal_basis": "consent",
        "retention_class": "default", "language": "en", "timeout_means": "declined",
        "prompt_timeout_s": 8, "dial_template": "PJSIP/{number}@uk"}
    assert (await web.client.get("/api/v1/outbound-routes", headers=web.api())).json() == [
        route]
    one = await web.client.get("/api/v1/outbound-routes/+44", headers=web.api())
    assert one.status_code == 200 and one.json() == route
    (created,) = await web.entries("outbound_route.created")
    assert re.fullmatch(r"token:[0-9a-f-]{36}\(ayse\)", created.actor)
    assert created.target == "outbound_route:+44"
    for path, body, field, message in [
        ("+44", {"announcement": "notice-only"}, None, "nobody is asked"),
        ("+44", {"announcement": "on-connect"}, None, "on-connect on an outbound route"),
        ("+44", {"dial_template": "PJSIP/uk"}, "dial_template", "must contain {number}"),
        ("+44", {"retention_class": "nosuch"}, "retention_class", "unknown retention class"),
        ("+44", {"prompt_timeout_s": 0}, "prompt_timeout_s", "invalid prompt timeout 0s"),
        ("44x", {}, "prefix", "invalid outbound prefix '44x'"),
    ]:
        refused = await web.client.put(f"/api/v1/outbound-routes/{path}", headers=web.api(),
                                       json=body)
        assert refused.status_code == 422, (body, refused.text)
        problem = refused.json()
        assert problem.get("field") == field and message in problem["detail"], problem
    assert (await web.client.get("/api/v1/outbound-routes", headers=web.api())).json() == [
        route]  # nothing written by a refusal
    changed = await web.client.put("/api/v1/outbound-routes/+44", headers=web.api(),
                                   json={"dial_template": ""})  # back to the default
    assert changed.status_code == 200 and changed.json()["dial_template"] is None
    route["dial_template"] = None
    (change,) = await web.entries("outbound_route.changed")
    assert change.target == "outbound_route:+44"
    for user in ("selim", "deniz", "aydin"):
        denied = await web.client.put("/api/v1/outbound-routes/+1", headers=web.api(user),
                                      json={})
        assert denied.status_code == 403, user
    deleted = await web.client.delete("/api/v1/outbound-routes/+44", headers=web.api())
    assert deleted.status_code == 204
    assert len(await web.entries("outbound_route.deleted")) == 1
    missing = await web.client.delete("/api/v1/outbound-routes/+44", headers=web.api())
    assert missing.status_code == 404 and "no outbound route" in missing.json()["detail"]
    gone = await web.client.get("/api/v1/outbound-routes/+44", headers=web.api())
    assert gone.status_code == 404
    bad = await web.client.get("/api/v1/outbound-routes/44x", headers=web.api())
    assert bad.status_code == 422 and bad.json()["field"] == "prefix"


async def test_extensions_and_retention_classes_api(web: Console) -> None:
    put = await web.client.put("/api/v1/extensions/103", headers=web.api(),
                               json={"recording": "on-demand"})
    assert put.status_code == 200
    no_cells = dict.fromkeys(("inbound_internal", "inbound_external", "outbound_internal",
                              "outbound_external"))
    assert put.json() == {"number": "103", "recording": "on-demand", "retention_class": None,
                          **no_cells}
    listed = await web.client.get("/api/v1/extensions", headers=web.api())
    assert listed.json() == [put.json()]
    # A cell given is set, null follows ``recording`` again, and a cell left out is kept.
    cell = await web.client.put("/api/v1/extensions/103", headers=web.api(),
                                json={"recording": "on-demand", "outbound_external": "never",
                                      "inbound_internal": "always"})
    assert cell.status_code == 200
    assert cell.json() == {**put.json(), "outbound_external": "never",
                           "inbound_internal": "always"}
    kept = await web.client.put("/api/v1/extensions/103", headers=web.api(),
                                json={"recording": "always", "inbound_internal": None})
    assert kept.json() == {**put.json(), "recording": "always", "outbound_external": "never"}
    bad_cell = await web.client.put("/api/v1/extensions/103", headers=web.api(),
                                    json={"recording": "always", "outbound_external": "often"})
    assert bad_cell.status_code == 422
    await web.client.put("/api/v1/extensions/103", headers=web.api(),
                         json={"recording": "on-demand", "outbound_external": None})
    assert (await web.client.get("/api/v1/extensions/999", headers=web.api())).status_code == 404
    unknown = await web.client.put("/api/v1/extensions/103", headers=web.api(),
                                   json={"recording": "never", "retention_class": "nosuch"})
    assert unknown.status_code == 422 and unknown.json()["field"] == "retention_class"
    bad = await web.client.put("/api/v1/extensions/1%200", headers=web.api(),
                               json={"recording": "never"})
    assert bad.status_code == 422 and bad.json()["field"] == "number"

    made = await web.client.put("/api/v1/retention-classes/sales", headers=web.api(),
                                json={"days": 365})
    assert made.json() == {"name": "sales", "days": 365, "source": "database"}
    classes = (await web.client.get("/api/v1/retention-classes", headers=web.api())).json()
    assert classes == [{"name": "default", "days": 60, "source": "config"}, made.json()]
    for days in (-1, 36501):
        refused = await web.client.put("/api/v1/retention-classes/sales", headers=web.api(),
                                       json={"days": days})
        assert refused.status_code == 422 and "days" in refused.json()["detail"]
    bad_name = await web.client.put("/api/v1/retention-classes/Sales!", headers=web.api(),
                                    json={"days": 3})
    assert bad_name.status_code == 422 and bad_name.json()["field"] == "name"

    await web.client.put("/api/v1/routes/2125550100", headers=web.api(),
                         json={"retention_class": "sales"})
    in_use = await web.client.delete("/api/v1/retention-classes/sales", headers=web.api())
    assert in_use.status_code == 409
    assert "route(s) 2125550100" in in_use.json()["detail"]
    default = await web.client.delete("/api/v1/retention-classes/default", headers=web.api())
    assert default.status_code == 409 and "built-in default" in default.json()["detail"]
    await web.client.put("/api/v1/routes/2125550100", headers=web.api(),
                         json={"retention_class": "default"})
    assert (await web.client.delete("/api/v1/retention-classes/sales",
                                    headers=web.api())).status_code == 204
    assert (await web.client.delete("/api/v1/retention-classes/sales",
                                    headers=web.api())).status_code == 404
    actions = [e.action for e in await web.entries("retention.created")
               + await web.entries("retention.deleted")]
    assert actions == ["retention.created", "retention.deleted"]


async def test_storage_api_and_page_show_the_numbers_of_storage_status_json(
    web: Console,
) -> None:
    # storage status exits 1 here (a dead copy, a failed recording): it still prints.
    printed = await asyncio.to_thread(cli, web.config_path, "storage", "status", "--json")
    expected = json.loads(printed.stdout)
    answer = await web.client.get("/api/v1/storage", headers=web.api())
    assert answer.status_code == 200
    storage = answer.json()
    assert {k: v for k, v in storage.items() if k != "backends"} == expected
    by_name = {b["name"]: b for b in storage["backends"]}
    assert list(by_name) == ["local", "offsite"]
    local, offsite = by_name["local"], by_name["offsite"]
    assert local["reachable"] and local["jurisdiction"] == "TR" and local["target"]
    assert not offsite["reachable"] and offsite["problem"] and offsite["jurisdiction"] == "DE"
    for name, backend in by_name.items():
        for state in ("pending", "verified", "dead"):
            assert backend["copies"][state] == expected["copies"][name].get(state, 0)
    page = await web.client.get("/admin/storage", headers=await web.signed_in())
    assert page.status_code == 200
    for name in ("local", "offsite"):
        row = re.search(rf'<tr data-backend="{name}" data-reachable="(\w+)">(.*?)</tr>',
                        page.text, re.S)
        assert row is not None
        assert row.group(1) == ("yes" if name == "local" else "no")
        for state in ("pending", "verified", "dead"):
            cell = re.search(rf'data-state="{state}">(\d+)<', row.group(2))
            assert cell is not None
            assert int(cell.group(1)) == expected["copies"][name].get(state, 0)


async def test_other_roles_get_403_and_see_no_admin_links(web: Console) -> None:
    for user in ("selim", "deniz", "aydin"):
        for path in ADMIN_APIS:
            assert (await web.client.get(path, headers=web.api(user))).status_code == 403
        put = await web.client.put("/api/v1/routes/2125550100", headers=web.api(user),
                                   json={"target": "102"})
        assert put.status_code == 403
        cookie = await web.signed_in(user)
        for path in ADMIN_PAGES:
            page = await web.client.get(path, headers=cookie)
            assert page.status_code == 403, (user, path)
        dashboard = await web.client.get("/dashboard", headers=cookie)
        assert "/admin/" not in dashboard.text
        refused = await web.post("/admin/routes", {"did": "2125550199"}, user=user)
        assert refused.status_code == 403
    async with web.sessions() as session:
        assert await session.get(Route, "2125550199") is None
    dashboard = await web.client.get("/dashboard", headers=await web.signed_in())
    for path in ADMIN_PAGES:
        assert f'href="{path}"' in dashboard.text


async def test_no_callers_number_on_any_admin_page_or_api(web: Console) -> None:
    cookie = await web.signed_in()
    digits = CALLER.removeprefix("+90")
    for path in ADMIN_PAGES:
        page = await web.client.get(path, headers=cookie)
        assert page.status_code == 200 and digits not in page.text, path
        assert digits[-4:] not in page.text.replace("2125550100", ""), path
    for path in ADMIN_APIS:
        assert digits not in (await web.client.get(path, headers=web.api())).text


# -- forms -------------------------------------------------------------------------------

async def test_route_form_saves_shows_errors_beside_fields_and_deletes(web: Console) -> None:
    page = await web.client.get("/admin/routes", headers=await web.signed_in())
    assert page.status_code == 200 and 'action="/admin/routes"' in page.text
    saved = await web.post("/admin/routes", {
        "did": "2125550100", "target": "102", "recording": "never",
        "announcement": "notice-only", "legal_basis": "legal-obligation",
        "retention_class": "default", "language": "en", "timeout_means": "declined",
        "prompt_timeout_s": "8", "require_jurisdiction": ""})
    assert saved.status_code == 303 and saved.headers["location"].startswith("/admin/routes")
    listed = await web.client.get(saved.headers["location"], headers=await web.signed_in())
    assert "Route 2125550100 saved." in listed.text
    row = re.search(r'<tr data-did="2125550100">(.*?)</tr>', listed.text, re.S)
    assert row is not None and "notice-only" in row.group(1) and "legal-obligation" in row.group(1)
    assert '<td data-field="recording">never</td>' in row.group(1)
    async with web.sessions() as session:
        route = await session.get(Route, "2125550100")
        ext = await session.get(Extension, "102")
        assert route is not None and route.target == "102" and route.language == "en"
        assert ext is not None and ext.recording == "never"
    (created,) = await web.entries("route.created")
    assert created.actor == "user:ayse"
    assert [e.actor for e in await web.entries("extension.created")] == ["user:ayse"]

    for data, field, message in [
        ({"prompt_timeout_s": "99"}, "prompt_timeout_s",
         "invalid prompt timeout 99s: must be between 1 and 60"),
        ({"prompt_timeout_s": "soon"}, "prompt_timeout_s",
         "invalid prompt timeout 'soon': a whole number"),
        ({"retention_class": "nosuch"}, "retention_class",
         "unknown retention class 'nosuch': create it with `pbx-bridge retention set nosuch "
         "DAYS` (see `pbx-bridge retention list`)"),
        ({"did": "21 25"}, "did", "invalid DID '21 25': use 1-64 letters, digits or _ + * # -"),
        ({"target": "1/2"}, "target",
         "invalid extension '1/2': use 1-64 letters, digits or _ + * # -"),
        ({"require_jurisdiction": "DE"}, "require_jurisdiction",
         "route 2125550100 requires DE, but storage target 'local' keeps recordings in TR"),
        ({"announcement": "loud"}, "announcement", "invalid announcement 'loud'"),
    ]:
        refused = await web.post("/admin/routes", {
            "did": "2125550100", "target": "102", "prompt_timeout_s": "8", **data})
        assert refused.status_code == 422, data
        assert message in field_error(refused.text, field), data
        if field in ("prompt_timeout_s", "did", "target", "require_jurisdiction"):
            assert input_value(refused.text, field) == data[field]  # what was typed, kept
        assert f'aria-describedby="{field}-error"' in refused.text
    assert await web.entries("route.changed") == []

    headers, _ = await web.form()
    web.client.cookies.clear()
    no_csrf = await web.client.post("/admin/routes/2125550100/delete", data={},
                                    headers=headers)
    assert no_csrf.status_code == 403
    forged = await web.client.post("/admin/routes", headers=headers, data={
        "did": "2125550177", "csrf_token": "forged"})
    assert forged.status_code == 403
    deleted = await web.post("/admin/routes/2125550100/delete", {})
    assert deleted.status_code == 303
    async with web.sessions() as session:
        assert await session.get(Route, "2125550100") is None
        assert await session.get(Route, "2125550177") is None
    assert [e.actor for e in await web.entries("route.deleted")] == ["user:ayse"]
    for bad in ("a%00b", "%2e%2e", "1'%20OR%201=1"):  # refused before any query
        refused = await web.post(f"/admin/routes/{bad}/delete", {})
        assert refused.status_code == 422 and "invalid DID" in field_error(refused.text,
                                                                            "delete")
    missing = await web.post("/admin/routes/2125550100/delete", {})
    assert missing.status_code == 404 and "no route for DID" in field_error(missing.text,
                                                                            "delete")


async def test_extension_and_retention_forms(web: Console) -> None:
    saved = await web.post("/admin/extensions", {"number": "104", "recording": "on-demand"})
    assert saved.status_code == 303
    page = await web.client.get(saved.headers["location"], headers=await web.signed_in())
    assert '<tr data-extension="104">' in page.text and "Extension 104 saved." in page.text
    refused = await web.post("/admin/extensions", {"number": "104", "recording": "sometimes"})
    assert refused.status_code == 422
    assert "invalid recording 'sometimes'" in field_error(refused.text, "recording")
    unknown = await web.post("/admin/extensions", {"number": "104", "recording": "never",
                                                   "retention_class": "gold"})
    assert "unknown retention class 'gold'" in field_error(unknown.text, "retention_class")
    bad = await web.post("/admin/extensions", {"number": "10 4", "recording": "never"})
    assert "invalid extension '10 4'" in field_error(bad.text, "number")
    assert [e.actor for e in await web.entries("extension.created")] == ["user:ayse"]
    # The policy per direction and scope: a blank cell follows Recording.
    celled = await web.post("/admin/extensions", {"number": "104", "recording": "on-demand",
                                                  "outbound_external": "never"})
    assert celled.status_code == 303
    page = await web.client.get("/admin/extensions?edit=104", headers=await web.signed_in())
    assert '<td data-field="outbound_external">never</td>' in page.text
    assert '<td data-field="inbound_external">(on-demand)</td>' in page.text
    assert '<option value="never" selected>never</option>' in page.text.split(
        'id="outbound_external"')[1].split("</select>")[0]
    bad_cell = await web.post("/admin/extensions", {"number": "104", "recording": "never",
                                                    "outbound_external": "often"})
    assert "invalid outbound external 'often'" in field_error(bad_cell.text,
                                                                "outbound_external")

    made = await web.post("/admin/retention", {"name": "gold", "days": "730"})
    assert made.status_code == 303
    for data, field, message in [
        ({"name": "gold", "days": "-5"}, "days",
         "invalid retention period -5 days: must be between 0 and 36500"),
        ({"name": "gold", "days": "many"}, "days", "invalid retention period 'many'"),
        ({"name": "Gold!", "days": "5"}, "name", "invalid retention class name 'Gold!'"),
    ]:
        refused = await web.post("/admin/retention", data)
        assert refused.status_code == 422 and message in field_error(refused.text, field)
    await web.post("/admin/extensions", {"number": "104", "recording": "never",
                                         "retention_class": "gold"})
    in_use = await web.post("/admin/retention/gold/delete", {})
    assert in_use.status_code == 409
    assert ("retention class 'gold' is in use and cannot be removed: extension(s) 104"
            in field_error(in_use.text, "delete"))
    async with web.sessions() as session:
        row = await session.get(Extension, "104")
        assert row is not None
        row.retention_class = None
        await session.commit()
    done = await web.post("/admin/retention/gold/delete", {})
    assert done.status_code == 303
    page = await web.client.get(done.headers["location"], headers=await web.signed_in())
    assert '<tr data-class="gold">' not in page.text
    assert [e.actor for e in await web.entries("retention.deleted")] == ["user:ayse"]


async def test_users_form_adds_disables_resets_and_requires_totp(web: Console) -> None:
    # An auditor: an admin makes one alone (a supervisor waits for a dpo:
    # test_admin_user_privilege.py).
    added = await web.post("/admin/users", {"name": "Kerem", "role": "auditor",
                                            "language": "tr"})
    assert added.status_code == 201
    found = re.search(r'id="new-password" value="([^"]+)"', added.text)
    assert found is not None
    password = found.group(1)
    signed = await web.users.sign_in(_attempt("kerem", password))
    assert signed.principal.role == "auditor"
    (created,) = [e for e in await web.entries("user.created") if e.actor != "cli:root"]
    assert created.actor == "user:ayse" and created.target == "user:kerem"
    assert password not in created.details
    listing = await web.client.get("/admin/users", headers=await web.signed_in())
    assert password not in listing.text and '<tr data-user="kerem" data-state="active">' in (
        listing.text)

    for data, message in [
        ({"name": "kerem", "role": "auditor"}, "user 'kerem' already exists"),
        ({"name": "nur", "role": "supervisor"}, "a supervisor needs --extensions"),
        ({"name": "nur", "role": "supervisor", "extensions": "555"}, "unknown extension(s) 555"),
        ({"name": "nur", "role": "auditor", "extensions": "100"},
         "only supervisors have assigned extensions"),
        ({"name": "nur", "role": "root"}, "invalid role 'root'"),
    ]:
        refused = await web.post("/admin/users", data)
        assert refused.status_code == 422, data
        assert message in refused.text.replace("&#39;", "'"), data

    assert (await web.post("/admin/users/kerem/disable", {})).status_code == 303
    with pytest.raises(Exception, match="disabled"):
        await web.users.sign_in(_attempt("kerem", password))
    assert (await web.post("/admin/users/kerem/enable", {})).status_code == 303
    reset = await web.post("/admin/users/kerem/reset-password", {})
    assert reset.status_code == 200
    new = re.search(r'id="new-password" value="([^"]+)"', reset.text)
    assert new is not None and new.group(1) != password
    with pytest.raises(Exception, match="wrong-credentials"):
        await web.users.sign_in(_attempt("kerem", password))
    await web.users.sign_in(_attempt("kerem", new.group(1)))
    assert (await web.post("/admin/users/kerem/totp", {"require_totp": "on"})).status_code == 303
    listing = await web.client.get("/admin/users", headers=await web.signed_in())
    row = re.search(r'<tr data-user="kerem".*?</tr>', listing.text, re.S)
    assert row is not None and "(required)" in row.group(0)
    assert (await web.post("/admin/users/ayse/disable", {})).status_code == 422
    actions = [e.action for e in await web.entries("user.disabled")
               + await web.entries("user.enabled") + await web.entries("user.password_reset")
               + await web.entries("user.changed")]
    assert sorted(actions) == ["user.changed", "user.disabled", "user.enabled",
                               "user.password_reset"]
    assert all(e.actor == "user:ayse" for e in await web.entries("user.password_reset"))
    headers, _ = await web.form()
    web.client.cookies.clear()
    refused = await web.client.post("/admin/users", headers=headers,
                                    data={"name": "nur", "role": "auditor"})
    assert refused.status_code == 403
    assert [e.target for e in await web.entries("user.created")][-1] == "user:kerem"


def _attempt(name: str, password: str) -> object:
    from pbx_bridge.web.accounts import SignInAttempt

    return SignInAttempt(name, password, None, "192.0.2.9", "test", None)


async def test_tokens_form_shows_the_secret_once_and_revokes(web: Console) -> None:
    made = await web.post("/admin/tokens", {"user": "aydin", "scopes": "audit.read",
                                            "days": "7"})
    assert made.status_code == 201
    found = re.search(r'id="new-token" value="(pbxb_[^"]+)"', made.text)
    assert found is not None
    bearer = found.group(1)
    principal = await web.users.token_principal(bearer)
    assert principal is not None and principal.name == "aydin"
    (entry,) = [e for e in await web.entries("token.created") if e.actor == "user:ayse"]
    token_id = entry.target.removeprefix("token:")
    listing = await web.client.get("/admin/tokens", headers=await web.signed_in())
    assert bearer.split(".", 1)[1] not in listing.text
    assert f'<tr data-token="{token_id}" data-state="active">' in listing.text
    refused = await web.post("/admin/tokens", {"user": "aydin", "scopes": "calls.read"})
    assert refused.status_code == 422
    assert "outside role auditor" in refused.text
    bad_days = await web.post("/admin/tokens", {"user": "aydin", "scopes": "audit.read",
                                                "days": "9999"})
    assert bad_days.status_code == 422 and "1 to 3650" in bad_days.text
    revoked = await web.post(f"/admin/tokens/{token_id}/revoke", {})
    assert revoked.status_code == 303
    assert await web.users.token_principal(bearer) is None
    assert [e.actor for e in await web.entries("token.revoked")] == ["user:ayse"]
    unknown = await web.post("/admin/tokens/00000000-0000-4000-8000-000000000009/revoke", {})
    assert unknown.status_code == 404 and "no token" in unknown.text
    assert (await web.post("/admin/tokens/..%2f..%2fetc/revoke", {})).status_code in (400, 404)
    assert (await web.post("/admin/tokens/nosuch/revoke", {})).status_code == 400


async def test_admin_pages_in_turkish(web: Console) -> None:
    cookie = await web.signed_in("aylin")
    expected = {"/admin/routes": "Yönlendirme ekle", "/admin/extensions": "Dahili ekle",
                "/admin/retention": "Saklama sınıfları",  # noqa: RUF001 (Turkish)
                "/admin/users": "Kullanıcı ekle",  # noqa: RUF001 (Turkish)
                "/admin/tokens": "Anahtar oluştur",
                "/admin/storage": "Depolama alanları"}  # noqa: RUF001 (Turkish)
    for path, words in expected.items():
        page = await web.client.get(path, headers=cookie)
        assert page.status_code == 200 and words in page.text, path
        assert page.headers["content-language"] == "tr"
    refused = await web.post("/admin/routes", {"did": "2125550100", "prompt_timeout_s": "0"},
                             user="aylin")
    assert "Yönlendirmeyi değiştir" in refused.text
    assert "invalid prompt timeout 0s" in field_error(refused.text, "prompt_timeout_s")


async def test_openapi_describes_the_admin_api(web: Console) -> None:
    document = (await web.client.get("/api/v1/openapi.json")).json()
    paths = document["paths"]
    assert set(paths["/api/v1/routes/{did}"]) == {"get", "put", "delete"}
    assert set(paths["/api/v1/extensions/{ext}"]) == {"get", "put"}
    assert "put" in paths["/api/v1/retention-classes/{name}"]
    assert "409" in paths["/api/v1/retention-classes/{name}"]["delete"]["responses"]
    schemas = set(document["components"]["schemas"])
    assert {"RouteIn", "RouteConfig", "StorageStatusOut", "ExtensionOut"} <= schemas
