"""``pbx-bridge retention``: how long each class of recording is kept."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from pbx_bridge.calls.retention import (
    RetentionClassInfo,
    delete_class,
    list_classes,
    set_class,
    validate_class_name,
    validate_days,
)
from pbx_bridge.cli.actor import cli_actor
from pbx_bridge.cli.context import session_for, settings_of
from pbx_bridge.cli.errors import reporting_errors
from pbx_bridge.cli.table import render_table
from pbx_bridge.config import Settings

app = typer.Typer(help="Retention classes: days a recording is kept before it is purged.")


@app.command("list")
def list_command(ctx: typer.Context) -> None:
    """List retention classes; 'default' always exists (from the config until set here)."""

    async def fetch(settings: Settings) -> list[RetentionClassInfo]:
        async with session_for(settings) as session:
            return await list_classes(session, settings.retention)

    with reporting_errors():
        rows = asyncio.run(fetch(settings_of(ctx)))
    typer.echo(render_table(["CLASS", "DAYS", "FROM"], [[c.name, c.days, c.source] for c in rows]))


# ignore_unknown_options lets "-5" reach the validator (which explains the range) instead
# of click reporting "no such option: -5".
@app.command("set", context_settings={"ignore_unknown_options": True})
def set_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="CLASS", help="Class name, e.g. sales.")],
    days: Annotated[int, typer.Argument(metavar="DAYS", help="Days to keep (0-36500).")],
) -> None:
    """Create or change a retention class. Recordings already made keep their date."""

    async def store(settings: Settings) -> RetentionClassInfo:
        async with session_for(settings) as session:
            return await set_class(session, name, days, actor=cli_actor())

    with reporting_errors():
        validate_class_name(name)
        validate_days(days)
        info = asyncio.run(store(settings_of(ctx)))
    typer.echo(f"retention class {info.name}: {info.days} days")


@app.command("delete")
def delete_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="CLASS", help="Class name, e.g. sales.")],
) -> None:
    """Remove a class nobody uses (no route, outbound route, extension, campaign, default
    route or default outbound route, nor a kept recording)."""

    async def remove(settings: Settings) -> None:
        async with session_for(settings) as session:
            await delete_class(
                session, name, default_route_class=settings.default_route.retention_class,
                default_outbound_class=settings.default_outbound_route.retention_class,
                actor=cli_actor(),
            )

    with reporting_errors():
        validate_class_name(name)
        asyncio.run(remove(settings_of(ctx)))
    typer.echo(f"retention class {name} deleted")
