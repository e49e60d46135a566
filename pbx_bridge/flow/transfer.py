"""The agent hands the call on: blind or attended transfer, one call and one recording.

The caller never leaves the call's bridge, so its recording goes on across the transfer
as one file with every voice in it (elsewhere, recordings that follow a channel stop at a
transfer, or keep only one side). Only the agents move:

- **blind** (``*8`` + extension + ``#``): the first agent leaves the conversation at
  once and hears ringing, as the caller does. The target answers: it joins the caller
  and the first agent's leg is hung up. It does not (busy, no answer, unreachable), or
  the first agent presses ``*``: the first agent is back with the caller and told why.
  A first agent who already hung up cannot be brought back: the caller is told the
  department could not take the call, and it ends.
- **attended** (``*9`` + extension + ``#``): the caller hears "please hold" and music on
  hold (``[call] transfer_hold_music``; empty: silence) in the call's bridge; the first
  agent talks with the target in a bridge of their own, which is not recorded and which
  the caller does not hear. The first agent hanging up, or pressing ``#``, completes it;
  ``*``, or the target not answering or hanging up, brings the first agent back. A
  first agent who hangs up while the target still rings makes it a blind one.

The disclosure is not replayed: the caller answered it once for this call. The target's
policy then applies (``policy.decide_recording`` with the call's legal basis and the
caller's answer): a ``never`` extension stops the recording before it joins (nothing of
it is recorded) and hears that it stopped; ``on-demand`` stops it too and waits for the
agent's ``*1``; an ``always`` extension keeps it going, or starts one if none ran.
Each attempt is a row of ``call_transfers``; a completed one is audited as
``call.transferred`` (calls/transfers.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from pbx_bridge.ari import AriError, AriNotFound
from pbx_bridge.ari import events as ev
from pbx_bridge.calls.extensions import extension_recording
from pbx_bridge.calls.transfers import (
    RecordingEffect,
    TransferAttempt,
    TransferMode,
    TransferOutcome,
    store_transfer,
)
from pbx_bridge.config import RecordingMode
from pbx_bridge.flow import names
from pbx_bridge.flow.call_control import CallControl
from pbx_bridge.flow.call_state import CallState
from pbx_bridge.flow.context import FlowContext
from pbx_bridge.flow.dial import AgentDialer, DialResult, dial_outcome
from pbx_bridge.flow.feature_codes import MAX_TARGET_DIGITS, FeatureAction, FeatureKind
from pbx_bridge.flow.inbox import AgentGone, CallerGone, CallInbox, InboxItem
from pbx_bridge.flow.player import PromptPlayer
from pbx_bridge.flow.policy import (
    ConsentOutcome,
    RecordingDecision,
    RecordingPlan,
    decide_recording,
)
from pbx_bridge.flow.recorder import ConversationRecorder
from pbx_bridge.metrics import TRANSFERS
from pbx_bridge.privacy import mask_number
from storage.models import utcnow

log = logging.getLogger(__name__)

T = TypeVar("T")

# As the call's own bridge: dtmf_events, so the first agent's "#" and "*" reach us while
# they talk with the target.
CONSULT_BRIDGE_TYPE = "mixing,dtmf_events"
RING = "tone:ring"
# The first agent's keys while the target rings or is consulted.
COMPLETE_KEY = "#"
CANCEL_KEY = "*"

# What the first agent hears when back with the caller, by what became of the target.
_BACK_PROMPT = {
    TransferOutcome.BUSY: "agent-transfer-busy",
    TransferOutcome.NO_ANSWER: "agent-transfer-no-answer",
    TransferOutcome.UNREACHABLE: "agent-transfer-failed",
    TransferOutcome.REFUSED: "agent-transfer-failed",
    TransferOutcome.CANCELLED: "agent-transfer-cancelled",
}
# What the caller hears when the first agent has gone and the target did not take it:
# the department's own messages, which say no more than that.
_CALLER_MESSAGE = {
    TransferOutcome.BUSY: "busy",
    TransferOutcome.NO_ANSWER: "no-answer",
}
_OUTCOME_OF_DIAL = {
    DialResult.BUSY: TransferOutcome.BUSY,
    DialResult.NO_ANSWER: TransferOutcome.NO_ANSWER,
    DialResult.UNREACHABLE: TransferOutcome.UNREACHABLE,
}


@dataclass(frozen=True)
class TransferRequest:
    mode: TransferMode
    extension: str
    requested_by: str  # the audit actor: "agent:100", "user:NAME", "token:ID"


def request_of(action: FeatureAction, actor: str) -> TransferRequest:
    """The agent's transfer code as a request."""
    mode = (TransferMode.BLIND if action.kind is FeatureKind.BLIND_TRANSFER
            else TransferMode.ATTENDED)
    return TransferRequest(mode, action.extension, actor)


def transfer_refused(extension: str, current: str) -> str | None:
    """Why the call cannot go to ``extension``, or None when it may (pure)."""
    if not extension:
        return "no extension was typed"
    if len(extension) > MAX_TARGET_DIGITS or not extension.isdigit():
        return f"{mask_number(extension)} is no extension"
    if extension == current:
        return f"the call is already at {extension}"
    return None


def recording_effect(recording: bool, plan: RecordingPlan) -> tuple[RecordingEffect, str | None]:
    """What the target's plan does to the call's recording, and what the target hears.

    A ``never`` extension must not be recorded, and an ``on-demand`` one only from its
    own ``*1``: either stops a running recording (and says so). ``always`` keeps it, or
    starts one where the first extension did not record.
    """
    if plan is RecordingPlan.RECORD:
        return (RecordingEffect.CONTINUED if recording else RecordingEffect.STARTED), None
    if not recording:
        return RecordingEffect.NONE, None
    if plan is RecordingPlan.ON_DEMAND:
        return RecordingEffect.STOPPED, "agent-transfer-on-demand"
    return RecordingEffect.STOPPED, "agent-transfer-not-recorded"


@dataclass
class _Attempt:
    """How one attempt is going, as the steps learn it."""

    request: TransferRequest
    from_extension: str
    first: str  # the first agent's leg
    leg: str  # the target's leg
    requested_at: datetime
    answered_at: datetime | None = None
    consult_bridge: str | None = None
    hold_prompt: str | None = None  # the caller's "please hold", while it plays
    music: bool = False  # music on hold in the call's bridge
    rings: tuple[str, ...] = ()  # ringing tones playing (first agent, caller)


class CallTransfer:
    """One transfer of one call; ``run`` returns the recording decision now in force."""

    def __init__(
        self,
        ctx: FlowContext,
        state: CallState,
        inbox: CallInbox,
        player: PromptPlayer,
        dialer: AgentDialer,
        recorder: ConversationRecorder,
    ) -> None:
        self._ctx = ctx
        self._state = state
        self._inbox = inbox
        self._player = player
        self._dialer = dialer
        self._recorder = recorder

    @property
    def _ari(self) -> CallControl:
        return self._ctx.ari

    async def run(
        self, request: TransferRequest, decision: RecordingDecision,
        report: Callable[[str | None], None] | None = None,
    ) -> RecordingDecision:
        """``report``: told at once why the transfer is refused, or None once it goes
        ahead (a transfer by API answers its asker so)."""
        state = self._state
        assert state.call_id is not None and state.agent_id is not None
        attempt = _Attempt(request, state.extension, state.agent_id,
                           names.agent_channel_id(), utcnow())
        refused = transfer_refused(request.extension, attempt.from_extension)
        if refused is not None:
            log.info("call %s: transfer by %s refused: %s", state.call_id,
                     request.requested_by, refused)
            if report is not None:
                report(refused)
            await self._store(attempt, TransferOutcome.REFUSED)
            await self._tell(attempt.first, _BACK_PROMPT[TransferOutcome.REFUSED])
            return decision
        if report is not None:
            report(None)
        log.info("call %s: %s transfer from %s to %s by %s", state.call_id,
                 request.mode.value, attempt.from_extension, mask_number(request.extension),
                 request.requested_by)
        state.transferring = True
        try:
            if request.mode is TransferMode.BLIND:
                outcome = await self._blind(attempt)
            else:
                outcome = await self._attended(attempt)
        except CallerGone:
            await self._abandon(attempt)
            await self._store(attempt, TransferOutcome.CALLER_LEFT)
            raise
        except BaseException:
            # Asterisk refused a step, or the service is shutting down (the session is
            # cancelled, the call left to Asterisk for the next start to adopt): the
            # first agent goes back to the caller, so what is left is a plain call.
            await self._abandon(attempt)
            await self._restore_first(attempt)
            raise
        finally:
            state.transferring = False
        if outcome is TransferOutcome.COMPLETED:
            try:
                effect, decision = await self._hand_over(attempt)
            except CallerGone:
                await self._store(attempt, TransferOutcome.CALLER_LEFT)
                raise
            await self._store(attempt, outcome, effect)
            log.info("call %s: transferred to %s (recording %s)", state.call_id,
                     mask_number(request.extension), effect.value)
            return decision
        await self._store(attempt, outcome)
        log.info("call %s: transfer to %s %s", state.call_id, mask_number(request.extension),
                 outcome.value)
        await self._back_to_caller(attempt, outcome)
        return decision

    # -- the two modes ---------------------------------------------------------------------

    async def _blind(self, attempt: _Attempt) -> TransferOutcome:
        """The first agent leaves the conversation and hears ringing, as the caller does."""
        bridge = self._bridge
        await self._on_first(attempt, self._ari.remove_channel(bridge, attempt.first))
        await self._ring_both(attempt)
        outcome = await self._ring_target(attempt)
        await self._stop_rings(attempt)
        return outcome

    async def _attended(self, attempt: _Attempt) -> TransferOutcome:
        """The caller holds in the call's bridge; the agents talk in their own."""
        state = self._state
        assert state.call_id is not None
        consult = names.consult_bridge_id(state.call_id)
        self._ctx.ownership.claim(consult, self._inbox)
        attempt.consult_bridge = consult
        await self._ari.create_bridge(type=CONSULT_BRIDGE_TYPE, bridge_id=consult,
                                      name=f"pbx-bridge transfer {state.call_id}")
        await self._on_first(attempt, self._ari.remove_channel(self._bridge, attempt.first))
        await self._on_first(attempt, self._ari.add_channel(consult, attempt.first))
        hold = self._ctx.prompts.get(state.language, "transfer-hold")
        attempt.hold_prompt = await self._on_caller(
            self._player.start(state.caller_id, hold.media))
        if not self._inbox.is_gone(attempt.first):
            attempt.rings = (await self._player.start(attempt.first, RING),)
        outcome = await self._ring_target(attempt)
        await self._stop_rings(attempt)
        if outcome is not TransferOutcome.COMPLETED:
            return outcome
        await self._ari.add_channel(consult, attempt.leg)
        if self._inbox.is_gone(attempt.first):
            return TransferOutcome.COMPLETED  # hung up while it rang: as a blind one
        return await self._consult(attempt)

    async def _consult(self, attempt: _Attempt) -> TransferOutcome:
        """The agents talk until the first lets go (hangs up or ``#``: completed), presses
        ``*`` or the target hangs up (cancelled)."""
        while True:
            item = await self._inbox.next()
            if item is None:  # only after a limit, and there is none
                continue
            await self._while_held(attempt, item)
            if self._inbox.is_gone(attempt.leg):
                return TransferOutcome.CANCELLED
            if self._inbox.is_gone(attempt.first):
                return TransferOutcome.COMPLETED
            key = _key_of(item, attempt.first)
            if key == COMPLETE_KEY:
                return TransferOutcome.COMPLETED
            if key == CANCEL_KEY:
                return TransferOutcome.CANCELLED

    # -- ringing the target ----------------------------------------------------------------

    async def _ring_target(self, attempt: _Attempt) -> TransferOutcome:
        """Ring the target's leg until it answers or cannot; the first agent's ``*``
        cancels (while they are still there to press it)."""
        if not await self._dialer.start_leg(attempt.request.extension, attempt.leg):
            return TransferOutcome.UNREACHABLE
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._dialer.answer_limit_s
        while (remaining := deadline - loop.time()) > 0:
            item = await self._inbox.next(remaining)
            if item is None:
                break
            await self._while_held(attempt, item)
            result = dial_outcome(item, attempt.leg)
            if result is DialResult.ANSWERED:
                attempt.answered_at = utcnow()
                return TransferOutcome.COMPLETED
            if result is not None:
                return _OUTCOME_OF_DIAL[result]
            if _key_of(item, attempt.first) == CANCEL_KEY:
                return TransferOutcome.CANCELLED
        return TransferOutcome.NO_ANSWER

    async def _ring_both(self, attempt: _Attempt) -> None:
        rings = [await self._on_caller(self._player.start(self._state.caller_id, RING))]
        if not self._inbox.is_gone(attempt.first):
            with contextlib.suppress(AriNotFound):
                rings.append(await self._player.start(attempt.first, RING))
        attempt.rings = tuple(rings)

    async def _stop_rings(self, attempt: _Attempt) -> None:
        rings, attempt.rings = attempt.rings, ()
        for playback in rings:
            await self._quietly(self._player.stop(playback))

    # -- the caller on hold ----------------------------------------------------------------

    async def _while_held(self, attempt: _Attempt, item: InboxItem) -> None:
        """Once "please hold" has been said, the music (if any) begins."""
        if (
            attempt.hold_prompt is not None
            and isinstance(item, ev.PlaybackFinished)
            and item.playback.id == attempt.hold_prompt
        ):
            attempt.hold_prompt = None
            music = self._ctx.call.transfer_hold_music
            if music:
                try:
                    await self._ari.start_bridge_moh(self._bridge, music)
                    attempt.music = True
                except AriError as exc:  # no such class: the caller holds in silence
                    log.warning("call %s: music on hold %r: %s", self._state.call_id, music,
                                exc)

    async def _end_hold(self, attempt: _Attempt) -> None:
        if attempt.hold_prompt is not None:
            await self._quietly(self._player.stop(attempt.hold_prompt))
            attempt.hold_prompt = None
        if attempt.music:
            attempt.music = False
            await self._quietly(self._ari.stop_bridge_moh(self._bridge))

    # -- how it ends -----------------------------------------------------------------------

    async def _hand_over(self, attempt: _Attempt) -> tuple[RecordingEffect, RecordingDecision]:
        """The target takes the call: the first agent's leg goes, the target joins the
        caller under its own policy (a recording it may not have stops before it joins)."""
        state = self._state
        target = attempt.request.extension
        await self._end_hold(attempt)
        if attempt.consult_bridge is not None:
            await self._quietly(self._ari.remove_channel(attempt.consult_bridge, attempt.leg))
            await self._destroy_consult(attempt)
        await self._dialer.hangup_leg(attempt.first)
        state.agent_id, state.agent_extension = attempt.leg, target
        decision = await self._decide(target)
        effect, prompt = recording_effect(self._recorder.recording, decision.plan)
        if effect is RecordingEffect.STOPPED:
            await self._recorder.stop()
        await self._on_caller(self._ari.add_channel(self._bridge, attempt.leg))
        if effect is RecordingEffect.STARTED and not await self._recorder.start():
            effect = RecordingEffect.NONE
        if prompt is not None:
            await self._tell(attempt.leg, prompt)
        return effect, decision

    async def _back_to_caller(self, attempt: _Attempt, outcome: TransferOutcome) -> None:
        """The target did not take it: the first agent is back with the caller, told why;
        if they had hung up, the caller is told the department could not take the call."""
        await self._dialer.hangup_leg(attempt.leg)
        await self._end_hold(attempt)
        if attempt.consult_bridge is not None:
            await self._quietly(self._ari.remove_channel(attempt.consult_bridge,
                                                         attempt.first))
            await self._destroy_consult(attempt)
        if self._inbox.is_gone(attempt.first):
            message = _CALLER_MESSAGE.get(outcome, "unreachable")
            prompt = self._ctx.prompts.get(self._state.language, message)
            await self._on_caller(self._player.play(self._state.caller_id, prompt.media,
                                                    barge_in=False))
            raise AgentGone(attempt.first, f"transfer {outcome.value}; the agent had left")
        await self._on_first(attempt, self._ari.add_channel(self._bridge, attempt.first))
        await self._tell(attempt.first, _BACK_PROMPT[outcome])

    async def _abandon(self, attempt: _Attempt) -> None:
        """The call ends mid-transfer: nothing of the attempt is left in Asterisk (the
        session's end stops the recording and hangs up the rest)."""
        await self._stop_rings(attempt)
        await self._dialer.hangup_leg(attempt.leg)
        if attempt.consult_bridge is not None:
            await self._destroy_consult(attempt)

    async def _restore_first(self, attempt: _Attempt) -> None:
        await self._end_hold(attempt)
        if self._inbox.is_gone(attempt.first) or self._inbox.is_gone(self._state.caller_id):
            return
        await self._quietly(self._ari.add_channel(self._bridge, attempt.first))

    async def _destroy_consult(self, attempt: _Attempt) -> None:
        bridge, attempt.consult_bridge = attempt.consult_bridge, None
        if bridge is not None:
            await self._quietly(self._ari.destroy_bridge(bridge))
            self._ctx.ownership.release(bridge)

    async def _decide(self, extension: str) -> RecordingDecision:
        state = self._state
        async with self._ctx.sessions() as session:
            mode = await extension_recording(session, extension)
        decision = decide_recording(
            state.legal_basis, state.consent or ConsentOutcome.NOT_ASKED, RecordingMode(mode),
            do_not_record=state.do_not_record,
        )
        log.info("call %s: at %s, recording %s (%s)", state.call_id, mask_number(extension),
                 decision.plan.value, decision.reason)
        return decision

    async def _store(self, attempt: _Attempt, outcome: TransferOutcome,
                     effect: RecordingEffect | None = None) -> None:
        assert self._state.call_id is not None
        request = attempt.request
        TRANSFERS.labels(request.mode.value, outcome.value).inc()
        await store_transfer(self._ctx.sessions, TransferAttempt(
            call_id=self._state.call_id, mode=request.mode,
            from_extension=attempt.from_extension, to_extension=request.extension[:64],
            requested_by=request.requested_by, requested_at=attempt.requested_at,
            ended_at=utcnow(), outcome=outcome, answered_at=attempt.answered_at,
            recording=effect,
        ))

    # -- helpers ---------------------------------------------------------------------------

    @property
    def _bridge(self) -> str:
        assert self._state.bridge_id is not None
        return self._state.bridge_id

    async def _tell(self, channel_id: str, name: str) -> None:
        """A prompt to an agent (in the route's language, as the agents' prompts are)."""
        prompt = self._ctx.prompts.get(self._state.known_route.language.value, name)
        await self._quietly(self._player.start(channel_id, prompt.media))

    async def _on_caller(self, step: Awaitable[T]) -> T:
        try:
            return await step
        except AriNotFound as exc:
            raise CallerGone(self._state.caller_id, "channel gone") from exc

    async def _on_first(self, attempt: _Attempt, step: Awaitable[object]) -> None:
        """A step on the first agent's leg: if it has gone meanwhile, the transfer goes on
        without it (its departure is in the inbox)."""
        try:
            await step
        except AriError as exc:
            if not self._inbox.is_gone(attempt.first) and not isinstance(exc, AriNotFound):
                raise
            log.info("call %s: the transferring agent left: %s", self._state.call_id, exc)

    async def _quietly(self, step: Awaitable[object]) -> None:
        try:
            await step
        except AriError as exc:
            if not isinstance(exc, AriNotFound):
                log.warning("call %s: transfer step failed: %s", self._state.call_id, exc)


def _key_of(item: InboxItem, channel_id: str) -> str | None:
    if isinstance(item, ev.ChannelDtmfReceived) and item.channel.id == channel_id:
        return item.digit
    return None


__all__ = [
    "CallTransfer",
    "TransferRequest",
    "recording_effect",
    "request_of",
    "transfer_refused",
]
