"""``pbx-bridge group``: ring groups, the extensions a route rings at once or in turn."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from pbx_bridge.calls.ring_groups import (
    RingGroupInfo,
    delete_group,
    group_users,
    list_groups,
    validate_group_name,
)
from pbx_bridge.cli.actor import cli_actor
from pbx_bridge.cli.context import session_for, settings_of
from pbx_bridge.cli.errors import reporting_errors
from pbx_bridge.cli.table import render_table
from pbx_bridge.config import RingStrategy, Settings
from pbx_bridge.config_admin import save_group

app = typer.Typer(
    help="Ring groups: extensions a route rings at once (all) or in turn (order); a route "
    "rings one with --target group:NAME."
)

HEADERS = ["GROUP", "STRATEGY", "MEMBERS (EXT:SECONDS)", "RUNG BY"]


def _row(group: RingGroupInfo, users: list[str]) -> list[object]:
    return [group.name, group.strategy.value, ", ".join(str(m) for m in group.members),
            "; ".join(users) or "-"]


@app.command("list")
def list_command(ctx: typer.Context) -> None:
    """List ring groups, their members in order with the seconds each rings, and the
    routes that ring them."""

    async def fetch(settings: Settings) -> list[tuple[RingGroupInfo, list[str]]]:
        async with session_for(settings) as session:
            return [
                (g, await group_users(session, g.name,
                                      default_target=settings.default_route.target))
                for g in await list_groups(session)
            ]

    with reporting_errors():
        rows = asyncio.run(fetch(settings_of(ctx)))
    typer.echo(render_table(HEADERS, [_row(g, users) for g, users in rows]))


@app.command("set")
def set_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Group name, e.g. sales.")],
    members: Annotated[
        str | None,
        typer.Option(
            "--members", metavar="EXT:SECONDS,...",
            help="Extensions in order, each with the seconds it rings (e.g. 100:15,101:20; "
            "without seconds: [call] ring_timeout_s).",
        ),
    ] = None,
    strategy: Annotated[
        RingStrategy | None,
        typer.Option("--strategy", help="all: ring every member at once, the first to answer "
                     "takes the call; order: one after another (default all)."),
    ] = None,
) -> None:
    """Create a ring group or change its members or strategy."""

    async def store(settings: Settings) -> RingGroupInfo:
        async with session_for(settings) as session:
            return await save_group(session, settings, name, members=members,
                                    strategy=strategy, actor=cli_actor())

    with reporting_errors():
        validate_group_name(name)
        group = asyncio.run(store(settings_of(ctx)))
    typer.echo(render_table(HEADERS[:3], [_row(group, [])[:3]]))
    typer.echo(f"routes ring it with --target {group.target}")


@app.command("delete")
def delete_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Group name.")],
) -> None:
    """Remove a ring group no route rings (a route that does is named: change its target)."""

    async def remove(settings: Settings) -> None:
        async with session_for(settings) as session:
            await delete_group(session, name, default_target=settings.default_route.target,
                               actor=cli_actor())

    with reporting_errors():
        validate_group_name(name)
        asyncio.run(remove(settings_of(ctx)))
    typer.echo(f"ring group {name} deleted")
