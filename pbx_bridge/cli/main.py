"""The ``pbx-bridge`` command: ``--config`` (here and on every command), the service, and
the admin groups."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pbx_bridge.cli import (
    audit,
    calls,
    campaign,
    check,
    consents,
    db,
    dsar,
    ext,
    group,
    keys,
    outbound_route,
    prompts,
    purge,
    recordings,
    retention,
    route,
    storage,
    tokens,
    users,
    web,
)
from pbx_bridge.cli.config_option import CONFIG_HELP, CONFIG_OPTION, ConfigEverywhereGroup
from pbx_bridge.cli.context import CliState, settings_of
from pbx_bridge.cli.errors import EXIT_RUNTIME, fail, reporting_errors

app = typer.Typer(
    name="pbx-bridge",
    help="Lawful call recording beside Asterisk (KVKK / GDPR).",
    no_args_is_help=True,
    # --config is accepted after any group or command too (systemd: `pbx-bridge run --config`).
    cls=ConfigEverywhereGroup,
    # Locals can hold database passwords and phone numbers: never print them.
    pretty_exceptions_show_locals=False,
)
app.add_typer(db.app, name="db")
app.add_typer(ext.app, name="ext")
app.add_typer(route.app, name="route")
app.add_typer(group.app, name="group")
app.add_typer(outbound_route.app, name="outbound-route")
app.add_typer(retention.app, name="retention")
app.add_typer(campaign.app, name="campaign")
app.add_typer(calls.app, name="calls")
app.add_typer(recordings.app, name="recordings")
app.add_typer(consents.app, name="consents")
app.add_typer(prompts.app, name="prompts")
app.add_typer(keys.app, name="keys")
app.add_typer(storage.app, name="storage")
app.add_typer(audit.app, name="audit")
app.add_typer(dsar.app, name="dsar")
app.add_typer(users.app, name="users")
app.add_typer(tokens.app, name="tokens")
app.command("purge")(purge.purge_command)
app.command("check")(check.check_command)
app.command("web")(web.web_command)


@app.callback()
def main(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(CONFIG_OPTION, metavar="PATH", help=CONFIG_HELP),
    ] = None,
) -> None:
    ctx.obj = CliState(config_path=config)


@app.command("run")
def run_command(ctx: typer.Context) -> None:
    """Run the service until stopped (SIGINT/SIGTERM)."""
    with reporting_errors():
        settings = settings_of(ctx)
        # Imported here so the admin commands work without the service's dependencies.
        from pbx_bridge import event_loop
        from pbx_bridge.flow.prompts import PromptCatalogueError
        from pbx_bridge.service import run

        try:
            event_loop.run(run(settings))
        except PromptCatalogueError as exc:
            fail(str(exc), EXIT_RUNTIME)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
