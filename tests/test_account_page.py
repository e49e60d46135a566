""""My account" in-process (ASGI through httpx) on the real users module and the real
audit trail, on SQLite and PostgreSQL: the language chosen is stored and the next page
speaks it, the header's switch works signed out (a cookie) and signed in (the user);
a password change needs the current password, follows the CLI's policy, ends the other
sessions and is audited; a TOTP secret takes effect only once a code confirms it; the
user's own sessions and "sign out other sessions"; CSRF on every form."""

# ruff: noqa: RUF001  (Turkish words in the pages)

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path

import httpx
import pyotp
import pytest
from audit_fixtures import entries_of
from console_clients import console_settings, session_cookie
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from storage_fakes import db_url, sessions

from pbx_bridge.config import Language, Role
from pbx_bridge.users import accounts
from pbx_bridge.users.console_accounts import UsersAccounts
from pbx_bridge.users.models import User
from pbx_bridge.web import accounts as console
from pbx_bridge.web import csrf
from pbx_bridge.web.app import create_app
from pbx_bridge.web.sign_in import safe_next
from storage.models import AuditEntry

__all__ = ["db_url", "sessions"]  # fixtures

PASSWORD = "correct horse battery"
NEW_PASSWORD = "staple the purple door"
SECRET = "test-secret-key-" + "0123456789abcdef" * 2
USERS = [("deniz", Role.DPO, []), ("selim", Role.SUPERVISOR, ["101"])]


@dataclass
class Browser:
    """One browser's cookies: its session (if signed in) and its CSRF nonce."""

    session_id: str | None
    nonce: str

    def headers(self, **extra: str) -> dict[str, str]:
        cookies = [f"pbxb_csrf={self.nonce}"]
        if self.session_id:
            cookies.append(f"pbxb_session={self.session_id}")
        cookies += [f"{k}={v}" for k, v in extra.items()]
        return {"Cookie": "; ".join(cookies), "Accept-Language": "tr-TR,tr;q=0.9"}

    def form(self, **fields: str) -> dict[str, str]:
        return {"csrf_token": csrf.token_for(SECRET.encode(), self.nonce, self.session_id),
                **fields}


@dataclass
class Console:
    client: httpx.AsyncClient
    sessions: async_sessionmaker[AsyncSession]
    users: UsersAccounts

    async def browser(self, user: str | None, password: str = PASSWORD) -> Browser:
        session_id = None
        if user is not None:
            cookie = await session_cookie(self.users, user, password)
            session_id = cookie["Cookie"].removeprefix("pbxb_session=")
        return Browser(session_id, csrf.new_nonce())

    async def post(self, browser: Browser, path: str, **fields: str) -> httpx.Response:
        return await self.client.post(path, data=browser.form(**fields),
                                      headers=browser.headers())

    async def get(self, browser: Browser, path: str, **cookies: str) -> httpx.Response:
        return await self.client.get(path, headers=browser.headers(**cookies))

    async def user(self, name: str) -> User:
        async with self.sessions() as session:
            found = await session.scalar(select(User).where(User.name == name))
            assert found is not None
            return found

    async def entries(self, action: str) -> list[AuditEntry]:
        return await entries_of(self.sessions, action)


@pytest.fixture
async def web(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> AsyncIterator[Console]:
    settings = console_settings(tmp_path, SECRET)
    users = await UsersAccounts.from_settings(settings, sessions)
    async with sessions() as session:
        for name, role, extensions in USERS:  # both chose Turkish
            await accounts.add_user(session, name=name, role=role, password=PASSWORD,
                                    auth=settings.auth, actor="cli:root", default_target="101",
                                    extensions=extensions, language=Language.TR)
        await session.commit()
    app = create_app(settings, users, sessions)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8090"
    ) as client:
        yield Console(client, sessions, users)


def _lang(page: httpx.Response) -> str:
    found = re.search(r'<html lang="(\w+)">', page.text)
    assert found, page.text[:200]
    return found.group(1)


async def test_the_language_chosen_is_stored_and_the_next_page_speaks_it(web: Console) -> None:
    me = await web.browser("deniz")
    page = await web.get(me, "/account")
    assert page.status_code == 200 and _lang(page) == "tr"
    assert "Hesabım" in page.text and 'href="/account" aria-current="page"' in page.text
    changed = await web.post(me, "/account/language", language="en")
    assert changed.status_code == 303 and changed.headers["location"] == "/account?done=language"
    page = await web.get(me, "/account?done=language")
    assert _lang(page) == "en" and page.headers["content-language"] == "en"
    assert "My account" in page.text and "Language saved." in page.text
    assert (await web.user("deniz")).language == "en"
    # Following the browser: nothing stored, the Accept-Language (Turkish here) decides.
    await web.post(me, "/account/language", language="browser")
    assert (await web.user("deniz")).language is None
    assert _lang(await web.get(me, "/dashboard")) == "tr"
    entries = await web.entries("user.language_changed")
    assert [json.loads(e.details)["after"] for e in entries] == ["en", None]
    assert {e.actor for e in entries} == {"user:deniz"}
    refused = await web.post(me, "/account/language", language="de")
    assert refused.status_code == 400 and "Türkçe, English" in refused.text


async def test_the_header_switch_works_signed_out_with_a_cookie_and_signed_in_on_the_user(
    web: Console,
) -> None:
    stranger = await web.browser(None)
    page = await web.get(stranger, "/sign-in")
    assert _lang(page) == "tr" and 'action="/language"' in page.text
    switched = await web.post(stranger, "/language", language="en", next="/sign-in")
    assert switched.status_code == 303 and switched.headers["location"] == "/sign-in"
    cookie = switched.cookies.get("pbxb_lang")
    assert cookie == "en"
    assert "httponly" in switched.headers["set-cookie"].lower()
    page = await web.get(stranger, "/sign-in", pbxb_lang=cookie)
    assert _lang(page) == "en" and "Sign in" in page.text
    # An open redirect is not possible through ?next.
    away = await web.post(stranger, "/language", language="en", next="//evil.example/")
    assert away.headers["location"] == safe_next(None) and "evil" not in away.headers["location"]
    # Signed in: stored on the user (who chose Turkish before), the cookie cleared.
    me = await web.browser("selim")
    signed_in = await web.post(me, "/language", language="en", next="/calls")
    assert signed_in.headers["location"] == "/calls"
    assert 'pbxb_lang=""' in signed_in.headers["set-cookie"]
    assert (await web.user("selim")).language == "en"
    assert _lang(await web.get(me, "/calls")) == "en"
    calls = await web.get(me, "/calls?disposition=busy")
    assert 'name="next" value="/calls?disposition=busy"' in calls.text
    # An error page's switch leads home: it never repeats what was refused.
    missing = "00000000-0000-4000-8000-000000000000"
    refused = await web.get(me, f"/calls/{missing}")
    assert refused.status_code == 404 and missing not in refused.text
    assert 'name="next" value="/"' in refused.text


async def test_a_password_change_needs_the_current_one_and_ends_the_other_sessions(
    web: Console,
) -> None:
    me = await web.browser("deniz")
    elsewhere = await web.browser("deniz")
    before = (await web.user("deniz")).password_hash
    wrong = await web.post(me, "/account/password", current="not my password",
                           new=NEW_PASSWORD, repeat=NEW_PASSWORD)
    assert wrong.status_code == 400 and "Mevcut parola doğru değil." in wrong.text
    (refused,) = await web.entries("user.password_change_refused")
    assert refused.actor == "user:deniz" and refused.outcome == "refused"
    weak = await web.post(me, "/account/password", current=PASSWORD, new="short", repeat="short")
    assert weak.status_code == 400
    assert "Yeni parola çok kısa: 5 karakter, en az 12 gerekir." in unescape(weak.text)
    named = await web.post(me, "/account/password", current=PASSWORD,
                           new="deniz-is-my-name", repeat="deniz-is-my-name")
    assert "kullanıcı adınızı içermemeli" in unescape(named.text)
    differ = await web.post(me, "/account/password", current=PASSWORD, new=NEW_PASSWORD,
                            repeat=NEW_PASSWORD + "x")
    assert differ.status_code == 400 and "birbirini tutmuyor" in differ.text
    assert (await web.user("deniz")).password_hash == before
    assert (await web.get(elsewhere, "/account")).status_code == 200  # still signed in

    changed = await web.post(me, "/account/password", current=PASSWORD, new=NEW_PASSWORD,
                             repeat=NEW_PASSWORD)
    assert changed.status_code == 303
    assert changed.headers["location"] == "/account?done=password&ended=1"
    after = await web.user("deniz")
    assert after.password_hash != before and after.password_hash.startswith("$argon2id$")
    assert NEW_PASSWORD not in after.password_hash
    assert (await web.get(me, "/account")).status_code == 200  # this session goes on
    gone = await web.get(elsewhere, "/account")
    assert gone.status_code == 303 and gone.headers["location"].startswith("/sign-in")
    (entry,) = await web.entries("user.password_changed")
    assert entry.actor == "user:deniz" and json.loads(entry.details)["sessions_ended"] == 1
    assert NEW_PASSWORD not in entry.details and PASSWORD not in entry.details
    with pytest.raises(console.SignInRefused):
        await web.browser("deniz", PASSWORD)
    assert (await web.browser("deniz", NEW_PASSWORD)).session_id


async def test_totp_enrolment_takes_effect_only_once_a_code_confirms_it(web: Console) -> None:
    me = await web.browser("selim")
    page = await web.get(me, "/account")
    assert "Kurulu bir doğrulama uygulaması yok." in page.text
    started = await web.post(me, "/account/totp")
    assert started.status_code == 200
    assert '<svg' in started.text and 'class="qr-code"' in started.text
    assert "<title>Doğrulama kurulumunun karekodu</title>" in started.text
    uri = unescape(re.search(r'<code class="secret" id="totp-uri">([^<]+)</code>',
                             started.text).group(1))  # type: ignore[union-attr]
    assert uri.startswith("otpauth://totp/pbx-bridge:selim?")
    secret = pyotp.parse_uri(uri).secret
    sealed = unescape(re.search(r'name="sealed" value="([^"]+)"',
                                started.text).group(1))  # type: ignore[union-attr]
    assert secret not in sealed
    assert (await web.user("selim")).totp_secret is None  # nothing yet

    wrong_code = "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"
    wrong = await web.post(me, "/account/totp/confirm", sealed=sealed, code=wrong_code)
    assert wrong.status_code == 400 and "Kod tutmuyor" in wrong.text
    assert f"secret={secret}" in unescape(wrong.text)  # the same secret shown again
    assert (await web.user("selim")).totp_secret is None
    # Another user's browser cannot confirm selim's pending secret for themselves.
    other = await web.browser("deniz")
    code = pyotp.TOTP(secret).now()
    theirs = await web.post(other, "/account/totp/confirm", sealed=sealed, code=code)
    assert theirs.status_code == 400 and (await web.user("deniz")).totp_secret is None

    confirmed = await web.post(me, "/account/totp/confirm", sealed=sealed, code=code)
    assert confirmed.status_code == 303
    stored = await web.user("selim")
    assert stored.totp_secret is not None and secret not in stored.totp_secret
    (entry,) = await web.entries("user.totp_enrolled")
    assert entry.actor == "user:selim" and json.loads(entry.details)["replaced"] is False
    assert "Bir doğrulama uygulaması kurulu" in (await web.get(me, "/account")).text
    # Signing in now asks for the code, and the confirming code is no second sign-in.
    with pytest.raises(console.SignInRefused) as needed:
        await web.browser("selim")
    assert needed.value.reason == console.SECOND_FACTOR_NEEDED
    with pytest.raises(console.SignInRefused) as replayed:
        await web.users.sign_in(console.SignInAttempt("selim", PASSWORD, code, "192.0.2.1",
                                                      "test", None))
    assert replayed.value.reason == console.SECOND_FACTOR_REPLAYED


async def test_own_sessions_are_listed_and_the_others_signed_out(web: Console) -> None:
    me = await web.browser("deniz")
    phone = await web.browser("deniz")
    await web.browser("selim")  # someone else's: never listed, never ended
    page = await web.get(me, "/account")
    rows = re.findall(r"<tr( data-current=\"true\")?>\s*<td>", page.text)
    assert len(rows) == 2 and rows.count(' data-current="true"') == 1
    assert "Bu oturum" in page.text and "192.0.2.1" in page.text
    ended = await web.post(me, "/account/sessions/end-others")
    assert ended.headers["location"] == "/account?done=sessions&ended=1"
    assert (await web.get(phone, "/account")).status_code == 303
    page = await web.get(me, "/account?done=sessions&ended=1")
    assert "Kapatılan diğer oturumlar: 1." in page.text
    assert len(re.findall(r"<tr( data-current=\"true\")?>\s*<td>", page.text)) == 1
    (entry,) = await web.entries("auth.other_sessions_ended")
    assert entry.actor == "user:deniz" and json.loads(entry.details)["sessions_ended"] == 1
    selim = await web.user("selim")
    async with web.sessions() as session:
        from pbx_bridge.users.models import WebSession

        live = await session.scalars(select(WebSession).where(
            WebSession.user_id == selim.id, WebSession.revoked_at.is_(None)))
        assert len(live.all()) == 1


async def test_every_account_form_refuses_a_post_without_the_csrf_token(web: Console) -> None:
    me = await web.browser("deniz")
    for path in ("/account/language", "/account/password", "/account/totp",
                 "/account/totp/confirm", "/account/sessions/end-others", "/language"):
        forged = await web.client.post(path, data={"language": "en"}, headers=me.headers())
        assert forged.status_code == 403, path
    assert (await web.user("deniz")).language == "tr"
    # Signed out, the account page is the sign-in page's business.
    stranger = await web.browser(None)
    answer = await web.get(stranger, "/account")
    assert answer.status_code == 303 and answer.headers["location"] == "/sign-in?next=/account"
