"""Typed events from ARI's websocket, and which Asterisk objects each one concerns.

The dispatcher routes every event to the call that owns the channel, bridge, playback
target or recording target it mentions, so each event knows how to name those ids
(`event_channel_ids`, `event_target`, `event_object_ids`). Types this service does not act
on arrive as `UnknownEvent` rather than being dropped or raising: Asterisk grows new event
types, and a new one must never take the stream down.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pbx_bridge.ari.errors import AriEventError
from pbx_bridge.ari.models import (
    Bridge,
    Channel,
    JsonObject,
    LiveRecording,
    Playback,
    parse_ari_time,
    split_target_uri,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Fields every ARI event carries (`asterisk_id` is empty on older Asterisk)."""

    type: str
    timestamp: datetime
    application: str
    asterisk_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownEvent(Event):
    raw: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class StasisStart(Event):
    channel: Channel
    args: tuple[str, ...]
    replace_channel: Channel | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StasisEnd(Event):
    channel: Channel


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelCreated(Event):
    channel: Channel


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelDtmfReceived(Event):
    channel: Channel
    digit: str
    duration_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelStateChange(Event):
    channel: Channel


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelHangupRequest(Event):
    channel: Channel
    cause: int | None = None
    soft: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelDestroyed(Event):
    channel: Channel
    cause: int
    cause_txt: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelVarset(Event):
    variable: str
    value: str
    channel: Channel | None = None  # absent for global variables


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelEnteredBridge(Event):
    bridge: Bridge
    channel: Channel | None = None  # optional in the spec


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelLeftBridge(Event):
    bridge: Bridge
    channel: Channel


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeCreated(Event):
    bridge: Bridge


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeDestroyed(Event):
    bridge: Bridge


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackStarted(Event):
    playback: Playback


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackContinuing(Event):
    playback: Playback


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackFinished(Event):
    playback: Playback


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingStarted(Event):
    recording: LiveRecording


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingFinished(Event):
    recording: LiveRecording


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingFailed(Event):
    recording: LiveRecording


@dataclass(frozen=True, slots=True, kw_only=True)
class Dial(Event):
    """One per dial progress step; `dialstatus` is "" while ringing, then ANSWER, BUSY..."""

    peer: Channel
    caller: Channel | None = None
    dialstatus: str = ""
    dialstring: str = ""
    forward: str = ""
    forwarded: Channel | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplicationReplaced(Event):
    """Another websocket registered our application name; this connection gets no more events."""


def _base(data: JsonObject) -> dict[str, Any]:
    return {
        "type": str(data["type"]),
        "timestamp": parse_ari_time(data.get("timestamp")),
        "application": str(data.get("application") or ""),
        "asterisk_id": str(data.get("asterisk_id") or ""),
    }


def _channel(data: JsonObject, key: str = "channel") -> Channel:
    return Channel.from_json(data.get(key))


def _maybe_channel(data: JsonObject, key: str) -> Channel | None:
    value = data.get(key)
    return None if value is None else Channel.from_json(value)


def _bridge(data: JsonObject) -> Bridge:
    return Bridge.from_json(data.get("bridge"))


def _int_or_none(value: object) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    return int(str(value))


def _stasis_start(d: JsonObject) -> Event:
    args = d.get("args")
    if not isinstance(args, list):
        raise ValueError("StasisStart without args")
    return StasisStart(
        **_base(d),
        channel=_channel(d),
        args=tuple(str(a) for a in args),
        replace_channel=_maybe_channel(d, "replace_channel"),
    )


def _dtmf(d: JsonObject) -> Event:
    digit = d.get("digit")
    if not isinstance(digit, str) or not digit:
        raise ValueError("ChannelDtmfReceived without digit")
    return ChannelDtmfReceived(
        **_base(d), channel=_channel(d), digit=digit,
        duration_ms=_int_or_none(d.get("duration_ms")) or 0,
    )


def _destroyed(d: JsonObject) -> Event:
    return ChannelDestroyed(
        **_base(d), channel=_channel(d),
        cause=_int_or_none(d.get("cause")) or 0, cause_txt=str(d.get("cause_txt") or ""),
    )


def _hangup_request(d: JsonObject) -> Event:
    return ChannelHangupRequest(
        **_base(d), channel=_channel(d),
        cause=_int_or_none(d.get("cause")), soft=bool(d.get("soft", False)),
    )


def _varset(d: JsonObject) -> Event:
    variable = d.get("variable")
    if not isinstance(variable, str):
        raise ValueError("ChannelVarset without variable")
    return ChannelVarset(
        **_base(d), variable=variable, value=str(d.get("value") or ""),
        channel=_maybe_channel(d, "channel"),
    )


def _dial(d: JsonObject) -> Event:
    return Dial(
        **_base(d),
        peer=_channel(d, "peer"),
        caller=_maybe_channel(d, "caller"),
        dialstatus=str(d.get("dialstatus") or ""),
        dialstring=str(d.get("dialstring") or ""),
        forward=str(d.get("forward") or ""),
        forwarded=_maybe_channel(d, "forwarded"),
    )


_PARSERS: dict[str, Callable[[JsonObject], Event]] = {
    "StasisStart": _stasis_start,
    "StasisEnd": lambda d: StasisEnd(**_base(d), channel=_channel(d)),
    "ChannelCreated": lambda d: ChannelCreated(**_base(d), channel=_channel(d)),
    "ChannelDtmfReceived": _dtmf,
    "ChannelStateChange": lambda d: ChannelStateChange(**_base(d), channel=_channel(d)),
    "ChannelHangupRequest": _hangup_request,
    "ChannelDestroyed": _destroyed,
    "ChannelVarset": _varset,
    "ChannelEnteredBridge": lambda d: ChannelEnteredBridge(
        **_base(d), bridge=_bridge(d), channel=_maybe_channel(d, "channel")
    ),
    "ChannelLeftBridge": lambda d: ChannelLeftBridge(
        **_base(d), bridge=_bridge(d), channel=_channel(d)
    ),
    "BridgeCreated": lambda d: BridgeCreated(**_base(d), bridge=_bridge(d)),
    "BridgeDestroyed": lambda d: BridgeDestroyed(**_base(d), bridge=_bridge(d)),
    "PlaybackStarted": lambda d: PlaybackStarted(
        **_base(d), playback=Playback.from_json(d.get("playback"))
    ),
    "PlaybackContinuing": lambda d: PlaybackContinuing(
        **_base(d), playback=Playback.from_json(d.get("playback"))
    ),
    "PlaybackFinished": lambda d: PlaybackFinished(
        **_base(d), playback=Playback.from_json(d.get("playback"))
    ),
    "RecordingStarted": lambda d: RecordingStarted(
        **_base(d), recording=LiveRecording.from_json(d.get("recording"))
    ),
    "RecordingFinished": lambda d: RecordingFinished(
        **_base(d), recording=LiveRecording.from_json(d.get("recording"))
    ),
    "RecordingFailed": lambda d: RecordingFailed(
        **_base(d), recording=LiveRecording.from_json(d.get("recording"))
    ),
    "Dial": _dial,
    "ApplicationReplaced": lambda d: ApplicationReplaced(**_base(d)),
}

KNOWN_EVENT_TYPES = frozenset(_PARSERS)

# Types no part of the service acts on, which Asterisk sends in numbers: a call's Dial,
# bridge and recordings set dozens of channel variables (ChannelVarset, about 16 events a
# call leg), and every dialplan step and connected-line update is an event too. Together
# about half of a call's events. The service has Asterisk filter them out at the source
# (AriClient.filter_events), so neither side spends CPU on them; should one still arrive
# (the filter is set just after connecting), it is handled like any other event.
UNUSED_EVENT_TYPES = ("ChannelVarset", "ChannelDialplan", "ChannelConnectedLine")


def parse_event(data: object) -> Event:
    """Turn one websocket message (already JSON-decoded) into a typed event.

    Unknown types and extra fields never raise. A known type missing what it needs raises
    `AriEventError`, as does a message that is not an object with a string `type`.
    """
    if not isinstance(data, Mapping):
        raise AriEventError(f"ARI event is not a JSON object: {type(data).__name__}")
    event_type = data.get("type")
    if not isinstance(event_type, str) or not event_type:
        raise AriEventError("ARI event without a type")
    parser = _PARSERS.get(event_type)
    if parser is None:
        return _unknown(data, event_type)
    try:
        return parser(data)
    except (ValueError, TypeError, KeyError) as exc:
        raise AriEventError(f"malformed {event_type} event: {exc}") from exc


def _unknown(data: Mapping[str, Any], event_type: str) -> UnknownEvent:
    try:
        timestamp = parse_ari_time(data.get("timestamp"))
    except ValueError:
        timestamp = datetime.now(UTC)
    return UnknownEvent(
        type=event_type,
        timestamp=timestamp,
        application=str(data.get("application") or ""),
        asterisk_id=str(data.get("asterisk_id") or ""),
        raw=dict(data),
    )


def event_channel_ids(event: Event) -> tuple[str, ...]:
    """Ids of every channel the event is about, in a stable order, without duplicates.

    Dial concerns the dialled peer and the calling channel (and a forward target);
    StasisStart a replaced channel too. Playback and recording targets are not included
    here: see `event_target`.
    """
    found: list[Channel | None] = []
    if isinstance(event, Dial):
        found += [event.peer, event.caller, event.forwarded]
    else:
        found.append(getattr(event, "channel", None))
        if isinstance(event, StasisStart):
            found.append(event.replace_channel)
    ids: list[str] = []
    for channel in found:
        if isinstance(channel, Channel) and channel.id not in ids:
            ids.append(channel.id)
    return tuple(ids)


def event_target_uri(event: Event) -> str | None:
    """`channel:ID` / `bridge:ID` for playback and recording events, else None."""
    if isinstance(event, PlaybackStarted | PlaybackContinuing | PlaybackFinished):
        return event.playback.target_uri or None
    if isinstance(event, RecordingStarted | RecordingFinished | RecordingFailed):
        return event.recording.target_uri or None
    return None


def event_target(event: Event) -> str | None:
    """Bare id of the channel or bridge a playback/recording event plays to or records."""
    uri = event_target_uri(event)
    if uri is None:
        return None
    return split_target_uri(uri)[1] or None


def event_bridge_id(event: Event) -> str | None:
    """Id of the bridge a bridge event (entered/left/created/destroyed) is about."""
    bridge = getattr(event, "bridge", None)
    return bridge.id if isinstance(bridge, Bridge) else None


def event_object_ids(event: Event) -> tuple[str, ...]:
    """Every channel and bridge id the event concerns: the routing key set for a dispatcher."""
    ids = list(event_channel_ids(event))
    for extra in (event_target(event), event_bridge_id(event)):
        if extra is not None and extra not in ids:
            ids.append(extra)
    return tuple(ids)
