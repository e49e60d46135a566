"""The REST client's default (aiohttp) transport over real sockets on 127.0.0.1: the
bounded pool, downloads, auth, and how failures are reported."""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pbx_bridge.ari.errors import AriConnectionError
from pbx_bridge.ari.rest import AriClient

PING = b'{"ping": "pong", "asterisk_id": "a", "timestamp": "2026-12-01T10:00:00.000+0000"}'


@dataclass
class SlowAri:
    """A keep-alive HTTP/1.1 server answering each request after `delay_s`; it counts
    the connections open at once and remembers each request's Authorization header."""

    delay_s: float = 0.1
    body_for: dict[str, bytes] = field(default_factory=dict)
    open_now: int = 0
    most_open: int = 0
    connections: int = 0
    auth: list[str] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open_now += 1
        self.connections += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                lines = head.decode().split("\r\n")
                path = lines[0].split()[1]
                headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
                self.auth.append(headers.get("Authorization", headers.get("authorization", "")))
                await asyncio.sleep(self.delay_s)
                body = self.body_for.get(path.split("?")[0], PING)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open_now -= 1
            writer.close()


@pytest.fixture
async def slow_ari() -> AsyncIterator[tuple[SlowAri, str]]:
    ari = SlowAri()
    server = await asyncio.start_server(ari.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield ari, f"http://127.0.0.1:{port}"


async def test_pool_never_opens_more_than_max_connections(slow_ari: tuple[SlowAri, str]) -> None:
    server, url = slow_ari
    async with AriClient(url, "u", "p", app="a", max_connections=2) as ari:
        pings = await asyncio.gather(*(ari.ping() for _ in range(10)))
    assert [p.ping for p in pings] == ["pong"] * 10
    assert server.most_open == 2
    assert server.connections == 2  # kept alive and reused, not reopened
    assert server.auth == ["Basic " + base64.b64encode(b"u:p").decode()] * 10


async def test_queued_requests_time_out_as_timeouts(slow_ari: tuple[SlowAri, str]) -> None:
    server, url = slow_ari
    server.delay_s = 2.0
    async with AriClient(url, "u", "p", app="a", max_connections=1, timeout=0.3) as ari:
        with pytest.raises(AriConnectionError, match="did not answer in time"):
            await ari.ping()


async def test_download_streams_the_file(slow_ari: tuple[SlowAri, str], tmp_path: Path) -> None:
    server, url = slow_ari
    audio = bytes(range(256)) * 1000
    server.body_for["/ari/recordings/stored/r1/file"] = audio
    async with AriClient(url, "u", "p", app="a") as ari:
        written = await ari.download_stored_recording("r1", tmp_path / "r1.wav")
    assert written == len(audio)
    assert (tmp_path / "r1.wav").read_bytes() == audio


async def test_refused_connection_says_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with AriClient(f"http://127.0.0.1:{port}", "u", "p", app="a") as ari:
        with pytest.raises(AriConnectionError, match="cannot reach Asterisk at http://127"):
            await ari.ping()
