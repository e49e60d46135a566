"""``pbx-bridge calls``: the call history with each call's consent and recordings."""

from __future__ import annotations

import asyncio
import json

import typer

from pbx_bridge.calls.history import DEFAULT_LIMIT, CallView, list_calls
from pbx_bridge.cli.context import session_for, settings_of
from pbx_bridge.cli.errors import reporting_errors
from pbx_bridge.cli.listing_options import (
    JsonOption,
    LimitOption,
    NumberOption,
    SinceOption,
    UnmaskedOption,
    parse_since,
    short_time,
)
from pbx_bridge.cli.table import render_table
from pbx_bridge.config import Settings

app = typer.Typer(help="Call history (numbers masked unless --unmasked).")


@app.command("list")
def list_command(
    ctx: typer.Context,
    as_json: JsonOption = False,
    number: NumberOption = None,
    since: SinceOption = None,
    limit: LimitOption = DEFAULT_LIMIT,
    unmasked: UnmaskedOption = False,
) -> None:
    """List calls, newest first."""
    since_at = parse_since(since)

    async def fetch(settings: Settings) -> list[CallView]:
        async with session_for(settings) as session:
            return await list_calls(session, number=number, since=since_at, limit=limit)

    with reporting_errors():
        calls = asyncio.run(fetch(settings_of(ctx)))
    if not unmasked:
        calls = [call.masked() for call in calls]
    if as_json:
        typer.echo(json.dumps([call.to_json() for call in calls], indent=2, ensure_ascii=False))
        return
    typer.echo(
        render_table(
            ["STARTED (UTC)", "CALLER", "DID", "EXT", "DISPOSITION", "CONSENT", "RECS", "ID"],
            [
                [
                    short_time(call.started_at),
                    call.caller,
                    call.did,
                    call.extension,
                    call.disposition or "(live)",
                    call.consent.decision if call.consent else None,
                    len(call.recordings),
                    call.id,
                ]
                for call in calls
            ],
        )
    )
