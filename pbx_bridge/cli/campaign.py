"""``pbx-bridge campaign``: campaigns, their recording mode and retention class."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from pbx_bridge.calls.campaigns import (
    CampaignInfo,
    delete_campaign,
    list_campaigns,
    parse_recording,
    set_campaign,
    validate_campaign_name,
)
from pbx_bridge.calls.retention import validate_class_name
from pbx_bridge.cli.actor import cli_actor
from pbx_bridge.cli.context import session_for, settings_of
from pbx_bridge.cli.errors import reporting_errors
from pbx_bridge.cli.table import render_table
from pbx_bridge.config import Settings

app = typer.Typer(help="Campaigns: a tag on calls, with its own recording mode and retention.")


@app.command("list")
def list_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array.")] = False,
) -> None:
    """Every campaign with its recording mode and retention class."""

    async def fetch(settings: Settings) -> list[CampaignInfo]:
        async with session_for(settings) as session:
            return await list_campaigns(session)

    with reporting_errors():
        rows = asyncio.run(fetch(settings_of(ctx)))
    if as_json:
        typer.echo(json.dumps([c.to_json() for c in rows], indent=2))
        return
    typer.echo(render_table(["CAMPAIGN", "RECORDING", "RETENTION"],
                            [[c.name, c.recording.value, c.retention_class or "-"]
                             for c in rows]))


@app.command("set")
def set_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Campaign name, e.g. sales.")],
    recording: Annotated[str | None, typer.Option(
        "--recording", help="always, on-demand or never (combined with the extension's: "
        "either can forbid).")] = None,
    retention: Annotated[str | None, typer.Option(
        "--retention-class", help="Keep its calls' recordings per this class.")] = None,
    no_retention: Annotated[bool, typer.Option(
        "--no-retention-class", help="Keep them per the extension's or route's class.")] = False,
) -> None:
    """Create or change a campaign; options left out keep their value."""
    with reporting_errors():
        validate_campaign_name(name)
        mode = None if recording is None else parse_recording(recording)
        if retention is not None:
            validate_class_name(retention)

        async def store(settings: Settings) -> CampaignInfo:
            async with session_for(settings) as session:
                return await set_campaign(session, name, recording=mode,
                                          retention_class=retention,
                                          clear_retention=no_retention, actor=cli_actor())

        info = asyncio.run(store(settings_of(ctx)))
    typer.echo(f"campaign {info.name}: recording {info.recording.value}, retention "
               f"{info.retention_class or 'of the extension or route'}")


@app.command("delete")
def delete_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Campaign name.")],
) -> None:
    """Remove a campaign; calls already tagged with it keep their tag."""

    async def remove(settings: Settings) -> None:
        async with session_for(settings) as session:
            await delete_campaign(session, name, actor=cli_actor())

    with reporting_errors():
        validate_campaign_name(name)
        asyncio.run(remove(settings_of(ctx)))
    typer.echo(f"campaign {name} deleted")
