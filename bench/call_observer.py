"""What Asterisk itself saw of the calls, from a passive ARI subscriber.

A second ARI application subscribes to every channel (``subscribeAll``) and never acts on
any. Both flows are timed on Asterisk's own clock from the same events, so the baseline
(pure dialplan, no ARI) and pbx-bridge are measured alike:

- keypress to action: from ``ChannelDtmfReceived`` (the end of the caller's first key) to
  the first thing the flow did about it. For pbx-bridge that is the ``PlaybackFinished``
  of the prompt the key interrupted (the service asked Asterisk to stop it); for the
  dialplan it is the ``ChannelDialplan`` event of the priority after ``Read()`` (Read
  stopped the prompt itself and returned).
- live calls: caller channels (from the trunk endpoint) between ``ChannelCreated`` and
  ``ChannelDestroyed``; the peak per phase.
- answer to the first prompt: from the caller channel going ``Up`` to the first
  ``PlaybackStarted`` on it (pbx-bridge) or to entering ``Read()`` (baseline).
- keys pressed before any prompt had started on the channel (not timed): under load
  pbx-bridge can be late with the disclosure, and such a key is not informed consent.

Event timestamps have millisecond resolution. The subscriber costs Asterisk a little
CPU per event in both phases alike (an event filter keeps the stream to these types).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

APP = "bench-observer"
CALLER_PREFIX = "PJSIP/carrier-"  # channels of calls from the trunk (pjsip.conf [carrier])
EVENT_TYPES = (
    "ChannelCreated",
    "ChannelDestroyed",
    "ChannelStateChange",
    "ChannelDtmfReceived",
    "ChannelDialplan",
    "PlaybackStarted",
    "PlaybackFinished",
)


def _when(event: dict[str, Any]) -> datetime:
    return datetime.strptime(event["timestamp"], "%Y-%m-%dT%H:%M:%S.%f%z")


def _ms(start: datetime, end: datetime) -> float:
    return (end - start) / timedelta(milliseconds=1)


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class PhaseView:
    """One phase's tally; ``reset`` starts the next."""

    live: set[str] = field(default_factory=set)
    peak_live: int = 0
    callers_seen: int = 0
    key_at: dict[str, datetime] = field(default_factory=dict)
    awaiting: set[str] = field(default_factory=set)
    prompt_started: set[str] = field(default_factory=set)
    answered_at: dict[str, datetime] = field(default_factory=dict)
    to_prompt_ms: list[float] = field(default_factory=list)
    keys_before_prompt: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        lat = self.latencies_ms
        return {
            "peak_live_calls": self.peak_live,
            "callers_seen": self.callers_seen,
            "keys": len(self.key_at),
            "keys_timed": len(lat),
            "keys_before_prompt": self.keys_before_prompt,
            "key_to_action_p50_ms": _round(percentile(lat, 0.50)),
            "key_to_action_p95_ms": _round(percentile(lat, 0.95)),
            "key_to_action_mean_ms": _round(statistics.fmean(lat) if lat else None),
            "answer_to_prompt_p50_ms": _round(percentile(self.to_prompt_ms, 0.50)),
            "answer_to_prompt_p95_ms": _round(percentile(self.to_prompt_ms, 0.95)),
        }

    def prompt_began(self, channel_id: str, at: datetime) -> None:
        """The first prompt on an answered caller channel: how long the caller waited."""
        if channel_id in self.prompt_started:
            return
        self.prompt_started.add(channel_id)
        answered = self.answered_at.get(channel_id)
        if answered is not None:
            self.to_prompt_ms.append(_ms(answered, at))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


class CallObserver:
    """``async with CallObserver(url, user, password) as seen:`` then ``seen.phase``."""

    def __init__(self, ari_url: str, username: str, password: str, enabled: bool = True) -> None:
        """``enabled=False`` subscribes to nothing (to see what the subscriber costs
        Asterisk): no latencies and no live count then, and ``wait_idle`` polls instead."""
        self.enabled = enabled
        self._ari_url = ari_url
        self._auth = (username, password)
        self.phase = PhaseView()
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self.idle = asyncio.Event()  # set while no caller channel is up
        self.idle.set()

    def reset(self) -> PhaseView:
        """Start a new phase; the calls still live stay counted as live."""
        done, self.phase = self.phase, PhaseView(live=set(self.phase.live))
        return done

    @property
    def live_calls(self) -> int:
        return len(self.phase.live)

    async def wait_idle(self, timeout_s: float) -> None:
        """Until Asterisk has no caller channel left (or ``timeout_s`` passed)."""
        with contextlib.suppress(TimeoutError):
            if self.enabled:
                await asyncio.wait_for(self.idle.wait(), timeout_s)
                return
            async with asyncio.timeout(timeout_s), httpx.AsyncClient(
                base_url=self._ari_url, auth=self._auth
            ) as client:
                while True:
                    channels = (await client.get("/ari/channels")).json()
                    if not any(c["name"].startswith(CALLER_PREFIX) for c in channels):
                        return
                    await asyncio.sleep(1.0)

    async def __aenter__(self) -> CallObserver:
        if not self.enabled:
            return self
        token = base64.b64encode(":".join(self._auth).encode()).decode("ascii")
        ws_url = self._ari_url.replace("http://", "ws://", 1)
        self._ws = await connect(
            f"{ws_url}/ari/events?app={APP}&subscribeAll=true",
            additional_headers={"Authorization": f"Basic {token}"},
            max_size=16 * 1024 * 1024,
            compression=None,
        )
        async with httpx.AsyncClient(base_url=self._ari_url, auth=self._auth) as client:
            # Older Asterisk without event filters sends everything; the tally is the same.
            with contextlib.suppress(httpx.HTTPError):
                await client.put(
                    f"/ari/applications/{APP}/eventFilter",
                    json={"allowed": [{"type": name} for name in EVENT_TYPES]},
                )
        self._task = asyncio.create_task(self._read(self._ws))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._ws is not None:
            await self._ws.close()

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                self.see(json.loads(message))

    def see(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        view = self.phase
        if kind == "PlaybackStarted" or kind == "PlaybackFinished":
            target = event.get("playback", {}).get("target_uri", "")
            channel = target.removeprefix("channel:")
            if kind == "PlaybackStarted":
                view.prompt_began(channel, _when(event))
            elif channel in view.awaiting:
                view.awaiting.discard(channel)
                view.latencies_ms.append(_ms(view.key_at[channel], _when(event)))
            return
        channel = event.get("channel") or {}
        channel_id = channel.get("id", "")
        if not channel.get("name", "").startswith(CALLER_PREFIX):
            return
        if kind == "ChannelCreated":
            view.live.add(channel_id)
            view.callers_seen += 1
            view.peak_live = max(view.peak_live, len(view.live))
        elif kind == "ChannelDestroyed":
            view.live.discard(channel_id)
            view.awaiting.discard(channel_id)
        elif kind == "ChannelStateChange" and channel.get("state") == "Up":
            view.answered_at.setdefault(channel_id, _when(event))
        elif kind == "ChannelDtmfReceived" and channel_id not in view.key_at:
            view.key_at[channel_id] = _when(event)
            app = channel.get("dialplan", {}).get("app_name", "")
            if channel_id in view.prompt_started or app == "Read":
                view.awaiting.add(channel_id)
            else:
                # No prompt to stop: not timed (the next playback's end would measure
                # how late the disclosure was, not the reaction to the key).
                view.keys_before_prompt += 1
        elif kind == "ChannelDialplan" and event.get("dialplan_app") == "Read":
            view.prompt_began(channel_id, _when(event))  # Read starts its prompt at once
        elif kind == "ChannelDialplan" and channel_id in view.awaiting:
            view.awaiting.discard(channel_id)
            view.latencies_ms.append(_ms(view.key_at[channel_id], _when(event)))
        if view.live:
            self.idle.clear()
        else:
            self.idle.set()
