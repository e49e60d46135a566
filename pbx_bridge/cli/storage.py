"""``pbx-bridge storage``: where recordings are, what is stuck, and whether backends work."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Annotated

import typer

from pbx_bridge.cli.context import sessions_for, settings_of
from pbx_bridge.cli.errors import EXIT_RUNTIME, fail, reporting_errors
from pbx_bridge.cli.progress import Reporter, progress_for
from pbx_bridge.cli.table import render_table
from pbx_bridge.config import Settings
from storage.audit import (
    DEFAULT_AUDIT_LIMIT,
    AuditReport,
    audit_copies,
    recheck_dead_copies,
)
from storage.errors import KeyringError
from storage.keyring import MASTER_KEY_ENV, Keyring
from storage.status import StorageStatus, retry_dead, storage_status

app = typer.Typer(
    help="Storage pipeline: status, dead-lettered copies, backend checks, copy audits."
)


@app.command("status")
def status_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Recordings by state, copies per backend, and copies that gave up (exit 1 if any)."""

    async def fetch(settings: Settings) -> StorageStatus:
        async with sessions_for(settings) as sessions:
            return await storage_status(sessions)

    with reporting_errors():
        status = asyncio.run(fetch(settings_of(ctx)))
    if as_json:
        typer.echo(json.dumps(status.to_json(), indent=2))
    else:
        typer.echo(render_table(["RECORDINGS", "COUNT"], sorted(status.recordings.items())))
        typer.echo("")
        copy_states = ["pending", "verified", "dead", "deleting", "deleted"]
        rows = [
            [backend, *(counts.get(s, 0) for s in copy_states)]
            for backend, counts in sorted(status.copies.items())
        ]
        typer.echo(render_table(["BACKEND", *(s.upper() for s in copy_states)], rows))
        if status.oldest_pending:
            typer.echo(f"\noldest pending copy since {status.oldest_pending:%Y-%m-%d %H:%M} UTC")
        if status.audit_repairs:
            typer.echo(
                f"\n{status.audit_repairs} copies found damaged by an audit, being re-uploaded"
            )
        if status.dead:
            typer.echo("\ndead-lettered copies (pbx-bridge storage retry):")
            typer.echo(
                render_table(
                    ["RECORDING", "BACKEND", "ATTEMPTS", "LAST ERROR"],
                    [[d.recording_id, d.backend, d.attempts, d.last_error] for d in status.dead],
                )
            )
    if not status.healthy:
        raise typer.Exit(1)


@app.command("retry")
def retry_command(
    ctx: typer.Context,
    recording: Annotated[
        str | None, typer.Option("--recording", metavar="ID", help="Only this recording.")
    ] = None,
    backend: Annotated[
        str | None, typer.Option("--backend", metavar="NAME", help="Only this backend.")
    ] = None,
) -> None:
    """Give dead-lettered copies another chance (exit 1 if some stay dead).

    Copies that gave up uploading get fresh attempts, which the running service picks up
    within its sweep interval. Copies an audit found damaged with no intact copy left are
    checked again now (after, say, the file was put back from a backup): intact ones are
    verified again, damaged ones re-uploaded from any intact copy there now is.
    """
    from pbx_bridge.storage_setup import build_backends, closing_backends

    async def run(settings: Settings, progress: Reporter) -> tuple[int, AuditReport]:
        backends = build_backends(settings.storage)
        keyring = await asyncio.to_thread(_keyring_if_configured, settings)
        async with closing_backends(backends), sessions_for(settings) as sessions:
            queued = await retry_dead(sessions, recording_id=recording, backend=backend)
            report = await recheck_dead_copies(
                sessions, backends, spool=settings.storage.spool_dir,
                recording_id=recording, backend=backend, keyring=keyring, progress=progress,
            )
            return queued, report

    with reporting_errors(), progress_for("storage retry") as progress:
        queued, report = asyncio.run(run(settings_of(ctx), progress))
    typer.echo(f"{queued} dead copies queued again for upload")
    if report.checked or report.unconfigured:
        typer.echo(
            f"{report.checked} copies dead-lettered by an audit checked again: "
            f"{report.intact} intact, {len(report.requeued)} recording(s) queued for "
            f"re-upload, {len(report.unrepairable)} still without an intact copy"
        )
        _print_findings(report)
    _print_unreachable(report)
    if report.unrepairable or report.unreachable or report.unconfigured:
        raise typer.Exit(1)


@app.command("check")
def check_command(ctx: typer.Context) -> None:
    """Write, read back and delete a probe file on every configured backend."""
    from pbx_bridge.storage_setup import build_backends
    from storage.backends.probe import ProbeResult, probe

    async def run(settings: Settings) -> list[ProbeResult]:
        backends = build_backends(settings.storage)
        try:
            return list(await asyncio.gather(*(probe(b) for b in backends.values())))
        finally:
            await asyncio.gather(*(b.close() for b in backends.values()))

    with reporting_errors():
        settings = settings_of(ctx)
        results = asyncio.run(run(settings))
    rows = []
    for result in results:
        for step in result.steps:
            rows.append(
                [
                    result.backend,
                    settings.storage.jurisdiction_of(result.backend),
                    step.step,
                    "ok" if step.ok else "FAILED",
                    f"{step.seconds:.2f}s",
                    step.detail,
                ]
            )
    typer.echo(render_table(["BACKEND", "WHERE", "STEP", "RESULT", "TIME", "DETAIL"], rows))
    if not all(r.ok for r in results):
        fail("some backends failed the check", EXIT_RUNTIME)


@app.command("verify")
def verify_command(
    ctx: typer.Context,
    all_copies: Annotated[
        bool, typer.Option("--all", help="Every verified copy, not just one batch.")
    ] = False,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="Copies to check (oldest-checked first).")
    ] = DEFAULT_AUDIT_LIMIT,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Ask each backend whether its verified copies are still intact (size, and sha256
    where it knows it); damaged copies are queued for re-upload (exit 1 if any)."""
    from pbx_bridge.storage_setup import build_backends, closing_backends

    async def run(settings: Settings, progress: Reporter) -> AuditReport:
        backends = build_backends(settings.storage)
        keyring = await asyncio.to_thread(_keyring_if_configured, settings)
        async with closing_backends(backends), sessions_for(settings) as sessions:
            return await audit_copies(
                sessions,
                backends,
                spool=settings.storage.spool_dir,
                limit=None if all_copies else limit,
                keyring=keyring,
                progress=progress,
            )

    with reporting_errors(), progress_for("storage verify") as progress:
        report = asyncio.run(run(settings_of(ctx), progress))
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "checked": report.checked,
                    "intact": report.intact,
                    "findings": [f.__dict__ for f in report.findings],
                    "requeued": report.requeued,
                    "unrepairable": report.unrepairable,
                    "unreachable": report.unreachable,
                    "unconfigured": report.unconfigured,
                    "clean": report.clean,
                },
                indent=2,
            )
        )
    else:
        typer.echo(
            f"{report.checked} copies checked, {report.intact} intact, "
            f"{len(report.findings)} damaged"
        )
        _print_findings(report)
        if report.requeued:
            typer.echo(
                f"{len(report.requeued)} recording(s) queued for re-upload; the running "
                "service copies them within its sweep interval (or at its next start)"
            )
        if report.unrepairable:
            typer.echo(
                f"{len(report.unrepairable)} recording(s) have no intact copy left "
                "(see pbx-bridge storage status)"
            )
        _print_unreachable(report)
    if not report.clean:
        raise typer.Exit(1)


def _print_findings(report: AuditReport) -> None:
    if report.findings:
        typer.echo(
            render_table(
                ["RECORDING", "BACKEND", "KEY", "PROBLEM", "OUTCOME"],
                [[f.recording_id, f.backend, f.key, f.problem, f.outcome]
                 for f in report.findings],
            )
        )


def _print_unreachable(report: AuditReport) -> None:
    for backend, error in sorted(report.unreachable.items()):
        typer.echo(f"backend {backend} could not be asked: {error}")
    if report.unconfigured:
        typer.echo(f"{report.unconfigured} copies on backends no longer configured")


def _keyring_if_configured(settings: Settings) -> Keyring | None:
    """Master keys open encrypted copies to repair from; without them plain copies serve."""
    if settings.storage.keys_dir is None and not os.environ.get(MASTER_KEY_ENV):
        return None
    try:
        return Keyring.load(settings.storage.keys_dir)
    except KeyringError as exc:
        typer.echo(f"warning: master keys not loaded ({exc}); encrypted copies cannot "
                   "serve as a repair source", err=True)
        return None
