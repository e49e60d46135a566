"""Recording ends reach storage in their order, without holding back any call's events.

A fake pipeline stands in for storage (its commit can be made to hang); the real
dispatcher (StasisApp) routes a scripted event stream. The path through Asterisk and a
real database is the end-to-end tests' (every recording of a call stored).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import pytest
from fake_ari import Parties
from sqlalchemy.exc import OperationalError

from pbx_bridge.ari import events as ev
from pbx_bridge.ari.events import parse_event
from pbx_bridge.flow.app import ChannelOwnership, StasisApp
from pbx_bridge.flow.context import FlowContext
from pbx_bridge.flow.inbox import CallInbox
from pbx_bridge.flow.recording_ends import RecordingEnds


def _event(type_: str, **fields: Any) -> ev.Event:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
    return parse_event({"type": type_, "timestamp": stamp, "asterisk_id": "a",
                        "application": "pbx-bridge", **fields})


def _recording(type_: str, name: str) -> ev.Event:
    return _event(type_, recording={"name": name, "state": "done", "target_uri": "bridge:b1"})


def _playback_started(channel_id: str) -> ev.Event:
    return _event("PlaybackStarted", playback={"id": "p1", "target_uri": f"channel:{channel_id}",
                                               "state": "playing"})


class Pipeline:
    def __init__(self) -> None:
        self.told: list[tuple[str, str]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.fail_with: BaseException | None = None

    async def finished(self, name: str) -> None:
        await self.release.wait()
        if self.fail_with is not None:
            raise self.fail_with
        self.told.append(("finished", name))

    async def failed_by_name(self, name: str, reason: str) -> None:
        await self.release.wait()
        self.told.append(("failed", name))


async def _stream(items: list[ev.Event], done: asyncio.Event) -> AsyncIterator[ev.Event]:
    for item in items:
        yield item
    done.set()
    await asyncio.Event().wait()  # the stream stays open, as Asterisk's does


async def test_a_hanging_commit_holds_back_no_call_event() -> None:
    pipeline = Pipeline()
    pipeline.release.clear()  # storage's commit hangs
    ownership = ChannelOwnership()
    inbox = CallInbox(Parties(caller_id="caller-1"))
    ownership.claim("caller-1", inbox)
    ctx = cast(FlowContext, SimpleNamespace(pipeline=pipeline, ari=None))
    app = StasisApp(ctx, ownership)
    done = asyncio.Event()
    items = [_recording("RecordingFinished", "rec-a"), _playback_started("caller-1"),
             _recording("RecordingFailed", "rec-a"), _recording("RecordingFinished", "rec-b")]
    running = asyncio.create_task(app.run(_stream(items, done)))
    try:
        # The call's event arrives while the first end is still being committed.
        item = await asyncio.wait_for(inbox.next(), 2)
        assert isinstance(item, ev.PlaybackStarted)
        await asyncio.wait_for(done.wait(), 2)
        assert pipeline.told == []
        pipeline.release.set()
        await asyncio.wait_for(app._recording_ends.idle(), 2)
        assert pipeline.told == [("finished", "rec-a"), ("failed", "rec-a"),
                                 ("finished", "rec-b")]
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running


async def test_an_end_the_database_missed_is_owed_to_the_resync() -> None:
    pipeline = Pipeline()
    pipeline.fail_with = OperationalError("UPDATE recordings", {}, ConnectionRefusedError())
    lost: list[BaseException] = []
    ends = RecordingEnds(cast(Any, pipeline), lost.append)
    async with ends:
        ends.put(cast(ev.RecordingFinished, _recording("RecordingFinished", "rec-a")))
        await asyncio.wait_for(ends.idle(), 2)
        pipeline.fail_with = None
        ends.put(cast(ev.RecordingFinished, _recording("RecordingFinished", "rec-b")))
        await asyncio.wait_for(ends.idle(), 2)
    assert [type(exc) for exc in lost] == [OperationalError]
    assert pipeline.told == [("finished", "rec-b")]  # the queue went on after the outage


async def test_any_other_failure_reaches_the_dispatcher() -> None:
    pipeline = Pipeline()
    pipeline.fail_with = ValueError("a bug")
    ends = RecordingEnds(cast(Any, pipeline), lambda exc: None)
    async with ends:
        ends.put(cast(ev.RecordingFinished, _recording("RecordingFinished", "rec-a")))
        with pytest.raises(ValueError, match="a bug"):
            for _ in range(100):
                await asyncio.sleep(0.01)
                ends.put(cast(ev.RecordingFinished, _recording("RecordingFinished", "rec-b")))
