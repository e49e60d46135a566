"""Ringing the department: one outbound leg per extension rung, and what became of them.

A route rings one extension or a ring group (``flow/ring_group.py`` plans the waves:
every member at once, or one after another). Each leg rung is claimed for the call
before it is created, so none of its events arrives unowned, and is hung up (and its
claim released) as soon as it is of no more use: when it did not answer, or when another
member answered first. Only the leg that answered becomes the call's ``agent_id``; it
alone is ever bridged or recorded. A caller who hangs up while legs ring leaves the
wait with ``CallerGone``; the session's clean-up (``hangup``) ends every leg still rung.
"""

from __future__ import annotations

import asyncio
import logging

from pbx_bridge.ari import AriError, AriNotFound
from pbx_bridge.ari import events as ev
from pbx_bridge.calls.ring_groups import Member
from pbx_bridge.flow import names
from pbx_bridge.flow.call_state import CallState
from pbx_bridge.flow.context import FlowContext
from pbx_bridge.flow.dial_result import CAUSES, DIALSTATUS, DialResult
from pbx_bridge.flow.inbox import CallInbox, InboxItem
from pbx_bridge.flow.ring_group import Ringing, group_result, ring_seconds, ring_waves, single

log = logging.getLogger(__name__)

# Give Asterisk this long past its own ring timeout to report before we give up ourselves.
_DIAL_SLACK_S = 5.0
# A created channel enters our app asynchronously; dialling before that is refused (409).
_ENTER_APP_TIMEOUT_S = 5.0


class AgentDialer:
    """Rings the department for one call; the leg that answers is the call's ``agent_id``
    and its extension the call's ``extension``."""

    def __init__(self, ctx: FlowContext, state: CallState, inbox: CallInbox) -> None:
        self._ctx = ctx
        self._state = state
        self._inbox = inbox
        # Legs ringing now (not yet answered), by leg id: the member each rings.
        self._ringing: dict[str, Member] = {}
        # An agent's call out rings one endpoint over the trunk, not an extension's.
        self._endpoint: str | None = None

    @property
    def _call_id(self) -> str | None:
        return self._state.call_id

    @property
    def ringing_legs(self) -> tuple[str, ...]:
        return tuple(self._ringing)

    async def dial(self, extension: str) -> DialResult:
        """Ring one extension for the configured time; the leg stays ours if answered."""
        return await self.ring(single(extension))

    async def dial_endpoint(self, endpoint: str, label: str) -> DialResult:
        """Ring an Asterisk endpoint (``PJSIP/05321234567@carrier``) as one member named
        ``label``; the leg stays ours if answered."""
        self._endpoint = endpoint
        try:
            return await self.ring(single(label))
        finally:
            self._endpoint = None

    @property
    def answer_limit_s(self) -> float:
        """How long to wait for a leg's answer: Asterisk's ring timeout and a margin."""
        return self._ctx.call.ring_timeout_s + _DIAL_SLACK_S

    async def start_leg(self, extension: str, leg_id: str) -> bool:
        """Make the leg ``leg_id`` to the extension and ring it for the configured time
        (the call owns it from before the request); False when it cannot ring. Its
        answer (or not) comes as the inbox items ``dial_outcome`` reads: the caller's leg
        is its originator, so a transfer's new leg too is tied to the call in CDRs and
        CEL."""
        self._ctx.ownership.claim(leg_id, self._inbox)
        endpoint = self._ctx.call.dial_template.format(ext=extension)
        try:
            await self._ctx.ari.create_channel(
                endpoint, app=self._ctx.app, app_args=f"agent,{self._call_id}",
                channel_id=leg_id, originator=self._state.caller_id,
            )
            if leg_id not in await self._entered_app([leg_id]):
                log.warning("call %s: leg for %s never entered the app", self._call_id, endpoint)
                return False
            await self._ctx.ari.dial(leg_id, caller=self._state.caller_id,
                                     timeout_s=self._ctx.call.ring_timeout_s)
        except AriError as exc:
            log.warning("call %s: cannot dial %s: %s", self._call_id, endpoint, exc)
            return False
        return True

    async def hangup_leg(self, leg_id: str) -> None:
        """Hang up a leg of the call that is not (or no longer) its agent."""
        await self._hang_up(leg_id)

    async def ring(self, ringing: Ringing) -> DialResult:
        """Ring the members wave after wave until one answers; one result for them all."""
        results: list[DialResult] = []
        for wave in ring_waves(ringing):
            results.extend(await self._ring_wave(wave))
            if DialResult.ANSWERED in results:
                break
        return group_result(results)

    async def hangup(self) -> None:
        """End every leg of ours: those still ringing, and the answered one."""
        for leg in list(self._ringing):
            await self._drop(leg)
        if self._state.agent_id is None:
            return
        agent_id, self._state.agent_id = self._state.agent_id, None
        await self._hang_up(agent_id)

    # -- one wave: these members rung together ------------------------------------------------

    async def _ring_wave(self, wave: tuple[Member, ...]) -> list[DialResult]:
        results: dict[str, DialResult] = {}
        created: list[str] = []
        for member in wave:
            leg = await self._create(member)
            if leg is None:
                results[member.extension] = DialResult.UNREACHABLE
            else:
                created.append(leg)
        entered = await self._entered_app(created)
        dialled: dict[str, int] = {}
        for leg in created:
            member = self._ringing[leg]
            if leg not in entered:
                log.warning("call %s: leg for %s never entered the app", self._call_id,
                            member.extension)
                results[member.extension] = DialResult.UNREACHABLE
                await self._drop(leg)
                continue
            seconds = ring_seconds(member, self._ctx.call.ring_timeout_s)
            try:
                await self._ctx.ari.dial(leg, caller=self._state.caller_id, timeout_s=seconds)
            except AriError as exc:
                log.warning("call %s: cannot dial %s: %s", self._call_id, member.extension, exc)
                results[member.extension] = DialResult.UNREACHABLE
                await self._drop(leg)
                continue
            dialled[leg] = seconds
        if dialled:
            results.update(await self._first_answer(dialled))
        return list(results.values())

    async def _create(self, member: Member) -> str | None:
        leg = names.agent_channel_id()
        self._ctx.ownership.claim(leg, self._inbox)
        self._ringing[leg] = member
        endpoint = self._endpoint or self._ctx.call.dial_template.format(ext=member.extension)
        try:
            await self._ctx.ari.create_channel(
                endpoint, app=self._ctx.app, app_args=f"agent,{self._call_id}",
                channel_id=leg, originator=self._state.caller_id,
            )
        except AriError as exc:
            # member.extension, not the endpoint: an outbound endpoint holds the callee's
            # number (PJSIP/0532...@carrier), which is personal data.
            log.warning("call %s: cannot dial %s: %s", self._call_id, member.extension, exc)
            await self._drop(leg)
            return None
        return leg

    async def _entered_app(self, legs: list[str]) -> set[str]:
        """The legs whose StasisStart came (a leg destroyed first never will)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _ENTER_APP_TIMEOUT_S
        pending, entered = set(legs), set()
        while pending and (remaining := deadline - loop.time()) > 0:
            item = await self._inbox.wait_for(
                lambda i: isinstance(i, ev.StasisStart | ev.ChannelDestroyed)
                and i.channel.id in pending,
                remaining,
            )
            if item is None:
                break
            assert isinstance(item, ev.StasisStart | ev.ChannelDestroyed)
            pending.discard(item.channel.id)
            if isinstance(item, ev.StasisStart):
                entered.add(item.channel.id)
        return entered

    async def _first_answer(self, dialled: dict[str, int]) -> dict[str, DialResult]:
        """Wait until one leg answers (the others are hung up at once) or none is left."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(dialled.values()) + _DIAL_SLACK_S
        pending = set(dialled)
        results: dict[str, DialResult] = {}

        def outcome(item: InboxItem) -> tuple[str, DialResult] | None:
            leg = item.peer.id if isinstance(item, ev.Dial) else (
                item.channel.id if isinstance(item, ev.ChannelDestroyed) else None)
            if leg not in pending:
                return None
            result = dial_outcome(item, leg)
            return None if result is None else (leg, result)

        while pending and (remaining := deadline - loop.time()) > 0:
            item = await self._inbox.wait_for(lambda i: outcome(i) is not None, remaining)
            if item is None:
                break
            decided = outcome(item)
            assert decided is not None
            leg, result = decided
            pending.discard(leg)
            member = self._ringing[leg]
            results[member.extension] = result
            if result is DialResult.ANSWERED:
                self._won(leg)
                break
            await self._drop(leg)
        for leg in list(pending):  # Asterisk never said: as good as unanswered
            results[self._ringing[leg].extension] = DialResult.NO_ANSWER
        for leg in list(self._ringing):  # the others of a wave someone answered
            await self._drop(leg)
        return results

    def _won(self, leg: str) -> None:
        member = self._ringing.pop(leg)
        self._state.agent_id = leg
        self._state.agent_extension = member.extension
        self._state.agent_answered = True  # from now on its hangup ends the call

    async def _drop(self, leg: str) -> None:
        self._ringing.pop(leg, None)
        await self._hang_up(leg)

    async def _hang_up(self, leg: str) -> None:
        if not self._inbox.is_gone(leg):
            try:
                await self._ctx.ari.hangup(leg)
            except AriNotFound:
                pass
            except AriError as exc:
                log.warning("call %s: agent hangup failed: %s", self._call_id, exc)
        self._ctx.ownership.release(leg)


def dial_outcome(item: InboxItem, leg_id: str) -> DialResult | None:
    """What this event says became of ringing the leg; None when it says nothing."""
    if isinstance(item, ev.Dial):
        if item.peer.id == leg_id and item.dialstatus in DIALSTATUS:
            return DIALSTATUS[item.dialstatus]
        return None
    if isinstance(item, ev.ChannelDestroyed) and item.channel.id == leg_id:
        return CAUSES.get(item.cause, DialResult.UNREACHABLE)
    return None


__all__ = ["AgentDialer", "DialResult", "dial_outcome"]
