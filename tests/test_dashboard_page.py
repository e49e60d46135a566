"""The dashboard page, ``GET /api/v1/dashboard`` and the DSAR badge of every page,
in-process (ASGI through httpx) on the real users module and a database (SQLite and
PostgreSQL): the numbers shown are ``dashboard()``'s for the principal's scope, each role
sees only its parts, the charts are escaped SVG, the page speaks Turkish, and the
numbers come from a cache computed in the background."""

from __future__ import annotations

import asyncio
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from console_clients import bearer_header, session_cookie
from fastapi import FastAPI
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from storage_fakes import db_url, sessions

from pbx_bridge.calls.dashboard import Dashboard, dashboard
from pbx_bridge.calls.models import Call, Consent, DataSubjectRequest
from pbx_bridge.config import Language, Role, Settings
from pbx_bridge.users import accounts, tokens
from pbx_bridge.users.console_accounts import UsersAccounts
from pbx_bridge.web.app import create_app
from pbx_bridge.web.refreshing_cache import RefreshingCache
from pbx_bridge.web.web_state import WebState
from storage.models import Recording, RecordingCopy

__all__ = ["db_url", "sessions"]  # fixtures

PASSWORD = "correct horse battery"
SECRET = "test-secret-key-" + "0123456789abcdef" * 2
MARKUP_DID = "<script>window.pwned=1</script>"
USERS = [
    ("selim", Role.SUPERVISOR, ["101"], "en"),
    ("deniz", Role.DPO, [], "en"),
    ("dilek", Role.DPO, [], "tr"),
    ("ayse", Role.ADMIN, [], "en"),
    ("aydin", Role.AUDITOR, [], "en"),
]


@dataclass
class Console:
    client: httpx.AsyncClient
    app: FastAPI
    users: UsersAccounts
    sessions: async_sessionmaker[AsyncSession]
    bearer: dict[str, str]

    def api(self, user: str) -> dict[str, str]:
        return bearer_header(self.bearer[user])

    async def signed_in(self, user: str) -> dict[str, str]:
        return await session_cookie(self.users, user, PASSWORD)

    async def expected(self, extensions: frozenset[str] | None) -> Dashboard:
        """``dashboard()`` for the scope, as of the time the cache computed it."""
        state: WebState = self.app.state.web
        computed = await state.dashboard.dashboards.get(extensions)
        async with self.sessions() as session:
            return await dashboard(session, now=computed.at, soon_days=7,
                                   extensions=extensions)


@pytest.fixture
async def web(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[Console]:
    settings = Settings(
        auth={"argon2_time_cost": 1, "argon2_memory_kib": 8, "argon2_parallelism": 1},
        web={"secret_key": SECRET},
    )
    users = await UsersAccounts.from_settings(settings, sessions)
    bearer: dict[str, str] = {}
    now = datetime.now(UTC)
    async with sessions() as session:
        for name, role, extensions, language in USERS:
            await accounts.add_user(
                session, name=name, role=role, password=PASSWORD, auth=settings.auth,
                actor="cli:root", default_target="101", extensions=extensions,
                language=Language(language),
            )
        await session.commit()
        for name, *_ in USERS:
            _, bearer[name] = await tokens.create_token(
                session, user_name=name, scopes=["*"], days=1, actor="cli:root"
            )
        rows, consents = [], []
        for i in range(24):
            cid = f"00000000-0000-4000-8000-{i:012d}"
            rows.append({
                "id": cid, "linkedid": f"l{i}", "channel_id": f"c{i}", "direction": "inbound",
                "caller": "+905321234567", "did": MARKUP_DID if i % 3 == 0 else "2125550100",
                "extension": "101" if i % 2 else "102", "announcement": "before-connect",
                "legal_basis": "consent", "retention_class": "default", "language": "tr",
                "started_at": now - timedelta(days=i % 4, minutes=1 + i),
            })
            consents.append({"id": f"consent-{i}", "call_id": cid, "language": "tr",
                             "decision": ("granted", "declined", "timeout")[i % 3],
                             "times_played": 1, "decided_at": now})
        await session.execute(insert(Call), rows)
        await session.execute(insert(Consent), consents)
        await session.execute(insert(Recording), [
            {"id": f"rec-{i}", "call_id": rows[i]["id"], "kind": "conversation",
             "legal_basis": "consent", "retention_class": "default", "status": "stored",
             "asterisk_name": f"rec-{i}", "retention_days": 30}
            for i in range(3)
        ])
        await session.execute(insert(RecordingCopy), [
            {"id": f"copy-{i}", "recording_id": f"rec-{i}", "backend": "s3", "key": f"k{i}",
             "status": status} for i, status in enumerate(["pending", "dead", "verified"])
        ])
        await session.execute(insert(DataSubjectRequest), [
            {"id": f"req-{ref}", "reference": ref, "subject_key": "k" * 64,
             "number_masked": "x", "type": "access", "channel": "phone", "status": "open",
             "opened_by": "deniz", "received_at": now - timedelta(days=30),
             "due_at": now + timedelta(days=due)}
            for ref, due in (("DSAR-OVERDUE", -2), ("DSAR-SOON", 3))
        ])
        await session.commit()
    app = create_app(settings, users, sessions)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8090"
    ) as client:
        yield Console(client, app, users, sessions, bearer)
    await app.state.web.dashboard.close()


def figure(html: str, element_id: str) -> str:
    found = re.search(rf'<dd id="{element_id}">([^<]*)</dd>', html)
    assert found is not None, element_id
    return found.group(1)


def percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


async def test_the_dpo_sees_dashboard_numbers_and_charts_for_every_call(web: Console) -> None:
    page = await web.client.get("/dashboard", headers=await web.signed_in("deniz"))
    assert page.status_code == 200
    html = page.text
    expected = await web.expected(None)
    calls = expected.calls
    assert calls.window.calls == 24
    assert figure(html, "calls-today") == str(calls.today.calls)
    assert figure(html, "calls-window") == "24"
    assert figure(html, "consent-today") == percent(calls.today.consent_rate)
    assert figure(html, "consent-window") == percent(calls.window.consent_rate) == "33%"
    assert figure(html, "dsars-overdue") == "1" and figure(html, "dsars-due-soon") == "1"
    assert "DSAR-OVERDUE" in html
    # dpo has no storage.status: no storage part.
    assert 'id="recordings-stored"' not in html
    # Two charts, parseable SVG, each with a title; the DID with markup only as text.
    svgs = re.findall(r"<svg .*?</svg>", html, re.S)
    assert len(svgs) == 2
    for svg in svgs:
        root = ET.fromstring(svg)
        assert root.get("role") == "img"
        assert root.find("{http://www.w3.org/2000/svg}title") is not None
    assert "<script>window.pwned" not in html
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in html
    # The per-route table has each DID with its count.
    for route in calls.routes:
        assert f"<td>{route.count.calls}</td>" in html
    assert re.search(r"Numbers as of \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", html)


async def test_a_supervisors_dashboard_counts_only_their_extensions(web: Console) -> None:
    page = await web.client.get("/dashboard", headers=await web.signed_in("selim"))
    assert page.status_code == 200
    expected = await web.expected(frozenset({"101"}))
    assert expected.calls.window.calls == 12
    assert figure(page.text, "calls-window") == "12"
    assert figure(page.text, "calls-today") == str(expected.calls.today.calls)
    assert 'id="dsars-overdue"' not in page.text and 'id="recordings-stored"' not in page.text
    api = await web.client.get("/api/v1/dashboard", headers=web.api("selim"))
    assert api.status_code == 200
    body = api.json()
    assert body["calls"]["window"]["calls"] == 12
    assert [d["calls"] for d in body["calls"]["days"]] == [
        d.count.calls for d in expected.calls.days]
    assert body["storage"] is None and body["dsars"] is None


async def test_an_admin_sees_storage_and_nothing_of_the_calls(web: Console) -> None:
    page = await web.client.get("/dashboard", headers=await web.signed_in("ayse"))
    assert page.status_code == 200
    assert figure(page.text, "recordings-stored") == "3"
    assert figure(page.text, "copies-pending") == "1"
    assert figure(page.text, "copies-dead") == "1"
    assert "<svg" not in page.text and "2125550100" not in page.text
    body = (await web.client.get("/api/v1/dashboard", headers=web.api("ayse"))).json()
    assert body["calls"] is None and body["dsars"] is None
    assert body["storage"]["copies_dead"] == 1
    assert body["storage"]["backends"] == [{"backend": "s3", "pending": 1, "dead": 1}]


async def test_the_dsar_badge_shows_on_every_page_only_to_who_may_see_the_register(
    web: Console,
) -> None:
    dpo = await web.signed_in("deniz")
    for path in ("/dashboard", "/calls", "/no-such-page"):
        html = (await web.client.get(path, headers=dpo)).text
        assert 'class="dsar-badge overdue"' in html, path
        assert "Requests: 1 overdue, 1 due soon" in html
    for user in ("selim", "aydin", "ayse"):
        headers = await web.signed_in(user)
        for path in ("/dashboard", "/calls"):
            html = (await web.client.get(path, headers=headers)).text
            assert "dsar-badge" not in html and "DSAR-" not in html, (user, path)


async def test_an_auditor_may_not_read_the_dashboard(web: Console) -> None:
    page = await web.client.get("/dashboard", headers=await web.signed_in("aydin"))
    assert page.status_code == 403
    api = await web.client.get("/api/v1/dashboard", headers=web.api("aydin"))
    assert api.status_code == 403
    assert api.headers["content-type"] == "application/problem+json"


async def test_the_dashboard_in_turkish(web: Console) -> None:
    page = await web.client.get("/dashboard", headers=await web.signed_in("dilek"))
    assert page.status_code == 200
    assert page.headers["content-language"] == "tr"
    assert "<h1>Özet</h1>" in page.text
    assert "Günlük görüşmeler, son 30 gün" in page.text  # the chart's title
    assert "Başvurular: 1 süresi geçmiş, 1 süresi yaklaşan" in page.text


async def test_sign_in_lands_on_the_dashboard_and_the_api_is_described(web: Console) -> None:
    start = await web.client.get("/", headers=await web.signed_in("deniz"))
    assert start.status_code == 303 and start.headers["location"] == "/dashboard"
    schema = (await web.client.get("/api/v1/openapi.json")).json()
    assert "/api/v1/dashboard" in schema["paths"]
    assert "DashboardOut" in schema["components"]["schemas"]


async def test_the_cache_serves_the_last_numbers_while_it_recomputes_in_the_background(
) -> None:
    clock = [datetime(2026, 12, 1, tzinfo=UTC)]
    computing = asyncio.Event()
    release = asyncio.Event()
    runs: list[datetime] = []

    async def compute(key: str, at: datetime) -> int:
        runs.append(at)
        if len(runs) > 1:
            computing.set()
            await release.wait()
        return len(runs)

    cache: RefreshingCache[str, int] = RefreshingCache(
        compute, max_age_s=60, clock=lambda: clock[0])
    assert (await cache.get("all")).value == 1
    clock[0] += timedelta(seconds=61)
    stale = await cache.get("all")  # answered at once, a refresh started
    assert stale.value == 1
    await computing.wait()
    assert (await cache.get("all")).value == 1  # still the old one, no second refresh
    release.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    fresh = await cache.get("all")
    assert fresh.value == 2 and fresh.at == clock[0] and len(runs) == 2
    await cache.close()
