"""``pbx-bridge users``: who may sign in to the console and the API, and as what role.

A password comes from a hidden prompt (asked twice) or, for scripts, one line on stdin
(``--password-stdin``); it is never an argument, which ``ps`` and shell history would keep.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated

import typer

from pbx_bridge.cli.actor import cli_actor
from pbx_bridge.cli.context import session_for, settings_of
from pbx_bridge.cli.errors import EXIT_USAGE, fail, reporting_errors
from pbx_bridge.cli.listing_options import JsonOption, short_time
from pbx_bridge.cli.table import render_table
from pbx_bridge.config import Language, Role, Settings
from pbx_bridge.subjects.numbers import SubjectKeyError
from pbx_bridge.users.accounts import (
    UserError,
    UserInfo,
    add_user,
    enrol_totp,
    list_users,
    reset_password,
    set_disabled,
    set_user,
)
from pbx_bridge.users.passwords import WeakPassword
from pbx_bridge.users.permissions import InvalidScope
from pbx_bridge.users.totp import TotpSealer
from storage.models import utcnow

app = typer.Typer(help="Console and API users: roles, passwords, second factor.")

# A user without a language of their own gets the browser's (Accept-Language).
BROWSERS = "(browser's)"
NameArgument = Annotated[str, typer.Argument(metavar="NAME", help="The user's sign-in name.")]
PasswordStdinOption = Annotated[
    bool,
    typer.Option("--password-stdin", help="Read the password from the first line of stdin."),
]


@contextmanager
def user_errors() -> Iterator[None]:
    """A bad name, role, extension, scope or password is the admin's to fix: exit 2."""
    with reporting_errors():
        try:
            yield
        except (UserError, WeakPassword, InvalidScope, SubjectKeyError) as exc:
            fail(str(exc), EXIT_USAGE)


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            fail("--password-stdin: no password on stdin (empty input)", EXIT_USAGE)
        return line
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


def _describe(user: UserInfo) -> str:
    parts = [f"user {user.name}: role {user.role.value}"]
    if user.extensions:
        parts.append(f"extensions {','.join(user.extensions)}")
    if user.unmask:
        parts.append("unmask")
    parts.append(f"language {user.language or BROWSERS}")
    if user.totp_required:
        parts.append("TOTP required")
    if user.disabled:
        parts.append("disabled")
    return ", ".join(parts)


@app.command("add")
def add_command(
    ctx: typer.Context,
    name: NameArgument,
    role: Annotated[Role, typer.Option("--role", help="admin, supervisor, dpo or auditor.")],
    password_stdin: PasswordStdinOption = False,
    extensions: Annotated[
        str,
        typer.Option(
            "--extensions", metavar="100,101", help="A supervisor's extensions, comma-separated."
        ),
    ] = "",
    unmask: Annotated[
        bool, typer.Option("--unmask", help="A supervisor sees numbers in the clear.")
    ] = False,
    language: Annotated[
        Language | None,
        typer.Option("--language", help="Console language (default: the browser's)."),
    ] = None,
    require_totp: Annotated[
        bool, typer.Option("--require-totp", help="This user must sign in with a TOTP code.")
    ] = False,
) -> None:
    """Add a user (the password is asked for, or read from stdin)."""

    async def run(settings: Settings, password: str) -> UserInfo:
        async with session_for(settings) as session:
            return await add_user(
                session,
                name=name,
                role=role,
                password=password,
                auth=settings.auth,
                actor=cli_actor(),
                default_target=settings.default_route.target,
                extensions=extensions.split(","),
                unmask=unmask,
                language=language,
                require_totp=require_totp,
            )

    with user_errors():
        settings = settings_of(ctx)
        user = asyncio.run(run(settings, read_password(password_stdin)))
    typer.echo(f"added {_describe(user)}")


@app.command("set")
def set_command(
    ctx: typer.Context,
    name: NameArgument,
    role: Annotated[Role | None, typer.Option("--role", help="A new role.")] = None,
    extensions: Annotated[
        str | None,
        typer.Option("--extensions", metavar="100,101", help="A supervisor's extensions (all)."),
    ] = None,
    unmask: Annotated[
        bool | None,
        typer.Option("--unmask/--no-unmask", help="A supervisor sees numbers in the clear."),
    ] = None,
    language: Annotated[
        Language | None, typer.Option("--language", help="Console language.")
    ] = None,
    require_totp: Annotated[
        bool | None,
        typer.Option("--require-totp/--no-require-totp", help="A TOTP code at every sign-in."),
    ] = None,
) -> None:
    """Change a user's role, extensions, unmask grant, language or TOTP requirement."""

    async def run(settings: Settings) -> UserInfo:
        async with session_for(settings) as session:
            return await set_user(
                session,
                name,
                actor=cli_actor(),
                default_target=settings.default_route.target,
                role=role,
                extensions=None if extensions is None else extensions.split(","),
                unmask=unmask,
                language=language,
                require_totp=require_totp,
            )

    with user_errors():
        user = asyncio.run(run(settings_of(ctx)))
    typer.echo(_describe(user))


@app.command("list")
def list_command(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List users (no password hashes, no secrets)."""

    async def fetch(settings: Settings) -> list[UserInfo]:
        async with session_for(settings) as session:
            return await list_users(session)

    with user_errors():
        users = asyncio.run(fetch(settings_of(ctx)))
    if as_json:
        typer.echo(json.dumps([u.to_json() for u in users], indent=2, ensure_ascii=False))
        return
    now = utcnow()
    typer.echo(
        render_table(
            ["NAME", "ROLE", "EXTENSIONS", "UNMASK", "LANG", "TOTP", "STATE", "LAST SIGN-IN"],
            [
                [
                    u.name,
                    u.role.value,
                    ",".join(u.extensions) or None,
                    "yes" if u.unmask else "no",
                    u.language or "browser",
                    ("enrolled" if u.totp_enrolled else "not set")
                    + (" (required)" if u.totp_required else ""),
                    _state(u, now),
                    short_time(u.last_sign_in_at),
                ]
                for u in users
            ],
        )
    )


def _state(user: UserInfo, now: datetime) -> str:
    if user.disabled:
        return "disabled"
    if user.locked_until is not None and user.locked_until > now:
        return f"locked until {short_time(user.locked_until)}"
    return "active"


def _set_disabled(ctx: typer.Context, name: str, disabled: bool) -> UserInfo:
    async def run(settings: Settings) -> UserInfo:
        async with session_for(settings) as session:
            return await set_disabled(session, name, disabled=disabled, actor=cli_actor())

    with user_errors():
        return asyncio.run(run(settings_of(ctx)))


@app.command("disable")
def disable_command(ctx: typer.Context, name: NameArgument) -> None:
    """Disable a user: their console sessions end now, their tokens stop working."""
    user = _set_disabled(ctx, name, True)
    typer.echo(f"user {user.name} disabled")


@app.command("enable")
def enable_command(ctx: typer.Context, name: NameArgument) -> None:
    """Enable a disabled user again (and lift any lockout)."""
    user = _set_disabled(ctx, name, False)
    typer.echo(f"user {user.name} enabled")


@app.command("reset-password")
def reset_password_command(
    ctx: typer.Context, name: NameArgument, password_stdin: PasswordStdinOption = False
) -> None:
    """Give a user a new password; their sessions end and any lockout is lifted."""

    async def run(settings: Settings, password: str) -> UserInfo:
        async with session_for(settings) as session:
            return await reset_password(
                session, name, password, auth=settings.auth, actor=cli_actor()
            )

    with user_errors():
        settings = settings_of(ctx)
        user = asyncio.run(run(settings, read_password(password_stdin)))
    typer.echo(f"password of user {user.name} reset")


@app.command("totp")
def totp_command(ctx: typer.Context, name: NameArgument) -> None:
    """Enrol (or re-enrol) the user's authenticator: prints its otpauth:// URI, once."""

    async def run(settings: Settings) -> str:
        sealer = await TotpSealer.from_settings(settings.privacy)
        async with session_for(settings) as session:
            return await enrol_totp(
                session, name, sealer=sealer, issuer=settings.auth.totp_issuer, actor=cli_actor()
            )

    with user_errors():
        uri = asyncio.run(run(settings_of(ctx)))
    typer.echo(uri)
    typer.echo(
        "(shown once: add it to the user's authenticator app now, e.g. as a QR code with "
        "`qrencode -t ansiutf8`)",
        err=True,
    )
