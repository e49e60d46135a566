"""Ringing the department: one outbound leg, and what became of it."""

from __future__ import annotations

import logging
from enum import StrEnum

from pbx_bridge.ari import AriError, AriNotFound
from pbx_bridge.ari import events as ev
from pbx_bridge.flow import names
from pbx_bridge.flow.call_state import CallState
from pbx_bridge.flow.context import FlowContext
from pbx_bridge.flow.inbox import CallInbox, InboxItem

log = logging.getLogger(__name__)

# Give Asterisk this long past its own ring timeout to report before we give up ourselves.
_DIAL_SLACK_S = 5.0
# A created channel enters our app asynchronously; dialling before that is refused (409).
_ENTER_APP_TIMEOUT_S = 5.0


class DialResult(StrEnum):
    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    UNREACHABLE = "unreachable"


_DIALSTATUS = {
    "ANSWER": DialResult.ANSWERED,
    "BUSY": DialResult.BUSY,
    "NOANSWER": DialResult.NO_ANSWER,
    "CANCEL": DialResult.NO_ANSWER,
    "CHANUNAVAIL": DialResult.UNREACHABLE,
    "CONGESTION": DialResult.UNREACHABLE,
}

# Q.850 causes seen on ChannelDestroyed when no Dial status reached us first.
_CAUSES = {17: DialResult.BUSY, 18: DialResult.NO_ANSWER, 19: DialResult.NO_ANSWER}


class AgentDialer:
    """Rings the department for one call; the leg it makes is the call's ``agent_id``."""

    def __init__(self, ctx: FlowContext, state: CallState, inbox: CallInbox) -> None:
        self._ctx = ctx
        self._state = state
        self._inbox = inbox

    @property
    def _call_id(self) -> str | None:
        return self._state.call_id

    async def dial(self, extension: str) -> DialResult:
        """Ring the extension for the configured time; the leg stays ours if answered."""
        agent_id = names.agent_channel_id()
        self._state.agent_id = agent_id
        if not await self.start_leg(extension, agent_id):
            await self.hangup()
            return DialResult.UNREACHABLE
        result = await self._await_result(agent_id, self.answer_limit_s)
        if result is DialResult.ANSWERED:
            self._state.agent_answered = True  # from now on its hangup ends the call
        else:
            await self.hangup()
        return result

    @property
    def answer_limit_s(self) -> float:
        """How long to wait for a leg's answer: Asterisk's ring timeout and a margin."""
        return self._ctx.call.ring_timeout_s + _DIAL_SLACK_S

    async def start_leg(self, extension: str, leg_id: str) -> bool:
        """Make the leg ``leg_id`` to the extension and ring it (the call owns it from
        before the request); False when it cannot ring. Its answer (or not) comes as
        the inbox items ``dial_outcome`` reads: the caller's leg is its originator, so a
        transfer's new leg too is tied to the call in CDRs and CEL."""
        caller_id = self._state.caller_id
        self._ctx.ownership.claim(leg_id, self._inbox)
        endpoint = self._ctx.call.dial_template.format(ext=extension)
        try:
            await self._ctx.ari.create_channel(
                endpoint,
                app=self._ctx.app,
                app_args=f"agent,{self._call_id}",
                channel_id=leg_id,
                originator=caller_id,
            )
            if not await self._entered_app(leg_id):
                log.warning("call %s: leg for %s never entered the app", self._call_id, endpoint)
                return False
            await self._ctx.ari.dial(leg_id, caller=caller_id,
                                     timeout_s=self._ctx.call.ring_timeout_s)
        except AriError as exc:
            log.warning("call %s: cannot dial %s: %s", self._call_id, endpoint, exc)
            return False
        return True

    async def hangup_leg(self, leg_id: str) -> None:
        """Hang up a leg of the call that is not (or no longer) its agent."""
        if not self._inbox.is_gone(leg_id):
            try:
                await self._ctx.ari.hangup(leg_id)
            except AriNotFound:
                pass
            except AriError as exc:
                log.warning("call %s: leg hangup failed: %s", self._call_id, exc)
        self._ctx.ownership.release(leg_id)

    async def hangup(self) -> None:
        if self._state.agent_id is None:
            return
        agent_id, self._state.agent_id = self._state.agent_id, None
        await self.hangup_leg(agent_id)

    async def _entered_app(self, agent_id: str) -> bool:
        item = await self._inbox.wait_for(
            lambda i: isinstance(i, ev.StasisStart | ev.ChannelDestroyed)
            and i.channel.id == agent_id,
            _ENTER_APP_TIMEOUT_S,
        )
        return isinstance(item, ev.StasisStart)

    async def _await_result(self, agent_id: str, limit_s: float) -> DialResult:
        item = await self._inbox.wait_for(lambda i: dial_outcome(i, agent_id) is not None,
                                          limit_s)
        outcome = None if item is None else dial_outcome(item, agent_id)
        return outcome or DialResult.NO_ANSWER


def dial_outcome(item: InboxItem, leg_id: str) -> DialResult | None:
    """What this event says became of ringing the leg; None when it says nothing."""
    if isinstance(item, ev.Dial):
        if item.peer.id == leg_id and item.dialstatus in _DIALSTATUS:
            return _DIALSTATUS[item.dialstatus]
        return None
    if isinstance(item, ev.ChannelDestroyed) and item.channel.id == leg_id:
        return _CAUSES.get(item.cause, DialResult.UNREACHABLE)
    return None
