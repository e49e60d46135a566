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

from pbx_bridge.calls.history import CallView, call_views
from pbx_bridge.calls.models import Call
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
from pbx_bridge.cli.actor import cli_actor
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
from storage.audit_trail import record_event

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
    campaign: Annotated[
        str | None, typer.Option("--campaign", help="Only the calls of this campaign.")
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
        direction=direction, reference=reference, campaign=campaign,
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



@app.command("show")
def show_command(
    ctx: typer.Context,
    call_id: Annotated[str, typer.Argument(metavar="ID", help="The call's id.")],
    as_json: JsonOption = False,
    unmasked: UnmaskedOption = False,
) -> None:
    """One call: its facts, consent, recordings, who handled it and its transfers."""

    async def fetch() -> CallView | None:
        async with session_for(settings_of(ctx)) as session:
            row = await session.get(Call, call_id)
            if row is None:
                return None
            (view,) = await call_views(session, [row])
            # Looking at a call's facts is an access too, as on the call page.
            await record_event(session, actor=cli_actor(), action="call.viewed",
                               target=f"call:{row.id}",
                               details={"unmasked": unmasked, "via": "cli"})
            return view

    with reporting_errors():
        found = asyncio.run(fetch())
    if found is None:
        fail(f"no call with id {call_id}", EXIT_USAGE)
    call = found if unmasked else found.masked()
    if as_json:
        typer.echo(json.dumps(call.to_json(), indent=2, ensure_ascii=False))
        return
    consent = call.consent.decision if call.consent else None
    facts = [
        ("id", call.id), ("reference", call.reference), ("started", short_time(call.started_at)),
        ("answered", short_time(call.answered_at)), ("ended", short_time(call.ended_at)),
        ("caller", call.caller), ("did", call.did), ("extension", call.extension),
        ("disposition", call.disposition or "(live)"), ("consent", consent),
        ("legal basis", call.legal_basis), ("retention", call.retention_class),
        ("handled by", " -> ".join(str(h["extension"]) for h in call.handled_by) or None),
    ]
    for name, value in facts:
        typer.echo(f"{name + ':':<13}{value if value is not None else '-'}")
    typer.echo("\nrecordings:")
    typer.echo(render_table(
        ["KIND", "STATUS", "LAYOUT", "DURATION", "ID"],
        [[r.kind, r.status, r.layout, r.duration_s, r.id] for r in call.recordings],
    ))
    if call.transfers:
        typer.echo("\ntransfers:")
        typer.echo(render_table(
            ["ASKED (UTC)", "MODE", "FROM", "TO", "BY", "OUTCOME", "RECORDING"],
            [[short_time(t.requested_at), t.mode, t.from_extension, t.to_extension,
              t.requested_by, t.outcome, t.recording] for t in call.transfers],
        ))
