"""The capacity benchmark's passive observer times a key to the flow's reaction, per flow.

Events are ARI's own JSON, as Asterisk sends them to a `subscribeAll` application.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from call_observer import CallObserver, percentile

CALLER = {"id": "c1", "name": "PJSIP/carrier-00000001", "dialplan": {"app_name": "Stasis"}}


def _at(ms: int) -> str:
    return f"2026-12-01T09:00:00.{ms:03d}+0000"


def _event(kind: str, ms: int, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "timestamp": _at(ms), **fields}


def test_service_key_is_timed_to_the_end_of_the_prompt_it_stopped() -> None:
    seen = CallObserver("http://127.0.0.1:1", "u", "p")
    playback = {"id": "pb1", "target_uri": "channel:c1"}
    for event in (
        _event("ChannelCreated", 0, channel=CALLER),
        _event("ChannelStateChange", 20, channel={**CALLER, "state": "Up"}),
        _event("PlaybackStarted", 100, playback=playback),
        _event("ChannelDtmfReceived", 400, channel=CALLER, digit="1"),
        _event("PlaybackFinished", 437, playback=playback),
        _event("PlaybackFinished", 900, playback={**playback, "id": "pb2"}),
    ):
        seen.see(event)
    assert seen.phase.latencies_ms == [37.0]
    assert seen.phase.to_prompt_ms == [80.0]  # the second prompt does not count again
    assert seen.phase.peak_live == 1 and not seen.idle.is_set()
    seen.see(_event("ChannelDestroyed", 999, channel=CALLER))
    assert seen.idle.is_set()


def test_dialplan_key_is_timed_to_the_step_after_read() -> None:
    seen = CallObserver("http://127.0.0.1:1", "u", "p")
    channel = {**CALLER, "dialplan": {"app_name": "Read"}}
    for event in (
        _event("ChannelCreated", 0, channel=channel),
        _event("ChannelStateChange", 4, channel={**channel, "state": "Up"}),
        _event("ChannelDialplan", 10, channel=channel, dialplan_app="Read"),
        _event("ChannelDtmfReceived", 500, channel=channel, digit="1"),
        _event("ChannelDialplan", 503, channel=channel, dialplan_app="GotoIf"),
        _event("ChannelDialplan", 504, channel=channel, dialplan_app="Playback"),
    ):
        seen.see(event)
    assert seen.phase.latencies_ms == [3.0]
    assert seen.phase.to_prompt_ms == [6.0]


def test_key_before_any_prompt_is_counted_not_timed() -> None:
    seen = CallObserver("http://127.0.0.1:1", "u", "p")
    playback = {"id": "pb1", "target_uri": "channel:c1"}
    for event in (
        _event("ChannelCreated", 0, channel=CALLER),
        _event("ChannelDtmfReceived", 200, channel=CALLER, digit="1"),
        _event("PlaybackStarted", 300, playback=playback),
        _event("PlaybackFinished", 900, playback=playback),
    ):
        seen.see(event)
    assert seen.phase.latencies_ms == []
    assert seen.phase.keys_before_prompt == 1
    # Agents' and snoop channels are not callers: neither live nor timed.
    seen.see(_event("ChannelCreated", 950, channel={"id": "a1", "name": "PJSIP/100-01"}))
    assert seen.phase.peak_live == 1


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.95) == 95.0
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([], 0.95) is None
