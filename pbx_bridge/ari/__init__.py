"""Our own client for Asterisk's REST Interface: REST calls, typed events, a websocket
that reconnects by itself. `events` is exported as a module for `ev.StasisStart` style use.
"""

from pbx_bridge.ari import events
from pbx_bridge.ari.errors import (
    AriAuthError,
    AriBadRequest,
    AriConflict,
    AriConnectionError,
    AriError,
    AriEventError,
    AriForbidden,
    AriHttpError,
    AriNotFound,
    AriPreconditionFailed,
    AriResponseError,
    AriServerError,
    AriUnprocessable,
)
from pbx_bridge.ari.events import Event, UnknownEvent, event_channel_ids, event_target, parse_event
from pbx_bridge.ari.models import (
    Application,
    AsteriskInfo,
    AsteriskPing,
    Bridge,
    CallerId,
    Channel,
    LiveRecording,
    Playback,
    StoredRecording,
)
from pbx_bridge.ari.rest import AriClient
from pbx_bridge.ari.stream import EventStream, StreamConnected, StreamDisconnected, StreamItem

__all__ = [
    "Application",
    "AriAuthError",
    "AriBadRequest",
    "AriClient",
    "AriConflict",
    "AriConnectionError",
    "AriError",
    "AriEventError",
    "AriForbidden",
    "AriHttpError",
    "AriNotFound",
    "AriPreconditionFailed",
    "AriResponseError",
    "AriServerError",
    "AriUnprocessable",
    "AsteriskInfo",
    "AsteriskPing",
    "Bridge",
    "CallerId",
    "Channel",
    "Event",
    "EventStream",
    "LiveRecording",
    "Playback",
    "StoredRecording",
    "StreamConnected",
    "StreamDisconnected",
    "StreamItem",
    "UnknownEvent",
    "event_channel_ids",
    "event_target",
    "events",
    "parse_event",
]
