"""``pbx-bridge outbound-route``: what the callee of an agent's call out hears, by the
dialled number's prefix (the longest prefix wins), and the trunk it is dialled over."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from pbx_bridge.calls.outbound_routes import (
    OutboundRouteInfo,
    default_outbound,
    delete_outbound_route,
    list_outbound_routes,
    validate_prefix,
)
from pbx_bridge.cli.actor import cli_actor
from pbx_bridge.cli.context import session_for, settings_of
from pbx_bridge.cli.errors import reporting_errors
from pbx_bridge.cli.route_options import (
    LegalBasisOption,
    PromptTimeoutOption,
    RetentionOption,
    TimeoutMeansOption,
)
from pbx_bridge.cli.table import render_table
from pbx_bridge.config import Announcement, Language, Settings
from pbx_bridge.config_admin import OutboundRouteFields, save_outbound_route

app = typer.Typer(
    help="Outbound routes: per dialled prefix, what the callee hears and on what basis."
)

HEADERS = ["PREFIX", "ANNOUNCEMENT", "LEGAL BASIS", "RETENTION", "LANGUAGE",
           "TIMEOUT MEANS", "PROMPT TIMEOUT", "DIAL"]


def _row(route: OutboundRouteInfo, settings: Settings) -> list[object]:
    return [
        route.prefix,
        route.announcement.value,
        route.legal_basis.value,
        route.retention_class,
        route.language.value,
        route.timeout_means.value,
        f"{route.prompt_timeout_s}s",
        route.dial_template or f"({settings.call.outbound_dial_template})",
    ]


@app.command("list")
def list_command(ctx: typer.Context) -> None:
    """List outbound routes, and the configured default for every other number."""

    async def fetch(settings: Settings) -> list[OutboundRouteInfo]:
        async with session_for(settings) as session:
            return await list_outbound_routes(session)

    with reporting_errors():
        settings = settings_of(ctx)
        routes = asyncio.run(fetch(settings))
    fallback = default_outbound(settings.default_outbound_route,
                                settings.prompts.default_language)
    typer.echo(render_table(HEADERS, [_row(r, settings) for r in [*routes, fallback]]))


@app.command("set")
def set_command(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Argument(
        metavar="PREFIX", help="The dialled number's start, as the agent dials it: 0090, +44.")],
    announcement: Annotated[
        Announcement | None,
        typer.Option("--announcement", help="notice-only tells the callee, before-connect "
                     "asks (keypress), none says nothing."),
    ] = None,
    legal_basis: LegalBasisOption = None,
    retention: RetentionOption = None,
    language: Annotated[
        Language | None, typer.Option("--language", help="Language the callee hears.")
    ] = None,
    timeout_means: TimeoutMeansOption = None,
    prompt_timeout: PromptTimeoutOption = None,
    dial: Annotated[
        str | None,
        typer.Option("--dial", metavar="TEMPLATE",
                     help='How the callee is dialled, e.g. "PJSIP/{number}@carrier2"; "" '
                     "takes [call] outbound_dial_template."),
    ] = None,
) -> None:
    """Create an outbound route (unset fields from [default_outbound_route]) or change it."""

    async def store(settings: Settings) -> OutboundRouteInfo:
        async with session_for(settings) as session:
            route = await save_outbound_route(session, settings, prefix, OutboundRouteFields(
                announcement=announcement, legal_basis=legal_basis, retention_class=retention,
                language=language, timeout_means=timeout_means,
                prompt_timeout_s=prompt_timeout, dial_template=dial,
            ), actor=cli_actor())
            return route

    with reporting_errors():
        validate_prefix(prefix)
        settings = settings_of(ctx)
        route = asyncio.run(store(settings))
    typer.echo(render_table(HEADERS, [_row(route, settings)]))


@app.command("delete")
def delete_command(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Argument(metavar="PREFIX", help="The route's prefix.")],
) -> None:
    """Remove an outbound route: its numbers take the next longest prefix, or the default."""

    async def remove(settings: Settings) -> None:
        async with session_for(settings) as session:
            await delete_outbound_route(session, prefix, actor=cli_actor())

    with reporting_errors():
        validate_prefix(prefix)
        asyncio.run(remove(settings_of(ctx)))
    typer.echo(f"outbound route {prefix} deleted: its numbers take the next longest prefix "
               "or the default outbound route")
