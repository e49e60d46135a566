"""``pbx-bridge route``: what each dialled number does and on what legal basis."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from pbx_bridge.calls.ring_groups import RingGroupInfo, list_groups
from pbx_bridge.calls.routes import ResolvedRoute, delete_route, list_routes, validate_did
from pbx_bridge.cli.actor import cli_actor
from pbx_bridge.cli.context import session_for, settings_of
from pbx_bridge.cli.errors import reporting_errors
from pbx_bridge.cli.table import render_table
from pbx_bridge.config import Announcement, Language, LegalBasis, Settings, TimeoutRule
from pbx_bridge.config_admin import RouteFields, check_route_input, route_group, save_route

app = typer.Typer(help="Routes: per dialled number (DID) target, disclosure and legal basis.")

HEADERS = [
    "DID",
    "TARGET",
    "ANNOUNCEMENT",
    "LEGAL BASIS",
    "RETENTION",
    "LANGUAGE",
    "TIMEOUT MEANS",
    "PROMPT TIMEOUT",
    "KEEP IN",
]


def _row(did: str, route: ResolvedRoute) -> list[object]:
    return [
        did,
        route.target,
        route.announcement.value,
        route.legal_basis.value,
        route.retention_class,
        route.language.value,
        route.timeout_means.value,
        f"{route.prompt_timeout_s}s",
        route.require_jurisdiction,
    ]


def _codes(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


@app.command("list")
def list_command(ctx: typer.Context) -> None:
    """List routes, and the configured default used for every other DID."""

    async def fetch(settings: Settings) -> tuple[list[ResolvedRoute], list[RingGroupInfo]]:
        async with session_for(settings) as session:
            return await list_routes(session), await list_groups(session)

    with reporting_errors():
        settings = settings_of(ctx)
        routes, groups = asyncio.run(fetch(settings))
    fallback = ResolvedRoute(
        did="(any other)",
        target=settings.default_route.target,
        announcement=settings.default_route.announcement,
        language=settings.default_route.language or settings.prompts.default_language,
        legal_basis=settings.default_route.legal_basis,
        timeout_means=settings.default_route.timeout_means,
        prompt_timeout_s=settings.default_route.prompt_timeout_s,
        retention_class=settings.default_route.retention_class,
        is_default=True,
        offer_withdrawal=settings.default_route.offer_withdrawal,
    )
    rows = [_row(route.did, route) for route in routes]
    rows.append(_row(fallback.did, fallback))
    typer.echo(render_table(HEADERS, rows))
    offering = [route.did for route in [*routes, fallback] if route.offer_withdrawal]
    if offering:
        typer.echo(f"withdrawal by keypress (8) offered on: {', '.join(offering)}")
    _echo_groups([*routes, fallback], groups)


def _echo_groups(routes: list[ResolvedRoute], groups: list[RingGroupInfo]) -> None:
    """What each ring group a route names rings (the member who answers decides)."""
    for group in groups:
        if any(route.target == group.target for route in routes):
            typer.echo(f"{group.target} rings {group.describe()} (ext:seconds); the member "
                       "who answers records as its own policy says")


@app.command("set")
def set_command(
    ctx: typer.Context,
    did: Annotated[
        str, typer.Argument(metavar="DID", help="The dialled number, as Asterisk sees it.")
    ],
    target: Annotated[
        str | None,
        typer.Option("--target", help="Extension that answers, e.g. 101, or a ring group: "
                     "group:NAME (pbx-bridge group set)."),
    ] = None,
    announcement: Annotated[
        Announcement | None,
        typer.Option("--announcement", help="When the caller hears the disclosure."),
    ] = None,
    legal_basis: Annotated[
        LegalBasis | None,
        typer.Option("--legal-basis", help="Ground the recording relies on (KVKK art. 5)."),
    ] = None,
    retention: Annotated[
        str | None, typer.Option("--retention", help="Retention class of the recordings.")
    ] = None,
    language: Annotated[
        Language | None, typer.Option("--language", help="Language of the prompts.")
    ] = None,
    timeout_means: Annotated[
        TimeoutRule | None,
        typer.Option("--timeout-means", help="What silence after the question means."),
    ] = None,
    prompt_timeout: Annotated[
        int | None,
        typer.Option("--prompt-timeout", metavar="SECONDS", help="Seconds to wait for a key."),
    ] = None,
    require_jurisdiction: Annotated[
        str | None,
        typer.Option(
            "--require-jurisdiction",
            metavar="CC",
            help='Keep this route\'s recordings only in this country (e.g. TR); "" removes it.',
        ),
    ] = None,
    offer_withdrawal: Annotated[
        bool | None,
        typer.Option(
            "--offer-withdrawal/--no-offer-withdrawal",
            help="Callers may press 8 at the disclosure to withdraw consent for good.",
        ),
    ] = None,
    languages: Annotated[
        str | None,
        typer.Option(
            "--languages", metavar="tr,en",
            help='Languages the caller chooses from by key (a prompts folder each); "" '
            "removes the choice.",
        ),
    ] = None,
    language_keys: Annotated[
        str | None,
        typer.Option("--language-keys", metavar="1,3",
                     help="The key of each of --languages, in order (default 1,2,...)."),
    ] = None,
    language_by_country: Annotated[
        bool | None,
        typer.Option(
            "--language-by-country/--no-language-by-country",
            help="The caller's country ([prompts] country_languages) picks the language.",
        ),
    ] = None,
) -> None:
    """Create a route (unset fields from the default route) or change some of its fields."""

    fields = RouteFields(
        target=target,
        announcement=announcement,
        legal_basis=legal_basis,
        retention_class=retention,
        language=language,
        timeout_means=timeout_means,
        prompt_timeout_s=prompt_timeout,
        require_jurisdiction=require_jurisdiction,
        offer_withdrawal=offer_withdrawal,
        languages=None if languages is None else _codes(languages),
        language_keys=None if language_keys is None else _codes(language_keys),
        language_by_country=language_by_country,
    )

    async def store(settings: Settings) -> tuple[ResolvedRoute, RingGroupInfo | None]:
        async with session_for(settings) as session:
            route = await save_route(session, settings, did, fields, actor=cli_actor())
            return route, await route_group(session, route)

    with reporting_errors():
        check_route_input(did, fields, settings_of(ctx))
        route, group = asyncio.run(store(settings_of(ctx)))
    typer.echo(render_table(HEADERS, [_row(route.did, route)]))
    _echo_groups([route], [group] if group else [])
    if route.offer_withdrawal:
        typer.echo("withdrawal by keypress (8) offered")
    if route.languages:
        choice = ", ".join(f"{key}: {code}" for code, key in
                           zip(route.languages, route.language_keys, strict=True))
        typer.echo(f"language chosen by key ({choice})")
    if route.language_by_country:
        typer.echo("language follows the caller's country")


@app.command("delete")
def delete_command(
    ctx: typer.Context,
    did: Annotated[str, typer.Argument(metavar="DID", help="The route's dialled number.")],
) -> None:
    """Remove a route: calls to that DID take the configured default route again."""

    async def remove(settings: Settings) -> None:
        async with session_for(settings) as session:
            await delete_route(session, did, actor=cli_actor())

    with reporting_errors():
        validate_did(did)
        asyncio.run(remove(settings_of(ctx)))
    typer.echo(f"route {did} deleted: its calls take the default route")
