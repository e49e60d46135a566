"""``pbx-bridge purge``: delete what retention says is due, or show what a date would delete.

The service's purger does this every few minutes; the command is for the admin who
wants to see it (``--dry-run``), or to run it where the service does not.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import typer

from pbx_bridge.cli.context import sessions_for, settings_of
from pbx_bridge.cli.errors import EXIT_RUNTIME, EXIT_USAGE, fail, reporting_errors
from pbx_bridge.cli.listing_options import short_time
from pbx_bridge.cli.progress import Reporter, progress_for
from pbx_bridge.cli.table import render_table
from pbx_bridge.config import Settings
from pbx_bridge.recordings_admin import backends_from_settings, deleter_from_settings
from storage.errors import StorageError
from storage.models import utcnow
from storage.retention import PurgeReport, purge_expired


def parse_as_of(value: str | None) -> datetime:
    if value is None:
        return utcnow()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(
            f"{value!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][Z]",
            param_hint="--as-of",
        ) from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _print_dry_run(report: PurgeReport) -> None:
    if report.would_delete:
        typer.echo(
            render_table(
                ["RETAIN UNTIL (UTC)", "KIND", "STATUS", "ID", "WHERE"],
                [
                    [
                        short_time(c.retain_until),
                        c.kind,
                        c.status,
                        c.recording_id,
                        ", ".join(c.where) or None,
                    ]
                    for c in report.would_delete
                ],
            )
        )
    typer.echo(
        f"as of {short_time(report.as_of)} UTC: {len(report.would_delete)} recording(s) "
        f"would be deleted, {len(report.skipped_on_hold)} kept on legal hold (dry run: "
        "nothing changed)"
    )


def _print_report(report: PurgeReport) -> None:
    typer.echo(
        f"as of {short_time(report.as_of)} UTC: {report.deleted} deleted, "
        f"{report.still_pending_count} pending, {len(report.skipped_on_hold)} kept on legal hold"
    )
    for pending in report.still_pending:
        for place in pending.places:
            typer.echo(
                f"pending {pending.recording_id}: {place.place} {place.key}: {place.why}",
                err=True,
            )


def purge_command(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list what would be deleted.")
    ] = False,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            metavar="DATETIME",
            help="Purge as if it were this UTC date/time (default: now; future only with"
            " --dry-run).",
        ),
    ] = None,
) -> None:
    """Delete recordings whose retention has ended (legal holds are kept)."""
    now = parse_as_of(as_of)
    if not dry_run and now > utcnow():
        fail("--as-of in the future deletes recordings early; use it with --dry-run", EXIT_USAGE)

    async def run(settings: Settings, progress: Reporter) -> PurgeReport:
        async with sessions_for(settings) as sessions:
            backends = backends_from_settings(settings)
            try:
                deleter = deleter_from_settings(settings, sessions, backends)
                return await purge_expired(
                    sessions, deleter, now=now, dry_run=dry_run, progress=progress
                )
            finally:
                for backend in backends.values():
                    await backend.close()

    with reporting_errors():
        try:
            with progress_for("purge") as progress:
                report = asyncio.run(run(settings_of(ctx), progress))
        except (StorageError, OSError) as exc:
            fail(str(exc), EXIT_RUNTIME)
    if dry_run:
        _print_dry_run(report)
        return
    _print_report(report)
    if report.still_pending_count:
        raise typer.Exit(EXIT_RUNTIME)
