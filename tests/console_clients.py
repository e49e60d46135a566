"""Headers an in-process console test sends as a user: a fresh console session's cookie
(signed in through the real users module) or a bearer token."""

from __future__ import annotations

from pbx_bridge.users.console_accounts import UsersAccounts
from pbx_bridge.web import accounts as console


def bearer_header(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def session_cookie(users: UsersAccounts, name: str, password: str) -> dict[str, str]:
    """Cookie header of a fresh console session of ``name``."""
    opened = await users.sign_in(
        console.SignInAttempt(name, password, None, "192.0.2.1", "test", None)
    )
    return {"Cookie": f"pbxb_session={opened.session_id}"}
