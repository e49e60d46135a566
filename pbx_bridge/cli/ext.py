"""``pbx-bridge ext``: each extension's own recording policy."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from pbx_bridge.calls.extensions import (
    DEFAULT_RECORDING_MODE,
    ExtensionInfo,
    list_extensions,
    set_extension,
)
from pbx_bridge.cli.actor import cli_actor
from pbx_bridge.cli.context import session_for, settings_of
from pbx_bridge.cli.errors import reporting_errors
from pbx_bridge.cli.table import render_table
from pbx_bridge.config import RecordingMode, Settings

app = typer.Typer(help="Extensions: recording always, on demand, or never.")


def _describe(info: ExtensionInfo) -> str:
    retention = info.retention_class or "(route's)"
    return f"extension {info.number}: recording {info.recording.value}, retention {retention}"


@app.command("list")
def list_command(ctx: typer.Context) -> None:
    """List configured extensions (others record: always)."""

    async def fetch(settings: Settings) -> list[ExtensionInfo]:
        async with session_for(settings) as session:
            return await list_extensions(session)

    with reporting_errors():
        rows = asyncio.run(fetch(settings_of(ctx)))
    typer.echo(
        render_table(
            ["NUMBER", "RECORDING", "RETENTION"],
            [[e.number, e.recording.value, e.retention_class or "(route's)"] for e in rows],
        )
    )
    typer.echo(f"(extensions not listed: recording {DEFAULT_RECORDING_MODE.value})")


@app.command("set")
def set_command(
    ctx: typer.Context,
    number: Annotated[str, typer.Argument(metavar="NUMBER", help="Extension number, e.g. 101.")],
    recording: Annotated[
        RecordingMode, typer.Option("--recording", help="When this extension's calls are recorded.")
    ],
    retention: Annotated[
        str | None,
        typer.Option("--retention", help="Retention class for this extension's recordings."),
    ] = None,
) -> None:
    """Create or change an extension's recording policy."""

    async def store(settings: Settings) -> ExtensionInfo:
        async with session_for(settings) as session:
            return await set_extension(session, number, recording, retention, actor=cli_actor())

    with reporting_errors():
        info = asyncio.run(store(settings_of(ctx)))
    typer.echo(_describe(info))
