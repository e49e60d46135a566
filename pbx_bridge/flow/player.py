"""Playing prompts and reading keys on one channel, with barge-in.

A caller who already knows the menu may press a key at any moment; a key pressed
during a prompt stops it at once and counts as the answer. The one exception is a key
that arrived before the disclosure's first audio (see ``policy.key_answers``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime

from pbx_bridge.ari import AriNotFound
from pbx_bridge.ari import events as ev
from pbx_bridge.calls.journal import CallerKey
from pbx_bridge.flow import names
from pbx_bridge.flow.call_control import CallControl
from pbx_bridge.flow.inbox import CallInbox
from pbx_bridge.flow.policy import key_answers
from pbx_bridge.metrics import KEYPRESS_TO_ACTION, seconds_since

# How long to wait for Asterisk to confirm a stopped playback before moving on.
_STOP_GRACE_S = 2.0


@dataclass(frozen=True)
class Heard:
    """How a prompt went: the key that interrupted it, and when its audio began."""

    key: CallerKey | None = None
    # The prompt's first audio (its PlaybackStarted, Asterisk's clock); None if not seen.
    started_at: datetime | None = None
    # Keys that arrived before that first audio, where they cannot answer it.
    early_keys: tuple[CallerKey, ...] = ()


class PromptPlayer:
    def __init__(self, ari: CallControl, inbox: CallInbox) -> None:
        self._ari = ari
        self._inbox = inbox

    async def play(self, channel_id: str, media: str, *, barge_in: bool) -> str | None:
        """Play to the end and return None, or return the key that interrupted it."""
        heard = await self.hear(channel_id, media, barge_in=barge_in)
        return heard.key.digit if heard.key is not None else None

    async def hear(
        self, channel_id: str, media: str, *, barge_in: bool = True, disclosure: bool = False
    ) -> Heard:
        """Play to the end or until a key interrupts it.

        For the ``disclosure``, a key that arrived before its first audio (e.g. pressed
        while the evidence clip was starting) interrupts nothing: it is kept in
        ``early_keys`` and the caller hears the disclosure whole.
        """
        playback_id = names.playback_id()
        await self._ari.play(channel_id, media, playback_id=playback_id)
        started_at: datetime | None = None
        early: list[CallerKey] = []
        while True:
            item = await self._inbox.next()
            if isinstance(item, ev.PlaybackStarted) and item.playback.id == playback_id:
                # A composed prompt (several media, one playback) starts each of its
                # media with a PlaybackStarted: its first audio is the first one's.
                started_at = started_at or item.timestamp
            elif _playback_done(item, playback_id):
                return Heard(None, started_at, tuple(early))
            elif (
                barge_in
                and isinstance(item, ev.ChannelDtmfReceived)
                and item.channel.id == channel_id
            ):
                if disclosure and not key_answers(disclosure_began=started_at is not None):
                    early.append(CallerKey(item.digit, item.timestamp, early=True))
                    continue
                await self._stop(playback_id)
                KEYPRESS_TO_ACTION.observe(seconds_since(item.timestamp))
                return Heard(CallerKey(item.digit, item.timestamp), started_at, tuple(early))

    async def start(self, channel_id: str, media: str) -> str:
        """Start a playback without waiting for it (e.g. ringback while dialling)."""
        playback_id = names.playback_id()
        await self._ari.play(channel_id, media, playback_id=playback_id)
        return playback_id

    async def stop(self, playback_id: str) -> None:
        with contextlib.suppress(AriNotFound):  # already finished
            await self._ari.stop_playback(playback_id)

    async def wait_key(self, channel_id: str, timeout_s: float) -> CallerKey | None:
        """The next key on this channel, or None after ``timeout_s`` of silence."""
        item = await self._inbox.wait_for(
            lambda i: isinstance(i, ev.ChannelDtmfReceived) and i.channel.id == channel_id,
            timeout_s,
        )
        if isinstance(item, ev.ChannelDtmfReceived):
            return CallerKey(item.digit, item.timestamp)
        return None

    async def _stop(self, playback_id: str) -> None:
        """Stop and wait for the finish, so the next prompt does not queue behind it."""
        await self.stop(playback_id)
        await self._inbox.wait_for(lambda i: _playback_done(i, playback_id), _STOP_GRACE_S)


def _playback_done(item: object, playback_id: str) -> bool:
    return isinstance(item, ev.PlaybackFinished) and item.playback.id == playback_id
