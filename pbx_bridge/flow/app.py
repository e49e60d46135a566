"""The Stasis dispatcher: StasisStart of a caller becomes one CallSession task; every other
event goes to the inbox of the call that owns its channel or bridge.

Recording ends are also handed to the storage pipeline (through ``RecordingEnds``, so
storage's commit holds back no call's events), whether or not the call is still live, so
a recording that finishes after its call is never forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from pbx_bridge.ari import AriError
from pbx_bridge.ari import events as ev
from pbx_bridge.ari.stream import StreamConnected, StreamDisconnected
from pbx_bridge.calls.journal import CallNotFound
from pbx_bridge.flow.call_state import CallState
from pbx_bridge.flow.campaign import campaign_tag
from pbx_bridge.flow.context import FlowContext
from pbx_bridge.flow.inbox import CallInbox
from pbx_bridge.flow.outbound import OutboundSession
from pbx_bridge.flow.reconcile import Reconciler
from pbx_bridge.flow.recording_ends import RecordingEnds
from pbx_bridge.flow.resync import Resync
from pbx_bridge.flow.session import CallEnd, CallSession, write_call_end
from storage.database import database_unavailable

log = logging.getLogger(__name__)

StreamItem = ev.Event | StreamConnected | StreamDisconnected


class ChannelOwnership:
    """Which call owns which Asterisk channel or bridge id."""

    def __init__(self) -> None:
        self._owners: dict[str, CallInbox] = {}

    def claim(self, object_id: str, inbox: CallInbox) -> None:
        self._owners[object_id] = inbox

    def release(self, object_id: str) -> None:
        self._owners.pop(object_id, None)

    def owner(self, object_id: str) -> CallInbox | None:
        return self._owners.get(object_id)

    def owned(self) -> dict[str, CallInbox]:
        return dict(self._owners)


class StasisApp:
    def __init__(self, ctx: FlowContext, ownership: ChannelOwnership) -> None:
        self._ctx = ctx
        self._ownership = ownership
        self._sessions: dict[asyncio.Task[None], CallSession] = {}
        self._resync = Resync(ctx, ownership, self)
        self._reconciler = Reconciler(self._reconcile)
        self._recording_ends = RecordingEnds(
            ctx.pipeline, lambda exc: self._reconciler.owe("a recording's end", exc)
        )
        # Ends of calls the database was away for, written before the next resync so
        # they keep their real end time and disposition.
        self._unwritten_ends: dict[str, CallEnd] = {}

    @property
    def live_calls(self) -> int:
        return len(self._sessions)

    @property
    def database_outage(self) -> bool:
        """A write failed for want of the database and the resync is still owed."""
        return self._reconciler.owed

    def live_call_ids(self) -> set[str]:
        return {s.call_id for s in self._sessions.values() if s.call_id is not None}

    def sessions(self) -> list[CallSession]:
        return list(self._sessions.values())

    def session_of(self, call_id: str) -> CallSession | None:
        """The live call with this id, if this service holds it (commands by API)."""
        return next((s for s in self._sessions.values() if s.call_id == call_id), None)

    async def run(self, stream: AsyncIterator[StreamItem]) -> None:
        try:
            async with self._recording_ends:
                async for item in stream:
                    await self._dispatch(item)
        finally:
            await self._reconciler.close()
            await self.detach_all()

    async def _dispatch(self, item: StreamItem) -> None:
        if isinstance(item, StreamConnected):
            log.info("ARI event stream %s; resynchronising",
                     "connected" if item.first else "reconnected")
            await self._filter_unused_events()
            if await self._reconciler.run_resync("after connecting") and self._resync.complete:
                # Ops and the tests read this line as "every call Asterisk holds is ours
                # again": only then is an outage or a restart survived.
                log.info("resynchronised with Asterisk; %d live calls", self.live_calls)
            return
        if isinstance(item, StreamDisconnected):
            log.warning("ARI event stream lost: %s", item.reason)
            return
        if isinstance(item, ev.StasisStart) and self._ownership.owner(item.channel.id) is None:
            self._on_new_channel(item)
            return
        if isinstance(item, ev.RecordingFinished | ev.RecordingFailed):
            self._recording_ends.put(item)
        for inbox in self._owners_of(item):
            inbox.put(item)

    async def _filter_unused_events(self) -> None:
        """Only a saving: without the filter every event still arrives and is handled."""
        try:
            await self._ctx.ari.filter_events(ev.UNUSED_EVENT_TYPES)
        except AriError as exc:
            log.warning("could not set ARI's event filter (%s); unused events still arrive",
                        exc)

    def _on_new_channel(self, event: ev.StasisStart) -> None:
        args = list(event.args)
        role = args[0] if args else "inbound"
        if role not in ("inbound", "outbound"):
            # An agent or snoop leg of a call we no longer know (e.g. created just before
            # a restart): the resync hangs such strays up; nothing to start here.
            log.info("ignoring unowned %s channel %s", role, event.channel.id)
            return
        did = args[1] if len(args) > 1 else event.channel.dialplan_exten or ""
        state = CallState.arriving(event.channel, direction=role, did=did)
        if role == "outbound":
            # An agent's call out: the dialled number, and the agent's extension.
            agent = args[2] if len(args) > 2 else ""
            self.start_session(OutboundSession(self._ctx, state, agent=agent))
            return
        if role == "inbound":  # the dialplan's PBX_BRIDGE_CAMPAIGN, if it set one
            state.campaign = campaign_tag(args[2] if len(args) > 2 else "", event.channel.id)
        self.start_session(CallSession(self._ctx, state))

    def start_session(self, session: CallSession) -> None:
        """Run the call; every Asterisk object its state holds is its own from now on."""
        for object_id in session.state.owned_ids():
            self._ownership.claim(object_id, session.inbox)
        task = asyncio.create_task(session.run(), name=f"call {session.caller.id}")
        self._sessions[task] = session
        task.add_done_callback(self._session_done)

    def _session_done(self, task: asyncio.Task[None]) -> None:
        session = self._sessions.pop(task, None)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        call_id = session.call_id if session else None
        if database_unavailable(exc):
            if session is not None and session.unwritten_end is not None:
                self._unwritten_ends[session.unwritten_end.call_id] = session.unwritten_end
            self._reconciler.owe(f"call {call_id}'s records" if call_id else "a call", exc)
        else:
            log.error("call %s: session crashed", call_id, exc_info=exc)

    async def _reconcile(self) -> None:
        for call_id, end in list(self._unwritten_ends.items()):
            try:
                await write_call_end(self._ctx, end)
            except CallNotFound:
                log.warning("call %s: its row is gone; its end is not written", call_id)
            else:
                log.info("call %s: its end (%s) written after the database outage", call_id,
                         end.disposition)
            del self._unwritten_ends[call_id]
        await self._resync.run()

    def _owners_of(self, item: ev.Event) -> list[CallInbox]:
        ids = list(ev.event_channel_ids(item))
        target = ev.event_target(item)
        if target is not None:
            ids.append(target)
        inboxes: list[CallInbox] = []
        for object_id in ids:
            inbox = self._ownership.owner(object_id)
            if inbox is not None and inbox not in inboxes:
                inboxes.append(inbox)
        return inboxes

    async def detach_all(self) -> None:
        """Stop handling calls without touching them; the next start adopts them."""
        for task, session in list(self._sessions.items()):
            session.detach()
            task.cancel()
        for task in list(self._sessions):
            with contextlib.suppress(asyncio.CancelledError):
                await task
