"""``pbx-bridge consents``: each caller's answer and the prompt they heard (proof for audits)."""

from __future__ import annotations

import asyncio
import json

import typer

from pbx_bridge.calls.history import DEFAULT_LIMIT, ConsentView, list_consents
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

app = typer.Typer(help="Consent decisions (numbers masked unless --unmasked).")


@app.command("list")
def list_command(
    ctx: typer.Context,
    as_json: JsonOption = False,
    number: NumberOption = None,
    since: SinceOption = None,
    limit: LimitOption = DEFAULT_LIMIT,
    unmasked: UnmaskedOption = False,
) -> None:
    """List consent decisions, newest first."""
    since_at = parse_since(since)

    async def fetch(settings: Settings) -> list[ConsentView]:
        async with session_for(settings) as session:
            return await list_consents(session, number=number, since=since_at, limit=limit)

    with reporting_errors():
        consents = asyncio.run(fetch(settings_of(ctx)))
    if not unmasked:
        consents = [consent.masked() for consent in consents]
    if as_json:
        typer.echo(json.dumps([c.to_json() for c in consents], indent=2, ensure_ascii=False))
        return
    typer.echo(
        render_table(
            ["AT (UTC)", "CALLER", "DECISION", "DIGIT", "LANG", "PROMPT VERSION", "PLAYED", "CALL"],
            [
                [
                    short_time(c.at),
                    c.caller,
                    c.decision,
                    c.digit,
                    c.language,
                    c.prompt_version,
                    c.times_played,
                    c.call_id,
                ]
                for c in consents
            ],
        )
    )
