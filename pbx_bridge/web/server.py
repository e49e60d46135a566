"""`pbx-bridge web`: the console's own process, on uvicorn.

It opens the same database the service uses (checked to be migrated, as every command
does) and serves until SIGTERM/SIGINT stops it gracefully (exit 0).
The access log is ours and leaves out query strings: they can hold phone numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Iterator

import uvicorn
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from pbx_bridge.config import Settings
from pbx_bridge.listener import bind_listener
from pbx_bridge.storage_setup import build_player
from pbx_bridge.users.console_accounts import UsersAccounts
from pbx_bridge.web.app import create_app, secret_key_of
from storage.database import ensure_migrated, make_engine, make_session_factory
from storage.playback import Player

log = logging.getLogger("pbx_bridge.web")

_SHUTDOWN_GRACE_S = 5


class _ConsoleServer(uvicorn.Server):
    """uvicorn, stopping gracefully on SIGTERM/SIGINT and then exiting 0: its own
    handlers re-raise the signal after shutdown, so the process would die of it and
    a supervisor could not tell a clean stop from a kill."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop)
        try:
            yield
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    def _stop(self) -> None:
        self.should_exit = True


def logged_path(path: str) -> str:
    """A share link's path carries its secret: the log shows ``/s/…`` instead."""
    if path.startswith("/s/"):
        return "/s/…" + ("/media" if path.endswith("/media") else "")
    return path


async def _access_log(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    started = time.perf_counter()
    response = await call_next(request)
    log.info(
        "%s %s %d %.1f ms", request.method, logged_path(request.url.path),
        response.status_code,
        (time.perf_counter() - started) * 1000,
    )
    return response


async def serve(settings: Settings) -> None:
    """Serve the console on ``[web] listen`` until stopped."""
    secret_key_of(settings.web)  # before anything else: the first thing to fix
    engine = make_engine(settings.database.url)
    player: Player | None = None
    try:
        await ensure_migrated(engine)
        sessions = make_session_factory(engine)
        accounts = await UsersAccounts.from_settings(settings, sessions)
        player = await build_player(settings.storage, sessions)
        app: FastAPI = create_app(settings, accounts, sessions, player)
        app.middleware("http")(_access_log)
        sock = await bind_listener(settings.web.listen, "web.listen")
        server = _ConsoleServer(
            uvicorn.Config(
                app,
                log_config=None,
                log_level="warning",
                access_log=False,
                lifespan="on",  # the clean-up job, and the caches closed at shutdown
                proxy_headers=True,
                timeout_graceful_shutdown=_SHUTDOWN_GRACE_S,
            )
        )
        log.info("web console on %s (listening on %s)", settings.web.base_url,
                 settings.web.listen)
        await server.serve(sockets=[sock])
    finally:
        if player is not None:
            await player.close()
        await engine.dispose()
