"""``pbx-bridge db``: schema migrations are an explicit operator step, never automatic."""

from __future__ import annotations

import asyncio

import typer

from pbx_bridge.cli.context import settings_of
from pbx_bridge.cli.errors import reporting_errors
from storage.database import current_revision, head_revision, make_engine, safe_url, upgrade

app = typer.Typer(help="Database schema: upgrade to the current version, show the revision.")


async def _current(url: str) -> str | None:
    engine = make_engine(url)
    try:
        return await current_revision(engine)
    finally:
        await engine.dispose()


@app.command("upgrade")
def upgrade_command(ctx: typer.Context) -> None:
    """Create or upgrade the tables to the version this pbx-bridge needs."""
    with reporting_errors():
        url = settings_of(ctx).database.url
        asyncio.run(upgrade(url))
        typer.echo(f"database {safe_url(url)} is at revision {head_revision()} (head)")


@app.command("current")
def current_command(ctx: typer.Context) -> None:
    """Show the schema revision of the configured database."""
    with reporting_errors():
        url = settings_of(ctx).database.url
        current = asyncio.run(_current(url))
        head = head_revision()
        if current is None:
            state = "empty (run `pbx-bridge db upgrade`)"
        elif current == head:
            state = f"{current} (head)"
        else:
            state = f"{current} (head is {head}; run `pbx-bridge db upgrade`)"
        typer.echo(f"database {safe_url(url)}: {state}")
