"""Playing prompts and reading keys on one channel, with barge-in.

A caller who already knows the menu may press a key at any moment; a key pressed
during a prompt stops it at once and counts as the answer.
"""

from __future__ import annotations

import contextlib
import uuid

from pbx_bridge.ari import AriClient, AriNotFound
from pbx_bridge.ari import events as ev
from pbx_bridge.flow.inbox import CallInbox
from pbx_bridge.metrics import KEYPRESS_TO_ACTION, seconds_since

# How long to wait for Asterisk to confirm a stopped playback before moving on.
_STOP_GRACE_S = 2.0


class PromptPlayer:
    def __init__(self, ari: AriClient, inbox: CallInbox) -> None:
        self._ari = ari
        self._inbox = inbox

    async def play(self, channel_id: str, media: str, *, barge_in: bool) -> str | None:
        """Play to the end and return None, or return the key that interrupted it."""
        playback_id = f"pbxb-{uuid.uuid4()}"
        await self._ari.play(channel_id, media, playback_id=playback_id)
        while True:
            item = await self._inbox.next()
            if _playback_done(item, playback_id):
                return None
            if (
                barge_in
                and isinstance(item, ev.ChannelDtmfReceived)
                and item.channel.id == channel_id
            ):
                await self._stop(playback_id)
                KEYPRESS_TO_ACTION.observe(seconds_since(item.timestamp))
                return item.digit

    async def start(self, channel_id: str, media: str) -> str:
        """Start a playback without waiting for it (e.g. ringback while dialling)."""
        playback_id = f"pbxb-{uuid.uuid4()}"
        await self._ari.play(channel_id, media, playback_id=playback_id)
        return playback_id

    async def stop(self, playback_id: str) -> None:
        with contextlib.suppress(AriNotFound):  # already finished
            await self._ari.stop_playback(playback_id)

    async def wait_digit(self, channel_id: str, timeout_s: float) -> str | None:
        """The next key on this channel, or None after ``timeout_s`` of silence."""
        item = await self._inbox.wait_for(
            lambda i: isinstance(i, ev.ChannelDtmfReceived) and i.channel.id == channel_id,
            timeout_s,
        )
        return item.digit if isinstance(item, ev.ChannelDtmfReceived) else None

    async def _stop(self, playback_id: str) -> None:
        """Stop and wait for the finish, so the next prompt does not queue behind it."""
        await self.stop(playback_id)
        await self._inbox.wait_for(lambda i: _playback_done(i, playback_id), _STOP_GRACE_S)


def _playback_done(item: object, playback_id: str) -> bool:
    return isinstance(item, ev.PlaybackFinished) and item.playback.id == playback_id
