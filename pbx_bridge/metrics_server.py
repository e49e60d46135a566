"""``/metrics`` and ``/healthz`` on ``[metrics] listen``, inside the service's event loop.

Starlette answers, uvicorn serves, as a task beside the calls: a scrape only reads the
registry and a few flags, so it never waits on Asterisk or the database and never holds
up a call. We bind the socket ourselves so that a port already taken stops start-up with
a message naming the key (uvicorn would exit the process), and uvicorn's own signal
handling is left out: SIGTERM belongs to the service, which stops this server last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterator

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pbx_bridge.ari.stream import EventStream
from pbx_bridge.config import Settings, listen_address
from pbx_bridge.flow.app import StasisApp
from pbx_bridge.health import ServiceHealth
from pbx_bridge.listener import bind_listener
from pbx_bridge.metrics_refresh import MetricsRefresh

log = logging.getLogger(__name__)

_SHUTDOWN_GRACE_S = 1


def metrics_app(health: ServiceHealth) -> Starlette:
    async def metrics(request: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    async def healthz(request: Request) -> Response:
        report = health.report()
        return JSONResponse(report.as_json(), status_code=200 if report.healthy else 503)

    return Starlette(routes=[Route("/metrics", metrics), Route("/healthz", healthz)])


class _ServiceOwnedServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the service's own SIGTERM/SIGINT handlers stay in place


class MetricsServer:
    """``async with MetricsServer(listen, health):`` serves until the block ends."""

    def __init__(self, listen: str, health: ServiceHealth) -> None:
        self.listen = listen
        listen_address(listen)  # a bad value fails here, not once the service runs
        self._server = _ServiceOwnedServer(
            uvicorn.Config(
                metrics_app(health),
                # Our log format and handlers, not uvicorn's; only its warnings.
                log_config=None,
                log_level="warning",
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=_SHUTDOWN_GRACE_S,
            )
        )
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> MetricsServer:
        sock = await bind_listener(self.listen, "metrics.listen")
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="metrics")
        ready = asyncio.create_task(self._server.ready.wait())
        await asyncio.wait({ready, self._task}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if self._task.done():
            self._task.result()  # it stopped before serving: say why
        log.info("metrics and health on http://%s/metrics and /healthz", self.listen)
        return self

    async def __aexit__(self, *exc: object) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def serving_metrics(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    app: StasisApp,
    stream: EventStream,
) -> AsyncIterator[None]:
    """The listener and the gauges' refresh while the block runs; nothing if it is off."""
    metrics = settings.metrics
    if metrics.listen is None:
        yield
        return
    refresh = MetricsRefresh(
        sessions, backends=settings.storage.targets, interval_s=metrics.refresh_interval_s
    )
    health = ServiceHealth(app, stream, refresh)
    health.bind_gauges()
    async with refresh, MetricsServer(metrics.listen, health):
        yield
