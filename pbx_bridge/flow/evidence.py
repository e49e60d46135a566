"""The evidence clip: what the caller heard and pressed, from the disclosure to the decision.

ARI's channel record would queue behind the disclosure playback on the same channel,
so the clip is taken from a snoop channel that hears both directions: the prompt going
to the caller and the caller's own audio and keys.
"""

from __future__ import annotations

import asyncio
import logging

from pbx_bridge.ari import AriError, AriNotFound
from pbx_bridge.ari import events as ev
from pbx_bridge.flow import names
from pbx_bridge.flow.call_state import CallState
from pbx_bridge.flow.context import FlowContext
from pbx_bridge.flow.inbox import CallInbox
from storage.models import RecordingKind

log = logging.getLogger(__name__)

_START_TIMEOUT_S = 3.0


class EvidenceClip:
    """The clip of one call; its snoop and recording id are the call's state
    (``evidence_snoop_id``, ``evidence_recording_id``)."""

    def __init__(self, ctx: FlowContext, state: CallState, inbox: CallInbox) -> None:
        assert state.call_id is not None, "the call is opened before its clip starts"
        self._ctx = ctx
        self._state = state
        self._inbox = inbox
        self._call_id = state.call_id
        self._legal_basis = state.legal_basis.value
        self._name: str | None = None

    @property
    def _snoop_id(self) -> str | None:
        return self._state.evidence_snoop_id

    async def start(self) -> None:
        """Best effort: a failed clip is logged and the call goes on without it.

        The consent row is the proof; the clip corroborates it. Refusing the call
        because the clip failed would punish the caller for our fault.
        """
        caller_id = self._state.caller_id
        snoop_id = names.evidence_snoop_id()
        self._ctx.ownership.claim(snoop_id, self._inbox)
        self._state.evidence_snoop_id = snoop_id
        try:
            await self._ctx.ari.snoop(
                caller_id,
                spy="both",
                app=self._ctx.app,
                app_args=f"snoop,{self._call_id}",
                snoop_id=snoop_id,
            )
        except AriError as exc:
            log.warning("call %s: evidence snoop failed: %s", self._call_id, exc)
            self._forget_snoop()
            return
        # The row is committed while the snoop enters the app: neither waits for the other.
        row = asyncio.ensure_future(self._ctx.pipeline.begin(
            call_id=self._call_id,
            kind=RecordingKind.EVIDENCE,
            legal_basis=self._legal_basis,
            retention_class="evidence",
            retention_days=self._ctx.retention.evidence_days,
            format="wav",
        ))
        try:
            entered = await self._inbox.entered_app([snoop_id], _START_TIMEOUT_S)
        except BaseException:
            # The caller left meanwhile: no recording will follow the committed row.
            await self._ctx.pipeline.mark_failed((await row).id, "caller left before the clip")
            raise
        recording = await row
        if not entered:
            log.warning("call %s: evidence snoop did not confirm entering the app", self._call_id)
        self._state.evidence_recording_id = recording.id
        try:
            await self._ctx.ari.record(
                snoop_id, recording.asterisk_name, format="wav", if_exists="fail"
            )
        except AriError as exc:
            log.warning("call %s: evidence recording failed: %s", self._call_id, exc)
            await self._ctx.pipeline.mark_failed(recording.id, f"ARI record failed: {exc}")
            self._state.evidence_recording_id = None
            await self._hangup_snoop()
            return
        self._name = recording.asterisk_name
        await self._await_started(recording.asterisk_name)

    async def stop(self) -> None:
        if self._name is not None:
            name, self._name = self._name, None
            try:
                await self._ctx.ari.stop_recording(name)
            except AriNotFound:
                pass  # it ended with the channel; RecordingFinished still comes
            except AriError as exc:
                log.warning("call %s: stopping evidence failed: %s", self._call_id, exc)
        await self._hangup_snoop()

    async def _await_started(self, name: str) -> None:
        """Answer the caller (and so start the disclosure) only once the clip is running,
        so it holds all of it.

        A caller answered earlier (on-connect) may press keys meanwhile; they stay in the
        inbox: the dialogue finds them, early (before the disclosure began), and keeps
        them in the consent row.
        """
        started = await self._inbox.wait_for(
            lambda i: isinstance(i, ev.RecordingStarted) and i.recording.name == name,
            _START_TIMEOUT_S,
        )
        if started is None:
            log.warning("call %s: evidence recording did not confirm its start", self._call_id)

    async def _hangup_snoop(self) -> None:
        if self._snoop_id is None:
            return
        try:
            await self._ctx.ari.hangup(self._snoop_id)
        except AriNotFound:
            pass
        except AriError as exc:
            log.warning("call %s: snoop hangup failed: %s", self._call_id, exc)
        self._forget_snoop()

    def _forget_snoop(self) -> None:
        if self._snoop_id is not None:
            self._ctx.ownership.release(self._snoop_id)
            self._state.evidence_snoop_id = None
