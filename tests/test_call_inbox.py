"""A call's inbox waiting for channels to enter the app keeps every other event."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fake_ari import Parties

from pbx_bridge.ari import events as ev
from pbx_bridge.ari.events import parse_event
from pbx_bridge.flow.inbox import CallerGone, CallInbox


def channel(channel_id: str) -> dict[str, Any]:
    return {
        "id": channel_id, "name": f"Snoop/{channel_id}", "state": "Up", "protocol_id": "",
        "caller": {"name": "", "number": ""}, "connected": {"name": "", "number": ""},
        "accountcode": "", "creationtime": "2026-11-24T08:54:24.187+0000", "language": "en",
        "dialplan": {"context": "default", "exten": "s", "priority": 1, "app_name": "",
                     "app_data": ""},
    }


def event(type_: str, **fields: Any) -> ev.Event:
    return parse_event({"type": type_, "timestamp": "2026-11-24T08:54:24.188+0000",
                        "asterisk_id": "a", "application": "pbx-bridge", **fields})


async def test_entered_app_waits_for_each_channel_and_keeps_the_rest() -> None:
    inbox = CallInbox(Parties())
    digit = event("ChannelDtmfReceived", digit="1", duration_ms=120, channel=channel("caller"))
    inbox.put(event("StasisStart", args=["snoop"], channel=channel("snoop-a")))
    inbox.put(digit)

    async def later() -> None:
        await asyncio.sleep(0.05)
        inbox.put(event("StasisStart", args=["snoop"], channel=channel("snoop-b")))

    task = asyncio.create_task(later())
    assert await inbox.entered_app(["snoop-a", "snoop-b"], 2.0)
    await task
    assert await inbox.next(limit_s=0.1) == digit  # the caller's keypress is still there
    assert await inbox.next(limit_s=0.01) is None


async def test_entered_app_gives_up_after_its_limit() -> None:
    inbox = CallInbox(Parties())
    assert not await inbox.entered_app(["snoop-x"], 0.05)


async def test_wait_for_keeps_what_it_passes_over_in_order() -> None:
    """A key pressed while the flow waits for something else is still there afterwards."""
    inbox = CallInbox(Parties())
    first = event("ChannelDtmfReceived", digit="1", duration_ms=120, channel=channel("caller"))
    second = event("ChannelDtmfReceived", digit="2", duration_ms=120, channel=channel("caller"))
    wanted = event("StasisStart", args=["snoop"], channel=channel("snoop-a"))
    after = event("ChannelDtmfReceived", digit="3", duration_ms=120, channel=channel("caller"))
    for item in (first, second, wanted, after):
        inbox.put(item)

    assert await inbox.wait_for(lambda i: isinstance(i, ev.StasisStart), 1.0) == wanted
    # Nothing matching: everything stays, and a later wait may still find a kept item.
    assert await inbox.wait_for(lambda i: isinstance(i, ev.StasisEnd), 0.05) is None
    assert await inbox.wait_for(
        lambda i: isinstance(i, ev.ChannelDtmfReceived) and i.digit == "2", 0.05
    ) == second
    assert [await inbox.next(limit_s=0.1) for _ in range(2)] == [first, after]
    assert await inbox.next(limit_s=0.01) is None


async def test_a_caller_hangup_passed_over_still_ends_the_wait() -> None:
    inbox = CallInbox(Parties(caller_id="caller"))
    inbox.put(event("ChannelHangupRequest", cause=16, channel=channel("caller")))
    with pytest.raises(CallerGone):
        await inbox.wait_for(lambda i: isinstance(i, ev.RecordingStarted), 1.0)
