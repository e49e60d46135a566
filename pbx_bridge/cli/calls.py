"""``pbx-bridge calls``: the call history with each call's consent and recordings."""

from __future__ import annotations

import typer

from pbx_bridge.calls.history import DEFAULT_LIMIT, CallView, list_calls
from pbx_bridge.cli.listing_options import (
    JsonOption,
    LimitOption,
    NumberOption,
    SinceOption,
    UnmaskedOption,
    short_time,
    show_listing,
)

app = typer.Typer(help="Call history (numbers masked unless --unmasked).")

HEADERS = ["STARTED (UTC)", "CALLER", "DID", "EXT", "DISPOSITION", "CONSENT", "RECS", "ID"]


def _row(call: CallView) -> list[object]:
    return [
        short_time(call.started_at),
        call.caller,
        call.did,
        call.extension,
        call.disposition or "(live)",
        call.consent.decision if call.consent else None,
        len(call.recordings),
        call.id,
    ]


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
    show_listing(
        ctx,
        lambda session, n, s, lim: list_calls(session, number=n, since=s, limit=lim),
        headers=HEADERS, row=_row, as_json=as_json, number=number, since=since,
        limit=limit, unmasked=unmasked,
    )
