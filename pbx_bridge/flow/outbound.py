"""One agent's call out, as the callee lives it: ring, announce on answer, connect, record.

An agent's phone dials a number into ``[pbx-bridge-outbound]``; the agent's channel enters
the app first, and this session dials the callee over the trunk (the outbound route's
dial template, by the number's longest prefix) or, for a number that is an extension,
the colleague's phone. While the callee is rung and then hears the notice, the agent
hears ringback: they are joined only once the callee has been told (or asked) what
inbound callers are told, with the call's reference, truthful per the outbound route's
legal basis. Consent means what it means inbound (``flow.policy``); the recording follows
the agent's outbound cell (``ext set 100 --outbound-external never``).

Once the callee answers, the parties take the roles an inbound call gives them: the
callee is the call's ``caller`` (whose number is the personal data kept, and whose
departure ends the call, who hears the notice and is on the recording's left) and the
agent is its ``agent`` (whose keypad drives the feature codes, on the right). So every
step after the answer is the inbound session's own, and a call adopted after a restart
is the same shape as an inbound one.
"""

from __future__ import annotations

import logging
import re

from pbx_bridge.ari import CallerId, Channel
from pbx_bridge.calls.extensions import extension_recording, get_extension, validate_extension
from pbx_bridge.calls.outbound_routes import resolve_outbound_route
from pbx_bridge.calls.retention import class_days
from pbx_bridge.calls.routes import ResolvedRoute
from pbx_bridge.config import Announcement, RecordingMode
from pbx_bridge.flow.call_state import CallState, route_snapshot
from pbx_bridge.flow.context import FlowContext
from pbx_bridge.flow.dial import DialResult
from pbx_bridge.flow.inbox import LegGone
from pbx_bridge.flow.policy import ConsentOutcome, Direction, Scope, strictest
from pbx_bridge.flow.session import CallEnded, CallSession
from pbx_bridge.flow.together import together
from pbx_bridge.flow.withdrawal import on_do_not_record_list
from pbx_bridge.privacy import mask_number
from storage.models import utcnow

log = logging.getLogger(__name__)

# The agent's phone is told how the call failed, as a phone expects it (486, 480, 503),
# rather than a prompt meant for customers.
_HANGUP_REASON = {
    DialResult.BUSY: "busy",
    DialResult.NO_ANSWER: "no_answer",
    DialResult.UNREACHABLE: "congestion",
}
_DISPOSITION = {
    DialResult.BUSY: "busy",
    DialResult.NO_ANSWER: "no-answer",
    DialResult.UNREACHABLE: "failed",
}


def is_internal(number: str, pattern: str) -> bool:
    """Is the dialled number one of our extensions (``[call] internal_number_pattern``)?"""
    return re.fullmatch(pattern, number) is not None


class OutboundSession(CallSession):
    """An agent's call out; the state starts with the agent as its ``caller`` and the
    dialled number as its ``did``, and turns to face the callee once they answer."""

    def __init__(self, ctx: FlowContext, state: CallState, *, agent: str = "") -> None:
        super().__init__(ctx, state)
        # The agent's extension (Stasis argument 3: CHANNEL(endpoint) or CALLERID(num)).
        self._agent_extension = agent
        self._agent_channel = state.caller
        self._facing_callee = False
        self._dial_template: str | None = None  # the outbound route's, if it has one

    # -- the call, top to bottom ---------------------------------------------------------

    async def _call(self, route: ResolvedRoute) -> tuple[str, str]:
        try:
            return await self._call_out(route)
        except LegGone as gone:
            raise self._who_left(gone) from gone

    async def _call_out(self, route: ResolvedRoute) -> tuple[str, str]:
        consent = self.state.consent
        if self.state.joined:  # adopted while the parties talk
            return await self._resume_connected(route, consent or ConsentOutcome.NOT_ASKED)
        if self.state.adopted:
            # Nobody can tell what the callee heard; the agent dials again.
            raise CallEnded("failed", "the service restarted before the callee was connected")

        result = await self._ring_callee(route)
        if result is not DialResult.ANSWERED:
            await self._quietly(self.ctx.ari.hangup(self.caller.id, _HANGUP_REASON[result]))
            raise CallEnded(_DISPOSITION[result], f"callee {result.value}")
        self._face_callee()

        if self._skips_recording(route):
            consent = await self._confirm_do_not_record(route)
        elif route.announcement is Announcement.BEFORE_CONNECT:
            consent = await self._ask_consent(route)
        elif route.announcement is Announcement.NOTICE_ONLY:
            consent = await self._play_notice(route)
        else:
            consent = await self._record_not_asked(route)

        assert self.state.agent_id is not None
        await self.ctx.ari.answer(self.state.agent_id)  # the agent's ringback ends here
        await self._join(route)
        decision = await self._decide(route, consent)
        return await self._converse(route, decision)

    # -- steps ----------------------------------------------------------------------------

    async def _open_call(self) -> ResolvedRoute:
        state = self.state
        if state.route is not None:  # adopted: its row says who is who
            await self._face_callee_adopted()
            return await super()._open_call()
        number = state.did
        agent = self._agent_extension or self.caller.caller.number
        try:
            validate_extension(agent)
        except ValueError as exc:
            raise CallEnded("failed", f"outbound call from an unknown extension: {exc}") from exc
        internal = is_internal(number, self.ctx.call.internal_number_pattern)
        callee_number = None if internal else number
        state.subject_key = self.ctx.subjects.key_of(callee_number)
        (route, days), linkedid, state.do_not_record = await together(
            self._route_and_days(number, agent, internal=internal),
            self._on_caller(self.ctx.ari.get_variable(self.caller.id, "CHANNEL(linkedid)")),
            on_do_not_record_list(self.ctx, state.subject_key),
        )
        state.route = route
        state.retention_days = days
        opened = await self.ctx.journal.open_call(
            linkedid=linkedid or self.caller.id,
            channel_id=self.caller.id,
            direction=Direction.OUTBOUND.value,
            caller=callee_number,
            did=route.did,
            extension=agent,
            announcement=route.announcement.value,
            legal_basis=route.legal_basis.value,
            retention_class=state.retention_class,
            language=state.language,
            route_snapshot=route_snapshot(route),
        )
        state.call_id, state.reference = opened.id, opened.reference
        log.info(
            "call %s: outbound %s call from extension %s to %s, outbound route %s, "
            "reference %s", state.call_id, "internal" if internal else "external", agent,
            number if internal else mask_number(number),
            "default" if route.is_default else route.did, state.reference,
        )
        return route

    async def _route_and_days(
        self, number: str, agent: str, *, internal: bool
    ) -> tuple[ResolvedRoute, int]:
        """The outbound route for the number (a colleague's call: no announcement, the
        internal basis), and the class's days, read together as inbound."""
        default = self.ctx.default_outbound_route
        async with self.ctx.sessions() as session:
            info = await resolve_outbound_route(
                session, number, default, self.ctx.default_language
            )
            route = info.for_agent(agent)
            self._dial_template = info.dial_template  # the route's own trunk, if any
            if internal:
                route = ResolvedRoute(
                    did=number, target=agent, announcement=Announcement.NONE,
                    language=route.language, legal_basis=default.internal_legal_basis,
                    timeout_means=route.timeout_means, prompt_timeout_s=route.prompt_timeout_s,
                    retention_class=route.retention_class, is_default=True, internal=True,
                )
            extension = await get_extension(session, agent)
            own = extension.retention_class if extension is not None else None
            self.state.retention_class = own or route.retention_class
            days = await class_days(session, self.state.retention_class, self.ctx.retention)
            return route, days

    def _dial_endpoint(self, route: ResolvedRoute) -> str:
        if route.internal:
            return self.ctx.call.dial_template.format(ext=route.did)
        template = self._dial_template or self.ctx.call.outbound_dial_template
        return template.format(number=self.state.did)

    async def _ring_callee(self, route: ResolvedRoute) -> DialResult:
        """The agent hears ringback (their phone's 180) until the callee has been told."""
        assert self.call_id is not None
        await self._on_caller(self.ctx.ari.ring(self.caller.id))
        result = await self._dialer.dial_endpoint(
            self._dial_endpoint(route), route.did if route.internal else "callee")
        if result is DialResult.ANSWERED:
            await self.ctx.journal.answered(self.call_id)
        log.info("call %s: callee %s", self.call_id, result.value)
        return result

    def _face_callee(self) -> None:
        """The callee answered: from now on they are the call's ``caller`` (heard, asked,
        recorded left) and the agent its ``agent`` (feature codes, recorded right)."""
        state = self.state
        callee_id = state.agent_id
        assert callee_id is not None
        number = "" if state.known_route.internal else state.did
        state.caller = Channel(callee_id, state="Up", caller=CallerId("", number))
        state.agent_id = self._agent_channel.id
        state.agent_extension = None  # the call's extension is the agent's (route.target)
        state.caller_answered = True
        state.answered_at = utcnow()
        self._facing_callee = True

    async def _face_callee_adopted(self) -> None:
        """A connected call found after a restart: its row's channel is the agent's, and
        the bridge's other leg of ours is the callee."""
        state = self.state
        if not state.joined or state.agent_id is None:
            return
        callee = await self.ctx.ari.get_channel(state.agent_id)
        state.caller, state.agent_id = callee, state.caller.id
        self._facing_callee = True

    def _who_left(self, gone: LegGone) -> CallEnded:
        """Say who hung up in the product's words: the agent or the callee."""
        answered = self.state.agent_answered
        if gone.channel_id == self._agent_channel.id:
            if answered:
                return CallEnded("answered", f"agent hung up ({gone.cause})")
            return CallEnded("abandoned", f"agent hung up while the callee rang ({gone.cause})")
        return CallEnded("answered", f"callee hung up ({gone.cause})")

    async def _extension_mode(self, route: ResolvedRoute) -> RecordingMode:
        """The agent's outbound cell; a colleague's call also takes the colleague's
        inbound-internal cell, and the stricter of the two wins."""
        async with self.ctx.sessions() as session:
            if not route.internal:
                return await extension_recording(
                    session, self.state.extension, Direction.OUTBOUND, Scope.EXTERNAL)
            return strictest(
                await extension_recording(session, self.state.extension, Direction.OUTBOUND,
                                          Scope.INTERNAL),
                await extension_recording(session, route.did, Direction.INBOUND,
                                          Scope.INTERNAL),
            )

    async def _carry_on_without_database(self) -> None:
        """As inbound, but it is the agent who goes back to the dialplan (whose fallback
        dials the number unrecorded), and the callee who is hung up."""
        if self._facing_callee and not self.state.joined:
            callee_id = self.state.caller.id
            self.state.caller, self.state.agent_id = self._agent_channel, callee_id
            self._facing_callee = False
        await super()._carry_on_without_database()


__all__ = ["OutboundSession", "is_internal"]
