"""Event parsing against JSON exactly as Asterisk 22.10 sent it (captured from a live run)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from pbx_bridge.ari import AriEventError, Channel, UnknownEvent
from pbx_bridge.ari import events as ev
from pbx_bridge.ari.events import (
    event_bridge_id,
    event_channel_ids,
    event_object_ids,
    event_target,
    event_target_uri,
    parse_event,
)

CHANNEL = {
    "id": "probe-1", "name": "Local/s@ari-test-00000000;1", "state": "Up", "protocol_id": "",
    "caller": {"name": "Ayşe", "number": "905321234567"},
    "connected": {"name": "", "number": ""}, "accountcode": "",
    "dialplan": {"context": "ari-test", "exten": "s", "priority": 1, "app_name": "Stasis",
                 "app_data": "probe,a,b"},
    "creationtime": "2026-11-24T08:54:24.187+0000", "language": "en",
}
BRIDGE = {
    "id": "br1", "technology": "simple_bridge", "bridge_type": "mixing",
    "bridge_class": "stasis", "creator": "Stasis", "name": "x", "channels": ["probe-1"],
    "creationtime": "2026-11-24T08:54:28.604+0000", "video_mode": "talker",
}
COMMON = {"timestamp": "2026-11-24T08:54:24.188+0000", "asterisk_id": "02:fc:00:00:00:01",
          "application": "probe"}


def event(type_: str, **fields: Any) -> dict[str, Any]:
    return {"type": type_, **COMMON, **fields}


def test_stasis_start_carries_args_and_a_full_channel() -> None:
    parsed = parse_event(event("StasisStart", args=["a", "b"], channel=CHANNEL))
    assert isinstance(parsed, ev.StasisStart)
    assert parsed.args == ("a", "b")
    assert parsed.replace_channel is None
    ch = parsed.channel
    assert (ch.id, ch.state, ch.caller.number, ch.caller.name) == (
        "probe-1", "Up", "905321234567", "Ayşe")
    assert (ch.dialplan_context, ch.dialplan_exten, ch.dialplan_priority) == ("ari-test", "s", 1)
    assert ch.dialplan_app_name == "Stasis" and ch.dialplan_app_data == "probe,a,b"
    assert ch.creationtime == datetime(2026, 11, 24, 8, 54, 24, 187000, tzinfo=UTC)
    assert parsed.timestamp.tzinfo is not None
    assert parsed.application == "probe" and parsed.asterisk_id == "02:fc:00:00:00:01"
    assert event_channel_ids(parsed) == ("probe-1",)


def test_real_dial_event_without_caller_concerns_only_the_peer() -> None:
    # Asterisk 22 sends Dial for an originated channel with no caller and dialstatus "".
    raw = json.loads(
        '{"type":"Dial","timestamp":"2026-11-24T08:54:24.187+0000","dialstatus":"",'
        '"forward":"","dialstring":"s@ari-test","peer":' + json.dumps(CHANNEL)
        + ',"asterisk_id":"02:fc:00:00:00:01","application":"probe"}'
    )
    parsed = parse_event(raw)
    assert isinstance(parsed, ev.Dial)
    assert parsed.caller is None and parsed.dialstatus == ""
    assert event_channel_ids(parsed) == ("probe-1",)


def test_dial_with_caller_concerns_both_legs() -> None:
    caller = {**CHANNEL, "id": "caller-1"}
    parsed = parse_event(event("Dial", peer=CHANNEL, caller=caller, dialstatus="ANSWER"))
    assert isinstance(parsed, ev.Dial)
    assert parsed.dialstatus == "ANSWER"
    assert event_channel_ids(parsed) == ("probe-1", "caller-1")


def test_dtmf_hangup_destroyed_and_state_change() -> None:
    dtmf = parse_event(event("ChannelDtmfReceived", digit="1", duration_ms=120, channel=CHANNEL))
    assert isinstance(dtmf, ev.ChannelDtmfReceived)
    assert (dtmf.digit, dtmf.duration_ms) == ("1", 120)
    hup = parse_event(event("ChannelHangupRequest", cause=32, soft=True, channel=CHANNEL))
    assert isinstance(hup, ev.ChannelHangupRequest) and hup.cause == 32 and hup.soft
    # A hard hangup request omits `soft`; some omit `cause` entirely.
    bare = parse_event(event("ChannelHangupRequest", channel=CHANNEL))
    assert isinstance(bare, ev.ChannelHangupRequest) and bare.cause is None and not bare.soft
    gone = parse_event(event("ChannelDestroyed", cause=16, cause_txt="Normal Clearing",
                             channel=CHANNEL))
    assert isinstance(gone, ev.ChannelDestroyed)
    assert (gone.cause, gone.cause_txt) == (16, "Normal Clearing")
    state = parse_event(event("ChannelStateChange", channel={**CHANNEL, "state": "Ringing"}))
    assert isinstance(state, ev.ChannelStateChange) and state.channel.state == "Ringing"


def test_bridge_events_name_the_bridge_and_channel() -> None:
    entered = parse_event(event("ChannelEnteredBridge", bridge=BRIDGE, channel=CHANNEL))
    assert isinstance(entered, ev.ChannelEnteredBridge)
    assert entered.bridge.channels == ("probe-1",)
    assert event_channel_ids(entered) == ("probe-1",)
    assert event_bridge_id(entered) == "br1"
    assert event_object_ids(entered) == ("probe-1", "br1")
    left = parse_event(event("ChannelLeftBridge", bridge={**BRIDGE, "channels": []},
                             channel=CHANNEL))
    assert isinstance(left, ev.ChannelLeftBridge) and left.bridge.channels == ()
    destroyed = parse_event(event("BridgeDestroyed", bridge=BRIDGE))
    assert isinstance(destroyed, ev.BridgeDestroyed)
    assert event_channel_ids(destroyed) == () and event_object_ids(destroyed) == ("br1",)


def test_playback_and_recording_targets() -> None:
    pb = parse_event(event("PlaybackFinished", playback={
        "id": "pb1", "media_uri": "sound:hello-world", "target_uri": "channel:probe-1",
        "language": "en", "state": "done"}))
    assert isinstance(pb, ev.PlaybackFinished)
    assert pb.playback.state == "done" and pb.playback.target_kind == "channel"
    assert event_target_uri(pb) == "channel:probe-1"
    assert event_target(pb) == "probe-1"
    assert event_channel_ids(pb) == ()
    rec = parse_event(event("RecordingFailed", recording={
        "name": "r1", "format": "wav", "state": "failed", "target_uri": "bridge:pbxb-call-7",
        "cause": "Out of disk"}))
    assert isinstance(rec, ev.RecordingFailed)
    assert rec.recording.cause == "Out of disk" and rec.recording.target_kind == "bridge"
    assert event_target(rec) == "pbxb-call-7"
    done = parse_event(event("RecordingFinished", recording={
        "name": "r1", "format": "wav", "state": "done", "target_uri": "channel:c:with:colons",
        "duration": 3}))
    assert isinstance(done, ev.RecordingFinished) and done.recording.duration == 3
    assert event_target(done) == "c:with:colons"


def test_varset_without_channel_is_a_global_variable() -> None:
    parsed = parse_event(event("ChannelVarset", variable="FOO", value="bar"))
    assert isinstance(parsed, ev.ChannelVarset)
    assert parsed.channel is None and event_channel_ids(parsed) == ()


def test_application_replaced_has_only_common_fields() -> None:
    parsed = parse_event(event("ApplicationReplaced"))
    assert isinstance(parsed, ev.ApplicationReplaced) and parsed.application == "probe"


def test_unknown_types_and_extra_fields_never_raise() -> None:
    unknown = parse_event(event("ChannelDialplan", dialplan_app="Wait", channel=CHANNEL))
    assert isinstance(unknown, UnknownEvent)
    assert unknown.type == "ChannelDialplan" and unknown.raw["dialplan_app"] == "Wait"
    odd = parse_event({"type": "SomethingNew", "timestamp": "not a time"})
    assert isinstance(odd, UnknownEvent) and odd.timestamp.tzinfo is not None
    extra = parse_event(event("StasisEnd", channel={**CHANNEL, "tenantid": "t1", "new": {}},
                              future_field=[1, 2]))
    assert isinstance(extra, ev.StasisEnd) and isinstance(extra.channel, Channel)


@pytest.mark.parametrize(
    "raw",
    [
        event("StasisStart", channel=CHANNEL),  # args missing
        event("StasisEnd"),  # channel missing
        event("StasisEnd", channel={"name": "no id"}),
        event("ChannelDtmfReceived", channel=CHANNEL),  # digit missing
        event("PlaybackStarted", playback={"media_uri": "sound:x"}),
        {"type": "StasisEnd", "channel": CHANNEL},  # timestamp missing
        {"type": "StasisEnd", "timestamp": "2026-11-24T08:54:24", "channel": CHANNEL},  # naive
        ["not", "an", "object"],
        {"no": "type"},
    ],
)
def test_malformed_known_events_raise_ari_event_error(raw: Any) -> None:
    with pytest.raises(AriEventError):
        parse_event(raw)


def test_channelvars_are_kept_as_strings() -> None:
    parsed = parse_event(event("StasisStart", args=[], channel={
        **CHANNEL, "channelvars": {"CALLERID(dnid)": "2125550100", "X": None}}))
    assert isinstance(parsed, ev.StasisStart)
    assert parsed.channel.channelvars == {"CALLERID(dnid)": "2125550100", "X": ""}
    hash(parsed.channel)  # frozen models stay hashable despite the mapping field
