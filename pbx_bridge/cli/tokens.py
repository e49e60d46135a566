"""``pbx-bridge tokens``: API bearer tokens, each for one user and some of their role."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from pbx_bridge.cli.actor import cli_actor
from pbx_bridge.cli.context import session_for, settings_of
from pbx_bridge.cli.listing_options import JsonOption, short_time
from pbx_bridge.cli.table import render_table
from pbx_bridge.cli.users import user_errors
from pbx_bridge.config import Settings
from pbx_bridge.users.tokens import TokenInfo, create_token, list_tokens, revoke_token
from storage.models import utcnow

app = typer.Typer(help="API tokens (the secret is shown once, when made).")


@app.command("create")
def create_command(
    ctx: typer.Context,
    user: Annotated[str, typer.Option("--user", metavar="NAME", help="Whose token it is.")],
    scope: Annotated[
        list[str],
        typer.Option(
            "--scope",
            metavar="SCOPE",
            help="An action (calls.read), a group (recordings.*) or *; repeat or comma-separate."
            " Within the user's role only.",
        ),
    ],
    expires_days: Annotated[
        int | None,
        typer.Option("--expires-days", metavar="N", help="Days it lasts ([auth] token_days)."),
    ] = None,
) -> None:
    """Make a token; prints its bearer secret once."""

    async def run(settings: Settings) -> tuple[TokenInfo, str]:
        async with session_for(settings) as session:
            return await create_token(
                session,
                user_name=user,
                scopes=scope,
                days=settings.auth.token_days if expires_days is None else expires_days,
                actor=cli_actor(),
            )

    with user_errors():
        info, bearer = asyncio.run(run(settings_of(ctx)))
    typer.echo(bearer)
    typer.echo(
        f"(token {info.id} for {info.user}, scopes {' '.join(info.scopes)}, expires "
        f"{short_time(info.expires_at)} UTC; the secret is shown this once)",
        err=True,
    )


@app.command("list")
def list_command(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List tokens (never their secrets)."""

    async def fetch(settings: Settings) -> list[TokenInfo]:
        async with session_for(settings) as session:
            return await list_tokens(session)

    with user_errors():
        tokens = asyncio.run(fetch(settings_of(ctx)))
    now = utcnow()
    if as_json:
        typer.echo(json.dumps([t.to_json(now) for t in tokens], indent=2, ensure_ascii=False))
        return
    typer.echo(
        render_table(
            ["ID", "USER", "SCOPES", "STATE", "EXPIRES (UTC)", "LAST USED (UTC)"],
            [
                [
                    t.id,
                    t.user,
                    " ".join(t.scopes),
                    t.state(now),
                    short_time(t.expires_at),
                    short_time(t.last_used_at),
                ]
                for t in tokens
            ],
        )
    )


@app.command("revoke")
def revoke_command(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(metavar="ID", help="The token's id (tokens list).")],
) -> None:
    """Revoke a token: it stops working at once."""

    async def run(settings: Settings) -> TokenInfo:
        async with session_for(settings) as session:
            return await revoke_token(session, token_id, actor=cli_actor())

    with user_errors():
        info = asyncio.run(run(settings_of(ctx)))
    typer.echo(f"token {info.id} of {info.user} revoked")
