"""ARI's event websocket as an endless async iterator that survives Asterisk restarts.

The stream never gives up on its own: Asterisk may be restarting, reloading or briefly
unreachable, and the service must come back by itself. What the consumer sees is the
event flow plus two synthetic markers: `StreamConnected` after every (re)connect, on which
the application resynchronises (events were lost while away), and `StreamDisconnected`
when an established connection drops. Failed attempts are logged and retried with capped,
jittered exponential backoff; the iterator only ends on `close()`.

No background task is used: the consumer's own `__anext__` connects, waits and reads, so
cancelling the consumer or calling `close()` leaves nothing running behind.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import random
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from pbx_bridge.ari.errors import (
    AriAuthError,
    AriConnectionError,
    AriError,
    AriEventError,
    error_for_status,
)
from pbx_bridge.ari.events import Event, parse_event
from pbx_bridge.metrics import ARI_RECONNECTS

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StreamConnected:
    """The websocket is (again) connected; `first` is False after a reconnect."""

    first: bool


@dataclass(frozen=True, slots=True)
class StreamDisconnected:
    """An established connection was lost; reconnecting follows by itself."""

    reason: str


StreamItem = Event | StreamConnected | StreamDisconnected


def events_url(base_url: str, app: str, *, subscribe_all: bool = False) -> str:
    """`http://host:port` → `ws://host:port/ari/events?app=...` (https → wss)."""
    parts = urlsplit(base_url.rstrip("/"))
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise ValueError(f"ARI base URL must be http(s)://host[:port], got {base_url!r}")
    query = urlencode({"app": app, "subscribeAll": "true" if subscribe_all else "false"})
    return urlunsplit((scheme, parts.netloc, f"{parts.path}/ari/events", query, ""))


class EventStream:
    """`async for item in EventStream(...)`: events and connection markers, until `close()`."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        app: str,
        *,
        initial_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        subscribe_all: bool = False,
        stable_after_s: float = 10.0,
        ping_interval_s: float = 20.0,
        ping_timeout_s: float = 20.0,
        open_timeout_s: float = 10.0,
        close_timeout_s: float = 2.0,
    ) -> None:
        if initial_backoff_s <= 0 or max_backoff_s < initial_backoff_s:
            raise ValueError("need 0 < initial_backoff_s <= max_backoff_s")
        self.url = events_url(base_url, app, subscribe_all=subscribe_all)
        self.app = app
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        self._headers = {"Authorization": f"Basic {token}"}
        self._initial_backoff = initial_backoff_s
        self._max_backoff = max_backoff_s
        self._stable_after = stable_after_s
        self._ping_interval = ping_interval_s
        self._ping_timeout = ping_timeout_s
        self._open_timeout = open_timeout_s
        # A dead peer never answers our close frame either: do not wait long for it.
        self._close_timeout = close_timeout_s
        self._ws: ClientConnection | None = None
        self._connected_at = 0.0
        self._ever_connected = False
        self._failures = 0
        self._closed = asyncio.Event()
        self.last_error: AriError | None = None
        """The most recent reason connecting failed or a connection dropped; None once
        connected. An `AriAuthError` here means the ARI credentials are being refused."""

    @property
    def connected(self) -> bool:
        return self._ws is not None

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def __aiter__(self) -> EventStream:
        return self

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """End the iteration: a pending `__anext__` returns StopAsyncIteration promptly."""
        self._closed.set()
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()

    async def __anext__(self) -> StreamItem:
        while not self._closed.is_set():
            if self._ws is None:
                if await self._connect():
                    first = not self._ever_connected
                    self._ever_connected = True
                    return StreamConnected(first=first)
                continue
            item = await self._receive(self._ws)
            if item is not None:
                return item
        raise StopAsyncIteration

    async def _connect(self) -> bool:
        """One attempt, preceded by the backoff the previous failures call for."""
        if self._failures:
            delay = self._backoff_delay()
            log.info("ARI events: reconnecting in %.1f s (attempt %d)", delay, self._failures + 1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), delay)
            if self._closed.is_set():
                return False
        try:
            ws = await connect(
                self.url,
                additional_headers=self._headers,
                open_timeout=self._open_timeout,
                ping_interval=self._ping_interval,
                ping_timeout=self._ping_timeout,
                close_timeout=self._close_timeout,
                compression=None,
                proxy=None,
                max_size=16 * 1024 * 1024,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            error = error_for_status(status, "GET", "/ari/events", exc.response.reason_phrase)
            self._failed(error, auth=isinstance(error, AriAuthError))
            return False
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            self._failed(AriConnectionError(f"ARI events: cannot connect: {_describe(exc)}"))
            return False
        if self._closed.is_set():
            await ws.close()
            return False
        self._ws = ws
        if self._ever_connected:
            ARI_RECONNECTS.inc()
        self._connected_at = asyncio.get_running_loop().time()
        self.last_error = None
        log.log(
            logging.INFO if self._failures == 0 and not self._ever_connected else logging.WARNING,
            "ARI events: connected to %s as application %s",
            _without_query(self.url), self.app,
        )
        return True

    def _failed(self, error: AriError, *, auth: bool = False) -> None:
        self.last_error = error
        if auth:
            # Do not hammer Asterisk, but keep trying: it may be mid-reload of ari.conf.
            self._failures = max(self._failures + 1, 64)
            log.error("ARI events: credentials refused (%s); retrying every %.0f s",
                      error, self._max_backoff)
        else:
            self._failures += 1
            level = logging.WARNING if self._failures in (1, 5) or self._failures % 20 == 0 \
                else logging.INFO
            log.log(level, "%s (failure %d)", error, self._failures)

    def _backoff_delay(self) -> float:
        exponent = min(self._failures - 1, 32)
        ceiling = min(self._max_backoff, self._initial_backoff * (2.0**exponent))
        return random.uniform(ceiling / 2, ceiling)

    async def _receive(self, ws: ClientConnection) -> StreamItem | None:
        """The next item from an open connection; None for a skipped message or on close."""
        try:
            message = await ws.recv()
        except ConnectionClosed as exc:
            return self._lost(ws, f"connection closed ({_describe(exc)})")
        except (OSError, TimeoutError) as exc:
            return self._lost(ws, f"connection error ({_describe(exc)})")
        try:
            data = json.loads(message)
        except ValueError:
            log.warning("ARI events: skipping a message that is not JSON (%d bytes)", len(message))
            return None
        try:
            return parse_event(data)
        except AriEventError as exc:
            log.warning("ARI events: skipping malformed event: %s", exc)
            return None

    def _lost(self, ws: ClientConnection, reason: str) -> StreamDisconnected | None:
        if self._ws is ws:
            self._ws = None
        if self._closed.is_set():
            return None
        uptime = asyncio.get_running_loop().time() - self._connected_at
        # A connection that held is a fresh start; one that drops at once keeps backing off.
        self._failures = 0 if uptime >= self._stable_after else max(self._failures, 1)
        self.last_error = AriConnectionError(f"ARI events: {reason}")
        log.warning("ARI events: lost after %.1f s: %s", uptime, reason)
        return StreamDisconnected(reason=reason)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _without_query(url: str) -> str:
    return url.split("?", 1)[0]
