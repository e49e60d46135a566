"""An admin cannot become, or make alone, someone who listens: in-process console and API
(ASGI through httpx) on the real users module, a migrated database (SQLite and
PostgreSQL) and the real audit trail.

Refused (what the admin sees, and that nothing changed): a token for a supervisor or dpo,
a dpo's password reset, making a dpo. Waiting for a dpo's approval (202, nothing changed
until a dpo approves in the console, who is then shown any new password): a new
supervisor, a supervisor's reset, a role changed to supervisor, extensions added, the
unmask grant, re-enabling. Allowed to the admin alone, audited: whatever narrows access.
Every path is audited with who asked and who approved."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from database_fixtures import db_url, migrated_url, pg_database, sessions
from sqlalchemy import select
from test_admin_console import PASSWORD, Console, _attempt, field_error, web

from pbx_bridge.calls.models import Extension
from pbx_bridge.config import Role
from pbx_bridge.subjects.approvals import Approval
from pbx_bridge.users import accounts
from pbx_bridge.users.models import ApiToken, User
from pbx_bridge.web.accounts import SignInRefused

__all__ = ["db_url", "migrated_url", "pg_database", "sessions", "web"]  # fixtures


@pytest.fixture
async def console(web: Console) -> AsyncIterator[Console]:
    """The admin console with extension 101 set (``ext set``; 100 is the default route's
    target): supervisors are given either."""
    async with web.sessions() as session:
        session.add(Extension(number="101", recording="always"))
        await session.commit()
    yield web


def _shown(response: httpx.Response) -> str:
    return response.text.replace("&#39;", "'").replace("&#34;", '"').replace("&amp;", "&")


def _users_error(response: httpx.Response) -> str:
    found = re.search(r'<p class="error" role="alert" id="users-error">([^<]*)</p>',
                      response.text)
    assert found is not None, "no error shown on the users page"
    return found.group(1).replace("&#39;", "'").replace("&#34;", '"')


def _password(response: httpx.Response) -> str | None:
    found = re.search(r'id="new-password" value="([^"]+)"', response.text)
    return None if found is None else found.group(1)


async def _waiting_id(web: Console, user: str) -> str:
    """The approval the users page lists as waiting for ``user`` (what the admin sees)."""
    page = await web.client.get("/admin/users", headers=await web.signed_in())
    found = re.search(rf'<li data-approval-id="([^"]+)" data-user="{user}">', page.text)
    assert found is not None, f"no change of {user} waiting"
    return found.group(1)


async def _user(web: Console, name: str) -> User:
    async with web.sessions() as session:
        return await accounts.get_user(session, name)


async def _signs_in(web: Console, name: str, password: str) -> bool:
    try:
        await web.users.sign_in(_attempt(name, password))  # type: ignore[arg-type]
    except SignInRefused:
        return False
    return True


async def test_admin_makes_no_token_for_a_supervisor_or_dpo(console: Console) -> None:
    for user, role in [("selim", "supervisor"), ("deniz", "dpo")]:
        refused = await console.post("/admin/tokens", {"user": user, "scopes": "calls.read"})
        assert refused.status_code == 403, user
        assert "pbxb_" not in refused.text and 'id="new-token"' not in refused.text
        assert f"{user} is a {role}" in _shown(refused)
        assert f"pbx-bridge tokens create --user {user}" in _shown(refused)
    assert [e for e in await console.entries("token.created") if e.actor == "user:ayse"] == []
    # An auditor's and another admin's: the admin's to make.
    made = await console.post("/admin/tokens", {"user": "aydin", "scopes": "audit.read"})
    assert made.status_code == 201 and 'id="new-token" value="pbxb_' in made.text
    other = await console.post("/admin/tokens", {"user": "aylin", "scopes": "routes.read"})
    assert other.status_code == 201


async def test_a_supervisors_reset_waits_for_a_dpo_who_is_shown_the_password(
    console: Console,
) -> None:
    asked = await console.post("/admin/users/selim/reset-password", {})
    assert asked.status_code == 202
    assert _password(asked) is None, "the admin never sees a supervisor's password"
    assert "a dpo approves the reset" in _shown(asked)
    assert await _signs_in(console, "selim", PASSWORD), "nothing changed yet"
    again = await console.post("/admin/users/selim/reset-password", {})
    assert again.status_code == 409 and "already waiting" in _users_error(again)
    approval_id = await _waiting_id(console, "selim")
    (requested,) = await console.entries("approval.requested")
    assert (requested.actor, requested.target) == ("user:ayse", "user:selim")

    # The dpo sees it among the approvals waiting, and approving shows the password.
    register = await console.client.get("/dsar", headers=await console.signed_in("deniz"))
    assert f'data-approval-id="{approval_id}"' in register.text
    assert "reset the password of selim" in register.text
    approved = await console.post(f"/approvals/{approval_id}/approve", {}, user="deniz")
    assert approved.status_code == 200
    password = _password(approved)
    assert password is not None
    assert not await _signs_in(console, "selim", PASSWORD)
    assert await _signs_in(console, "selim", password)
    assert [e.actor for e in await console.entries("user.password_reset")] == ["user:deniz"]
    assert [e.actor for e in await console.entries("approval.approved")] == ["user:deniz"]
    page = await console.client.get("/admin/users", headers=await console.signed_in())
    assert 'data-approval-id=' not in page.text and password not in page.text


async def test_a_dpos_password_is_reset_by_root_only(console: Console) -> None:
    refused = await console.post("/admin/users/deniz/reset-password", {})
    assert refused.status_code == 403 and _password(refused) is None
    assert "pbx-bridge users reset-password deniz" in _users_error(refused)
    assert await _signs_in(console, "deniz", PASSWORD)
    assert await console.entries("user.password_reset") == []
    # An auditor's: the admin's alone, shown at once.
    reset = await console.post("/admin/users/aydin/reset-password", {})
    assert reset.status_code == 200 and _password(reset) is not None


async def test_a_new_supervisor_waits_and_the_dpo_hands_over_the_first_password(
    console: Console,
) -> None:
    asked = await console.post("/admin/users", {"name": "Kerem", "role": "supervisor",
                                            "extensions": "101"})
    assert asked.status_code == 202
    assert _password(asked) is None
    assert "a new supervisor (Kerem) sees calls" in _shown(asked)
    async with console.sessions() as session:
        assert await session.scalar(select(User).where(User.name == "kerem")) is None
    made_dpo = await console.post("/admin/users", {"name": "dora", "role": "dpo"})
    assert made_dpo.status_code == 403
    assert "pbx-bridge users add dora --role dpo" in _users_error(made_dpo)
    bad = await console.post("/admin/users", {"name": "nur", "role": "supervisor",
                                          "extensions": "555"})
    assert bad.status_code == 422 and "unknown extension(s) 555" in _users_error(bad)

    approval_id = await _waiting_id(console, "kerem")
    approved = await console.post(f"/approvals/{approval_id}/approve", {}, user="deniz")
    password = _password(approved)
    assert approved.status_code == 200 and password is not None
    signed = await console.users.sign_in(_attempt("kerem", password))  # type: ignore[arg-type]
    assert signed.principal.role == "supervisor"
    kerem = await _user(console, "kerem")
    assert kerem.extensions == "101"
    (created,) = [e for e in await console.entries("user.created") if e.target == "user:kerem"]
    assert created.actor == "user:deniz" and password not in created.details


async def test_the_edit_form_changes_role_and_extensions_with_the_rule(console: Console) -> None:
    form = await console.client.get("/admin/users/selim", headers=await console.signed_in())
    assert form.status_code == 200 and 'id="user-edit-form"' in form.text
    assert '<option value="supervisor" selected>' in form.text
    assert 'value="101"' in form.text

    # More extensions: waits; the dpo approves; then fewer: the admin's alone.
    more = await console.post("/admin/users/selim", {"role": "supervisor",
                                                 "extensions": "100,101"})
    assert more.status_code == 202 and "extension(s) 100 would show selim" in _shown(more)
    assert (await _user(console, "selim")).extensions == "101"
    approval_id = await _waiting_id(console, "selim")
    approved = await console.post(f"/approvals/{approval_id}/approve", {}, user="deniz")
    assert approved.status_code == 303 and approved.headers["location"] == "/dsar?notice=approved"
    assert (await _user(console, "selim")).extensions == "100,101"
    fewer = await console.post("/admin/users/selim", {"role": "supervisor", "extensions": "101"})
    assert fewer.status_code == 303 and fewer.headers["location"] == "/admin/users?saved=selim"
    saved = await console.client.get(fewer.headers["location"], headers=await console.signed_in())
    assert "User selim saved." in saved.text
    changed = await console.entries("user.changed")
    assert [e.actor for e in changed] == ["user:deniz", "user:ayse"]

    # The unmask grant waits; bad input is shown beside its field, what was typed kept.
    unmask = await console.post("/admin/users/selim", {"role": "supervisor", "extensions": "101",
                                                   "unmask": "on"})
    assert unmask.status_code == 202
    bad = await console.post("/admin/users/aydin", {"role": "supervisor", "extensions": "555"})
    assert bad.status_code == 422
    assert "unknown extension(s) 555" in field_error(bad.text, "extensions")
    assert 'value="555"' in bad.text
    no_role = await console.post("/admin/users/aydin", {"role": "root", "extensions": ""})
    assert no_role.status_code == 422 and "invalid role 'root'" in field_error(no_role.text,
                                                                                "role")
    dpo = await console.post("/admin/users/aydin", {"role": "dpo", "extensions": ""})
    assert dpo.status_code == 403
    assert "pbx-bridge users set aydin --role dpo" in field_error(dpo.text, "role")
    not_supervisor = await console.post("/admin/users/aydin", {"role": "auditor",
                                                           "extensions": "101"})
    assert "only supervisors have assigned extensions" in field_error(not_supervisor.text,
                                                                      "extensions")
    for unknown in ("nobody", "..%2f..%2fetc%2fpasswd", "%00", "a%20b"):
        assert (await console.client.get(f"/admin/users/{unknown}",
                                         headers=await console.signed_in())).status_code == 404
        posted = await console.post(f"/admin/users/{unknown}", {"role": "admin"})
        assert posted.status_code == 404, unknown
        api = await console.client.get(f"/api/v1/users/{unknown}", headers=console.api())
        assert api.status_code in (404, 422), unknown
    assert (await _user(console, "aydin")).role == "auditor"

    # CSRF: a form without its token changes nothing.
    headers, _ = await console.form()
    console.client.cookies.clear()
    forged = await console.client.post("/admin/users/aydin", headers=headers,
                                   data={"role": "admin", "extensions": ""})
    assert forged.status_code == 403 and (await _user(console, "aydin")).role == "auditor"
    # Other roles never see the form.
    for user in ("selim", "deniz", "aydin"):
        assert (await console.client.get("/admin/users/selim",
                                     headers=await console.signed_in(user))).status_code == 403


async def test_promotion_to_supervisor_gives_a_new_password_and_ends_old_tokens(
    console: Console,
) -> None:
    """The admin who made an auditor knows their password and may have made their
    tokens: becoming a supervisor replaces both, and only the dpo sees the new one."""
    assert await console.users.token_principal(console.bearer["aydin"]) is not None
    asked = await console.post("/admin/users/aydin", {"role": "supervisor", "extensions": "101"})
    assert asked.status_code == 202 and (await _user(console, "aydin")).role == "auditor"
    # An admin promoting themself waits for a second person too.
    self_promotion = await console.post("/admin/users/ayse", {"role": "supervisor",
                                                          "extensions": "101"})
    assert self_promotion.status_code == 202 and (await _user(console, "ayse")).role == "admin"
    approval_id = await _waiting_id(console, "aydin")
    approved = await console.post(f"/approvals/{approval_id}/approve", {}, user="deniz")
    password = _password(approved)
    assert password is not None
    assert (await _user(console, "aydin")).role == "supervisor"
    assert await console.users.token_principal(console.bearer["aydin"]) is None
    assert not await _signs_in(console, "aydin", PASSWORD)
    assert await _signs_in(console, "aydin", password)
    (ended,) = await console.entries("user.access_ended")
    assert ended.target == "user:aydin" and json.loads(ended.details)["tokens_revoked"] == 1

    # Narrowing is the admin's alone: a supervisor made an auditor, their tokens end.
    assert await console.users.token_principal(console.bearer["selim"]) is not None
    demoted = await console.post("/admin/users/selim", {"role": "auditor", "extensions": ""})
    assert demoted.status_code == 303
    assert await console.users.token_principal(console.bearer["selim"]) is None


async def test_enabling_a_supervisor_again_waits_and_no_dpo_approves_their_own(
    console: Console,
) -> None:
    assert (await console.post("/admin/users/selim/disable", {})).status_code == 303
    asked = await console.post("/admin/users/selim/enable", {})
    assert asked.status_code == 202 and (await _user(console, "selim")).disabled
    refused = await console.post(f"/approvals/{await _waiting_id(console, 'selim')}/refuse",
                             {"reason": "left the company"}, user="deniz")
    assert refused.status_code == 303 and (await _user(console, "selim")).disabled
    (entry,) = await console.entries("approval.refused")
    assert (entry.actor, entry.target) == ("user:deniz", "user:selim")

    # A second dpo, disabled; an admin asks to enable her; root enables her meanwhile:
    # she cannot approve a change about herself.
    async with console.sessions() as session:
        await accounts.add_user(session, name="dora", role=Role.DPO, password=PASSWORD,
                                auth=console.settings.auth, actor="cli:root", default_target="101")
        await accounts.set_disabled(session, "dora", disabled=True, actor="cli:root")
        await session.commit()
    assert (await console.post("/admin/users/dora/enable", {})).status_code == 202
    approval_id = await _waiting_id(console, "dora")
    async with console.sessions() as session:
        await accounts.set_disabled(session, "dora", disabled=False, actor="cli:root")
        await session.commit()
    own = await console.post(f"/approvals/{approval_id}/approve", {}, user="dora")
    assert own.status_code == 403 and "approved by another dpo" in _shown(own)
    async with console.sessions() as session:
        row = await session.get(Approval, approval_id)
        assert row is not None and row.state == "pending"


async def test_the_users_api_follows_the_same_rule(console: Console) -> None:
    listing = await console.client.get("/api/v1/users", headers=console.api())
    assert listing.status_code == 200
    names = {u["name"]: u for u in listing.json()}
    assert names["selim"]["extensions"] == ["101"]
    assert not any("password" in key or "secret" in key for key in names["selim"])
    one = await console.client.get("/api/v1/users/aydin", headers=console.api())
    assert one.status_code == 200 and one.json()["role"] == "auditor"
    unknown = await console.client.get("/api/v1/users/nobody", headers=console.api())
    assert unknown.status_code == 404

    waits = await console.client.patch("/api/v1/users/selim", headers=console.api(),
                                   json={"extensions": ["100", "101"]})
    assert waits.status_code == 202
    assert waits.json()["user"] == "selim" and "100 would show selim" in waits.json()["reason"]
    assert (await _user(console, "selim")).extensions == "101"
    again = await console.client.patch("/api/v1/users/selim", headers=console.api(),
                                   json={"unmask": True})
    assert again.status_code == 409
    # Approving takes a dpo in the console: a token (even a dpo's) cannot.
    by_token = await console.client.post(
        f"/api/v1/approvals/{waits.json()['approval_id']}/approve", headers=console.api("deniz"))
    assert by_token.status_code == 403 and "console" in by_token.json()["detail"]

    dpo = await console.client.patch("/api/v1/users/aydin", headers=console.api(),
                                 json={"role": "dpo"})
    assert dpo.status_code == 403 and "pbx-bridge users set aydin --role dpo" in (
        dpo.json()["detail"])
    bad = await console.client.patch("/api/v1/users/aydin", headers=console.api(),
                                 json={"role": "supervisor", "extensions": ["555"]})
    assert bad.status_code == 422 and bad.json()["field"] == "extensions"
    totp = await console.client.patch("/api/v1/users/aydin", headers=console.api(),
                                  json={"require_totp": True})
    assert totp.status_code == 200 and totp.json()["totp_required"] is True
    demoted = await console.client.patch("/api/v1/users/deniz", headers=console.api(),
                                     json={"role": "auditor"})
    assert demoted.status_code == 200 and demoted.json()["role"] == "auditor"
    (changed, *_) = [e for e in await console.entries("user.changed") if e.target == "user:deniz"]
    assert changed.actor.startswith("token:") and changed.actor.endswith("(ayse)")
    for user in ("selim", "aydin"):
        refused = await console.client.patch("/api/v1/users/aydin", headers=console.api(user),
                                         json={"require_totp": False})
        assert refused.status_code == 403
    async with console.sessions() as session:
        assert (await session.scalars(select(ApiToken).where(
            ApiToken.created_by == "user:ayse"))).all() == []
