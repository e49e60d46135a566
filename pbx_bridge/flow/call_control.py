"""What the call flow asks of Asterisk: the REST requests, as a protocol.

The flow (sessions, the dispatcher, the resync) depends on this, not on the aiohttp
client: ``pbx_bridge.ari.AriClient`` satisfies it as it is (mypy checks that where the
service wires it), and so does the tests' scripted fake Asterisk (tests/fake_ari.py),
which answers these requests and sends the events Asterisk would, so every branch of
the flow runs in milliseconds with the real flow code and a real database. Only the
requests the flow makes are here; a new one is added to the protocol, the client and
the fake together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from pbx_bridge.ari import Application, Bridge, Channel, LiveRecording, Playback
from pbx_bridge.ari.rest import IfExists, SpyDirection


class CallControl(Protocol):
    # -- the application ------------------------------------------------------------------

    async def application(self) -> Application: ...

    async def filter_events(self, disallowed: Sequence[str]) -> Application: ...

    # -- channels --------------------------------------------------------------------------

    async def get_channel(self, channel_id: str) -> Channel: ...

    async def answer(self, channel_id: str) -> None: ...

    async def ring(self, channel_id: str) -> None: ...

    async def hangup(self, channel_id: str, reason: str = "normal") -> None: ...

    async def play(self, channel_id: str, media: str, *, playback_id: str) -> Playback: ...

    async def record(
        self, channel_id: str, name: str, *, format: str = "wav", if_exists: IfExists = "fail"
    ) -> LiveRecording: ...

    async def snoop(
        self, channel_id: str, *, spy: SpyDirection = "both", app: str, app_args: str = "",
        snoop_id: str | None = None,
    ) -> Channel: ...

    async def create_channel(
        self, endpoint: str, *, app: str, app_args: str = "", channel_id: str | None = None,
        originator: str | None = None,
    ) -> Channel: ...

    async def dial(
        self, channel_id: str, *, caller: str | None = None, timeout_s: int = 30
    ) -> None: ...

    async def set_variable(self, channel_id: str, name: str, value: str) -> None: ...

    async def get_variable(self, channel_id: str, name: str) -> str | None: ...

    async def continue_in_dialplan(self, channel_id: str) -> None: ...

    # -- bridges ---------------------------------------------------------------------------

    async def create_bridge(
        self, *, type: str = "mixing", bridge_id: str | None = None, name: str | None = None
    ) -> Bridge: ...

    async def get_bridge(self, bridge_id: str) -> Bridge: ...

    async def add_channel(self, bridge_id: str, channel: str | Sequence[str]) -> None: ...

    async def remove_channel(self, bridge_id: str, channel: str | Sequence[str]) -> None: ...

    async def destroy_bridge(self, bridge_id: str) -> None: ...

    # Transfers: the held caller hears music on hold, played into the call's bridge.
    async def start_bridge_moh(self, bridge_id: str, moh_class: str | None = None) -> None: ...

    async def stop_bridge_moh(self, bridge_id: str) -> None: ...

    async def record_bridge(
        self, bridge_id: str, name: str, *, format: str = "wav", if_exists: IfExists = "fail"
    ) -> LiveRecording: ...

    # -- playbacks and recordings ----------------------------------------------------------

    async def stop_playback(self, playback_id: str) -> None: ...

    async def stop_recording(self, name: str) -> None: ...

    async def cancel_recording(self, name: str) -> None: ...

    # The PCI pause: silence written in place of the audio (the file keeps its timeline).
    async def mute_recording(self, name: str) -> None: ...

    async def unmute_recording(self, name: str) -> None: ...


__all__ = ["CallControl"]
