"""``pbx-bridge audit``: who did what to which data, and proof the record is intact.

``verify`` exits 1 and names the first entry that was changed, removed or reordered, so
a cron job or monitoring check can alert on it; on success it prints the chain head
(seq and hash), which is worth writing down outside the database: passed back as
``--anchor SEQ:HASH`` it also catches a rewrite that recomputed every later hash.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Annotated

import typer

from pbx_bridge.calls.history import iso
from pbx_bridge.cli.context import session_for, settings_of
from pbx_bridge.cli.errors import EXIT_RUNTIME, fail, reporting_errors
from pbx_bridge.cli.listing_options import (
    JsonOption,
    LimitOption,
    SinceOption,
    parse_since,
    short_time,
)
from pbx_bridge.cli.table import render_table
from pbx_bridge.config import Settings
from storage.audit_trail import DEFAULT_LIMIT, VerifyReport, list_entries, verify
from storage.models import AuditEntry

app = typer.Typer(help="The audit trail: who did what to which data, hash-chained.")

HEADERS = ["SEQ", "AT (UTC)", "ACTOR", "ACTION", "TARGET", "OUTCOME", "DETAILS"]
_ANCHOR = re.compile(r"^(\d+):([0-9a-fA-F]{64})$")


def entry_json(entry: AuditEntry) -> dict[str, object]:
    return {
        "seq": entry.seq,
        "at": iso(entry.at),
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "outcome": entry.outcome,
        "details": json.loads(entry.details),
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


@app.command("list")
def list_command(
    ctx: typer.Context,
    since: SinceOption = None,
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            metavar="T",
            help="Only this target (recording:ID, call:ID, route:DID, dsar:ID...);"
            " a trailing * matches a prefix.",
        ),
    ] = None,
    action: Annotated[
        str | None,
        typer.Option(
            "--action",
            metavar="A",
            help="Only this action (recording.deleted...); a trailing * matches a prefix"
            " (recording.*).",
        ),
    ] = None,
    limit: LimitOption = DEFAULT_LIMIT,
    as_json: JsonOption = False,
) -> None:
    """List audit entries, newest first."""
    since_at = parse_since(since)

    async def fetch(settings: Settings) -> list[AuditEntry]:
        async with session_for(settings) as session:
            return await list_entries(
                session, since=since_at, target=target, action=action, limit=limit
            )

    with reporting_errors():
        entries = asyncio.run(fetch(settings_of(ctx)))
    if as_json:
        typer.echo(json.dumps([entry_json(e) for e in entries], indent=2, ensure_ascii=False))
        return
    typer.echo(
        render_table(
            HEADERS,
            [
                [e.seq, short_time(e.at), e.actor, e.action, e.target, e.outcome, e.details]
                for e in entries
            ],
        )
    )


def _parse_anchor(value: str | None) -> tuple[int, str] | None:
    if value is None:
        return None
    match = _ANCHOR.fullmatch(value.strip())
    if match is None or int(match.group(1)) < 1:
        raise typer.BadParameter(
            f"{value!r}: use SEQ:HASH, e.g. 1200:<64 hex digits> as printed by `audit verify`",
            param_hint="--anchor",
        )
    return int(match.group(1)), match.group(2).lower()


def _report_json(report: VerifyReport) -> dict[str, object]:
    problem = report.problem
    return {
        "ok": report.ok,
        "checked": report.checked,
        "head_seq": report.head_seq,
        "head_hash": report.head_hash,
        "problem": None
        if problem is None
        else {"seq": problem.seq, "kind": problem.kind, "message": problem.message},
    }


@app.command("verify")
def verify_command(
    ctx: typer.Context,
    anchor: Annotated[
        str | None,
        typer.Option(
            "--anchor",
            metavar="SEQ:HASH",
            help="A head printed by an earlier verify and kept elsewhere: the chain must "
            "still pass through it.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Check every entry's hash and link; exit 1 naming the first entry that does not hold."""
    pinned = _parse_anchor(anchor)

    async def check(settings: Settings) -> VerifyReport:
        async with session_for(settings) as session:
            return await verify(session, anchor=pinned)

    with reporting_errors():
        report = asyncio.run(check(settings_of(ctx)))
    if as_json:
        typer.echo(json.dumps(_report_json(report), indent=2))
        if not report.ok:
            raise typer.Exit(EXIT_RUNTIME)
        return
    if not report.ok:
        fail(report.message, EXIT_RUNTIME)
    typer.echo(report.message)
