"""``pbx-bridge check``: after install and after every change, is everything in place?"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Annotated

import typer

from pbx_bridge.cli.context import CliState
from pbx_bridge.config import CONFIG_ENV, DEFAULT_CONFIG_PATH, ConfigError
from pbx_bridge.health_check.findings import Finding, exit_code, problem, render_text, to_document


def _source(state: CliState) -> str:
    if state.config_path is not None:
        return str(state.config_path)
    if os.environ.get(CONFIG_ENV):
        return os.environ[CONFIG_ENV]
    return str(DEFAULT_CONFIG_PATH) if DEFAULT_CONFIG_PATH.exists() else "the built-in defaults"


def check_command(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document (for monitoring).")
    ] = False,
) -> None:
    """Check the configuration, database, Asterisk (ARI, modules, prompts, dialplan, tone
    zone, clock, sessions) and storage; exit 0 if nothing needs fixing (warnings allowed),
    1 with one line per problem otherwise."""
    from pbx_bridge.health_check.suite import run_checks

    state = ctx.find_object(CliState) or CliState()
    source = _source(state)
    findings: list[Finding]
    try:
        settings = state.settings()
    except ConfigError as exc:
        findings = [problem("config", line) for line in str(exc).splitlines()]
    else:
        findings = asyncio.run(run_checks(settings, source))
    if as_json:
        typer.echo(json.dumps(to_document(findings), indent=2, ensure_ascii=False))
    else:
        typer.echo(render_text(findings))
    raise typer.Exit(exit_code(findings))
