"""What one request of the console's call list costs the database, counted exactly.

On a loaded machine each trip to PostgreSQL is a wait for the server's turn, whatever the
statement costs, so the call list's time grows with the number of trips more than with
anything the statements do (bench/README.md, "Call list page and API through the
console"). These counts fail if a lookup, a transaction or a query per call creeps back:
on PostgreSQL every trip asyncpg makes (the pool's check, BEGIN, statements, COMMIT);
on both backends the statements, by kind.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from console_clients import add_users_with_tokens, bearer_header, console_settings, session_cookie
from database_fixtures import db_url, migrated_url, pg_database, sessions
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from statement_counts import counted, postgres_round_trips

from pbx_bridge.calls.extensions import set_extension
from pbx_bridge.calls.models import Call, Consent
from pbx_bridge.config import RecordingMode, Role
from pbx_bridge.users.console_accounts import UsersAccounts
from pbx_bridge.web.app import create_app
from storage.models import AuditEntry, Recording

__all__ = ["db_url", "migrated_url", "pg_database", "sessions"]  # fixtures

PASSWORD = "correct horse battery"
SECRET = "test-secret-key-" + "0123456789abcdef" * 2
CALLS_PER_EXTENSION = 4
# The session's row (or the token's) with its user, found outside a transaction.
SIGNED_IN = {"page": ["PING", "SELECT web_sessions"], "api": ["PING", "SELECT api_tokens"]}
# The page: calls, consents and recordings in one statement.
MASKED = ["PING", "SELECT calls"]
# An unmasked page and its calls.unmasked entry, in one transaction.
UNMASKED = ["PING", "BEGIN", "SELECT calls", "UPDATE audit_head", "INSERT audit_log", "COMMIT"]


@dataclass
class Console:
    client: httpx.AsyncClient
    sessions: async_sessionmaker[AsyncSession]
    headers: dict[tuple[str, str], dict[str, str]]  # (user, page|api) -> headers


@pytest.fixture
async def console(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> AsyncIterator[Console]:
    """A dpo and a supervisor of 101 (numbers masked), calls of 101 and 102, each with
    a consent and a recording (the page shows all three)."""
    settings = console_settings(tmp_path, SECRET)
    users = await UsersAccounts.from_settings(settings, sessions)
    async with sessions() as session:
        await set_extension(session, "101", RecordingMode.ALWAYS)
        bearer = await add_users_with_tokens(
            session,
            [("deniz", Role.DPO, [], "en"), ("selim", Role.SUPERVISOR, ["101"], "en")],
            password=PASSWORD, auth=settings.auth,
        )
        await session.commit()
        for extension in ("101", "102"):
            for n in range(CALLS_PER_EXTENSION):
                call = Call(direction="inbound", caller="05321234567", did="2125550100",
                            extension=extension, announcement="before-connect",
                            legal_basis="consent", retention_class="default", language="tr",
                            disposition="answered", channel_id=f"c{extension}-{n}",
                            linkedid=f"l{extension}-{n}")
                session.add(call)
                await session.flush()
                session.add(Consent(call_id=call.id, caller=call.caller, decision="granted",
                                    language="tr", times_played=1))
                session.add(Recording(call_id=call.id, kind="conversation", status="stored",
                                      asterisk_name=f"r{extension}-{n}", legal_basis="consent",
                                      retention_class="default", retention_days=30))
        await session.commit()
    app = create_app(settings, users, sessions)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                          base_url="http://127.0.0.1:8090") as client,
    ):
        # The console's clean-up job (its first run is at start) would add its own
        # statements to whichever request it overlaps: not the call list's cost.
        await app.state.cleanup.stop()
        headers = {}
        for user in ("deniz", "selim"):
            headers[user, "page"] = await session_cookie(users, user, PASSWORD)
            headers[user, "api"] = bearer_header(bearer[user])
        yield Console(client, sessions, headers)


async def _request(console: Console, user: str, kind: str) -> httpx.Response:
    url = "/calls" if kind == "page" else "/api/v1/calls"
    answer = await console.client.get(url, headers=console.headers[user, kind])
    assert answer.status_code == 200, answer.text
    return answer


def _shown(answer: httpx.Response, kind: str) -> int:
    if kind == "api":
        return len(answer.json())
    return answer.text.count('<a href="/calls/')


@pytest.mark.parametrize("kind", ["page", "api"])
@pytest.mark.parametrize(
    ("user", "expected", "shown"),
    [("deniz", UNMASKED, 2 * CALLS_PER_EXTENSION), ("selim", MASKED, CALLS_PER_EXTENSION)],
    ids=["dpo-unmasked", "supervisor-masked"],
)
async def test_a_call_list_request_costs_a_fixed_handful_of_round_trips(
    console: Console, kind: str, user: str, expected: list[str], shown: int
) -> None:
    # The first request compiles templates, prepares statements, counts the DSAR badge
    # and touches the session: what every later one costs is what is pinned here.
    await _request(console, user, kind)
    postgres = console.sessions.kw["bind"].dialect.name == "postgresql"
    for _ in range(2):
        with counted(console.sessions) as statements, postgres_round_trips() as trips:
            answer = await _request(console, user, kind)
        assert _shown(answer, kind) == shown
        statement_trips = [t for t in SIGNED_IN[kind] + expected
                           if t not in ("PING", "BEGIN", "ROLLBACK")]
        assert statements == Counter(statement_trips)
        if postgres:
            # A statement new to the pooled connection handed out is prepared first,
            # once per connection (the pool hands them out in turn): not a per-request
            # cost.
            assert [t for t in trips if t != "PREPARE"] == SIGNED_IN[kind] + expected
    # Whose numbers were shown unmasked is on the trail, one entry a page.
    async with console.sessions() as session:
        entries = list(await session.scalars(
            select(AuditEntry).where(AuditEntry.action == "calls.unmasked")))
    assert len(entries) == (3 if user == "deniz" else 0)
    if entries:
        assert "deniz" in entries[-1].actor
        assert len(json.loads(entries[-1].details)["ids"]) == shown


async def test_the_calls_page_finds_a_call_by_its_reference_within_the_scope(
    console: Console,
) -> None:
    """The reference a caller reads out (spaced as spoken) finds that one call; a
    supervisor of another extension finds nothing by it."""
    async with console.sessions() as session:
        calls = list(await session.scalars(select(Call).order_by(Call.extension, Call.id)))
        other = next(c for c in calls if c.extension == "102")
        other.reference = "123456786"
        await session.commit()
    answer = await console.client.get("/calls", params={"reference": "1234 5678 6"},
                                      headers=console.headers["deniz", "page"])
    assert answer.status_code == 200
    assert _shown(answer, "page") == 1 and f'href="/calls/{other.id}"' in answer.text
    assert 'value="1234 5678 6"' in answer.text  # the filter is kept in the form
    answer = await console.client.get("/calls", params={"reference": "123456786"},
                                      headers=console.headers["selim", "page"])
    assert answer.status_code == 200 and _shown(answer, "page") == 0
    answer = await console.client.get("/calls", params={"reference": "123456789"},
                                      headers=console.headers["deniz", "page"])
    assert answer.status_code == 400 and "check digit" in answer.text.lower()
