"""Typed, immutable views of the JSON objects ARI returns.

Parsing is lenient on purpose: Asterisk adds fields between versions and omits optional
ones, so unknown keys are ignored and missing non-essential ones get neutral defaults.
Only the identity of an object (a channel's id, a recording's name) is mandatory; without
it the object is useless, and `ValueError` is raised for the caller to translate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

JsonObject = Mapping[str, Any]


def parse_ari_time(value: object) -> datetime:
    """ARI writes `2026-11-24T08:54:10.104+0000`; Python 3.11 reads that directly."""
    if not isinstance(value, str):
        raise ValueError(f"expected an ARI timestamp, got {type(value).__name__}")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"ARI timestamp without a zone: {value!r}")
    return parsed


def _optional_time(value: object) -> datetime | None:
    if value is None or value == "":
        return None
    return parse_ari_time(value)


def _object(data: object, what: str) -> JsonObject:
    if not isinstance(data, Mapping):
        raise ValueError(f"{what}: expected a JSON object, got {type(data).__name__}")
    return data


def _required_str(data: JsonObject, key: str, what: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what}: missing {key!r}")
    return value


def _str(data: JsonObject, key: str, default: str = "") -> str:
    value = data.get(key)
    if value is None:
        return default
    return value if isinstance(value, str) else str(value)


def _optional_str(data: JsonObject, key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _int(data: JsonObject, key: str, default: int = 0) -> int:
    value = data.get(key)
    if value is None or isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        return default


def _optional_int(data: JsonObject, key: str) -> int | None:
    value = data.get(key)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        return None


def _str_tuple(data: JsonObject, key: str) -> tuple[str, ...]:
    value = data.get(key)
    if not isinstance(value, list):
        return ()
    return tuple(str(item) for item in value)


def _str_map(data: JsonObject, key: str) -> dict[str, str]:
    value = data.get(key)
    if not isinstance(value, Mapping):
        return {}
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


def _section(data: JsonObject, key: str) -> JsonObject:
    value = data.get(key)
    return value if isinstance(value, Mapping) else {}


def split_target_uri(uri: str) -> tuple[str, str]:
    """`channel:ID` or `bridge:ID` → (kind, id); ids may themselves contain colons."""
    kind, sep, object_id = uri.partition(":")
    if not sep or not object_id:
        return "", ""
    return kind, object_id


@dataclass(frozen=True, slots=True)
class CallerId:
    name: str = ""
    number: str = ""

    @classmethod
    def from_json(cls, data: object) -> CallerId:
        if not isinstance(data, Mapping):
            return cls()
        return cls(name=_str(data, "name"), number=_str(data, "number"))


@dataclass(frozen=True, slots=True, eq=True)
class Channel:
    id: str
    name: str = ""
    state: str = ""
    caller: CallerId = field(default_factory=CallerId)
    connected: CallerId = field(default_factory=CallerId)
    accountcode: str = ""
    dialplan_context: str = ""
    dialplan_exten: str = ""
    dialplan_priority: int = 0
    dialplan_app_name: str = ""
    dialplan_app_data: str = ""
    creationtime: datetime | None = None
    language: str = ""
    protocol_id: str = ""
    # Only present when ari.conf / the request asked for channel variables.
    channelvars: Mapping[str, str] = field(default_factory=dict, hash=False)

    @classmethod
    def from_json(cls, data: object) -> Channel:
        obj = _object(data, "Channel")
        dialplan = obj.get("dialplan")
        plan: JsonObject = dialplan if isinstance(dialplan, Mapping) else {}
        return cls(
            id=_required_str(obj, "id", "Channel"),
            name=_str(obj, "name"),
            state=_str(obj, "state"),
            caller=CallerId.from_json(obj.get("caller")),
            connected=CallerId.from_json(obj.get("connected")),
            accountcode=_str(obj, "accountcode"),
            dialplan_context=_str(plan, "context"),
            dialplan_exten=_str(plan, "exten"),
            dialplan_priority=_int(plan, "priority"),
            dialplan_app_name=_str(plan, "app_name"),
            dialplan_app_data=_str(plan, "app_data"),
            creationtime=_optional_time(obj.get("creationtime")),
            language=_str(obj, "language"),
            protocol_id=_str(obj, "protocol_id"),
            channelvars=_str_map(obj, "channelvars"),
        )


@dataclass(frozen=True, slots=True)
class Bridge:
    id: str
    technology: str = ""
    bridge_type: str = ""
    bridge_class: str = ""
    creator: str = ""
    name: str = ""
    channels: tuple[str, ...] = ()
    creationtime: datetime | None = None
    video_mode: str = ""

    @classmethod
    def from_json(cls, data: object) -> Bridge:
        obj = _object(data, "Bridge")
        return cls(
            id=_required_str(obj, "id", "Bridge"),
            technology=_str(obj, "technology"),
            bridge_type=_str(obj, "bridge_type"),
            bridge_class=_str(obj, "bridge_class"),
            creator=_str(obj, "creator"),
            name=_str(obj, "name"),
            channels=_str_tuple(obj, "channels"),
            creationtime=_optional_time(obj.get("creationtime")),
            video_mode=_str(obj, "video_mode"),
        )


class _Targeted:
    """Playbacks and recordings name what they act on as ``channel:ID`` / ``bridge:ID``."""

    __slots__ = ()
    target_uri: str

    @property
    def target_kind(self) -> str:
        """`channel` or `bridge` (empty if Asterisk sent no target)."""
        return split_target_uri(self.target_uri)[0]

    @property
    def target_id(self) -> str:
        return split_target_uri(self.target_uri)[1]


@dataclass(frozen=True, slots=True)
class Playback(_Targeted):
    id: str
    media_uri: str = ""
    target_uri: str = ""
    state: str = ""
    language: str = ""
    next_media_uri: str | None = None

    @classmethod
    def from_json(cls, data: object) -> Playback:
        obj = _object(data, "Playback")
        return cls(
            id=_required_str(obj, "id", "Playback"),
            media_uri=_str(obj, "media_uri"),
            target_uri=_str(obj, "target_uri"),
            state=_str(obj, "state"),
            language=_str(obj, "language"),
            next_media_uri=_optional_str(obj, "next_media_uri"),
        )


@dataclass(frozen=True, slots=True)
class LiveRecording(_Targeted):
    name: str
    format: str = ""
    state: str = ""
    target_uri: str = ""
    duration: int | None = None
    talking_duration: int | None = None
    silence_duration: int | None = None
    cause: str | None = None

    @classmethod
    def from_json(cls, data: object) -> LiveRecording:
        obj = _object(data, "LiveRecording")
        return cls(
            name=_required_str(obj, "name", "LiveRecording"),
            format=_str(obj, "format"),
            state=_str(obj, "state"),
            target_uri=_str(obj, "target_uri"),
            duration=_optional_int(obj, "duration"),
            talking_duration=_optional_int(obj, "talking_duration"),
            silence_duration=_optional_int(obj, "silence_duration"),
            cause=_optional_str(obj, "cause") or None,
        )


@dataclass(frozen=True, slots=True)
class StoredRecording:
    name: str
    format: str = ""

    @classmethod
    def from_json(cls, data: object) -> StoredRecording:
        obj = _object(data, "StoredRecording")
        return cls(name=_required_str(obj, "name", "StoredRecording"), format=_str(obj, "format"))


@dataclass(frozen=True, slots=True)
class AsteriskInfo:
    version: str = ""
    entity_id: str = ""
    default_language: str = ""
    startup_time: datetime | None = None
    last_reload_time: datetime | None = None

    @classmethod
    def from_json(cls, data: object) -> AsteriskInfo:
        obj = _object(data, "AsteriskInfo")
        system, config, status = (_section(obj, key) for key in ("system", "config", "status"))
        return cls(
            version=_str(system, "version"),
            entity_id=_str(system, "entity_id"),
            default_language=_str(config, "default_language"),
            startup_time=_optional_time(status.get("startup_time")),
            last_reload_time=_optional_time(status.get("last_reload_time")),
        )


@dataclass(frozen=True, slots=True)
class AsteriskPing:
    asterisk_id: str
    ping: str
    timestamp: datetime | None

    @classmethod
    def from_json(cls, data: object) -> AsteriskPing:
        obj = _object(data, "AsteriskPing")
        return cls(
            asterisk_id=_str(obj, "asterisk_id"),
            ping=_str(obj, "ping"),
            timestamp=_optional_time(obj.get("timestamp")),
        )


@dataclass(frozen=True, slots=True)
class AsteriskModule:
    name: str  # as Asterisk names it, e.g. "res_stasis.so"
    status: str = ""  # "Running" when loaded and usable
    use_count: int = 0
    description: str = ""

    @classmethod
    def from_json(cls, data: object) -> AsteriskModule:
        obj = _object(data, "Module")
        return cls(
            name=_required_str(obj, "name", "Module"),
            status=_str(obj, "status"),
            use_count=_int(obj, "use_count"),
            description=_str(obj, "description"),
        )


@dataclass(frozen=True, slots=True)
class SoundFormat:
    language: str
    format: str


@dataclass(frozen=True, slots=True)
class Sound:
    """A sound Asterisk's media index knows. The index takes the first folder under
    sounds/ as the language, so `pbx-bridge/tr/disclosure` is id `tr/disclosure` in
    "language" `pbx-bridge`."""

    id: str
    formats: tuple[SoundFormat, ...] = ()

    @classmethod
    def from_json(cls, data: object) -> Sound:
        obj = _object(data, "Sound")
        raw = obj.get("formats")
        formats = tuple(
            SoundFormat(_str(item, "language"), _str(item, "format"))
            for item in (raw if isinstance(raw, list) else [])
            if isinstance(item, Mapping)
        )
        return cls(id=_required_str(obj, "id", "Sound"), formats=formats)

    @property
    def languages(self) -> frozenset[str]:
        return frozenset(f.language for f in self.formats)


@dataclass(frozen=True, slots=True)
class Application:
    name: str
    channel_ids: tuple[str, ...] = ()
    bridge_ids: tuple[str, ...] = ()
    endpoint_ids: tuple[str, ...] = ()
    device_names: tuple[str, ...] = ()
    events_disallowed: tuple[str, ...] = ()  # event types its filter keeps away

    @classmethod
    def from_json(cls, data: object) -> Application:
        obj = _object(data, "Application")
        disallowed = obj.get("events_disallowed")
        return cls(
            name=_required_str(obj, "name", "Application"),
            channel_ids=_str_tuple(obj, "channel_ids"),
            bridge_ids=_str_tuple(obj, "bridge_ids"),
            endpoint_ids=_str_tuple(obj, "endpoint_ids"),
            device_names=_str_tuple(obj, "device_names"),
            events_disallowed=tuple(
                str(item["type"]) for item in disallowed
                if isinstance(item, Mapping) and isinstance(item.get("type"), str)
            ) if isinstance(disallowed, list) else (),
        )
