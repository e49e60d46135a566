"""Recording the conversation: the bridge, so both parties are heard in one file.

ARI's channel record hears only that channel's own audio; recording the mixing bridge
hears everyone in it. On-demand extensions start and stop it with *1 / *2, and each
start makes a new recording with its own id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pbx_bridge.ari import AriError, AriNotFound
from pbx_bridge.flow.context import FlowContext
from storage.models import RecordingKind

log = logging.getLogger(__name__)


class ConversationRecorder:
    def __init__(
        self,
        ctx: FlowContext,
        call_id: str,
        bridge_id: str,
        *,
        legal_basis: str,
        retention_class: str,
        retention_days: int,
    ) -> None:
        self._ctx = ctx
        self._call_id = call_id
        self._bridge_id = bridge_id
        self._legal_basis = legal_basis
        self._retention_class = retention_class
        self._retention_days = retention_days
        self._live_name: str | None = None

    @property
    def recording(self) -> bool:
        return self._live_name is not None

    def adopt(self, asterisk_name: str) -> None:
        """Take over a recording that was already running before a restart."""
        self._live_name = asterisk_name

    async def start(self) -> bool:
        if self._live_name is not None:
            return True
        row = await self._ctx.pipeline.begin(
            call_id=self._call_id,
            kind=RecordingKind.CONVERSATION,
            legal_basis=self._legal_basis,
            retention_class=self._retention_class,
            retention_days=self._retention_days,
            format="wav",
        )
        try:
            await self._ctx.ari.record_bridge(
                self._bridge_id, row.asterisk_name, format="wav", if_exists="fail"
            )
        except AriError as exc:
            log.error("call %s: conversation recording failed to start: %s", self._call_id, exc)
            await self._ctx.pipeline.mark_failed(row.id, f"ARI record failed: {exc}")
            return False
        self._live_name = row.asterisk_name
        log.info("call %s: recording %s started", self._call_id, row.id)
        return True

    async def stop(self) -> None:
        if self._live_name is None:
            return
        name, self._live_name = self._live_name, None
        try:
            await self._ctx.ari.stop_recording(name)
        except AriNotFound:
            pass  # already ended with the bridge; its RecordingFinished still arrives
        except AriError as exc:
            log.warning("call %s: stopping recording failed: %s", self._call_id, exc)


@dataclass
class OnDemandKeys:
    """Recognises the agent's *1 (start) and *2 (stop) within a short window."""

    window_s: float
    _star_at: float | None = field(default=None)

    def feed(self, digit: str, now: float) -> str | None:
        """Return "start" or "stop" when a code completes, else None."""
        if digit == "*":
            self._star_at = now
            return None
        star_at, self._star_at = self._star_at, None
        if star_at is None or now - star_at > self.window_s:
            return None
        return {"1": "start", "2": "stop"}.get(digit)
