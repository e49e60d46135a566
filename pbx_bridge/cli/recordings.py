"""``pbx-bridge recordings``: what was recorded, where it is, and until when it is kept."""

from __future__ import annotations

import asyncio
import json

import typer

from pbx_bridge.calls.history import DEFAULT_LIMIT, RecordingView, list_recordings
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

app = typer.Typer(help="Recordings (numbers masked unless --unmasked).")


def _duration(seconds: float | None) -> str | None:
    return None if seconds is None else f"{seconds:.1f}s"


@app.command("list")
def list_command(
    ctx: typer.Context,
    as_json: JsonOption = False,
    number: NumberOption = None,
    since: SinceOption = None,
    limit: LimitOption = DEFAULT_LIMIT,
    unmasked: UnmaskedOption = False,
) -> None:
    """List recordings, newest first."""
    since_at = parse_since(since)

    async def fetch(settings: Settings) -> list[RecordingView]:
        async with session_for(settings) as session:
            return await list_recordings(session, number=number, since=since_at, limit=limit)

    with reporting_errors():
        recordings = asyncio.run(fetch(settings_of(ctx)))
    if not unmasked:
        recordings = [recording.masked() for recording in recordings]
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in recordings], indent=2, ensure_ascii=False))
        return
    typer.echo(
        render_table(
            [
                "STARTED (UTC)",
                "CALLER",
                "KIND",
                "STATUS",
                "DURATION",
                "BASIS",
                "RETAIN UNTIL",
                "ID",
                "LOCATION",
            ],
            [
                [
                    short_time(r.started_at),
                    r.caller,
                    r.kind,
                    r.status,
                    _duration(r.duration_s),
                    r.legal_basis,
                    short_time(r.retain_until),
                    r.id,
                    r.location,
                ]
                for r in recordings
            ],
        )
    )
