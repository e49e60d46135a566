"""``pbx-bridge consents``: each caller's answer and the prompt they heard (proof for audits)."""

from __future__ import annotations

import typer

from pbx_bridge.calls.history import DEFAULT_LIMIT, ConsentView, list_consents
from pbx_bridge.cli.listing_options import (
    JsonOption,
    LimitOption,
    NumberOption,
    SinceOption,
    UnmaskedOption,
    short_time,
    show_listing,
)

app = typer.Typer(help="Consent decisions (numbers masked unless --unmasked).")

# EARLY: keys pressed before the disclosure began (kept as history, never an answer).
HEADERS = [
    "AT (UTC)", "CALLER", "DECISION", "DIGIT", "EARLY", "LANG", "PROMPT VERSION", "PLAYED",
    "CALL",
]


def _row(consent: ConsentView) -> list[object]:
    return [
        short_time(consent.at),
        consent.caller,
        consent.decision,
        consent.digit,
        " ".join(consent.early_keys) or None,
        consent.language,
        consent.prompt_version,
        consent.times_played,
        consent.call_id,
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
    """List consent decisions, newest first."""
    show_listing(
        ctx,
        lambda session, n, s, lim: list_consents(session, number=n, since=s, limit=lim),
        headers=HEADERS, row=_row, as_json=as_json, number=number, since=since,
        limit=limit, unmasked=unmasked, kind="consents",
    )
