"""Headers an in-process console test sends as a user: a fresh console session's cookie
(signed in through the real users module) or a bearer token."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from pbx_bridge.config import AuthSettings, Language, Role, Settings
from pbx_bridge.users import accounts, tokens
from pbx_bridge.users.console_accounts import UsersAccounts
from pbx_bridge.web import accounts as console


def console_settings(state: Path, secret_key: str) -> Settings:
    """Settings of an in-process console: cheap password hashes (the tests sign in often;
    the cost is not what they test) and the subject key (TOTP secrets) under ``state``."""
    return Settings(
        auth={"argon2_time_cost": 1, "argon2_memory_kib": 8, "argon2_parallelism": 1},
        privacy={"subject_key_file": state / "subject.key"},
        web={"secret_key": secret_key},
    )


def bearer_header(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def session_cookie(users: UsersAccounts, name: str, password: str) -> dict[str, str]:
    """Cookie header of a fresh console session of ``name``."""
    opened = await users.sign_in(
        console.SignInAttempt(name, password, None, "192.0.2.1", "test", None)
    )
    return {"Cookie": f"pbxb_session={opened.session_id}"}


async def add_users_with_tokens(
    session: AsyncSession,
    users: Iterable[tuple[str, Role, list[str], str]],
    *,
    password: str,
    auth: AuthSettings,
    default_target: str = "101",
) -> dict[str, str]:
    """Users (name, role, extensions, language) as ``users add`` makes them, each with a
    ``*`` token for a day; their bearer strings by name. Committed."""
    made = list(users)
    for name, role, extensions, language in made:
        await accounts.add_user(
            session, name=name, role=role, password=password, auth=auth, actor="cli:root",
            default_target=default_target, extensions=extensions, language=Language(language),
        )
    await session.commit()
    bearer: dict[str, str] = {}
    for name, *_ in made:
        _, bearer[name] = await tokens.create_token(
            session, user_name=name, scopes=["*"], days=1, actor="cli:root")
    return bearer
