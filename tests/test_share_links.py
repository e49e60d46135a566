"""Share links in-process (ASGI through httpx) on the call page's fixture: the real users
module, a recording stored by the real pipeline and the real audit trail, on SQLite and
PostgreSQL. Made through the API and the console form, opened signed out (page, then
206 media equal to the stored bytes), revoked, expired, one-time; who may share; CSRF;
the audit entries, and the token kept nowhere in clear."""

from __future__ import annotations

import json
from datetime import timedelta

from audit_fixtures import entries_of
from sqlalchemy import select, update
from storage_fakes import db_url, sessions
from test_call_page import SECRET, Console, web

from pbx_bridge.web import csrf
from pbx_bridge.web.server import logged_path
from pbx_bridge.web.share_links import token_hash
from pbx_bridge.web.share_models import ShareLink
from storage.models import AuditEntry, utcnow

__all__ = ["db_url", "sessions", "web"]  # fixtures

BASE = "http://127.0.0.1:8090"


async def _share(web: Console, user: str = "selim", **body: object) -> dict[str, object]:
    made = await web.client.post(
        f"/api/v1/recordings/{web.recording_id}/share", json=body, headers=web.api(user)
    )
    assert made.status_code == 201, made.text
    answer: dict[str, object] = made.json()
    return answer


def _path(url: object) -> str:
    assert isinstance(url, str) and url.startswith(f"{BASE}/s/")
    return url.removeprefix(BASE)


async def _entries(web: Console, action: str) -> list[AuditEntry]:
    return await entries_of(web.sessions, action)


async def test_a_link_opens_signed_out_plays_206_and_every_open_is_audited(
    web: Console,
) -> None:
    made = await _share(web, note="for the insurer")
    assert set(made) == {"id", "url", "expires_at", "one_time"} and made["one_time"] is False
    path = _path(made["url"])
    token = path.removeprefix("/s/")
    page = await web.client.get(path)  # no cookie, no token
    assert page.status_code == 200
    assert 'src="' + path + '/media"' in page.text
    assert "4567" not in page.text and "for the insurer" not in page.text  # no number, no note
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert page.headers["cache-control"] == "no-store"
    media = await web.client.get(f"{path}/media", headers={"Range": "bytes=100-299"})
    assert media.status_code == 206 and media.content == web.plain[100:300]
    opened = await _entries(web, "share.opened")
    assert [json.loads(e.details)["via"] for e in opened] == ["page", "media"]
    details = json.loads(opened[1].details)
    assert details["range"] == "100-299" and details["ip"] == "127.0.0.1"
    assert details["share_id"] == made["id"]
    assert opened[0].actor == f"share:{made['id']}"
    assert opened[0].target == f"recording:{web.recording_id}"
    (created,) = await _entries(web, "share.created")
    assert created.actor.endswith("(selim)")
    # The token is nowhere in clear: not in the table, not in the trail, not in the log.
    async with web.sessions() as session:
        link = await session.get(ShareLink, str(made["id"]))
        assert link is not None and link.token_hash == token_hash(token)
        trail = " ".join(f"{e.target} {e.details}" for e in await session.scalars(
            select(AuditEntry)))
    assert token not in trail and token not in link.token_hash
    assert token not in logged_path(path) and token not in logged_path(f"{path}/media")


async def test_revoked_expired_and_unknown_links(web: Console) -> None:
    made = await _share(web, expires_days=2)
    path = _path(made["url"])
    listed = await web.client.get("/api/v1/shares", headers=web.api("selim"))
    assert [s["state"] for s in listed.json()] == ["live"]
    revoked = await web.client.delete(f"/api/v1/shares/{made['id']}", headers=web.api("selim"))
    assert revoked.status_code == 204
    assert (await web.client.get(path)).status_code == 410
    gone = await web.client.get(f"{path}/media", headers={"Range": "bytes=0-9"})
    assert gone.status_code == 410 and gone.headers["content-type"] == "application/problem+json"
    (entry,) = await _entries(web, "share.revoked")
    assert entry.actor.endswith("(selim)")
    refused = await _entries(web, "share.opened")
    assert {e.outcome for e in refused} == {"refused"}
    # Expiry: the link's time has passed.
    late = await _share(web)
    async with web.sessions() as session:
        await session.execute(update(ShareLink).where(ShareLink.id == late["id"])
                              .values(expires_at=utcnow() - timedelta(seconds=1)))
        await session.commit()
    assert (await web.client.get(_path(late["url"]))).status_code == 410
    assert (await web.client.get("/s/" + "x" * 43)).status_code == 404
    assert (await web.client.get("/s/" + "x" * 43 + "/media")).status_code == 404
    listed = await web.client.get("/api/v1/shares", headers=web.api("deniz"))  # dpo: all
    assert sorted(s["state"] for s in listed.json()) == ["expired", "revoked"]


async def test_a_one_time_link_plays_in_the_browser_that_opened_it_only(web: Console) -> None:
    made = await _share(web, one_time=True)
    path = _path(made["url"])
    assert (await web.client.get(f"{path}/media")).status_code == 410  # no page open yet
    page = await web.client.get(path)
    assert page.status_code == 200
    cookie = page.cookies.get("pbxb_share_playback")
    assert cookie
    web.client.cookies.clear()
    with_cookie = {"Cookie": f"pbxb_share_playback={cookie}", "Range": "bytes=0-99"}
    first = await web.client.get(f"{path}/media", headers=with_cookie)
    assert first.status_code == 206 and first.content == web.plain[:100]
    seek = await web.client.get(f"{path}/media", headers={**with_cookie,
                                                          "Range": "bytes=2000-2099"})
    assert seek.status_code == 206 and seek.content == web.plain[2000:2100]
    other_browser = await web.client.get(f"{path}/media", headers={"Range": "bytes=0-99"})
    assert other_browser.status_code == 410
    assert (await web.client.get(path)).status_code == 410  # a second open


async def test_who_may_share(web: Console) -> None:
    url = f"/api/v1/recordings/{web.recording_id}/share"
    for user in ("other", "ayse", "aydin"):  # another extension's supervisor, admin, auditor
        refused = await web.client.post(url, json={}, headers=web.api(user))
        assert refused.status_code == 403, user
    assert (await web.client.post(url, json={"expires_days": 31},
                                  headers=web.api("deniz"))).status_code == 422
    made = await _share(web, "deniz")
    # A supervisor cannot revoke a dpo's link, nor see it.
    assert (await web.client.get("/api/v1/shares", headers=web.api("selim"))).json() == []
    other = await web.client.delete(f"/api/v1/shares/{made['id']}", headers=web.api("selim"))
    assert other.status_code == 403
    assert await _entries(web, "share.created") != []


async def test_the_console_form_shares_once_and_refuses_without_csrf(web: Console) -> None:
    cookie = await web.signed_in("selim")
    session_id = cookie["Cookie"].split("=", 1)[1]
    call_page = await web.client.get(f"/calls/{web.call_id}", headers=cookie)
    assert f'action="/recordings/{web.recording_id}/share"' in call_page.text
    web.client.cookies.clear()
    form = f"/recordings/{web.recording_id}/share"
    refused = await web.client.post(form, data={"expires_days": "3"}, headers=cookie)
    assert refused.status_code == 403 and await _entries(web, "share.created") == []
    nonce = csrf.new_nonce()
    both = {"Cookie": f"pbxb_session={session_id}; pbxb_csrf={nonce}"}
    token = csrf.token_for(SECRET.encode(), nonce, session_id)
    made = await web.client.post(
        form, data={"expires_days": "3", "one_time": "true", "csrf_token": token},
        headers=both,
    )
    assert made.status_code == 201 and 'id="new-share-url"' in made.text
    assert f'value="{BASE}/s/' in made.text
    shares = await web.client.get("/shares", headers=both)
    assert shares.status_code == 200 and "/s/" not in shares.text  # shown once only
    async with web.sessions() as session:
        (link,) = (await session.scalars(select(ShareLink))).all()
    assert link.one_time and link.expires_at - link.created_at == timedelta(days=3)
    revoke = f"/shares/{link.id}/revoke"
    assert (await web.client.post(revoke, data={}, headers=both)).status_code == 403
    done = await web.client.post(revoke, data={"csrf_token": token}, headers=both)
    assert done.status_code == 303
    assert len(await _entries(web, "share.revoked")) == 1
    admin = await web.signed_in("ayse")
    assert f"action=\"{form}\"" not in (await web.client.get(f"/calls/{web.call_id}",
                                                             headers=admin)).text
