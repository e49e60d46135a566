"""``pbx-bridge calls``: the call history with each call's consent and recordings.

Built on the call search (``pbx_bridge.calls.search``) the web console and the API use:
the same filters, the same pages. The next page's cursor goes to stderr, so stdout (the
table, or the JSON array scripts read) stays what it was.
"""

from __future__ import annotations

import asyncio
import json
from functools import cache
from typing import Annotated

import typer

from pbx_bridge.calls.history import CallView
from pbx_bridge.calls.search import (
    CONSENT_FILTERS,
    DEFAULT_LIMIT,
    DIRECTIONS,
    DISPOSITIONS,
    CallFilter,
    CallPage,
    CursorSigner,
    InvalidSearch,
    search_calls,
)
from pbx_bridge.cli.context import session_for, settings_of
from pbx_bridge.cli.errors import EXIT_USAGE, fail, reporting_errors
from pbx_bridge.cli.listing_options import (
    JsonOption,
    LimitOption,
    NumberOption,
    SinceOption,
    UnmaskedOption,
    parse_since,
    record_unmasked,
    short_time,
)
from pbx_bridge.cli.table import render_table
from pbx_bridge.subjects.index import SubjectIndex, SubjectKeyError, subject_index_from_settings

app = typer.Typer(help="Call history (numbers masked unless --unmasked).")

HEADERS = [
    "STARTED (UTC)", "CALLER", "DID", "EXT", "DISPOSITION", "CONSENT", "RECS", "REFERENCE", "ID",
]


def _row(call: CallView) -> list[object]:
    return [
        short_time(call.started_at),
        call.caller,
        call.did,
        call.extension,
        call.disposition or "(live)",
        call.consent.decision if call.consent else None,
        len(call.recordings),
        call.reference,
        call.id,
    ]


@app.command("list")
def list_command(
    ctx: typer.Context,
    as_json: JsonOption = False,
    number: NumberOption = None,
    since: SinceOption = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Only before this UTC date/time.")
    ] = None,
    did: Annotated[str | None, typer.Option("--did", help="Number called (any spelling).")] = None,
    extension: Annotated[str | None, typer.Option("--extension", help="Extension.")] = None,
    disposition: Annotated[
        str | None, typer.Option("--disposition", help=f"One of {', '.join(DISPOSITIONS)}.")
    ] = None,
    consent: Annotated[
        str | None, typer.Option("--consent", help=f"One of {', '.join(CONSENT_FILTERS)}.")
    ] = None,
    direction: Annotated[
        str | None, typer.Option("--direction", help=f"One of {', '.join(DIRECTIONS)}.")
    ] = None,
    reference: Annotated[
        str | None,
        typer.Option("--reference", help="The call's reference number (9 digits)."),
    ] = None,
    limit: LimitOption = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        typer.Option("--cursor", help="The next page: the cursor the previous page printed."),
    ] = None,
    unmasked: UnmaskedOption = False,
) -> None:
    """List calls, newest first, a page at a time (the next page's --cursor on stderr)."""
    filters = CallFilter(
        since=parse_since(since), until=parse_since(until, "--until"), number=number,
        did=did, extension=extension, disposition=disposition, consent=consent,
        direction=direction, reference=reference,
    )
    with reporting_errors():
        settings = settings_of(ctx)

        @cache
        def subjects() -> SubjectIndex:
            return subject_index_from_settings(settings.privacy)

        async def fetch() -> CallPage:
            async with session_for(settings) as session:
                found = await search_calls(
                    session, filters, signer=CursorSigner.of_subjects(subjects),
                    subjects=subjects() if number is not None else None,
                    cursor=cursor, limit=limit,
                )
                if unmasked:
                    await record_unmasked(
                        session, "calls", [c.id for c in found.calls],
                        number=number, since=filters.since,
                    )
                return found

        try:
            page = asyncio.run(fetch())
        except (InvalidSearch, SubjectKeyError) as exc:
            fail(str(exc), EXIT_USAGE)
    calls = page.calls if unmasked else [call.masked() for call in page.calls]
    if as_json:
        typer.echo(json.dumps([c.to_json() for c in calls], indent=2, ensure_ascii=False))
    else:
        typer.echo(render_table(HEADERS, [_row(call) for call in calls]))
    if page.next_cursor is not None:
        typer.echo(f"next page: --cursor {page.next_cursor}", err=True)

