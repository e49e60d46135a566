"""Recording the conversation: the bridge (mixed), or each party's own leg (stereo).

ARI's channel record hears only that channel's own audio; recording the mixing bridge
hears everyone in it, in one channel. With ``[call] stereo`` each party is recorded on
its own instead, from two snoops on the caller's leg: what the caller sends, and what
reaches the caller from the bridge (the agent, whoever that is after a transfer), so the
stored file can put the caller left and the agent right (quality teams and speech
analytics want to tell them apart). Both legs belong to one recording row; the storage
pipeline merges them. On-demand extensions start and stop either with *1 / *2, and each
start makes a new recording with its own id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from pbx_bridge.ari import AriError, AriNotFound
from pbx_bridge.ari.rest import SpyDirection
from pbx_bridge.calls.pauses import CALL_END_ACTOR, offset_s, store_pause_end, store_pause_start
from pbx_bridge.flow import names
from pbx_bridge.flow.call_state import CallState, LiveRecording
from pbx_bridge.flow.context import FlowContext
from pbx_bridge.flow.inbox import CallInbox, LegGone
from storage.legs import Layout, leg_names
from storage.models import RecordingKind, utcnow

log = logging.getLogger(__name__)

# A snoop channel enters our app on its own thread after the REST call returns; it
# cannot be recorded before that (Asterisk answers 404/409).
_ENTER_APP_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class _Pause:
    id: str
    live: LiveRecording
    started_at: datetime


class ConversationRecorder:
    """Starts and stops the call's conversation recording; what runs is the call's
    ``recording`` (so an adopted call's running recording is simply already there)."""

    def __init__(
        self,
        ctx: FlowContext,
        state: CallState,
        inbox: CallInbox,
        *,
        retention_days: int,
    ) -> None:
        assert state.call_id is not None and state.bridge_id is not None
        self._ctx = ctx
        self._state = state
        self._call_id = state.call_id
        self._bridge_id = state.bridge_id
        self._retention_days = retention_days
        self._inbox = inbox
        live = state.recording
        # Adopted while paused: Asterisk still mutes it, and the pause's row is open.
        self._pause: _Pause | None = (
            None if live is None or live.open_pause is None
            else _Pause(live.open_pause[0], live, live.open_pause[1]))

    @property
    def recording(self) -> bool:
        return self._state.recording is not None

    @property
    def paused(self) -> bool:
        return self._pause is not None

    def retain_as(self, retention_class: str, retention_days: int) -> None:
        """Recordings this call starts from now on are kept per this class."""
        self._state.retention_class, self._retention_days = retention_class, retention_days

    async def pause(self, actor: str) -> bool:
        """PCI pause: mute what is being recorded; False when nothing is (or it is already).

        Muted first, stored after: the card details must not reach the file while the
        database is written.
        """
        live = self._state.recording
        if live is None or self._pause is not None or live.recording_id is None:
            return False
        for name in live.names:
            await self._ctx.ari.mute_recording(name)
        assert live.started_at is not None
        at = utcnow()
        pause_id = await store_pause_start(
            self._ctx.sessions, recording_id=live.recording_id, call_id=self._call_id,
            start_s=offset_s(live.started_at, at), at=at, actor=actor,
        )
        self._pause = _Pause(pause_id, live, at)
        log.info("call %s: recording %s paused by %s", self._call_id, live.recording_id, actor)
        return True

    def pause_left_s(self, limit_s: float) -> float | None:
        """Seconds until the pause running now ends by itself (None: not paused); a
        pause adopted after a restart has had part of its time already."""
        if self._pause is None:
            return None
        return max(0.0, limit_s - (utcnow() - self._pause.started_at).total_seconds())

    async def resume(self, actor: str) -> bool:
        """End the pause: the recording hears the call again. False when not paused."""
        pause = self._pause
        if pause is None:
            return False
        if pause.live is self._state.recording:
            for name in pause.live.names:
                await self._ctx.ari.unmute_recording(name)
        await self._close_pause(actor)
        log.info("call %s: recording resumed by %s", self._call_id, actor)
        return True

    async def _close_pause(self, actor: str) -> None:
        pause, self._pause = self._pause, None
        if pause is None:
            return
        assert pause.live.recording_id is not None and pause.live.started_at is not None
        at = utcnow()
        await store_pause_end(
            self._ctx.sessions, pause_id=pause.id, recording_id=pause.live.recording_id,
            call_id=self._call_id, end_s=offset_s(pause.live.started_at, at), at=at,
            actor=actor,
        )

    async def start(self) -> bool:
        if self._state.recording is not None:
            return True
        if self._ctx.call.stereo:
            return await self._start_stereo()
        return await self._start_mixed()

    async def stop(self) -> None:
        if self._state.recording is None:
            return
        live, self._state.recording = self._state.recording, None
        for name in live.names:
            try:
                await self._ctx.ari.stop_recording(name)
            except AriNotFound:
                pass  # already ended with its bridge or channel; RecordingFinished still comes
            except AriError as exc:
                log.warning("call %s: stopping recording failed: %s", self._call_id, exc)
        await self._hang_up(live.snoops)
        if self._pause is not None:  # stopped (or the call ended) while paused
            await self._close_pause(CALL_END_ACTOR)

    # -- mixed: the bridge ------------------------------------------------------------------

    async def _start_mixed(self) -> bool:
        row = await self._ctx.pipeline.begin(
            call_id=self._call_id,
            kind=RecordingKind.CONVERSATION,
            legal_basis=self._state.legal_basis.value,
            retention_class=self._state.retention_class,
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
        self._state.recording = LiveRecording(
            (row.asterisk_name,), recording_id=row.id, started_at=utcnow()
        )
        log.info("call %s: recording %s started", self._call_id, row.id)
        return True

    # -- stereo: one snoop per party ------------------------------------------------------

    async def _start_stereo(self) -> bool:
        agent_id = self._state.agent_id
        if agent_id is None:
            log.error("call %s: no agent leg to record in stereo", self._call_id)
            return False
        row = await self._ctx.pipeline.begin(
            call_id=self._call_id,
            kind=RecordingKind.CONVERSATION,
            legal_basis=self._state.legal_basis.value,
            retention_class=self._state.retention_class,
            retention_days=self._retention_days,
            format="wav",
            layout=Layout.STEREO,
        )
        legs = leg_names(row)  # caller, agent: the channel order of the stored file
        # Both legs are heard on the caller's channel: "in" is what the caller sends,
        # "out" what reaches them from the bridge, i.e. the agent. So the agent's side
        # follows whoever talks with the caller, across a transfer, in one file (a
        # snoop on the agent's own leg would end with that leg).
        directions: tuple[SpyDirection, SpyDirection] = ("in", "out")
        snoops: list[str] = []
        started: list[str] = []
        try:
            for spy, name in zip(directions, legs, strict=True):
                snoop_id = names.leg_snoop_id(name)
                self._ctx.ownership.claim(snoop_id, self._inbox)
                snoops.append(snoop_id)
                await self._ctx.ari.snoop(
                    self._state.caller_id,
                    spy=spy,
                    app=self._ctx.app,
                    app_args=f"snoop,{self._call_id}",
                    snoop_id=snoop_id,
                )
            if not await self._inbox.entered_app(snoops, _ENTER_APP_TIMEOUT_S):
                log.warning("call %s: snoop legs did not confirm entering the app", self._call_id)
            for snoop_id, name in zip(snoops, legs, strict=True):
                await self._ctx.ari.record(snoop_id, name, format="wav", if_exists="fail")
                started.append(name)
        except AriError as exc:
            log.error("call %s: stereo recording failed to start: %s", self._call_id, exc)
            await self._abandon(row.id, snoops, started, f"ARI record failed: {exc}")
            return False
        except LegGone:
            await self._abandon(row.id, snoops, started, "a party hung up as recording started")
            raise
        self._state.recording = LiveRecording(
            legs, Layout.STEREO, tuple(snoops), recording_id=row.id, started_at=utcnow()
        )
        log.info("call %s: recording %s started (stereo)", self._call_id, row.id)
        return True

    async def _abandon(
        self, recording_id: str, snoops: list[str], started: list[str], reason: str
    ) -> None:
        """A half-started stereo recording: discard what was recorded, keep nothing running."""
        for name in started:
            try:
                await self._ctx.ari.cancel_recording(name)
            except AriError as exc:
                if not isinstance(exc, AriNotFound):
                    log.warning("call %s: discarding leg %s failed: %s", self._call_id, name,
                                exc)
        await self._hang_up(tuple(snoops))
        await self._ctx.pipeline.mark_failed(recording_id, reason)

    async def _hang_up(self, snoops: tuple[str, ...]) -> None:
        for snoop_id in snoops:
            if not self._inbox.is_gone(snoop_id):
                try:
                    await self._ctx.ari.hangup(snoop_id)
                except AriNotFound:
                    pass
                except AriError as exc:
                    log.warning("call %s: snoop hangup failed: %s", self._call_id, exc)
            self._ctx.ownership.release(snoop_id)
