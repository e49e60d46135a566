"""``pbx-bridge keys``: master keys for encryption at rest.

A key is printed by id only, never by value: the value lives in its 0600 file (or the
orchestrator's secret) and nowhere else, terminal scroll-back included.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from pbx_bridge.cli.context import settings_of
from pbx_bridge.cli.errors import EXIT_RUNTIME, EXIT_USAGE, fail, reporting_errors
from pbx_bridge.config import Settings
from storage.database import ensure_migrated, make_engine, make_session_factory
from storage.errors import KeyringError
from storage.keyring import MASTER_KEY_ENV, Keyring, generate_master_key
from storage.keys import RotateReport, rotate

app = typer.Typer(help="Master keys for encrypted backends: generate a new one, rotate to it.")

# Enough ids to act on; the log has them all.
SHOWN_FAILURES = 20


def _keys_dir(settings: Settings) -> Path:
    keys_dir = settings.storage.keys_dir
    if keys_dir is None:
        fail("storage.keys_dir is not set in the config; set it to a folder for key files",
             EXIT_USAGE)
    return keys_dir


@app.command("generate")
def generate_command(ctx: typer.Context) -> None:
    """Create a new master key in storage.keys_dir and make it the active one."""
    with reporting_errors():
        keys_dir = _keys_dir(settings_of(ctx))
        try:
            key_id = generate_master_key(keys_dir)
        except (KeyringError, OSError) as exc:
            fail(str(exc), EXIT_USAGE)
    typer.echo(f"master key {key_id} created in {keys_dir} and made active")
    typer.echo("new data keys are wrapped with it; run `pbx-bridge keys rotate` to re-wrap "
               "the existing ones, then keep (or back up) the old key files until it succeeds")


async def _rotate(settings: Settings, keyring: Keyring) -> RotateReport:
    engine = make_engine(settings.database.url)
    try:
        await ensure_migrated(engine)
        return await rotate(make_session_factory(engine), keyring)
    finally:
        await engine.dispose()


@app.command("rotate")
def rotate_command(ctx: typer.Context) -> None:
    """Re-wrap every live data key under the active master key (files stay as they are)."""
    with reporting_errors():
        settings = settings_of(ctx)
        try:
            keyring = Keyring.load(settings.storage.keys_dir)
        except (KeyringError, OSError) as exc:
            fail(str(exc), EXIT_USAGE)
        report = asyncio.run(_rotate(settings, keyring))
    typer.echo(
        f"rotated to master key {keyring.active_id}: {report.rewrapped} re-wrapped, "
        f"{report.already_current} already current, {report.failed} failed"
    )
    if report.failed:
        shown = ", ".join(report.failed_ids[:SHOWN_FAILURES])
        more = len(report.failed_ids) - SHOWN_FAILURES
        fail(
            f"{report.failed} data key(s) could not be unwrapped: {shown}"
            + (f" and {more} more" if more > 0 else "")
            + f"; load their old master key (keys_dir or {MASTER_KEY_ENV}) and run again",
            EXIT_RUNTIME,
        )
