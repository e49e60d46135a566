"""After every (re)connect, make our picture of calls agree with Asterisk's.

While the event stream was down, callers may have hung up, Asterisk may have restarted,
or this service may have been restarted mid-call. Each open call in the database is
either still live (adopt it), or gone (close it); leftover legs and bridges nobody owns
are cleared; and the storage pipeline resumes whatever recordings were half-handled.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import select

from pbx_bridge.ari import AriError, AriNotFound
from pbx_bridge.calls.journal import OpenCall
from pbx_bridge.calls.models import CallTransfer, RecordingPause
from pbx_bridge.calls.transfers import TransferOutcome
from pbx_bridge.flow import names
from pbx_bridge.flow.call_state import CallState, LiveRecording, route_started_with
from pbx_bridge.flow.context import FlowContext
from pbx_bridge.flow.inbox import ChannelVanished
from pbx_bridge.flow.outbound import OutboundSession
from pbx_bridge.flow.policy import ConsentOutcome
from pbx_bridge.flow.session import CallSession
from storage.models import Recording, RecordingKind, RecordingStatus

if TYPE_CHECKING:
    from pbx_bridge.flow.app import ChannelOwnership, StasisApp

log = logging.getLogger(__name__)


class Resync:
    def __init__(self, ctx: FlowContext, ownership: ChannelOwnership, app: StasisApp) -> None:
        self._ctx = ctx
        self._ownership = ownership
        self._app = app
        # The last run went through (not postponed): every call Asterisk holds is ours.
        self.complete = False

    async def run(self) -> None:
        self.complete = False
        try:
            application = await self._ctx.ari.application()
        except AriError as exc:
            log.warning("resync postponed, Asterisk did not list our application: %s", exc)
            return
        live_channels = set(application.channel_ids)
        live_bridges = set(application.bridge_ids)

        self._tell_sessions_what_vanished(live_channels)
        for call in await self._ctx.journal.open_calls():
            if call.id in self._app.live_call_ids():
                continue
            if call.channel_id in live_channels:
                await self._adopt(call, live_channels, live_bridges)
            else:
                await self._close_lost(call, live_bridges)
        await self._clear_strays(live_channels, live_bridges)
        for call_id, ended_at in await self._ctx.journal.ended_without_retention():
            log.info("call %s: ended before a crash; its recordings' retention set now",
                     call_id)
            await self._ctx.pipeline.close_call(call_id, ended_at)
        await self._ctx.pipeline.resume()
        self.complete = True

    def _tell_sessions_what_vanished(self, live_channels: set[str]) -> None:
        for object_id, inbox in self._ownership.owned().items():
            if object_id in live_channels or names.is_kind(object_id, names.Kind.BRIDGE) or (
                names.is_kind(object_id, names.Kind.CONSULT)
            ):
                continue
            inbox.put(ChannelVanished(object_id))

    async def _adopt(
        self, call: OpenCall, live_channels: set[str], live_bridges: set[str]
    ) -> None:
        """Hand a call still live in Asterisk to a new session, as it was: the route it
        started with (from its row, never the route as it reads now), its consent, and
        the bridge, agent and recording Asterisk still holds for it."""
        try:
            caller = await self._ctx.ari.get_channel(call.channel_id)
        except AriNotFound:
            await self._close_lost(call, live_bridges)
            return
        route = route_started_with(call, self._ctx.default_route)
        state = CallState(
            caller,
            call.direction,
            call.did,
            call_id=call.id,
            reference=call.reference,
            route=route,
            # The row's language is the one heard (the caller's country's, or the one
            # chosen by key): the rest of the call is in it, not in the route's.
            heard_language=(call.language if call.language
                            and call.language != route.language.value else None),
            row_language=call.language or None,
            retention_class=call.retention_class,
            consent=ConsentOutcome(call.consent_decision) if call.consent_decision else None,
            caller_answered=caller.state == "Up",
            adopted=True,
        )
        bridge_id = names.bridge_id(call.id)
        if bridge_id in live_bridges:
            bridge = await self._ctx.ari.get_bridge(bridge_id)
            state.bridge_id = bridge_id
            state.joined = True
            state.agent_answered = True
            state.agent_id = next(
                (c for c in bridge.channels
                 if c != caller.id and names.is_kind(c, names.Kind.AGENT)),
                None,
            )
            state.recording = await self._live_conversation(call.id)
            # The extension that took the call: a transfer's target, else the one on
            # the row (a ring group's member who answered).
            state.agent_extension = await self._transferred_to(call.id) or call.extension
        log.info("call %s: still live after reconnect, adopting (%s)", call.id,
                 "connected" if state.joined else "restarting its flow")
        # The session claims what the state holds (caller, agent, bridge, a running
        # stereo recording's snoops): theirs, not strays to hang up.
        self._app.start_session(
            OutboundSession(self._ctx, state) if call.direction == "outbound"
            else CallSession(self._ctx, state)
        )

    async def _close_lost(self, call: OpenCall, live_bridges: set[str]) -> None:
        disposition = "answered" if call.answered else "abandoned"
        ended_at = await self._ctx.journal.close(
            call.id, disposition, cause="caller left while the service was not listening"
        )
        bridge_id = names.bridge_id(call.id)
        if bridge_id in live_bridges:
            # Destroying the bridge ends its recording, whose RecordingFinished then
            # reaches the pipeline like any other.
            await self._quietly_destroy(bridge_id)
        await self._ctx.pipeline.close_call(call.id, ended_at)
        log.info("call %s: closed as %s (ended while we were away)", call.id, disposition)

    async def _clear_strays(self, live_channels: set[str], live_bridges: set[str]) -> None:
        owned = self._ownership.owned()
        for bridge_id in live_bridges:
            ours = names.is_kind(bridge_id, names.Kind.BRIDGE) or names.is_kind(
                bridge_id, names.Kind.CONSULT)
            if ours and bridge_id not in owned:
                await self._quietly_destroy(bridge_id)
        for channel_id in live_channels:
            if names.is_our_leg(channel_id) and channel_id not in owned:
                log.info("hanging up leftover leg %s", channel_id)
                try:
                    await self._ctx.ari.hangup(channel_id)
                except AriError as exc:
                    log.debug("leftover leg %s: %s", channel_id, exc)

    async def _quietly_destroy(self, bridge_id: str) -> None:
        try:
            await self._ctx.ari.destroy_bridge(bridge_id)
        except AriError as exc:
            log.debug("bridge %s: %s", bridge_id, exc)

    async def _transferred_to(self, call_id: str) -> str | None:
        """The extension the call's last completed transfer handed it to, if any: its
        agent's keys and recording policy are that extension's."""
        async with self._ctx.sessions() as session:
            return await session.scalar(
                select(CallTransfer.to_extension)
                .where(CallTransfer.call_id == call_id,
                       CallTransfer.outcome == TransferOutcome.COMPLETED.value)
                .order_by(CallTransfer.ended_at.desc()).limit(1)
            )

    async def _live_conversation(self, call_id: str) -> LiveRecording | None:
        """The conversation recording still running for the call, with its row (a PCI
        pause needs it: *5 / *6 and the automatic resume go on after a restart) and the
        pause still on, if one is."""
        async with self._ctx.sessions() as session:
            found = (
                await session.execute(
                    select(Recording.id, Recording.asterisk_name, Recording.layout,
                           Recording.started_at).where(
                        Recording.call_id == call_id,
                        Recording.kind == RecordingKind.CONVERSATION.value,
                        Recording.status == RecordingStatus.RECORDING.value,
                    )
                )
            ).first()
            if found is None:
                return None
            pause = (
                await session.execute(
                    select(RecordingPause.id, RecordingPause.started_at)
                    .where(RecordingPause.recording_id == found.id,
                           RecordingPause.ended_at.is_(None))
                    .order_by(RecordingPause.started_at.desc())
                )
            ).first()
        return LiveRecording.of_row(
            found.asterisk_name, found.layout, recording_id=found.id,
            started_at=found.started_at,
            open_pause=None if pause is None else (pause.id, pause.started_at),
        )
