"""One call's events, in arrival order, with a leg's departure turned into an exception.

A call coroutine awaits only its own channels' events. Turning "the caller hung up"
into an exception means every step of the flow is cancelled by a hangup without
checking for it, and the coroutine's ``finally`` is the one place that cleans up.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from pbx_bridge.ari import events as ev


class LegGone(Exception):
    """A leg of the call left (hangup, or its channel vanished across a reconnect)."""

    def __init__(self, channel_id: str, cause: str = "") -> None:
        super().__init__(channel_id)
        self.channel_id = channel_id
        self.cause = cause


class CallerGone(LegGone):
    pass


class AgentGone(LegGone):
    pass


@dataclass(frozen=True)
class ChannelVanished:
    """Synthetic: a resync found that one of our channels no longer exists in Asterisk."""

    channel_id: str
    type: str = "ChannelVanished"


class CallRequest:
    """Synthetic: a request to the call from outside Asterisk (a command by API,
    ``flow/call_commands.py``), read by the flow like an event."""

    type: str = "CallRequest"


InboxItem = ev.Event | ChannelVanished | CallRequest


def departed_channel(item: InboxItem) -> tuple[str, str] | None:
    """The channel id and cause if this item means a channel has left the call."""
    if isinstance(item, ChannelVanished):
        return item.channel_id, "channel vanished (Asterisk restarted?)"
    if isinstance(item, ev.ChannelDestroyed):
        return item.channel.id, item.cause_txt or str(item.cause)
    if isinstance(item, ev.ChannelHangupRequest | ev.StasisEnd):
        return item.channel.id, type(item).__name__
    return None


class Parties(Protocol):
    """Whose departure ends the call: the call's state (``CallState``) says."""

    @property
    def caller_id(self) -> str: ...

    @property
    def connected_agent_id(self) -> str | None:
        """Set once the agent has answered: before that, an agent's hangup is a dial
        result the flow wants to see, not an exception."""
        ...


class CallInbox:
    """The queue a dispatcher fills and a call session drains."""

    def __init__(self, parties: Parties) -> None:
        self._queue: asyncio.Queue[InboxItem] = asyncio.Queue()
        self._parties = parties
        self._gone: set[str] = set()
        # Items a wait passed over, oldest first: the flow's next read gets them before
        # anything newer, so a key pressed while we waited for something else still counts.
        self._held: deque[InboxItem] = deque()

    def put(self, item: InboxItem) -> None:
        self._queue.put_nowait(item)

    def is_gone(self, channel_id: str) -> bool:
        return channel_id in self._gone

    async def next(self, limit_s: float | None = None) -> InboxItem | None:
        """The next event (one a wait passed over first), or None after ``limit_s`` s."""
        if self._held:
            return self._held.popleft()
        return await self._receive(limit_s)

    async def entered_app(self, channel_ids: Iterable[str], limit_s: float) -> bool:
        """Wait for each channel's StasisStart, keeping every other event for the call.

        A channel made by a REST call (a snoop) enters our app on its own thread after
        the call returns; until then Asterisk refuses to record it (409).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit_s
        pending = set(channel_ids)
        while pending and (remaining := deadline - loop.time()) > 0:
            item = await self.wait_for(
                lambda i: isinstance(i, ev.StasisStart) and i.channel.id in pending, remaining
            )
            if not isinstance(item, ev.StasisStart):
                break
            pending.discard(item.channel.id)
        return not pending

    async def wait_for(
        self, matches: Callable[[InboxItem], bool], limit_s: float
    ) -> InboxItem | None:
        """The first item that ``matches`` within ``limit_s``.

        Items passed over stay for the flow, in their order (e.g. the caller's key that
        arrives while the evidence clip waits for its recording to start).
        """
        for index, held in enumerate(self._held):
            if matches(held):
                del self._held[index]
                return held
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit_s
        while (remaining := deadline - loop.time()) > 0:
            item = await self._receive(limit_s=remaining)
            if item is None:
                break
            if matches(item):
                return item
            self._held.append(item)
        return None

    async def _receive(self, limit_s: float | None) -> InboxItem | None:
        """The next item from the dispatcher; a leg's first departure raises."""
        try:
            item = await asyncio.wait_for(self._queue.get(), limit_s)
        except TimeoutError:
            return None
        departed = departed_channel(item)
        if departed is not None:
            channel_id, cause = departed
            first_time = channel_id not in self._gone
            self._gone.add(channel_id)
            if first_time and channel_id == self._parties.caller_id:
                raise CallerGone(channel_id, cause)
            if first_time and channel_id == self._parties.connected_agent_id:
                raise AgentGone(channel_id, cause)
        return item
