"""EventStream against a real websocket server on 127.0.0.1 that we start, stop and break."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from typing import Any

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from pbx_bridge.ari import (
    AriAuthError,
    AriConnectionError,
    EventStream,
    StreamConnected,
    StreamDisconnected,
)
from pbx_bridge.ari import (
    events as ev,
)
from pbx_bridge.ari.stream import StreamItem, events_url

PASSWORD = "pa:ss/wörd"
GOOD_AUTH = "Basic " + base64.b64encode(f"pbx:{PASSWORD}".encode()).decode()
CHANNEL = {"id": "c1", "name": "PJSIP/1", "state": "Up", "caller": {"name": "", "number": ""},
           "connected": {"name": "", "number": ""}, "accountcode": "",
           "dialplan": {"context": "x", "exten": "s", "priority": 1, "app_name": "Stasis",
                        "app_data": "pbxb"},
           "creationtime": "2026-11-24T08:54:24.187+0000", "language": "en"}


def stasis_start(channel_id: str) -> str:
    return json.dumps({"type": "StasisStart", "timestamp": "2026-11-24T08:54:24.188+0000",
                       "application": "pbxb", "asterisk_id": "a", "args": ["in"],
                       "channel": {**CHANNEL, "id": channel_id}})


ConnHandler = Callable[[ServerConnection], Awaitable[None]]


class FakeAsterisk:
    """A websocket server on a fixed port that can be stopped and started again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.handler: ConnHandler = self._hold
        self.refuse_auth = False
        self.paths: list[str] = []
        self.connections = 0
        self._server: Server | None = None

    async def start(self) -> None:
        self._server = await serve(self._handle, "127.0.0.1", self.port,
                                   process_request=self._check, close_timeout=0.5)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _check(self, conn: ServerConnection, request: Request) -> Response | None:
        self.paths.append(request.path)
        if self.refuse_auth or request.headers.get("Authorization") != GOOD_AUTH:
            return Response(HTTPStatus.UNAUTHORIZED, "Unauthorized",
                            Headers([("Content-Length", "0")]), b"")
        return None

    async def _handle(self, conn: ServerConnection) -> None:
        self.connections += 1
        await self.handler(conn)

    @staticmethod
    async def _hold(conn: ServerConnection) -> None:
        await conn.wait_closed()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def asterisk() -> AsyncIterator[FakeAsterisk]:
    fake = FakeAsterisk(free_port())
    await fake.start()
    yield fake
    await fake.stop()


def stream_for(fake: FakeAsterisk, **kwargs: Any) -> EventStream:
    options: dict[str, Any] = {"initial_backoff_s": 0.05, "max_backoff_s": 0.4}
    options.update(kwargs)
    return EventStream(f"http://127.0.0.1:{fake.port}", "pbx", PASSWORD, "pbxb", **options)


async def next_item(stream: EventStream, wait_s: float = 5.0) -> StreamItem:
    return await asyncio.wait_for(anext(stream), wait_s)


def test_events_url_encodes_app_and_scheme() -> None:
    assert events_url("http://h:8088", "pbx b") == (
        "ws://h:8088/ari/events?app=pbx+b&subscribeAll=false")
    assert events_url("https://h/", "a", subscribe_all=True) == (
        "wss://h/ari/events?app=a&subscribeAll=true")
    with pytest.raises(ValueError):
        events_url("ftp://h", "a")


async def test_yields_connected_then_parsed_events(asterisk: FakeAsterisk) -> None:
    async def send_two(conn: ServerConnection) -> None:
        await conn.send(stasis_start("c1"))
        await conn.send("not json at all")  # skipped, stream goes on
        await conn.send(json.dumps({"type": "StasisEnd"}))  # malformed: skipped
        await conn.send(json.dumps({"type": "Brandnew", "timestamp": "x"}))
        await conn.send(stasis_start("c2"))
        await conn.wait_closed()

    asterisk.handler = send_two
    async with stream_for(asterisk) as stream:
        assert await next_item(stream) == StreamConnected(first=True)
        first = await next_item(stream)
        assert isinstance(first, ev.StasisStart) and first.channel.id == "c1"
        assert first.args == ("in",)
        unknown = await next_item(stream)
        assert isinstance(unknown, ev.UnknownEvent) and unknown.type == "Brandnew"
        second = await next_item(stream)
        assert isinstance(second, ev.StasisStart) and second.channel.id == "c2"
        assert stream.connected and stream.last_error is None
    assert asterisk.paths == ["/ari/events?app=pbxb&subscribeAll=false"]


async def test_server_close_gives_disconnected_then_reconnected(
    asterisk: FakeAsterisk,
) -> None:
    async def close_after_one(conn: ServerConnection) -> None:
        await conn.send(stasis_start(f"c{asterisk.connections}"))
        await conn.close()

    asterisk.handler = close_after_one
    async with stream_for(asterisk) as stream:
        items = [await next_item(stream) for _ in range(6)]
    kinds = [type(i).__name__ for i in items]
    assert kinds == ["StreamConnected", "StasisStart", "StreamDisconnected",
                     "StreamConnected", "StasisStart", "StreamDisconnected"]
    assert items[0] == StreamConnected(first=True)
    assert items[3] == StreamConnected(first=False)
    assert isinstance(items[4], ev.StasisStart) and items[4].channel.id == "c2"


async def test_reconnects_with_backoff_when_asterisk_is_down_for_a_while(
    asterisk: FakeAsterisk, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pbx_bridge.ari.stream")
    async with stream_for(asterisk, initial_backoff_s=0.05, max_backoff_s=0.2) as stream:
        assert await next_item(stream) == StreamConnected(first=True)
        await asterisk.stop()  # like `core stop now`: connection closed, then refused
        lost = await next_item(stream)
        assert isinstance(lost, StreamDisconnected)

        pending = asyncio.ensure_future(next_item(stream, wait_s=10))
        await asyncio.sleep(1.0)
        assert not pending.done()  # still retrying against a refused port
        assert isinstance(stream.last_error, AriConnectionError)
        attempts = sum("reconnecting in" in r.getMessage() for r in caplog.records)
        # Backoff: ~1 s of refusals with a 0.2 s cap is a handful of attempts, not hundreds.
        assert 3 <= attempts <= 25
        await asterisk.start()
        assert await pending == StreamConnected(first=False)
        assert stream.last_error is None
    assert PASSWORD not in caplog.text
    assert "pa%3Ass" not in caplog.text and GOOD_AUTH not in caplog.text


async def test_auth_failure_is_exposed_and_retried_at_max_backoff(
    asterisk: FakeAsterisk, caplog: pytest.LogCaptureFixture
) -> None:
    asterisk.refuse_auth = True
    async with stream_for(asterisk, initial_backoff_s=0.01, max_backoff_s=0.3) as stream:
        pending = asyncio.ensure_future(next_item(stream, wait_s=10))
        await asyncio.sleep(0.7)
        assert not pending.done()
        assert isinstance(stream.last_error, AriAuthError)
        assert stream.last_error.status == 401
        # At most ~0.3 s apart (jitter 0.15-0.3 s): 2 to 5 attempts in 0.7 s, not dozens.
        assert 2 <= len(asterisk.paths) <= 6
        asterisk.refuse_auth = False  # ari.conf fixed and reloaded
        assert await pending == StreamConnected(first=True)
    assert "credentials refused" in caplog.text and PASSWORD not in caplog.text


async def test_dead_connection_is_detected_by_keepalive(asterisk: FakeAsterisk) -> None:
    async def go_silent(conn: ServerConnection) -> None:
        if asterisk.connections == 1:
            conn.transport.pause_reading()  # never answers pings again
        await conn.wait_closed()

    asterisk.handler = go_silent
    async with stream_for(asterisk, ping_interval_s=0.1, ping_timeout_s=0.2) as stream:
        assert await next_item(stream) == StreamConnected(first=True)
        lost = await next_item(stream, wait_s=5)
        assert isinstance(lost, StreamDisconnected)
        assert await next_item(stream) == StreamConnected(first=False)


async def test_close_ends_iteration_and_leaves_no_tasks(asterisk: FakeAsterisk) -> None:
    before = asyncio.all_tasks()
    stream = stream_for(asterisk)
    assert await next_item(stream) == StreamConnected(first=True)

    async def consume() -> list[StreamItem]:
        return [item async for item in stream]

    consumer = asyncio.ensure_future(consume())
    await asyncio.sleep(0.1)
    await stream.close()
    assert await asyncio.wait_for(consumer, 2) == []
    assert stream.closed and not stream.connected
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    await asyncio.sleep(0)  # let websockets' own keepalive task finish
    leftover = {t for t in asyncio.all_tasks() - before if not t.done()}
    leftover.discard(asyncio.current_task())
    assert leftover == set()


async def test_close_during_backoff_returns_promptly() -> None:
    port = free_port()  # nothing listens here
    stream = EventStream(f"http://127.0.0.1:{port}", "pbx", PASSWORD, "pbxb",
                         initial_backoff_s=5.0, max_backoff_s=30.0)
    consumer = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.3)  # first attempt refused; now sleeping its ~5 s backoff
    assert isinstance(stream.last_error, AriConnectionError)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await stream.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(consumer, 2)
    assert loop.time() - started < 1.0


async def test_cancelling_the_consumer_leaves_the_stream_usable(asterisk: FakeAsterisk) -> None:
    stream = stream_for(asterisk)
    assert await next_item(stream) == StreamConnected(first=True)
    waiter = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.05)
    waiter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiter
    await stream.close()
