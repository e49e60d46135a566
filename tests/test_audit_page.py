"""The audit trail page, ``GET /api/v1/audit``, its verification (page form and API),
``GET /api/v1/consents`` and the ``call.viewed`` entries, in-process (ASGI through httpx)
on the call page's fixture (the real users module, a recording stored by the real
pipeline, the real audit trail) on SQLite and PostgreSQL: an auditor lands on the trail
and changes nothing else, filters and keyset pages, masking for the auditor, one entry
tampered in the database named as where the chain breaks."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from audit_fixtures import entries_of, tamper
from sqlalchemy import func, select
from storage_fakes import db_url, sessions
from test_call_page import CALLER, SECRET, Console, web
from web_routes import console_app, endpoints

from pbx_bridge.calls.models import Call, Consent
from pbx_bridge.config import PrivacySettings
from pbx_bridge.subjects.index import subject_index_from_settings
from pbx_bridge.web import csrf
from pbx_bridge.web.audit_masking import HIDDEN
from pbx_bridge.web.share_models import ShareLink
from storage.audit_trail import AuditEvent, record_events
from storage.models import AuditEntry, utcnow

__all__ = ["db_url", "sessions", "web"]  # fixtures

UNKNOWN = "00000000-0000-4000-8000-000000000000"
HOLD_REASON = "Dava 2026/17, Ahmet Y\u0131lmaz, 0532 123 45 67"
# Entries whose details hold what an auditor may not see, as the trail keeps them today.
PERSONAL = [
    AuditEvent("cli:root", "dsar.opened", "dsar:req-1",
               details={"reference": "DSAR-2026-0001", "type": "access",
                        "number": "0532***4567", "channel": "phone"}),
    AuditEvent("ip:203.0.113.9", "auth.sign_in_failed", "user:unknown",
               details={"ip": "203.0.113.9", "reason": "wrong-password"}),
    AuditEvent("user:deniz", "recording.held", "recording:rec-x",
               details={"reason": HOLD_REASON}),
    AuditEvent("cli:root", "calls.unmasked", "calls:listing",
               details={"count": 1, "ids": [UNKNOWN], "filters": {"number": "0532***4567"}}),
]


async def _append(web: Console, events: list[AuditEvent]) -> None:
    async with web.sessions() as session:
        await record_events(session, events)
        await session.commit()


async def _entries(web: Console, action: str) -> list[AuditEntry]:
    return await entries_of(web.sessions, action)


async def _form(web: Console, user: str) -> tuple[dict[str, str], str]:
    """Headers of a signed-in browser with its CSRF cookie, and the token its forms carry."""
    cookie = await web.signed_in(user)
    session_id = cookie["Cookie"].split("=", 1)[1]
    nonce = csrf.new_nonce()
    headers = {"Cookie": f"pbxb_session={session_id}; pbxb_csrf={nonce}",
               "Accept-Language": "en"}
    return headers, csrf.token_for(SECRET.encode(), nonce, session_id)


def _rows(html: str) -> list[int]:
    return [int(seq) for seq in re.findall(r'<tr data-seq="(\d+)"', html)]


async def test_an_auditor_lands_on_the_audit_trail_and_others_on_their_pages(
    web: Console,
) -> None:
    nonce = csrf.new_nonce()
    token = csrf.token_for(SECRET.encode(), nonce, None)
    for user, landing in (("aydin", "/audit"), ("deniz", "/dashboard"),
                          ("selim", "/dashboard")):
        web.client.cookies.clear()
        signed = await web.client.post(
            "/sign-in", data={"username": user, "password": "correct horse battery",
                              "csrf_token": token},
            headers={"Cookie": f"pbxb_csrf={nonce}"},
        )
        assert signed.status_code == 303 and signed.headers["location"] == landing, user
    web.client.cookies.clear()
    auditor = await web.signed_in("aydin")
    start = await web.client.get("/", headers=auditor)
    assert start.status_code == 303 and start.headers["location"] == "/audit"
    page = await web.client.get("/audit", headers=auditor)
    assert page.status_code == 200
    # The header offers the auditor the trail only; a dpo the trail among the others.
    nav = re.findall(r'<li><a href="(/\w+)"', page.text)
    assert nav == ["/audit"]
    dpo_page = await web.client.get("/calls", headers=await web.signed_in("deniz"))
    assert re.findall(r'<li><a href="(/\w+)"', dpo_page.text) == [
        "/dashboard", "/calls", "/shares", "/audit", "/dsar"]
    assert 'href="/audit"' not in (
        await web.client.get("/calls", headers=await web.signed_in("selim"))).text


async def test_without_audit_read_the_trail_is_refused(web: Console) -> None:
    for user in ("selim", "ayse"):
        page = await web.client.get("/audit", headers=await web.signed_in(user))
        assert page.status_code == 403, user
        assert 'data-seq="' not in page.text
        for path in ("/api/v1/audit", "/api/v1/audit/verification"):
            api = await web.client.get(path, headers=web.api(user))
            assert api.status_code == 403, (user, path)
            assert api.headers["content-type"] == "application/problem+json"
        verify = await web.client.post("/api/v1/audit/verify", headers=web.api(user))
        assert verify.status_code == 403
    assert await _entries(web, "audit.verified") == []


async def test_filters_by_time_actor_action_and_target(web: Console) -> None:
    now = utcnow()
    await _append(web, [
        AuditEvent("user:selim", "recording.played", f"recording:{web.recording_id}",
                   at=now - timedelta(days=3)),
        AuditEvent("user:deniz", "consent.recorded", f"call:{web.call_id}",
                   at=now - timedelta(days=1)),
        AuditEvent("user:deniz", "dsar.opened", "dsar:req-9", at=now),
    ])
    headers = web.api("aydin")

    async def actions(**query: str) -> list[str]:
        answer = await web.client.get("/api/v1/audit", params=query, headers=headers)
        assert answer.status_code == 200, answer.text
        return [entry["action"] for entry in answer.json()]

    assert await actions(actor="user:deniz") == ["dsar.opened", "consent.recorded"]
    assert await actions(action="recording.*", actor="user:*") == ["recording.played"]
    # A bare call id finds the call's entries and its recordings'.
    about_call = await actions(target=web.call_id)
    assert "consent.recorded" in about_call and "recording.played" in about_call
    assert "dsar.opened" not in about_call
    assert await actions(target=f"call:{web.call_id}") == ["consent.recorded"]
    day = timedelta(days=1)
    window = {"since": (now - 2 * day).isoformat(), "until": (now - day / 2).isoformat()}
    assert await actions(**window, actor="user:*") == ["consent.recorded"]
    # Bad input: 422 problem JSON naming the field; the page re-rendered with it.
    for query, field in (({"since": "yesterday"}, "since"), ({"limit": "0"}, "limit"),
                         ({"since": now.isoformat(), "until": (now - day).isoformat()},
                          "since"),
                         ({"actor": "x" * 201}, "actor"), ({"cursor": "bogus"}, "cursor")):
        refused = await web.client.get("/api/v1/audit", params=query, headers=headers)
        assert refused.status_code == 422, query
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["detail"].startswith(field), refused.json()
    browser, _ = await _form(web, "aydin")
    page = await web.client.get("/audit", params={"since": "yesterday"}, headers=browser)
    assert page.status_code == 400 and 'id="filter-error"' in page.text
    assert "since: &#39;yesterday&#39; is not a date" in page.text
    shown = await web.client.get("/audit", params={"actor": "user:deniz"}, headers=browser)
    assert shown.status_code == 200 and 'value="user:deniz"' in shown.text
    assert len(_rows(shown.text)) == 2


async def test_pages_walk_every_entry_newest_first_by_signed_cursor(web: Console) -> None:
    await _append(web, [AuditEvent("service", "test.paged", f"item:{i}") for i in range(130)])
    async with web.sessions() as session:
        expected = list((await session.scalars(
            select(AuditEntry.seq).where(AuditEntry.action == "test.paged")
            .order_by(AuditEntry.seq.desc()))).all())
    assert len(expected) == 130
    headers = web.api("aydin")
    seen: list[int] = []
    url: str | None = "/api/v1/audit?action=test.paged&limit=50"
    cursors = []
    while url is not None:
        answer = await web.client.get(url, headers=headers)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        seen += [entry["seq"] for entry in page]
        for entry in page:  # each entry with its own hash and its predecessor's
            assert re.fullmatch(r"[0-9a-f]{64}", entry["hash"])
            assert re.fullmatch(r"[0-9a-f]{64}", entry["prev_hash"])
        link = answer.headers.get("link")
        url = None if link is None else link.split(">")[0].lstrip("<")
        if link is not None:
            cursors.append(answer.headers["next-cursor"])
            assert len(page) == 50
    assert seen == expected and len(cursors) == 2
    # A cursor is bound to its filters: with another action it is refused.
    other = await web.client.get("/api/v1/audit", params={"action": "user.*",
                                                          "cursor": cursors[0]},
                                 headers=headers)
    assert other.status_code == 422 and other.json()["detail"].startswith("cursor")
    # The page pages the same way ("Older entries").
    browser = await web.signed_in("aydin")
    shown: list[int] = []
    next_url: str | None = "/audit?action=test.paged&limit=50"
    while next_url is not None:
        page_html = (await web.client.get(next_url, headers=browser)).text
        shown += _rows(page_html)
        found = re.search(r'<a href="([^"]+)" rel="next">', page_html)
        next_url = None if found is None else found.group(1).replace("&amp;", "&")
    assert shown == expected


async def test_the_auditor_sees_nothing_personal_the_dpo_sees_the_stored_details(
    web: Console,
) -> None:
    await _append(web, PERSONAL)
    browser, _ = await _form(web, "aydin")
    auditor = (await web.client.get("/api/v1/audit", params={"limit": 1000},
                                    headers=web.api("aydin"))).json()
    by_action = {entry["action"]: entry for entry in auditor}
    assert by_action["dsar.opened"]["details"]["number"] == HIDDEN
    assert by_action["dsar.opened"]["details"]["reference"] == "DSAR-2026-0001"
    failed = by_action["auth.sign_in_failed"]
    assert failed["actor"] == "ip:203.0.x.x" and failed["details"]["ip"] == "203.0.x.x"
    assert failed["details"]["reason"] == "wrong-password"  # a code, kept
    assert by_action["recording.held"]["details"]["reason"] == HIDDEN
    assert by_action["calls.unmasked"]["details"]["filters"]["number"] == HIDDEN
    assert by_action["calls.unmasked"]["details"]["ids"] == [UNKNOWN]
    signed_in = by_action["auth.signed_in"]  # the sign-ins of the fixture's sessions
    assert signed_in["details"]["ip"] == "192.0.x.x"
    # Hashes are the stored entry's: masking never touches what the chain is made of.
    async with web.sessions() as session:
        held = await session.scalar(select(AuditEntry).where(
            AuditEntry.action == "recording.held"))
    assert held is not None and by_action["recording.held"]["hash"] == held.hash
    page = (await web.client.get("/audit", params={"limit": 1000}, headers=browser)).text
    for secret in ("0532***4567", "Ahmet", "203.0.113.9", "192.0.2.1"):
        assert secret not in page and secret not in str(auditor), secret
    assert "hidden for your role" in page
    # A dpo sees the details as stored, and that page is audited with who saw it.
    dpo = (await web.client.get("/api/v1/audit", params={"action": "recording.held"},
                                headers=web.api("deniz"))).json()
    assert dpo[0]["details"]["reason"] == HOLD_REASON
    (unmasked,) = await _entries(web, "audit.unmasked")
    assert unmasked.actor.startswith("token:") and unmasked.actor.endswith("(deniz)")


async def test_verify_now_names_the_entry_tampered_in_the_database(
    web: Console, db_url: str
) -> None:
    await _append(web, PERSONAL)
    headers, token = await _form(web, "aydin")
    page = await web.client.get("/audit", headers=headers)
    assert "not been verified" in page.text and 'id="verify-now"' in page.text
    # Without this browser's CSRF token the form is refused and nothing runs.
    assert (await web.client.post("/audit/verify", data={}, headers=headers)).status_code == 403
    assert await _entries(web, "audit.verified") == []
    done = await web.client.post("/audit/verify", data={"csrf_token": token}, headers=headers)
    assert done.status_code == 303 and done.headers["location"] == "/audit#chain"
    (first,) = await _entries(web, "audit.verified")
    assert first.actor == "user:aydin" and first.outcome == "ok"
    page = await web.client.get("/audit", headers=headers)
    head = first.seq - 1
    assert f"Verified up to entry {head} at " in page.text and 'data-ok="true"' in page.text
    # Someone with the database's rights changes one entry's details.
    async with web.sessions() as session:
        victim = await session.scalar(select(AuditEntry.seq).where(
            AuditEntry.action == "recording.held"))
    assert victim is not None
    await tamper(db_url, "UPDATE audit_log SET details = '{\"reason\":\"nothing\"}' "
                         f"WHERE seq = {victim}")
    api = await web.client.post("/api/v1/audit/verify", headers=web.api("aydin"))
    assert api.status_code == 200
    state = api.json()
    assert state["ok"] is False and state["problem"]["seq"] == victim
    assert state["problem"]["kind"] == "changed" and state["verified_by"].endswith("(aydin)")
    page = await web.client.get("/audit", headers=headers)
    assert f"Broken at entry {victim}" in page.text and 'data-ok="false"' in page.text
    assert f"entry {victim} was changed" in page.text
    assert f'<tr data-seq="{victim}" class="broken">' in page.text
    again = (await web.client.get("/api/v1/audit/verification",
                                  headers=web.api("deniz"))).json()
    assert again == state
    broken = await _entries(web, "audit.verified")
    assert [e.outcome for e in broken] == ["ok", "broken"]
    # The page in Turkish says the same.
    turkish = await web.client.get("/audit", headers={**headers, "Accept-Language": "tr"})
    assert f"Zincir {victim} numaral\u0131 kay\u0131tta k\u0131r\u0131k" in turkish.text
    assert "Şimdi doğrula" in turkish.text


async def test_an_auditor_may_change_nothing_but_run_a_verification(web: Console) -> None:
    """Every POST/PUT/PATCH/DELETE the app serves, page or API, answers 403 to an
    auditor (with a valid CSRF token, so it is the role that refuses), except
    verifying the chain, signing in or out, and changing their own account."""
    made = await web.client.post(f"/api/v1/recordings/{web.recording_id}/share", json={},
                                 headers=web.api("selim"))
    assert made.status_code == 201
    ids = {"recording_id": web.recording_id, "call_id": web.call_id,
           "share_id": made.json()["id"],
           "prefix": "0090"}  # an outbound route's prefix is at most 32 characters
    exempt = {("POST", "/audit/verify"), ("POST", "/api/v1/audit/verify"),
              ("POST", "/sign-in"), ("POST", "/sign-out")}
    unsafe = [(e.method, e.path) for e in endpoints(console_app())
              if e.method in {"POST", "PUT", "PATCH", "DELETE"}]
    # What any signed-in user changes about themselves alone ("My account", the header's
    # language switch): nobody else's data, so an auditor may (tests/test_account_page.py).
    own = {pair for pair in unsafe if pair[1].startswith("/account/") or pair[1] == "/language"}
    walked = [pair for pair in unsafe if pair not in exempt | own]
    assert ("DELETE", "/api/v1/shares/{share_id}") in walked
    assert ("POST", "/shares/{share_id}/revoke") in walked
    headers, token = await _form(web, "aydin")
    for method, path in walked:
        url = re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), UNKNOWN), path)
        if path.startswith("/api/"):
            answer = await web.client.request(method, url, json={}, headers=web.api("aydin"))
        else:
            answer = await web.client.request(method, url, data={"csrf_token": token},
                                              headers=headers)
        assert answer.status_code == 403, (method, path, answer.status_code, answer.text)
    async with web.sessions() as session:
        links = list((await session.scalars(select(ShareLink))).all())
    assert len(links) == 1 and links[0].revoked_at is None
    for _, path in sorted(exempt - {("POST", "/sign-in"), ("POST", "/sign-out")}):
        if path.startswith("/api/"):
            answer = await web.client.post(path, headers=web.api("aydin"))
            assert answer.status_code == 200 and answer.json()["ok"] is True
        else:
            answer = await web.client.post(path, data={"csrf_token": token}, headers=headers)
            assert answer.status_code == 303
    assert len(await _entries(web, "audit.verified")) == 2


async def test_a_call_shown_is_audited_as_call_viewed_with_the_actor(web: Console) -> None:
    listed = await web.client.get("/calls", headers=await web.signed_in("selim"))
    assert listed.status_code == 200
    assert await _entries(web, "call.viewed") == []  # the list is not a call's details
    page = await web.client.get(f"/calls/{web.call_id}", headers=await web.signed_in("selim"))
    assert page.status_code == 200
    api = await web.client.get(f"/api/v1/calls/{web.call_id}", headers=web.api("deniz"))
    assert api.status_code == 200
    refused = await web.client.get(f"/api/v1/calls/{web.other_call_id}",
                                   headers=web.api("selim"))
    assert refused.status_code == 403
    viewed = await _entries(web, "call.viewed")
    assert [(e.actor, e.target) for e in viewed] == [
        ("user:selim", f"call:{web.call_id}"),
        (viewed[1].actor, f"call:{web.call_id}"),
    ]
    assert viewed[1].actor.startswith("token:") and viewed[1].actor.endswith("(deniz)")
    assert [e.details for e in viewed] == ['{"unmasked":false,"via":"console"}',
                                           '{"unmasked":true,"via":"api"}']
    recording = await web.client.get(f"/api/v1/recordings/{web.recording_id}",
                                     headers=web.api("selim"))
    assert recording.status_code == 200
    (seen,) = await _entries(web, "recording.viewed")
    assert seen.target == f"recording:{web.recording_id}" and seen.actor.endswith("(selim)")
    # The next view of the page lists the earlier ones among the call's entries.
    again = await web.client.get(f"/calls/{web.call_id}", headers=await web.signed_in("deniz"))
    assert again.text.count('<tr data-action="call.viewed">') == 2


async def test_the_consents_api_filters_scopes_masks_and_pages(
    web: Console, tmp_path: Path
) -> None:
    subjects = subject_index_from_settings(
        PrivacySettings(subject_key_file=tmp_path / "subject.key")
    )
    now = utcnow()
    async with web.sessions() as session:
        await session.execute(Call.__table__.update().values(started_at=now - timedelta(hours=1)))
        calls = [
            Call(direction="inbound", caller="+905441112233", did="2125550100",
                 extension="101" if i % 2 else "102", announcement="before-connect",
                 legal_basis="consent", retention_class="default", language="tr",
                 disposition="answered", channel_id=f"cc{i}", linkedid=f"lc{i}",
                 started_at=now - timedelta(days=1, minutes=i))
            for i in range(6)
        ]
        session.add_all(calls)
        await session.flush()
        session.add_all(
            Consent(call_id=call.id, caller=call.caller, decision=("granted", "declined")[i % 2],
                    digit=str(1 + i % 2), language="tr", times_played=1, decided_at=now)
            for i, call in enumerate(calls)
        )
        await session.commit()
        for consent in (await session.scalars(select(Consent))).all():  # as the journal keys
            consent.caller_key = subjects.key_of(consent.caller)
        await session.commit()
        total = await session.scalar(select(func.count()).select_from(Consent))
    assert total == 7

    async def listed(user: str, **query: str) -> list[dict[str, object]]:
        answer = await web.client.get("/api/v1/consents", params=query, headers=web.api(user))
        assert answer.status_code == 200, answer.text
        body: list[dict[str, object]] = answer.json()
        return body

    everything = await listed("deniz", limit="1000")
    assert len(everything) == 7 and everything[0]["call_id"] == web.call_id  # newest call
    assert everything[0]["caller"] == CALLER  # a dpo: unmasked
    (unmasked,) = await _entries(web, "consents.unmasked")
    assert unmasked.actor.endswith("(deniz)")
    # A supervisor: their extension's answers only, masked; no number filter.
    mine = await listed("selim", limit="1000")
    assert len(mine) == 4 and all(str(c["caller"]).count("*") == 3 for c in mine)
    assert CALLER not in str(mine) and "+905441112233" not in str(mine)
    refused = await web.client.get("/api/v1/consents", params={"number": CALLER},
                                   headers=web.api("selim"))
    assert refused.status_code == 403
    # Filters.
    assert [c["call_id"] for c in await listed("deniz", call=web.call_id)] == [web.call_id]
    assert len(await listed("deniz", answer="declined")) == 3
    assert len(await listed("deniz", number="+90 544 111 22 33")) == 6
    assert len(await listed("deniz", number="5321234567")) == 1
    assert len(await listed("deniz", since=(now - timedelta(hours=2)).isoformat())) == 1
    assert len(await listed("deniz", until=(now - timedelta(hours=2)).isoformat())) == 6
    # Pages: three of 3, 3 and 1 in the same order as the whole list.
    seen, url = [], "/api/v1/consents?limit=3"
    while url:
        answer = await web.client.get(url, headers=web.api("deniz"))
        seen += [c["id"] for c in answer.json()]
        link = answer.headers.get("link")
        url = "" if link is None else link.split(">")[0].lstrip("<")
    assert seen == [c["id"] for c in everything]
    # Bad input names the field; an auditor or admin may not read answers.
    for query, field in (({"answer": "maybe"}, "answer"), ({"call": "../x"}, "call"),
                         ({"since": "soon"}, "since"), ({"cursor": "x"}, "cursor")):
        bad = await web.client.get("/api/v1/consents", params=query, headers=web.api("deniz"))
        assert bad.status_code == 422, query
        assert bad.headers["content-type"] == "application/problem+json"
        assert bad.json()["detail"].startswith(field), bad.json()
    for user in ("aydin", "ayse"):
        assert (await web.client.get("/api/v1/consents",
                                     headers=web.api(user))).status_code == 403


async def test_the_openapi_document_describes_the_new_endpoints(web: Console) -> None:
    schema = (await web.client.get("/api/v1/openapi.json")).json()
    paths = schema["paths"]
    assert {"/api/v1/audit", "/api/v1/audit/verify", "/api/v1/audit/verification",
            "/api/v1/consents"} <= set(paths)
    listed = paths["/api/v1/audit"]["get"]["responses"]["200"]["content"]["application/json"]
    assert listed["schema"]["items"]["$ref"].endswith("/EntryView")
    names = {p["name"] for p in paths["/api/v1/consents"]["get"]["parameters"]}
    assert {"since", "until", "call", "answer", "number", "cursor", "limit"} <= names
