"""``pbx-bridge web``: the web console and REST API, as a process of its own."""

from __future__ import annotations

import typer

from pbx_bridge.cli.context import settings_of
from pbx_bridge.cli.errors import EXIT_USAGE, fail, reporting_errors


def web_command(ctx: typer.Context) -> None:
    """Serve the web console and /api/v1 on [web] listen until stopped (SIGINT/SIGTERM)."""
    with reporting_errors():
        settings = settings_of(ctx)
        # Imported here so the other commands do not load FastAPI and the templates.
        from pbx_bridge import event_loop
        from pbx_bridge.service import configure_logging
        from pbx_bridge.web.app import SecretKeyMissing
        from pbx_bridge.web.server import serve

        configure_logging(settings.log.level)
        try:
            event_loop.run(serve(settings))
        except SecretKeyMissing as exc:
            fail(str(exc), EXIT_USAGE)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
