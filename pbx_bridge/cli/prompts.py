"""``pbx-bridge prompts``: turn the disclosure texts into the audio Asterisk plays."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from pbx_bridge.cli.context import settings_of
from pbx_bridge.cli.errors import EXIT_RUNTIME, fail, reporting_errors
from pbx_bridge.cli.progress import progress_for
from pbx_bridge.cli.table import render_table

app = typer.Typer(help="Prompts: build audio and the manifest that proves what callers heard.")


@app.command("build")
def build_command(
    ctx: typer.Context,
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="DIR", help="Build folder (default: prompts.build_dir)."),
    ] = None,
) -> None:
    """Build every prompt in every language; the previous build stays if any prompt fails."""
    # Imported here: the builder pulls in audio tooling the other commands do not need.
    from pbx_bridge.prompt_builder import PromptBuildError, build_prompts

    with reporting_errors():
        settings = settings_of(ctx)
        try:
            with progress_for("prompts build") as progress:
                manifest = asyncio.run(build_prompts(settings.prompts, out, progress))
        except PromptBuildError as exc:
            fail(str(exc), EXIT_RUNTIME)
    rows = [
        [
            entry.language,
            entry.name,
            entry.version,
            entry.source,
            f"{entry.duration_s:.1f}s",
            entry.audio_sha256[:12],
            entry.file,
        ]
        for _, entry in sorted(manifest.prompts.items())
    ]
    typer.echo(
        render_table(
            ["LANG", "NAME", "VERSION", "SOURCE", "DURATION", "AUDIO SHA256", "FILE"], rows
        )
    )
    target = out if out is not None else settings.prompts.build_dir
    typer.echo(f"built {len(rows)} prompts in {target} at {manifest.built_at}")
