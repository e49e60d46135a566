"""The users module behind the web console's ``Accounts`` protocol, on SQLite and
PostgreSQL: a sign-in makes a new session, the console's reasons come through, and the
role rules answer the console's action names."""

from __future__ import annotations

from pathlib import Path

import pytest
from database_fixtures import db_url, migrated_url, pg_database, sessions
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.config import Role, Settings
from pbx_bridge.users import accounts
from pbx_bridge.users.console_accounts import UsersAccounts
from pbx_bridge.web import accounts as console
from pbx_bridge.web import permissions

__all__ = ["db_url", "migrated_url", "pg_database", "sessions"]  # fixtures

PASSWORD = "correct horse battery"


@pytest.fixture
async def users(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> UsersAccounts:
    settings = Settings(
        auth={"argon2_time_cost": 1, "argon2_memory_kib": 8, "argon2_parallelism": 1,
              "max_failures": 2},
        privacy={"subject_key_file": tmp_path / "subject.key"},
    )
    made = await UsersAccounts.from_settings(settings, sessions)
    async with sessions() as session:
        for name, role, extensions in (("selim", Role.SUPERVISOR, ["100"]),
                                       ("ayse", Role.ADMIN, [])):
            await accounts.add_user(
                session, name=name, role=role, password=PASSWORD, auth=settings.auth,
                actor="cli:root", default_target="100", extensions=extensions,
            )
        await session.commit()
    return made


def attempt(name: str, password: str = PASSWORD, replacing: str | None = None
            ) -> console.SignInAttempt:
    return console.SignInAttempt(name, password, None, "192.0.2.1", "Firefox", replacing)


async def test_sign_in_session_and_sign_out(users: UsersAccounts) -> None:
    signed = await users.sign_in(attempt("selim", replacing="planted-id"))
    assert signed.session_id != "planted-id"
    assert signed.principal.name == "selim" and signed.principal.role == "supervisor"
    assert signed.principal.language is None  # none chosen: the console follows the browser
    assert await users.session_principal("planted-id") is None
    principal = await users.session_principal(signed.session_id)
    assert principal is not None and principal.name == "selim"
    await users.sign_out(signed.session_id)
    assert await users.session_principal(signed.session_id) is None


async def test_the_consoles_reasons_come_through(users: UsersAccounts) -> None:
    with pytest.raises(console.SignInRefused) as wrong:
        await users.sign_in(attempt("selim", "not the password"))
    assert wrong.value.reason == console.WRONG_CREDENTIALS
    with pytest.raises(console.SignInRefused) as locked:
        await users.sign_in(attempt("selim", "not the password"))
    assert locked.value.reason == console.LOCKED_OUT
    with pytest.raises(console.SignInRefused) as unknown:
        await users.sign_in(attempt("nobody"))
    assert unknown.value.reason == console.WRONG_CREDENTIALS


async def test_allowed_answers_the_consoles_actions(users: UsersAccounts) -> None:
    supervisor = (await users.sign_in(attempt("selim"))).principal
    admin = (await users.sign_in(attempt("ayse"))).principal
    grant = await users.allowed(supervisor, permissions.CALLS_READ)
    assert grant.allowed and grant.extensions == {"100"}
    assert not (await users.allowed(supervisor, permissions.NUMBERS_UNMASK)).allowed
    assert not (await users.allowed(admin, permissions.CALLS_READ)).allowed
    assert not (await users.allowed(admin, "calls.steal")).allowed
