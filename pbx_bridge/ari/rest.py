"""ARI's REST half: one method per operation the call flow needs, typed in and out.

ARI takes its parameters in the query string (only channel/bridge `variables` go in a JSON
body), answers 204 for commands and JSON objects for resources. Errors come back as
`{"message": ...}` (sometimes `{"error": ...}`) and become the exception classes in
`errors.py`, so the flow can tell a channel that hung up (404) from Asterisk being away.

Plain aiohttp underneath: a call makes ~24 requests, and aiohttp's own client costs about
a third of the CPU per request of httpx on aiohttp's transport (bench/README.md, "ARI
REST client").
"""

from __future__ import annotations

import asyncio
import base64
import json as jsonlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, TypeVar
from urllib.parse import quote

import aiohttp

from pbx_bridge.ari.errors import (
    AriConnectionError,
    AriNotFound,
    AriResponseError,
    error_for_status,
)
from pbx_bridge.ari.models import (
    Application,
    AsteriskInfo,
    AsteriskModule,
    AsteriskPing,
    Bridge,
    Channel,
    LiveRecording,
    Playback,
    Sound,
    StoredRecording,
)
from pbx_bridge.metrics import observe_ari_request

log = logging.getLogger(__name__)

T = TypeVar("T")
ParamValue = str | int | float | bool | None
Params = Mapping[str, ParamValue]

SpyDirection = Literal["none", "both", "out", "in"]
IfExists = Literal["fail", "overwrite", "append"]
TerminateOn = Literal["none", "any", "*", "#"]

_DOWNLOAD_CHUNK = 64 * 1024

# Persistent REST connections to one Asterisk; see AriClient.__init__.
DEFAULT_MAX_CONNECTIONS = 8
KEEPALIVE_EXPIRY_S = 10.0


def _segment(value: str) -> str:
    """Quote an id for use as one path segment (ids are ours to choose, so be safe)."""
    if not value:
        raise ValueError("ARI object id must not be empty")
    return quote(value, safe="")


def _query(params: Params) -> dict[str, str]:
    """ARI wants `true`/`false` for booleans and no key at all for unset options."""
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = str(value)
    return out


def _transport_error(method: str, path: str, base_url: str, exc: Exception) -> AriConnectionError:
    """Too slow (a timeout, also waiting for a pooled connection) is told apart from
    unreachable (refused, reset, a broken response), as the flow reports them differently."""
    if isinstance(exc, TimeoutError):  # aiohttp's timeouts are TimeoutErrors too
        connecting = isinstance(exc, aiohttp.ConnectionTimeoutError)
        kind = "ConnectTimeout" if connecting else "ReadTimeout"
        return AriConnectionError(f"{method} {path}: Asterisk did not answer in time ({kind})")
    return AriConnectionError(f"{method} {path}: cannot reach Asterisk at {base_url}: {exc}")


def _error_message(body: bytes, reason: str) -> str:
    try:
        parsed = jsonlib.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return text[:200] if text else reason
    if isinstance(parsed, Mapping):
        for key in ("message", "error"):
            if isinstance(parsed.get(key), str):
                return str(parsed[key])
    return reason


class AriClient:
    """Async client for one Asterisk's ARI, bound to our Stasis application name.

    Use as `async with AriClient(...) as ari:`; the underlying connection pool is closed
    on exit whatever happens inside.
    """

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        app: str,
        timeout: float = 10.0,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.app = app
        self.max_connections = max_connections
        self._root = f"{self.base_url}/ari"
        # Computed once, not per request.
        self._headers = {
            "Accept": "application/json",
            # UTF-8, as httpx encoded it before.
            "Authorization": "Basic " + base64.b64encode(
                f"{username}:{password}".encode()).decode("ascii"),
        }
        # Each phase of a request (waiting for a pooled connection and connecting, then
        # each read) gets `timeout`, as httpx did; no limit on a whole download, whose
        # length grows with the call.
        self._timeout = aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def _http(self) -> aiohttp.ClientSession:
        """The pool, made on first use so the client can be built outside the loop."""
        if self._closed:
            raise AriConnectionError("the ARI client is closed")
        if self._session is None:
            # Asterisk's HTTP server refuses sessions beyond http.conf's sessionlimit (100
            # in a stock install, the event websocket included). A small pool of
            # kept-alive connections serves a busy call centre; requests beyond it wait
            # for one (bounded by the timeout) instead of opening more sessions than
            # Asterisk allows. Idle ones close below Asterisk's session_keep_alive (15 s
            # by default), so we close before Asterisk does and never reuse a dead one.
            connector = aiohttp.TCPConnector(
                limit=self.max_connections,
                limit_per_host=0,
                keepalive_timeout=KEEPALIVE_EXPIRY_S,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                timeout=self._timeout,
                trust_env=False,
                # ARI's cookies mean nothing to us; not storing them saves work per response.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self) -> AriClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._closed = True
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    # -- transport -------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        params: Params | None = None,
        json: Any = None,
    ) -> bytes:
        """The response's body (b"" for a command's 204); an error status raises."""
        started = time.perf_counter()
        try:
            async with self._http().request(
                method, self._root + path, params=_query(params) if params else None,
                json=json,
            ) as response:
                body = await response.read()
                status = response.status
                reason = response.reason or ""
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _transport_error(method, path, self.base_url, exc) from exc
        finally:
            observe_ari_request(method, path, time.perf_counter() - started)
        if status >= 400:
            raise error_for_status(status, method, path, _error_message(body, reason))
        return body

    async def _call(
        self,
        method: str,
        path: str,
        parse: Callable[[object], T],
        params: Params | None = None,
        json: Any = None,
    ) -> T:
        body = await self._request(method, path, params, json)
        try:
            return parse(jsonlib.loads(body))
        except ValueError as exc:  # JSONDecodeError is a ValueError too
            raise AriResponseError(f"{method} {path}: unexpected response: {exc}") from exc

    async def _list(
        self, path: str, parse: Callable[[object], T], params: Params | None = None
    ) -> list[T]:
        def parse_all(body: object) -> list[T]:
            if not isinstance(body, list):
                raise ValueError(f"expected a JSON list, got {type(body).__name__}")
            return [parse(item) for item in body]

        return await self._call("GET", path, parse_all, params)

    async def _command(
        self, method: str, path: str, params: Params | None = None, json: Any = None
    ) -> None:
        """A request whose answer we do not need: its body is read (so the connection
        goes back to the pool) but never decoded."""
        await self._request(method, path, params, json)

    # -- asterisk ----------------------------------------------------------------------

    async def info(self) -> AsteriskInfo:
        return await self._call("GET", "/asterisk/info", AsteriskInfo.from_json)

    async def ping(self) -> AsteriskPing:
        return await self._call("GET", "/asterisk/ping", AsteriskPing.from_json)

    async def modules(self) -> list[AsteriskModule]:
        """Every module Asterisk has loaded, with its status."""
        return await self._list("/asterisk/modules", AsteriskModule.from_json)

    async def get_global_variable(self, name: str) -> str:
        """A global (or built-in, e.g. EPOCH) variable; "" when unset. Unlike a channel's
        variable, Asterisk does not evaluate dialplan functions here."""
        if not name:
            raise ValueError("variable name must not be empty")
        return await self._call(
            "GET", "/asterisk/variable", _variable_value, {"variable": name}
        )

    # -- sounds ------------------------------------------------------------------------

    async def get_sound(self, sound_id: str) -> Sound:
        """A sound by its media-index id (which may contain "/"); AriNotFound if absent."""
        return await self._call("GET", f"/sounds/{_segment(sound_id)}", Sound.from_json)

    # -- applications ------------------------------------------------------------------

    async def application(self) -> Application:
        """Our application as Asterisk sees it: the channels and bridges it holds now."""
        return await self._call(
            "GET", f"/applications/{_segment(self.app)}", Application.from_json
        )

    async def filter_events(self, disallowed: Sequence[str]) -> Application:
        """Have Asterisk stop sending our application events of these types (its event
        filter: nothing is serialised, sent, decoded or parsed for them). It holds while
        the application is registered, so set it again after every (re)connect."""
        body = {"disallowed": [{"type": event_type} for event_type in disallowed]}
        return await self._call(
            "PUT", f"/applications/{_segment(self.app)}/eventFilter", Application.from_json,
            json=body,
        )

    # -- channels ----------------------------------------------------------------------

    async def list_channels(self) -> list[Channel]:
        """All channels on the system, not only ours (use `application()` for those)."""
        return await self._list("/channels", Channel.from_json)

    async def get_channel(self, channel_id: str) -> Channel:
        return await self._call("GET", f"/channels/{_segment(channel_id)}", Channel.from_json)

    async def answer(self, channel_id: str) -> None:
        await self._command("POST", f"/channels/{_segment(channel_id)}/answer")

    async def ring(self, channel_id: str) -> None:
        await self._command("POST", f"/channels/{_segment(channel_id)}/ring")

    async def ring_stop(self, channel_id: str) -> None:
        await self._command("DELETE", f"/channels/{_segment(channel_id)}/ring")

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        await self._command("DELETE", f"/channels/{_segment(channel_id)}", {"reason": reason})

    async def play(
        self,
        channel_id: str,
        media: str | Sequence[str],
        *,
        playback_id: str | None = None,
        lang: str | None = None,
    ) -> Playback:
        """Queue media (`sound:x`, `recording:x`, `tone:x`...); several play back to back."""
        return await self._call(
            "POST",
            f"/channels/{_segment(channel_id)}/play",
            Playback.from_json,
            {"media": _media(media), "playbackId": playback_id, "lang": lang},
        )

    async def record(
        self,
        channel_id: str,
        name: str,
        *,
        format: str = "wav",
        max_duration_s: int = 0,
        max_silence_s: int = 0,
        if_exists: IfExists = "fail",
        beep: bool = False,
        terminate_on: TerminateOn = "none",
    ) -> LiveRecording:
        return await self._call(
            "POST",
            f"/channels/{_segment(channel_id)}/record",
            LiveRecording.from_json,
            _record_params(name, format, max_duration_s, max_silence_s, if_exists, beep,
                           terminate_on),
        )

    async def snoop(
        self,
        channel_id: str,
        *,
        spy: SpyDirection = "both",
        whisper: SpyDirection = "none",
        app: str,
        app_args: str = "",
        snoop_id: str | None = None,
    ) -> Channel:
        """A snoop channel on `channel_id`, put into `app`; record it to hear one leg."""
        return await self._call(
            "POST",
            f"/channels/{_segment(channel_id)}/snoop",
            Channel.from_json,
            {"spy": spy, "whisper": whisper, "app": app, "appArgs": app_args or None,
             "snoopId": snoop_id},
        )

    async def create_channel(
        self,
        endpoint: str,
        *,
        app: str,
        app_args: str = "",
        channel_id: str | None = None,
        other_channel_id: str | None = None,
        originator: str | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> Channel:
        """Create (not yet dial) an outgoing channel in `app`; follow with `dial()`."""
        return await self._call(
            "POST",
            "/channels/create",
            Channel.from_json,
            {"endpoint": endpoint, "app": app, "appArgs": app_args or None,
             "channelId": channel_id, "otherChannelId": other_channel_id,
             "originator": originator},
            json=_variables_body(variables),
        )

    async def dial(
        self, channel_id: str, *, caller: str | None = None, timeout_s: int = 30
    ) -> None:
        await self._command(
            "POST",
            f"/channels/{_segment(channel_id)}/dial",
            {"caller": caller, "timeout": timeout_s},
        )

    async def originate(
        self,
        endpoint: str,
        *,
        app: str | None = None,
        app_args: str = "",
        context: str | None = None,
        extension: str | None = None,
        priority: int | None = None,
        caller_id: str | None = None,
        timeout_s: int = 30,
        channel_id: str | None = None,
        other_channel_id: str | None = None,
        originator: str | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> Channel:
        """Create and dial a channel at once, into `app` or into a dialplan location."""
        if (app is None) == (extension is None and context is None):
            raise ValueError("originate needs either app or a dialplan location, not both")
        return await self._call(
            "POST",
            "/channels",
            Channel.from_json,
            {"endpoint": endpoint, "app": app, "appArgs": app_args or None,
             "context": context, "extension": extension, "priority": priority,
             "callerId": caller_id, "timeout": timeout_s, "channelId": channel_id,
             "otherChannelId": other_channel_id, "originator": originator},
            json=_variables_body(variables),
        )

    async def send_dtmf(
        self, channel_id: str, digits: str, *, duration_ms: int = 100, between_ms: int = 100
    ) -> None:
        """Send DTMF to the channel's far end (tests use it to press keys as a caller)."""
        if not digits:
            raise ValueError("digits must not be empty")
        await self._command(
            "POST",
            f"/channels/{_segment(channel_id)}/dtmf",
            {"dtmf": digits, "duration": duration_ms, "between": between_ms},
        )

    async def start_moh(self, channel_id: str, moh_class: str | None = None) -> None:
        await self._command(
            "POST", f"/channels/{_segment(channel_id)}/moh", {"mohClass": moh_class}
        )

    async def stop_moh(self, channel_id: str) -> None:
        await self._command("DELETE", f"/channels/{_segment(channel_id)}/moh")

    async def set_variable(self, channel_id: str, name: str, value: str) -> None:
        await self._command(
            "POST",
            f"/channels/{_segment(channel_id)}/variable",
            {"variable": name, "value": value},
        )

    async def get_variable(self, channel_id: str, name: str) -> str | None:
        """The variable's value, or None if it is unset.

        ARI answers 404 both for an unknown channel and an unset variable; the two are
        told apart by its message ("Provided variable was not found").
        """
        path = f"/channels/{_segment(channel_id)}/variable"
        try:
            return await self._call("GET", path, _variable_value, {"variable": name})
        except AriNotFound as exc:
            if "variable" in exc.message.lower():
                return None
            raise

    async def continue_in_dialplan(
        self,
        channel_id: str,
        *,
        context: str | None = None,
        extension: str | None = None,
        priority: int | None = None,
        label: str | None = None,
    ) -> None:
        await self._command(
            "POST",
            f"/channels/{_segment(channel_id)}/continue",
            {"context": context, "extension": extension, "priority": priority, "label": label},
        )

    # -- bridges -----------------------------------------------------------------------

    async def create_bridge(
        self, *, type: str = "mixing", bridge_id: str | None = None, name: str | None = None
    ) -> Bridge:
        return await self._call(
            "POST", "/bridges", Bridge.from_json,
            {"type": type, "bridgeId": bridge_id, "name": name},
        )

    async def get_bridge(self, bridge_id: str) -> Bridge:
        return await self._call("GET", f"/bridges/{_segment(bridge_id)}", Bridge.from_json)

    async def list_bridges(self) -> list[Bridge]:
        return await self._list("/bridges", Bridge.from_json)

    async def add_channel(
        self, bridge_id: str, channel: str | Sequence[str], *, role: str | None = None
    ) -> None:
        await self._command(
            "POST",
            f"/bridges/{_segment(bridge_id)}/addChannel",
            {"channel": _ids(channel), "role": role},
        )

    async def remove_channel(self, bridge_id: str, channel: str | Sequence[str]) -> None:
        await self._command(
            "POST", f"/bridges/{_segment(bridge_id)}/removeChannel", {"channel": _ids(channel)}
        )

    async def start_bridge_moh(self, bridge_id: str, moh_class: str | None = None) -> None:
        """Music on hold into the bridge, for everyone in it (and its recording)."""
        await self._command(
            "POST", f"/bridges/{_segment(bridge_id)}/moh", {"mohClass": moh_class}
        )

    async def stop_bridge_moh(self, bridge_id: str) -> None:
        await self._command("DELETE", f"/bridges/{_segment(bridge_id)}/moh")

    async def destroy_bridge(self, bridge_id: str) -> None:
        await self._command("DELETE", f"/bridges/{_segment(bridge_id)}")

    async def record_bridge(
        self,
        bridge_id: str,
        name: str,
        *,
        format: str = "wav",
        max_duration_s: int = 0,
        max_silence_s: int = 0,
        if_exists: IfExists = "fail",
        beep: bool = False,
        terminate_on: TerminateOn = "none",
    ) -> LiveRecording:
        return await self._call(
            "POST",
            f"/bridges/{_segment(bridge_id)}/record",
            LiveRecording.from_json,
            _record_params(name, format, max_duration_s, max_silence_s, if_exists, beep,
                           terminate_on),
        )

    async def play_bridge(
        self,
        bridge_id: str,
        media: str | Sequence[str],
        *,
        playback_id: str | None = None,
        lang: str | None = None,
    ) -> Playback:
        return await self._call(
            "POST",
            f"/bridges/{_segment(bridge_id)}/play",
            Playback.from_json,
            {"media": _media(media), "playbackId": playback_id, "lang": lang},
        )

    # -- playbacks ---------------------------------------------------------------------

    async def get_playback(self, playback_id: str) -> Playback:
        return await self._call(
            "GET", f"/playbacks/{_segment(playback_id)}", Playback.from_json
        )

    async def stop_playback(self, playback_id: str) -> None:
        await self._command("DELETE", f"/playbacks/{_segment(playback_id)}")

    # -- recordings --------------------------------------------------------------------

    async def get_live_recording(self, name: str) -> LiveRecording:
        return await self._call(
            "GET", f"/recordings/live/{_segment(name)}", LiveRecording.from_json
        )

    async def stop_recording(self, name: str) -> None:
        """Stop and keep; RecordingFinished follows on the event stream."""
        await self._command("POST", f"/recordings/live/{_segment(name)}/stop")

    async def mute_recording(self, name: str) -> None:
        """Write silence instead of the audio until unmuted; the file keeps its timeline
        (``/pause`` would leave the span out, shifting everything after it)."""
        await self._command("POST", f"/recordings/live/{_segment(name)}/mute")

    async def unmute_recording(self, name: str) -> None:
        await self._command("DELETE", f"/recordings/live/{_segment(name)}/mute")

    async def cancel_recording(self, name: str) -> None:
        """Stop and discard the file."""
        await self._command("DELETE", f"/recordings/live/{_segment(name)}")

    async def list_stored_recordings(self) -> list[StoredRecording]:
        return await self._list("/recordings/stored", StoredRecording.from_json)

    async def get_stored_recording(self, name: str) -> StoredRecording:
        return await self._call(
            "GET", f"/recordings/stored/{_segment(name)}", StoredRecording.from_json
        )

    async def delete_stored_recording(self, name: str) -> None:
        await self._command("DELETE", f"/recordings/stored/{_segment(name)}")

    async def download_stored_recording(self, name: str, dest: Path) -> int:
        """Stream the recording's file to `dest`; returns the bytes written.

        Written to `dest` + `.part` and renamed when complete, so a reader never sees a
        truncated file under the final name. File writes run in a worker thread.
        """
        path = f"/recordings/stored/{_segment(name)}/file"
        partial = dest.with_name(dest.name + ".part")
        handle: IO[bytes] | None = None
        written = 0
        started = time.perf_counter()
        try:
            async with self._http().get(self._root + path) as response:
                if response.status >= 400:
                    body = await response.read()
                    raise error_for_status(
                        response.status, "GET", path,
                        _error_message(body, response.reason or ""),
                    )
                handle = await asyncio.to_thread(partial.open, "wb")
                async for chunk in response.content.iter_chunked(_DOWNLOAD_CHUNK):
                    await asyncio.to_thread(handle.write, chunk)
                    written += len(chunk)
                await asyncio.to_thread(handle.close)
                handle = None
            await asyncio.to_thread(partial.replace, dest)
        except TimeoutError as exc:
            raise AriConnectionError(f"GET {path}: download timed out") from exc
        except aiohttp.ClientError as exc:
            raise AriConnectionError(f"GET {path}: download interrupted: {exc}") from exc
        finally:
            observe_ari_request("GET", path, time.perf_counter() - started)
            if handle is not None:
                await asyncio.to_thread(handle.close)
            await asyncio.to_thread(partial.unlink, missing_ok=True)
        return written


def _media(media: str | Sequence[str]) -> str:
    """ARI takes several media URIs as one comma-separated `media` parameter; a string
    may already be such a list (a composed prompt's media), as Asterisk splits it so."""
    items = media.split(",") if isinstance(media, str) else list(media)
    if not items or any(not m or "," in m for m in items):
        raise ValueError("media must be one or more non-empty URIs without commas")
    return ",".join(items)


def _ids(channel: str | Sequence[str]) -> str:
    items = [channel] if isinstance(channel, str) else list(channel)
    if not items or any(not c for c in items):
        raise ValueError("at least one channel id is required")
    return ",".join(items)


def _record_params(
    name: str,
    format: str,
    max_duration_s: int,
    max_silence_s: int,
    if_exists: str,
    beep: bool,
    terminate_on: str,
) -> dict[str, ParamValue]:
    if not name:
        raise ValueError("recording name must not be empty")
    return {
        "name": name,
        "format": format,
        "maxDurationSeconds": max_duration_s,
        "maxSilenceSeconds": max_silence_s,
        "ifExists": if_exists,
        "beep": beep,
        "terminateOn": terminate_on,
    }


def _variables_body(variables: Mapping[str, str] | None) -> dict[str, Any] | None:
    if not variables:
        return None
    return {"variables": {str(k): str(v) for k, v in variables.items()}}


def _variable_value(body: object) -> str:
    if not isinstance(body, Mapping) or not isinstance(body.get("value"), str):
        raise ValueError("expected {'value': str}")
    return str(body["value"])

