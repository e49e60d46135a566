"""The caller's language choice on the console's route form and the API (``languages``,
``language_keys``, ``language_by_country``), in-process on a migrated database (SQLite
and PostgreSQL): saved as ``route set --languages tr,en --language-keys 1,3`` saves it,
shown in the list and the edit form, refused with the CLI's own message beside the field
(and as a 422 naming it), audited with the admin as actor."""

from __future__ import annotations

import asyncio
import json
import re

from cli_support import clean_pbx_env, cli
from database_fixtures import db_url, migrated_url, pg_database, sessions
from test_admin_console import Console, field_error, input_value, web

from pbx_bridge.calls.models import Route

__all__ = ["clean_pbx_env", "db_url", "migrated_url", "pg_database", "sessions", "web"]

DID = "2125550100"
ROUTE = {"did": DID, "target": "100", "announcement": "before-connect",
         "legal_basis": "consent", "retention_class": "default", "language": "tr",
         "timeout_means": "declined", "prompt_timeout_s": "8", "require_jurisdiction": ""}


async def test_the_route_form_offers_a_language_choice(web: Console) -> None:
    page = await web.client.get("/admin/routes", headers=await web.signed_in())
    assert 'id="languages" name="languages"' in page.text
    assert 'id="language_keys" name="language_keys"' in page.text
    assert 'id="language_by_country" name="language_by_country"' in page.text

    saved = await web.post("/admin/routes", {**ROUTE, "languages": "tr, en",
                                             "language_keys": "1,3",
                                             "language_by_country": "on"})
    assert saved.status_code == 303
    async with web.sessions() as session:
        row = await session.get(Route, DID)
        assert row is not None
        assert (row.languages, row.language_keys, row.language_by_country) == (
            "tr,en", "1,3", True)
    listed = await web.client.get("/admin/routes", headers=await web.signed_in())
    cell = re.search(rf'<tr data-did="{DID}">.*?<td data-field="language">([^<]*)</td>',
                     listed.text, re.S)
    assert cell is not None and cell.group(1) == "tr (tr: 1, en: 3) · by country"
    edit = await web.client.get(f"/admin/routes?edit={DID}", headers=await web.signed_in())
    assert input_value(edit.text, "languages") == "tr,en"
    assert input_value(edit.text, "language_keys") == "1,3"
    assert 'name="language_by_country" value="on" checked' in edit.text
    (created,) = await web.entries("route.created")
    changes = json.loads(created.details)["changes"]
    assert created.actor == "user:ayse" and changes["languages"]["to"] == "tr,en"
    api = (await web.client.get(f"/api/v1/routes/{DID}", headers=web.api())).json()
    assert (api["languages"], api["language_keys"], api["language_by_country"]) == (
        ["tr", "en"], ["1", "3"], True)

    # Keys left empty are 1, 2, ...; languages left empty remove the choice.
    await web.post("/admin/routes", {**ROUTE, "languages": "tr,en", "language_keys": ""})
    async with web.sessions() as session:
        row = await session.get(Route, DID)
        assert row is not None and (row.language_keys, row.language_by_country) == ("1,2", False)
    await web.post("/admin/routes", {**ROUTE, "languages": "", "language_keys": ""})
    async with web.sessions() as session:
        row = await session.get(Route, DID)
        assert row is not None and row.languages is None and row.language_keys is None


async def test_a_bad_language_choice_is_refused_as_the_cli_refuses_it(web: Console) -> None:
    for data, field, cli_args, message in [
        ({"languages": "tr,tr"}, "languages", ["--languages", "tr,tr"],
         "--languages: tr,tr names a language twice"),
        ({"languages": "tr,en", "language_keys": "1"}, "language_keys",
         ["--languages", "tr,en", "--language-keys", "1"],
         "--language-keys: 1 keys for 2 languages"),
        ({"languages": "tr,en", "language_keys": "1,1"}, "language_keys",
         ["--languages", "tr,en", "--language-keys", "1,1"],
         "--language-keys: 1,1: one distinct digit each"),
        ({"languages": "tr,xx"}, "languages", ["--languages", "tr,xx"],
         "--languages xx: no prompts folder"),
        ({"languages": "en"}, "languages", ["--languages", "en"],
         "--language tr is not among --languages en"),
    ]:
        refused = await web.post("/admin/routes", {**ROUTE, **data})
        assert refused.status_code == 422, data
        assert message in field_error(refused.text, field), data
        assert input_value(refused.text, field) == data[field]  # what was typed, kept
        by_cli = await asyncio.to_thread(cli, web.config_path, "route", "set", DID,
                                         "--target", "100", "--language", "tr", *cli_args)
        assert by_cli.exit_code == 2 and message in by_cli.stderr, (data, by_cli.stderr)
        api = await web.client.put(f"/api/v1/routes/{DID}", headers=web.api(), json={
            "target": "100", "language": "tr",
            "languages": [c.strip() for c in data["languages"].split(",")],
            **({"language_keys": data["language_keys"].split(",")}
               if "language_keys" in data else {})})
        assert api.status_code == 422 and api.json()["field"] == field, (data, api.text)
        assert message in api.json()["detail"]
    async with web.sessions() as session:
        assert await session.get(Route, DID) is None
    assert await web.entries("route.created") == []
