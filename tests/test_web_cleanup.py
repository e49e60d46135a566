"""The console's background work on SQLite and PostgreSQL: the clean-up job deletes
sign-in sessions no cookie can use and share links ended over 30 days ago (and nothing
else); the app's lifespan starts it and, at shutdown, stops it and closes the dashboard's
and the DSAR badge's caches with nothing left pending; and a real ``pbx-bridge web``
runs the job, then stops on SIGTERM with exit 0 and no warning of a pending task or an
unclosed connection in its log."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from console_clients import console_settings, session_cookie
from database_fixtures import pg_database, pg_url
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from storage_fakes import db_url, sessions
from web_harness import WebConsole

from pbx_bridge.calls.models import Call
from pbx_bridge.config import AuthSettings, Role
from pbx_bridge.users import accounts
from pbx_bridge.users.console_accounts import UsersAccounts
from pbx_bridge.users.models import User, WebSession
from pbx_bridge.users.web_sessions import digest
from pbx_bridge.web.app import create_app
from pbx_bridge.web.cleanup import WebCleanup
from pbx_bridge.web.share_links import ONE_TIME_WINDOW
from pbx_bridge.web.share_models import ShareLink
from pbx_bridge.web.web_state import WebState
from storage.models import Recording, utcnow

__all__ = ["db_url", "pg_database", "pg_url", "sessions"]  # fixtures

PASSWORD = "correct horse battery"
SECRET = "test-secret-key-" + "0123456789abcdef" * 2
AUTH = AuthSettings(argon2_time_cost=1, argon2_memory_kib=8, argon2_parallelism=1)
POLL_S = 60.0


async def _user(sessions: async_sessionmaker[AsyncSession], name: str, role: Role) -> str:
    async with sessions() as session:
        made = await accounts.add_user(
            session, name=name, role=role, password=PASSWORD, auth=AUTH, actor="cli:root",
            default_target="101", extensions=["101"] if role is Role.SUPERVISOR else [],
        )
        await session.commit()
        return made.id


async def _recording(sessions: async_sessionmaker[AsyncSession]) -> str:
    async with sessions() as session:
        call = Call(direction="inbound", caller="05321234567", did="2125550100",
                    extension="101", announcement="before-connect", legal_basis="consent",
                    retention_class="default", language="tr", disposition="answered",
                    channel_id="c1", linkedid="l1")
        session.add(call)
        await session.flush()
        recording = Recording(call_id=call.id, kind="conversation", asterisk_name="r1",
                              legal_basis="consent", retention_class="default",
                              retention_days=30)
        session.add(recording)
        await session.commit()
        return recording.id


async def test_the_clean_up_deletes_ended_sessions_and_long_ended_links_only(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    now = utcnow()
    user_id = await _user(sessions, "deniz", Role.DPO)
    recording_id = await _recording(sessions)
    hour, day = timedelta(hours=1), timedelta(days=1)
    session_rows = {  # name: (last_seen_at, expires_at, revoked_at)
        "live": (now - timedelta(minutes=5), now + hour, None),
        "signed-out": (now - timedelta(minutes=5), now + hour, now - timedelta(minutes=1)),
        "past its end": (now - timedelta(minutes=5), now - timedelta(seconds=1), None),
        "idle too long": (now - timedelta(minutes=AUTH.session_idle_minutes + 1),
                          now + hour, None),
    }
    links: dict[str, dict[str, object]] = {
        "live": {"expires_at": now + day},
        "expired yesterday": {"expires_at": now - day},
        "expired 31 days ago": {"expires_at": now - 31 * day},
        "revoked 31 days ago": {"expires_at": now + day, "revoked_at": now - 31 * day},
        "revoked yesterday": {"expires_at": now + day, "revoked_at": now - day},
        "one-time, window closed 31 days ago": {
            "expires_at": now + day, "one_time": True,
            "used_at": now - 31 * day - ONE_TIME_WINDOW},
        "one-time, playing now": {"expires_at": now + day, "one_time": True,
                                  "used_at": now - timedelta(minutes=10)},
    }
    async with sessions() as session:
        for name, (seen, expires, revoked) in session_rows.items():
            session.add(WebSession(id_hash=digest(name), user_id=user_id, created_at=seen,
                                   last_seen_at=seen, expires_at=expires, revoked_at=revoked))
        for note, fields in links.items():
            session.add(ShareLink(token_hash=digest(note), recording_id=recording_id,
                                  created_by="user:deniz", owner="deniz", created_at=now - 40 * day,
                                  note=note, **fields))
        await session.commit()

    job = WebCleanup(sessions, AUTH, interval_s=600, now=lambda: now)
    cleaned = await job.run_once()
    assert (cleaned.sessions, cleaned.share_links) == (3, 3)
    async with sessions() as session:
        left = set((await session.scalars(select(WebSession.id_hash))).all())
        kept = set((await session.scalars(select(ShareLink.note))).all())
    assert left == {digest("live")}
    assert kept == {"live", "expired yesterday", "revoked yesterday", "one-time, playing now"}
    assert (await job.run_once()).sessions == 0  # nothing more to do


async def test_the_lifespan_runs_the_clean_up_and_closes_the_caches_at_shutdown(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    settings = console_settings(tmp_path, SECRET)
    users = await UsersAccounts.from_settings(settings, sessions)
    user_id = await _user(sessions, "deniz", Role.DPO)
    cookie = await session_cookie(users, "deniz", PASSWORD)
    async with sessions() as session:
        session.add(WebSession(id_hash=digest("ended"), user_id=user_id,
                               expires_at=utcnow() - timedelta(seconds=1)))
        await session.commit()
    app = create_app(settings, users, sessions)
    state: WebState = app.state.web
    cleanup: WebCleanup = app.state.cleanup
    before = asyncio.all_tasks()
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                          base_url="http://127.0.0.1:8090") as client,
    ):
        deadline = time.monotonic() + POLL_S
        while cleanup.runs == 0 and time.monotonic() < deadline:  # noqa: ASYNC110 (a counter)
            await asyncio.sleep(0.05)
        assert cleanup.runs >= 1 and cleanup.last_result is not None
        assert cleanup.last_result.sessions == 1
        page = await client.get("/dashboard", headers=cookie)
        assert page.status_code == 200
        # A refresh in flight when the server stops: the stale dashboard starts one.
        state.dashboard.dashboards._max_age_s = 0
        await client.get("/dashboard", headers=cookie)
    assert not state.dashboard.dashboards._running and not state.dashboard.badges._running
    leftover = {t for t in asyncio.all_tasks() - before if not t.done()}
    assert leftover == set(), leftover
    # After shutdown nothing starts in the background any more.
    await state.dashboard.dashboards.get(None)
    assert not state.dashboard.dashboards._running
    async with sessions() as session:
        assert await session.get(WebSession, digest("ended")) is None
        assert (await session.scalars(select(User.name))).all() == ["deniz"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def console_db(request: pytest.FixtureRequest) -> str | None:
    """None: the console's own SQLite file; else an empty PostgreSQL database."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def console(tmp_path: Path, console_db: str | None) -> Iterator[WebConsole]:
    web = WebConsole(tmp_path / "web", database_url=console_db)
    web.cli("db", "upgrade")
    web.cli("users", "add", "deniz", "--role", "dpo", "--password-stdin",
            stdin=PASSWORD + "\n")
    try:
        yield web
    finally:
        web.stop()


def _sign_in(client: httpx.Client) -> None:
    form = client.get("/sign-in")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, form.text[:300]
    done = client.post("/sign-in", data={"csrf_token": token.group(1), "username": "deniz",
                                         "password": PASSWORD, "next": "/dashboard"})
    assert done.status_code == 303, done.text


def _wait_for(console: WebConsole, text: str) -> None:
    deadline = time.monotonic() + POLL_S
    while time.monotonic() < deadline:
        if text in console.log_path.read_text(encoding="utf-8", errors="replace"):
            return
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not in the log:\n{console.log_tail()}")


def test_the_web_process_cleans_up_and_stops_cleanly_on_sigterm(console: WebConsole) -> None:
    console.start(env={**console.env(), "PBX_BRIDGE_WEB__CLEANUP_INTERVAL_S": "1",
                       "PBX_BRIDGE_WEB__DASHBOARD_REFRESH_S": "1"})
    with httpx.Client(base_url=console.url, timeout=30) as client:
        _sign_in(client)
        assert client.get("/dashboard").status_code == 200
        # Sign out: the ended session's row goes at the job's next run.
        sign_out_form = client.get("/account")
        assert sign_out_form.status_code == 200
        token = re.search(r'name="csrf_token" value="([^"]+)"', sign_out_form.text)
        assert token
        client.post("/sign-out", data={"csrf_token": token.group(1)})
        _sign_in(client)
        started = datetime.now()
        while (datetime.now() - started).total_seconds() < 3:  # stale: refreshes in flight
            assert client.get("/dashboard").status_code == 200
            time.sleep(0.2)
    _wait_for(console, "web clean-up: 1 ended sessions")
    assert console.stop() == 0
    log = console.log_path.read_text(encoding="utf-8", errors="replace")
    for bad in ("Task was destroyed", "was never awaited", "non-checked-in connection",
                "unclosed", "Traceback", "lifespan"):
        assert bad not in log, f"{bad!r} in the log:\n{console.log_tail()}"
