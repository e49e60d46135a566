"""The console's and the API's security, in process (ASGI through httpx) on the call
page's fixture (the real users module, a recording stored by the real pipeline, the
real audit trail), walking the app's own routes (tests/web_routes.py), so every page,
form, list filter and path parameter that lands later is covered as it lands.

- SQL metacharacters, NUL, very long input and unicode in every filter of every list
  (pages and API), on SQLite and PostgreSQL: 200 with no row, or a refusal naming the
  field; never a 5xx, never a row more;
- path traversal in every path parameter and in the static files: 404/422, never a file;
- IDOR: a supervisor asking for another extension's call, recording, media or share by
  id: 403/404 on every route that takes one, and none of them in any list or page;
- session fixation: a new session id at sign-in, the one before it dead;
- CSRF: every form refused without this browser's token; the API ignores the cookie;
- brute force: wrong passwords lock the account, too many from one address are
  throttled, both audited;
- tokens: a supervisor's token cannot do what only a dpo may, a narrow token only its
  scopes, a revoked one nothing (401);
- a caller ID, a DID, a share note and reflected input holding markup are text on every
  page; the security headers on every answer.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from audit_fixtures import entries_of
from console_clients import bearer_header
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from storage_fakes import db_url, sessions
from test_call_page import PASSWORD, SECRET, Console, web
from web_routes import (
    Endpoint,
    console_app,
    endpoints,
    form_posts,
    list_filters,
    openapi_operations,
    page_endpoints,
    static_mounts,
)

from pbx_bridge.calls.models import Call
from pbx_bridge.commands import queue
from pbx_bridge.commands.queue import CommandKind
from pbx_bridge.config import Settings
from pbx_bridge.users import tokens
from pbx_bridge.web import csrf
from pbx_bridge.web.app import create_app
from storage.models import AuditEntry, Recording

__all__ = ["db_url", "sessions", "web"]  # fixtures

APP = console_app()
ENDPOINTS = endpoints(APP)
SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
SCRIPT = "<script>window.pwned = 1</script>"
MARKUP_DID = "<b>2125550199</b>"
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


@dataclass
class Site:
    """The call page's fixture with what the security tests need on top."""

    web: Console
    script_call_id: str  # extension 101 (selim's), caller ID and DID are markup
    other_recording_id: str  # of the other extension's call (102)
    own_share_id: str  # selim's link to his extension's recording
    own_share_token: str
    dpo_share_id: str  # a dpo's link: not selim's to see or revoke
    own_command_id: str  # a command selim's token asked for
    dpo_command_id: str  # one the dpo's token asked for: not selim's to read

    @property
    def client(self) -> httpx.AsyncClient:
        return self.web.client

    def own_ids(self) -> dict[str, str]:
        """A value for each path parameter: selim's own call, recording, share."""
        return {"call_id": self.web.call_id, "recording_id": self.web.recording_id,
                "share_id": self.own_share_id, "token": self.own_share_token,
                "command_id": self.own_command_id}

    def foreign_ids(self) -> dict[str, str]:
        """The other extension's call and recording, and the dpo's share."""
        return {"call_id": self.web.other_call_id, "recording_id": self.other_recording_id,
                "share_id": self.dpo_share_id, "command_id": self.dpo_command_id}

    async def browser(self, user: str | None) -> dict[str, str]:
        """Headers of a browser signed in as ``user`` (or not), with its CSRF nonce; the
        form token for them in ``csrf_token``'s place of the returned dict."""
        nonce = csrf.new_nonce()
        session_id = None
        if user is not None:
            cookie = await self.web.signed_in(user)
            session_id = cookie["Cookie"].split("=", 1)[1]
        cookies = f"pbxb_csrf={nonce}" + (f"; pbxb_session={session_id}" if session_id else "")
        return {"Cookie": cookies, "X-Csrf": csrf.token_for(SECRET.encode(), nonce, session_id)}

    async def request(
        self, endpoint: Endpoint, url: str, *, user: str | None, token: str | None = None,
        params: dict[str, str] | None = None, form: dict[str, str] | None = None,
        with_csrf: bool = True,
    ) -> httpx.Response:
        """As ``user``: the API with their bearer token (or ``token``), a page with their
        console session and, for a form, its CSRF token."""
        headers: dict[str, str] = {}
        data = dict(form or {})
        if endpoint.is_api:
            if token is not None:
                headers = bearer_header(token)
            elif user is not None:
                headers = self.web.api(user)
        else:
            browser = await self.browser(user)
            headers = {"Cookie": browser["Cookie"]}
            if with_csrf and endpoint.method != "GET":
                data.setdefault(csrf.FIELD, browser["X-Csrf"])
        self.client.cookies.clear()
        if endpoint.method in ("GET", "HEAD", "DELETE"):
            return await self.client.request(endpoint.method, url, headers=headers,
                                             params=params)
        if endpoint.is_api:
            return await self.client.request(endpoint.method, url, headers=headers, json={})
        return await self.client.request(endpoint.method, url, headers=headers, data=data)

    async def audit_count(self) -> int:
        async with self.web.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(AuditEntry)) or 0)

    async def audited(self, action: str) -> list[AuditEntry]:
        return await entries_of(self.web.sessions, action)


@pytest.fixture
async def site(web: Console) -> Site:
    async with web.sessions() as session:
        script_call = Call(
            direction="inbound", caller=SCRIPT, did=MARKUP_DID, extension="101",
            announcement="before-connect", legal_basis="consent", retention_class="default",
            language="tr", disposition="answered", channel_id="cscript", linkedid="lscript",
        )
        other = Recording(
            call_id=web.other_call_id, kind="conversation", status="stored",
            asterisk_name=f"other-{uuid.uuid4()}", legal_basis="consent",
            retention_class="default", retention_days=30, location="local:missing.wav",
            size_bytes=1000,
        )
        session.add_all([script_call, other])
        await session.commit()
        script_call_id, other_recording_id = script_call.id, other.id
    shares = {}
    for user, note in (("selim", SCRIPT + MARKUP_DID), ("deniz", "the dpo's")):
        made = await web.client.post(
            f"/api/v1/recordings/{web.recording_id}/share", json={"note": note},
            headers=web.api(user),
        )
        assert made.status_code == 201, made.text
        shares[user] = made.json()
    commands = {}
    for user in ("selim", "deniz"):
        principal = await web.users.token_principal(web.bearer[user])
        assert principal is not None
        commands[user] = await queue.submit(
            web.sessions, kind=CommandKind.PAUSE, call_id=web.call_id, arguments={},
            actor=principal.actor, take_within_s=1.0,
        )
    return Site(
        web, script_call_id, other_recording_id, shares["selim"]["id"],
        shares["selim"]["url"].rsplit("/", 1)[1], shares["deniz"]["id"],
        commands["selim"], commands["deniz"],
    )


def _ids(endpoint: Endpoint) -> str:
    return str(endpoint)


def _problem_names(answer: httpx.Response, name: str) -> None:
    assert answer.headers["content-type"] == "application/problem+json", answer.text
    assert name in answer.json()["detail"], (name, answer.json())


# --- an unknown query parameter, in every API operation ------------------------------

API_OPERATIONS = [e for e in ENDPOINTS if e.is_api and e.method in ("GET", "DELETE")
                  and e.path != "/api/v1/openapi.json"]


@SQLITE
async def test_every_api_operation_refuses_a_query_parameter_it_does_not_know(
    site: Site,
) -> None:
    """A misspelt filter must not answer as if there were none (every call, every
    consent, every audit entry): 422 naming it, before anything is read or done."""
    tried = 0
    for endpoint in API_OPERATIONS:
        url = endpoint.url(**site.own_ids())
        if "{" in url:  # ids of no row: the unknown parameter is refused before any lookup
            url = endpoint.url(**{name: str(uuid.uuid4()) if name.endswith("id") else "100"
                                  for name in endpoint.params})
        before = await site.audit_count()
        for user in ("deniz", "selim", None):
            answer = await site.request(endpoint, url, user=user,
                                        params={"extention": "100"})
            assert answer.status_code == 422, (str(endpoint), user, answer.status_code)
            _problem_names(answer, "'extention'")
        assert await site.audit_count() == before, str(endpoint)
        tried += 1
    assert tried >= 15  # the walk found the API


# --- SQL metacharacters in every filter of every list --------------------------------

METACHARACTERS = [
    "' OR 1=1 --", "1' OR '1'='1", '" OR ""="', "1; DROP TABLE calls; --", "%", "_", "%%",
    "10_", "\\", "\\%", "'", "\x00", "x\x00' OR 1=1", "x" * 5000,
    "\u0130stanbul \u0131\u015f\u0131k \u011f\u00fc\u015f\u00f6\u00e7 \U0001f600 \u202e\u200b",
    "101%", "%101", "21255501%",
]
# The lists: every GET route without a path parameter that is no sign-in/start page.
LIST_FILTERS = [(e, name) for e, name in list_filters(APP)
                if not e.params and e.path not in ("/", "/sign-in")]


@pytest.mark.parametrize(("endpoint", "name"), LIST_FILTERS,
                         ids=[f"{e.path}?{n}" for e, n in LIST_FILTERS])
async def test_sql_metacharacters_in_a_filter_find_nothing_or_are_refused_by_name(
    site: Site, endpoint: Endpoint, name: str
) -> None:
    """On SQLite and PostgreSQL (the filter reaches SQL). As the first of a dpo (who may
    use every filter, a number too), an auditor, an admin, a supervisor who may see the
    list: a value no row holds finds no row, whatever it means in SQL (a quote, a
    comment, a LIKE wildcard, an escape); or is refused as 422 problem JSON (a page: 400)
    naming the filter; never a 5xx."""
    for user in ("deniz", "aydin", "ayse", "selim"):
        baseline = await site.request(endpoint, endpoint.path, user=user)
        if baseline.status_code == 200:
            break
    assert baseline.status_code == 200, (endpoint, baseline.text)
    rows = {site.web.call_id, site.web.other_call_id, site.script_call_id,
            site.web.recording_id, site.other_recording_id}
    listed = rows & set(UUID_RE.findall(baseline.text))
    assert listed or not endpoint.path.endswith("calls")
    for value in METACHARACTERS:
        answer = await site.request(endpoint, endpoint.path, user=user, params={name: value})
        assert answer.status_code < 500, (name, value, answer.text)
        if endpoint.is_api:
            assert answer.status_code in (200, 422), (name, value, answer.status_code)
            if answer.status_code == 422:
                _problem_names(answer, name)
                continue
            found = answer.json()
            if isinstance(found, dict):  # a page of a list: its items
                found = next((v for v in found.values() if isinstance(v, list)), found)
            assert found == [], (name, value, found)
        else:
            assert answer.status_code in (200, 400), (name, value, answer.status_code)
            if answer.status_code == 400:
                assert name in answer.text, (name, value)
            shown = listed & set(UUID_RE.findall(answer.text))
            assert not shown, (name, value, shown)
    # Nothing was dropped or altered.
    async with site.web.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Call)) == 3


async def test_a_nul_in_a_form_or_json_field_is_refused_by_name(site: Site) -> None:
    """On PostgreSQL a NUL reaching a query was a 500 (text cannot hold it): every form
    (its fields as the page sends them) and every JSON body's string fields."""
    fields = {"username": "deniz", "password": PASSWORD, "note": "n", "totp": "",
              "expires_days": "3", "next": "/calls"}
    for endpoint in form_posts(APP):
        for name in fields:
            answer = await site.request(
                endpoint, endpoint.url(**site.own_ids()), user="deniz",
                form={**fields, name: fields[name] + "\x00x"},
            )
            assert answer.status_code == 400, (endpoint, name, answer.status_code)
            assert f"{name}: a value cannot contain a NUL" in answer.text
    document = APP.openapi()
    for method, path in openapi_operations(APP):
        body = document["paths"][path][method.lower()].get("requestBody")
        if body is None:
            continue
        schema = body.get("content", {}).get("application/json", {}).get("schema", {})
        ref = next((s["$ref"] for s in schema.get("anyOf", [schema]) if "$ref" in s), None)
        if ref is None:
            continue  # no JSON object: nothing named to put a NUL in
        model = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
        texts = [name for name, prop in model.get("properties", {}).items()
                 if "string" in json.dumps(prop)]
        for name in texts:
            answer = await site.client.request(
                method, Endpoint(method, path, True).url(**site.own_ids()),
                json={name: "x\x00y"}, headers=site.web.api("deniz"),
            )
            assert answer.status_code == 422, (method, path, name, answer.text)
            _problem_names(answer, name)


# --- path traversal ------------------------------------------------------------------

TRAVERSALS = [
    "%2e%2e", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "..%2f..%2f..%2fetc%2fpasswd",
    "%2fetc%2fpasswd", "..%5c..%5cwindows%5cwin.ini", "%252e%252e%252f", "....%2f%2f",
    "%00", "x%00.wav", "etc/passwd", "/etc/passwd", "%2e%2e%2f%2e%2e%2fpyproject.toml",
    "00000000-0000-4000-8000-000000000000%2f..%2f..", "..;%2f", "%c0%ae%c0%ae%c0%af",
]
WITH_PARAMS = [e for e in ENDPOINTS if e.params]
LEAKS = ("root:x:0:0", "[project]", "def create_app", "SQLite format")


@SQLITE
@pytest.mark.parametrize("endpoint", WITH_PARAMS, ids=_ids)
async def test_path_traversal_in_every_path_parameter_is_refused(
    site: Site, endpoint: Endpoint
) -> None:
    for payload in TRAVERSALS:
        for param in endpoint.params:
            values = {**site.own_ids(), param: payload}
            url = endpoint.url(**values)
            for user in ("deniz", None):
                answer = await site.request(endpoint, url, user=user)
                allowed = {400, 401, 403, 404, 405, 410, 422}
                if not endpoint.is_api and user is None:
                    allowed.add(303)  # sent to sign in first, before anything is read
                if answer.status_code == 307:  # "x//": the route without the last slash
                    location = answer.headers["location"]
                    assert location.startswith(str(site.client.base_url) + "/"), location
                    answer = await site.request(endpoint, location, user=user)
                assert answer.status_code in allowed, (url, user, answer.status_code)
                assert not any(leak in answer.text for leak in LEAKS), url
    assert await site.web.played() == []


STATIC_TRAVERSALS = [
    "%2e%2e/app.py", "..%2fapp.py", "%2e%2e%2f%2e%2e%2f%2e%2e%2fpyproject.toml",
    "%2fetc%2fpasswd", "/etc/passwd", "..%5capp.py", "console.css%00.py",
    "%2e%2e/templates/base.html", "..%2f..%2fweb%2fapp.py", "%252e%252e%252fapp.py",
]


@SQLITE
async def test_static_files_never_serve_a_file_outside_their_folder(site: Site) -> None:
    mounts = static_mounts(APP)
    assert mounts, "the console serves its static files"
    for mount in mounts:
        css = await site.client.get(f"{mount}/console.css")
        assert css.status_code == 200 and css.headers["x-content-type-options"] == "nosniff"
        for payload in STATIC_TRAVERSALS:
            answer = await site.client.get(f"{mount}/{payload}")
            assert answer.status_code in (400, 404), (payload, answer.status_code)
            assert not any(leak in answer.text for leak in (*LEAKS, "{% block")), payload


# --- IDOR ----------------------------------------------------------------------------

FOREIGN = [e for e in WITH_PARAMS if set(e.params) <= {"call_id", "recording_id", "share_id"}]


@SQLITE
@pytest.mark.parametrize("endpoint", FOREIGN, ids=_ids)
async def test_a_supervisor_cannot_reach_another_extensions_call_recording_or_share(
    site: Site, endpoint: Endpoint
) -> None:
    before = await site.audit_count()
    url = endpoint.url(**site.foreign_ids())
    answer = await site.request(endpoint, url, user="selim")
    assert answer.status_code in (403, 404), (url, answer.status_code, answer.text[:300])
    told = answer.text
    if endpoint.is_api and endpoint.method != "HEAD":  # the instance is the path asked
        told = json.dumps({k: v for k, v in answer.json().items() if k != "instance"})
    assert site.web.other_call_id not in told and site.other_recording_id not in told
    # The refusal changed nothing (no share made, no link revoked, nothing played).
    for action in ("share.created", "share.revoked", "recording.played"):
        assert [e for e in await site.audited(action) if e.seq > before] == [], action


@SQLITE
async def test_another_extensions_calls_recordings_and_shares_are_in_no_list(
    site: Site,
) -> None:
    foreign = set(site.foreign_ids().values())
    lists = [e for e in ENDPOINTS if e.method == "GET" and not e.params
             and e.path not in ("/api/v1/openapi.json", "/healthz")]
    assert any(e.path == "/api/v1/calls" for e in lists)
    for endpoint in lists:
        answer = await site.request(endpoint, endpoint.path, user="selim")
        if answer.status_code in (301, 302, 303, 307):
            answer = await site.request(endpoint, answer.headers["location"], user="selim")
        assert answer.status_code in (200, 403), (endpoint, answer.status_code)
        assert not foreign & set(UUID_RE.findall(answer.text)), endpoint
    mine = await site.client.get("/api/v1/calls", headers=site.web.api("selim"))
    assert {c["id"] for c in mine.json()} == {site.web.call_id, site.script_call_id}


# --- session fixation ----------------------------------------------------------------

async def _sign_in(site: Site, cookies: dict[str, str], user: str) -> httpx.Response:
    """POST the sign-in form as a browser holding ``cookies`` (name -> value)."""
    nonce = csrf.new_nonce()
    cookies = {**cookies, "pbxb_csrf": nonce}
    token = csrf.token_for(SECRET.encode(), nonce, cookies.get("pbxb_session"))
    site.client.cookies.clear()
    return await site.client.post(
        "/sign-in", data={"username": user, "password": PASSWORD, "csrf_token": token},
        headers={"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())},
    )


def _session_of(answer: httpx.Response) -> str:
    match = re.search(r"pbxb_session=([^;]+)", answer.headers.get("set-cookie", ""))
    assert match, answer.headers
    return match.group(1)


@SQLITE
async def test_the_session_id_changes_at_sign_in_and_the_one_before_is_dead(site: Site) -> None:
    planted = await _sign_in(site, {"pbxb_session": "planted-by-an-attacker"}, "selim")
    assert planted.status_code == 303
    first = _session_of(planted)
    assert first != "planted-by-an-attacker"
    # Signing in again in the same browser (as someone else): a new id, and the old
    # session no longer opens anything.
    again = await _sign_in(site, {"pbxb_session": first}, "deniz")
    second = _session_of(again)
    assert second != first
    site.client.cookies.clear()
    old = await site.client.get("/calls", headers={"Cookie": f"pbxb_session={first}"})
    assert old.status_code == 303 and old.headers["location"].startswith("/sign-in")
    new = await site.client.get("/calls", headers={"Cookie": f"pbxb_session={second}"})
    assert new.status_code == 200 and "deniz" in new.text
    # The CSRF nonce is renewed at sign-in too: a token seen before it is worthless.
    assert "pbxb_csrf=" in again.headers["set-cookie"]


# --- CSRF ----------------------------------------------------------------------------

FORMS = form_posts(APP)


@SQLITE
@pytest.mark.parametrize("endpoint", FORMS, ids=_ids)
async def test_every_form_is_refused_without_this_browsers_token(
    site: Site, endpoint: Endpoint
) -> None:
    url = endpoint.url(**site.own_ids())
    mine = await site.browser("deniz")
    other = await site.browser("deniz")
    anonymous = await site.browser(None)
    attempts = {
        "no token": (mine["Cookie"], None),
        "forged": (mine["Cookie"], "x" * 43),
        "another browser's": (mine["Cookie"], other["X-Csrf"]),
        "made before sign-in": (mine["Cookie"], anonymous["X-Csrf"]),
        "no nonce cookie": (mine["Cookie"].split("; ", 1)[1], mine["X-Csrf"]),
    }
    before = await site.audit_count()
    for what, (cookie, token) in attempts.items():
        site.client.cookies.clear()
        form = {"username": "deniz", "password": PASSWORD, "expires_days": "3"}
        if token is not None:
            form[csrf.FIELD] = token
        answer = await site.client.request(endpoint.method, url, data=form,
                                           headers={"Cookie": cookie})
        assert answer.status_code == 403, (endpoint, what, answer.status_code)
    assert await site.audit_count() == before  # nothing happened, nothing signed in


@SQLITE
async def test_the_api_never_takes_the_console_session(site: Site) -> None:
    cookie = await site.web.signed_in("deniz")
    for method, path in openapi_operations(APP):
        endpoint = Endpoint(method, path, True)
        if path in ("/healthz",):
            continue
        site.client.cookies.clear()
        answer = await site.client.request(method, endpoint.url(**site.own_ids()),
                                           headers=cookie)
        assert answer.status_code == 401, (method, path, answer.status_code)


# --- brute force ---------------------------------------------------------------------

@SQLITE
async def test_wrong_passwords_lock_the_account_and_the_lockout_is_audited(site: Site) -> None:
    browser = await site.browser(None)
    for _ in range(5):
        site.client.cookies.clear()
        wrong = await site.client.post(
            "/sign-in", headers={"Cookie": browser["Cookie"]},
            data={"username": "selim", "password": "not it", "csrf_token": browser["X-Csrf"]},
        )
        assert wrong.status_code == 401 and "pbxb_session" not in wrong.headers.get(
            "set-cookie", "")
    site.client.cookies.clear()
    right = await site.client.post(
        "/sign-in", headers={"Cookie": browser["Cookie"], "Accept-Language": "en"},
        data={"username": "selim", "password": PASSWORD, "csrf_token": browser["X-Csrf"]},
    )
    assert right.status_code == 401 and "locked" in right.text
    (locked,) = await site.audited("auth.locked")
    assert locked.target.endswith("selim") or "selim" in locked.details
    failures = await site.audited("auth.sign_in_failed")
    assert len(failures) == 6 and all("127.0.0.1" in e.details for e in failures)
    assert PASSWORD not in " ".join(e.details for e in failures)


@SQLITE
async def test_one_address_trying_many_names_is_throttled_and_audited(site: Site) -> None:
    browser = await site.browser(None)

    async def attempt(user: str, password: str) -> httpx.Response:
        site.client.cookies.clear()
        return await site.client.post(
            "/sign-in", headers={"Cookie": browser["Cookie"], "Accept-Language": "en"},
            data={"username": user, "password": password, "csrf_token": browser["X-Csrf"]},
        )

    for index in range(20):  # [auth] ip_max_failures: no account reaches its own lockout
        assert (await attempt(f"guess{index}", "password123")).status_code == 401
    refused = await attempt("deniz", PASSWORD)  # even the right password, from here
    assert refused.status_code == 401 and "pbxb_session" not in refused.headers.get(
        "set-cookie", "")
    assert await site.audited("auth.address_throttled")
    assert await site.audited("auth.locked") == []


# --- tokens --------------------------------------------------------------------------

# What only a dpo, an admin or an auditor may reach: never a supervisor's token.
NOT_FOR_SUPERVISORS = re.compile(
    r"^/api/v1/(dsars?|audit|users|tokens|routes|outbound-routes|extensions|retention|storage|"
    r"holds|exports)"
    r"(/|$)"
)
SECURED = [(m, p) for m, p in openapi_operations(APP) if p != "/healthz"]


async def _token(site: Site, user: str, *scopes: str) -> tuple[str, str]:
    async with site.web.sessions() as session:
        info, bearer = await tokens.create_token(
            session, user_name=user, scopes=list(scopes), days=1, actor="cli:root"
        )
        await session.commit()
    return info.id, bearer


@SQLITE
async def test_a_supervisors_token_cannot_do_what_only_a_dpo_may(site: Site) -> None:
    for method, path in SECURED:
        endpoint = Endpoint(method, path, True)
        if NOT_FOR_SUPERVISORS.match(path):
            answer = await site.request(endpoint, endpoint.url(**site.own_ids()), user="selim")
            assert answer.status_code == 403, (method, path, answer.status_code)
    refused = await site.client.get("/api/v1/calls", params={"number": "05321234567"},
                                    headers=site.web.api("selim"))
    assert refused.status_code == 403  # unmasking by search
    listed = await site.client.get("/api/v1/shares", headers=site.web.api("selim"))
    assert [s["id"] for s in listed.json()] == [site.own_share_id]  # not the dpo's
    revoke = await site.client.delete(f"/api/v1/shares/{site.dpo_share_id}",
                                      headers=site.web.api("selim"))
    assert revoke.status_code == 403


@SQLITE
async def test_a_narrow_token_reaches_only_its_scopes_and_a_revoked_one_nothing(
    site: Site,
) -> None:
    _, narrow = await _token(site, "deniz", "dashboard.read")
    token_id, revoked = await _token(site, "deniz", "*")
    async with site.web.sessions() as session:
        await tokens.revoke_token(session, token_id, actor="cli:root")
        await session.commit()
    for method, path in SECURED:
        endpoint = Endpoint(method, path, True)
        url = endpoint.url(**site.own_ids())
        answer = await site.request(endpoint, url, user=None, token=narrow)
        if path == "/api/v1/dashboard":
            assert answer.status_code == 200
        else:
            assert answer.status_code in (403, 404), (method, path, answer.status_code)
            assert answer.status_code == 403 or not endpoint.params, (method, path)
        gone = await site.request(endpoint, url, user=None, token=revoked)
        assert gone.status_code == 401, (method, path, gone.status_code)
        assert "invalid_token" in gone.headers["www-authenticate"]
    assert await site.web.played() == []


# --- every view of a call or recording audited --------------------------------------

VIEWS = [e for e in ENDPOINTS if e.method == "GET" and not e.path.endswith("/media")
         and set(e.params) & {"call_id", "recording_id"}]


@SQLITE
@pytest.mark.parametrize("endpoint", VIEWS, ids=_ids)
async def test_every_view_of_a_call_or_recording_is_audited_with_the_viewer(
    site: Site, endpoint: Endpoint
) -> None:
    """Personal data shown is personal data accessed: the call page, the call's and the
    recording's API documents each leave an entry naming who saw it and whether
    unmasked (as ``recordings show`` does); a refusal leaves none."""
    targets = {f"call:{site.web.call_id}", f"recording:{site.web.recording_id}"}
    for user, unmasked in (("deniz", True), ("selim", False)):
        before = await site.audit_count()
        answer = await site.request(endpoint, endpoint.url(**site.own_ids()), user=user)
        assert answer.status_code == 200, (endpoint, user, answer.status_code)
        async with site.web.sessions() as session:
            new = list((await session.scalars(
                select(AuditEntry).where(AuditEntry.seq > before)
                .where(AuditEntry.action.like("%.viewed")))).all())
        assert [e.target for e in new if e.target in targets], (endpoint, user)
        (entry,) = new
        assert entry.actor.endswith(f"({user})") or entry.actor == f"user:{user}"
        details = json.loads(entry.details)
        assert details["unmasked"] is unmasked
        assert details["via"] == ("api" if endpoint.is_api else "console")
    refused = await site.request(endpoint, endpoint.url(**site.foreign_ids()), user="selim")
    assert refused.status_code == 403
    viewed = [e.target for e in await site.audited("call.viewed")]
    viewed += [e.target for e in await site.audited("recording.viewed")]
    assert not {f"call:{site.web.other_call_id}", f"recording:{site.other_recording_id}"} & set(
        viewed)


# --- markup shown as text, security headers ------------------------------------------

PAGES = [e for e in page_endpoints(APP) if e.method == "GET"]


@SQLITE
@pytest.mark.parametrize("endpoint", PAGES, ids=_ids)
async def test_markup_in_a_caller_id_did_or_note_is_text_on_every_page(
    site: Site, endpoint: Endpoint
) -> None:
    ids = {**site.own_ids(), "call_id": site.script_call_id}
    for user in ("deniz", "selim"):  # unmasked, masked
        answer = await site.request(endpoint, endpoint.url(**ids), user=user)
        assert answer.status_code < 500
        assert "<script>window" not in answer.text and "<b>2125" not in answer.text, user
    if endpoint.path in ("/calls", "/calls/{call_id}"):
        shown = await site.request(endpoint, endpoint.url(**ids), user="deniz")
        assert "&lt;script&gt;window.pwned = 1&lt;/script&gt;" in shown.text
        assert "&lt;b&gt;2125550199&lt;/b&gt;" in shown.text
    if endpoint.path == "/shares":
        shown = await site.request(endpoint, endpoint.url(**ids), user="selim")
        assert "&lt;script&gt;" in shown.text  # the note, as text


REFLECTED = '"><script>window.pwned=1</script><b x="'


@SQLITE
async def test_input_reflected_into_a_page_is_escaped(site: Site) -> None:
    for endpoint, name in list_filters(APP):
        if endpoint.is_api:
            continue
        answer = await site.request(endpoint, endpoint.path, user="deniz",
                                    params={name: REFLECTED})
        assert answer.status_code < 500, (endpoint, name)
        assert "<script>window" not in answer.text and '<b x="' not in answer.text, name
    site.client.cookies.clear()
    sign_in = await site.client.get("/sign-in", params={"next": REFLECTED})
    assert "<script>window" not in sign_in.text


@SQLITE
async def test_every_answer_carries_the_security_headers(site: Site) -> None:
    for endpoint in ENDPOINTS:
        ids = {**site.own_ids(), "call_id": site.script_call_id}
        for user in ("deniz", "selim", None):
            answer = await site.request(endpoint, endpoint.url(**ids), user=user)
            for header, value in SECURITY_HEADERS.items():
                assert answer.headers.get(header, "").startswith(value), (
                    endpoint, user, header, answer.status_code)
            assert "'unsafe-inline'" not in answer.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
            assert answer.headers.get("cache-control") == "no-store", (endpoint, user)
    for path in ("/no-such-page", "/api/v1/no-such", "/static/console.css", "/static/nope"):
        answer = await site.client.get(path)
        assert answer.headers["x-content-type-options"] == "nosniff", path
        assert answer.headers["content-security-policy"].startswith("default-src 'self'")


def test_the_walk_finds_the_console_it_tests() -> None:
    """The walkers see what is there today (so an empty walk can never pass quietly)."""
    assert {"/api/v1/calls", "/calls", "/shares"} <= {e.path for e in ENDPOINTS}
    assert {"/sign-in", "/sign-out", "/recordings/{recording_id}/share"} <= {
        e.path for e in FORMS}
    assert ("GET", "/api/v1/calls") in openapi_operations(APP)
    assert {("/api/v1/calls", "did"), ("/calls", "number")} <= {
        (e.path, n) for e, n in LIST_FILTERS}
    assert {"call_id", "recording_id", "share_id", "token"} <= {
        p for e in WITH_PARAMS for p in e.params}



# --- failures --------------------------------------------------------------------------

@SQLITE
async def test_a_database_that_stops_answering_gives_503_with_headers_and_no_internals(
    site: Site, tmp_path: Path
) -> None:
    """What a request meets when the database goes away under it: 503 (problem JSON under
    /api/, the error page elsewhere) naming no driver, file or statement, with the
    security headers like every other answer; never a bare 500 from the server."""
    settings = Settings(web={"secret_key": SECRET},
                        privacy={"subject_key_file": tmp_path / "subject.key"})
    broken = async_sessionmaker(create_async_engine(
        f"sqlite+aiosqlite:///{tmp_path}/no-such-folder/db.sqlite"))
    app = create_app(settings, site.web.users, broken)
    # As a server would answer it (the app's exceptions not raised into the test).
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8090") as client:
        api = await client.get("/api/v1/calls", headers=site.web.api("deniz"))
        cookie = await site.web.signed_in("deniz")
        page = await client.get("/calls", headers=cookie)
    assert api.status_code == 503, api.text
    assert api.headers["content-type"] == "application/problem+json"
    assert page.status_code == 503 and "text/html" in page.headers["content-type"]
    for answer in (api, page):
        for header, value in SECURITY_HEADERS.items():
            assert answer.headers.get(header, "").startswith(value), (header, answer.text)
        assert "no-such-folder" not in answer.text and "sqlite" not in answer.text.lower()
        assert "Traceback" not in answer.text


class _FailingAccounts:
    """A users module that fails the way a bug would (not a refusal)."""

    async def token_principal(self, token: str) -> None:
        raise RuntimeError("bug: /secret/path/users.py line 1")

    async def session_principal(self, session_id: str) -> None:
        raise RuntimeError("bug: /secret/path/users.py line 1")


@SQLITE
async def test_an_unexpected_failure_is_a_500_with_headers_and_no_internals(
    site: Site, tmp_path: Path
) -> None:
    settings = Settings(web={"secret_key": SECRET},
                        privacy={"subject_key_file": tmp_path / "subject.key"})
    app = create_app(settings, _FailingAccounts(), site.web.sessions)  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8090") as client:
        api = await client.get("/api/v1/calls", headers=site.web.api("deniz"))
        page = await client.get("/calls", headers={"Cookie": "pbxb_session=x",
                                                   "Accept-Language": "tr"})
    assert api.status_code == 500 and api.headers["content-type"] == "application/problem+json"
    assert page.status_code == 500 and "Bir sorun" in page.text
    for answer in (api, page):
        for header, value in SECURITY_HEADERS.items():
            assert answer.headers.get(header, "").startswith(value), (header, answer.text)
        assert answer.headers["cache-control"] == "no-store"
        assert "/secret/path" not in answer.text and "Traceback" not in answer.text
