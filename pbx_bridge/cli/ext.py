"""``pbx-bridge ext``: each extension's own recording policy, per direction and scope."""

from __future__ import annotations

import asyncio
from enum import StrEnum
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
from pbx_bridge.flow.policy import CELLS, cell_name

app = typer.Typer(help="Extensions: recording always, on demand, or never.")


class CellMode(StrEnum):
    """A cell's mode, or ``default``: follow the extension's ``--recording``."""

    ALWAYS = "always"
    ON_DEMAND = "on-demand"
    NEVER = "never"
    DEFAULT = "default"


CELL_HEADERS = [f"{d.value[:3].upper()}-{s.value[:3].upper()}" for d, s in CELLS]


def _cell_text(info: ExtensionInfo, name: str) -> str:
    """A set cell as it is; one following ``recording`` in parentheses."""
    mode = info.cells.get(name)
    return mode.value if mode is not None else f"({info.recording.value})"


def _describe(info: ExtensionInfo) -> str:
    retention = info.retention_class or "(route's)"
    cells = ", ".join(f"{name.replace('_', '-')} {_cell_text(info, name)}"
                      for name in (cell_name(d, s) for d, s in CELLS))
    return (f"extension {info.number}: recording {info.recording.value} ({cells}), "
            f"retention {retention}")


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
            ["NUMBER", "RECORDING", *CELL_HEADERS, "RETENTION"],
            [[e.number, e.recording.value,
              *(_cell_text(e, cell_name(d, s)) for d, s in CELLS),
              e.retention_class or "(route's)"] for e in rows],
        )
    )
    typer.echo(f"(extensions not listed: recording {DEFAULT_RECORDING_MODE.value}; "
               "a cell in parentheses follows RECORDING)")


_CELL_HELP = "Calls {}: always, on-demand, never, or default (follow --recording)."


@app.command("set")
def set_command(
    ctx: typer.Context,
    number: Annotated[str, typer.Argument(metavar="NUMBER", help="Extension number, e.g. 101.")],
    recording: Annotated[
        RecordingMode | None,
        typer.Option("--recording",
                     help="When this extension's calls are recorded (every cell not set)."),
    ] = None,
    retention: Annotated[
        str | None,
        typer.Option("--retention", help="Retention class for this extension's recordings."),
    ] = None,
    inbound_internal: Annotated[
        CellMode | None,
        typer.Option("--inbound-internal", help=_CELL_HELP.format("from another extension")),
    ] = None,
    inbound_external: Annotated[
        CellMode | None,
        typer.Option("--inbound-external", help=_CELL_HELP.format("from outside (a trunk)")),
    ] = None,
    outbound_internal: Annotated[
        CellMode | None,
        typer.Option("--outbound-internal", help=_CELL_HELP.format("to another extension")),
    ] = None,
    outbound_external: Annotated[
        CellMode | None,
        typer.Option("--outbound-external", help=_CELL_HELP.format("out over a trunk")),
    ] = None,
) -> None:
    """Create or change an extension's recording policy (options not given are kept)."""
    given = {
        "inbound_internal": inbound_internal,
        "inbound_external": inbound_external,
        "outbound_internal": outbound_internal,
        "outbound_external": outbound_external,
    }
    cells = {
        name: None if mode is CellMode.DEFAULT else RecordingMode(mode.value)
        for name, mode in given.items() if mode is not None
    }
    if recording is None and retention is None and not cells:
        raise typer.BadParameter(
            "nothing to set: give --recording, --retention or a cell such as "
            "--outbound-external never"
        )

    async def store(settings: Settings) -> ExtensionInfo:
        async with session_for(settings) as session:
            return await set_extension(session, number, recording, retention, cells=cells,
                                       actor=cli_actor())

    with reporting_errors():
        info = asyncio.run(store(settings_of(ctx)))
    typer.echo(_describe(info))
