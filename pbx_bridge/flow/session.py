"""One inbound call, as the caller lives it: announce, ask, connect, record, finish.

The whole call is one coroutine. A hangup of either leg arrives as an exception out of
whatever step is waiting, and ``run``'s ``finally`` is the one place that tidies up and
writes the call's end, so no path leaves a call half-handled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from pbx_bridge.ari import AriError, AriNotFound, Channel
from pbx_bridge.ari import events as ev
from pbx_bridge.calls.extensions import ExtensionInfo, extension_recording, get_extension
from pbx_bridge.calls.journal import ConsentProof
from pbx_bridge.calls.pauses import AUTO_RESUME_ACTOR
from pbx_bridge.calls.retention import UnknownRetentionClass, class_days
from pbx_bridge.calls.routes import ResolvedRoute, resolve_route
from pbx_bridge.config import Announcement, LegalBasis, RecordingMode, TimeoutRule
from pbx_bridge.disclosure import DisclosureFacts
from pbx_bridge.flow import announcement, names, ring_group
from pbx_bridge.flow.agent_features import agent_actor, feature_codes, retention_choice_refused
from pbx_bridge.flow.call_commands import CallCommandRequest, answer_command, transfer_answer
from pbx_bridge.flow.call_state import CallState, route_snapshot
from pbx_bridge.flow.campaign import call_retention_class, read_campaign
from pbx_bridge.flow.consent import ConsentAnswer, ConsentDialogue
from pbx_bridge.flow.context import FlowContext
from pbx_bridge.flow.dial import AgentDialer, DialResult
from pbx_bridge.flow.evidence import EvidenceClip
from pbx_bridge.flow.feature_codes import (
    TRANSFER_KINDS,
    FeatureAction,
    FeatureCodeParser,
    FeatureKind,
)
from pbx_bridge.flow.inbox import AgentGone, CallerGone, CallInbox
from pbx_bridge.flow.player import PromptPlayer
from pbx_bridge.flow.policy import (
    ConsentOutcome,
    RecordingDecision,
    RecordingPlan,
    campaign_mode,
    confirmation_prompt,
    decide_recording,
)
from pbx_bridge.flow.prompts import Prompt
from pbx_bridge.flow.recorder import ConversationRecorder
from pbx_bridge.flow.together import together
from pbx_bridge.flow.transfer import CallTransfer, request_of
from pbx_bridge.flow.withdrawal import on_do_not_record_list, withdraw_by_keypress
from pbx_bridge.metrics import ANSWER_TO_DISCLOSURE, CALLS, CONSENT_DECISIONS
from pbx_bridge.privacy import mask_number
from pbx_bridge.recordings_admin import change_call_retention
from storage.database import database_unavailable
from storage.failpoints import slow_point
from storage.models import utcnow

log = logging.getLogger(__name__)

T = TypeVar("T")

# dtmf_events keeps Asterisk from bridging two parties natively (simple_bridge), where the
# agent's *1 / *2 would pass through without ever reaching us as ChannelDtmfReceived.
BRIDGE_TYPE = "mixing,dtmf_events"

_DISPOSITION_BY_DIAL = {
    DialResult.BUSY: "busy",
    DialResult.NO_ANSWER: "no-answer",
    DialResult.UNREACHABLE: "failed",
}
_MESSAGE_BY_DIAL = {
    DialResult.BUSY: "busy",
    DialResult.NO_ANSWER: "no-answer",
    DialResult.UNREACHABLE: "unreachable",
}


# Set on a caller handed back to the dialplan: its fallback connects them unrecorded (or
# says the service is unavailable) exactly as when the service is down.
DEGRADED_VARIABLE = "PBX_BRIDGE_DEGRADED"


class CallEnded(Exception):
    """The flow itself ended the call (busy, unreachable, timeout rule)."""

    def __init__(self, disposition: str, cause: str) -> None:
        super().__init__(cause)
        self.disposition = disposition
        self.cause = cause


@dataclass(frozen=True)
class CallEnd:
    """How and when a call ended, as the journal needs it."""

    call_id: str
    disposition: str
    cause: str
    ended_at: datetime
    language: str | None = None  # the language heard, if the row does not say it yet


async def write_call_end(ctx: FlowContext, end: CallEnd) -> None:
    """Close the call's row, and start its recordings' retention from that end."""
    ended_at = await ctx.journal.close(
        end.call_id, end.disposition, cause=end.cause, ended_at=end.ended_at,
        language=end.language,
    )
    await ctx.pipeline.close_call(end.call_id, ended_at)


class CallSession:
    """One call's flow over its ``CallState``: a new caller's, or one the resync adopted
    (then the state already holds its route, consent, bridge, agent and recording)."""

    def __init__(self, ctx: FlowContext, state: CallState) -> None:
        self.ctx = ctx
        self.state = state
        self.inbox = CallInbox(state)
        self.player = PromptPlayer(ctx.ari, self.inbox)
        self._detached = False
        self._dialer = AgentDialer(ctx, state, self.inbox)
        self._evidence: EvidenceClip | None = None
        self._recorder: ConversationRecorder | None = None
        self.unwritten_end: CallEnd | None = None
        # The language menu the caller heard (routes offering languages), for the proof.
        self._language_menu: Prompt | None = None
        self._ringing: ring_group.Ringing | None = None  # what the route rings
        self._conversing = False
        self._campaign_class: str | None = None  # the call's campaign keeps it so

    @property
    def conversing(self) -> bool:
        """The parties talk: a command to the call (a PCI pause by API) can act now."""
        return self._conversing

    @property
    def caller(self) -> Channel:
        return self.state.caller

    @property
    def call_id(self) -> str | None:
        return self.state.call_id

    def detach(self) -> None:
        """Service shutdown: leave the call to Asterisk untouched; a restart adopts it."""
        self._detached = True

    async def run(self) -> None:
        disposition, cause = "failed", "internal error"
        try:
            route = await self._open_call()
            disposition, cause = await self._call(route)
        except CallerGone as gone:
            disposition = "answered" if self.state.agent_answered else "abandoned"
            cause = f"caller hung up ({gone.cause})"
        except AgentGone as gone:
            disposition, cause = "answered", f"agent hung up ({gone.cause})"
        except CallEnded as ended:
            disposition, cause = ended.disposition, ended.cause
        except AriError as exc:
            log.error("call %s: Asterisk refused a step: %s", self.call_id, exc)
            disposition = "answered" if self.state.agent_answered else "failed"
            cause = str(exc)
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            await asyncio.shield(self._carry_on_without_database())
            raise  # the app owes the database a reconciliation
        finally:
            if not self._detached:
                await asyncio.shield(self._finish(disposition, cause))

    # -- the call, top to bottom ---------------------------------------------------------

    async def _call(self, route: ResolvedRoute) -> tuple[str, str]:
        consent = self.state.consent
        if self.state.joined:  # adopted while the parties talk
            return await self._resume_connected(route, consent or ConsentOutcome.NOT_ASKED)

        if consent is None and self._skips_recording(route):
            await self._answer_caller()
            consent = await self._confirm_do_not_record(route)
        if route.announcement is Announcement.BEFORE_CONNECT and consent is None:
            consent = await self._ask_consent(route)  # answers once the evidence clip runs
        elif route.announcement is Announcement.NOTICE_ONLY and consent is None:
            await self._answer_caller()
            consent = await self._play_notice(route)

        result = await self._ring_department(route)
        if result is not DialResult.ANSWERED:
            await self._tell_caller_and_hang_up(route, _MESSAGE_BY_DIAL[result])
            raise CallEnded(_DISPOSITION_BY_DIAL[result], f"department {result.value}")

        if route.announcement is Announcement.ON_CONNECT and consent is None:
            await self._hold_agent(route)
            consent = await self._ask_consent(route)
        elif consent is None:
            consent = await self._record_not_asked(route)

        await self._answer_caller()
        await self._join(route)
        decision = await self._decide(route, consent)
        return await self._converse(route, decision)

    # -- steps ----------------------------------------------------------------------------

    async def _open_call(self) -> ResolvedRoute:
        state = self.state
        state.subject_key = self.ctx.subjects.key_of(self.caller.caller.number or None)
        if state.route is not None:
            # Adopted: its row and route are the ones it started with; only the list is
            # asked again (a listing since then protects the caller now).
            state.do_not_record = await on_do_not_record_list(self.ctx, state.subject_key)
            if state.retention_days is None:  # an unbridged one is told them again
                async with self.ctx.sessions() as session:
                    state.retention_days = await class_days(
                        session, state.retention_class, self.ctx.retention)
            return state.route
        # The look-ups need nothing of each other: under load each round trip waits its
        # turn on the loop, and the caller is still ringing while they run.
        (route, extension, days), linkedid, state.do_not_record = await together(
            self._route_and_extension(),
            # Asterisk's linkedid ties this call to its other legs in CDRs and CEL.
            self._on_caller(self.ctx.ari.get_variable(self.caller.id, "CHANNEL(linkedid)")),
            on_do_not_record_list(self.ctx, state.subject_key),
        )
        state.route = route
        # The campaign's class keeps its calls apart; else the extension's own class is
        # the more specific rule (a sales desk kept longer).
        state.retention_class = call_retention_class(
            route, extension, campaign_class=self._campaign_class)
        state.retention_days = days
        if route.language_by_country:
            state.heard_language = announcement.country_language(
                self.caller.caller.number, self.ctx.subjects.default_region,
                self.ctx.country_languages, route.languages,
            )
        opened = await self.ctx.journal.open_call(
            linkedid=linkedid or self.caller.id,
            channel_id=self.caller.id,
            direction=state.direction,
            caller=self.caller.caller.number or None,
            did=state.did,
            extension=route.target,
            announcement=route.announcement.value,
            legal_basis=route.legal_basis.value,
            retention_class=state.retention_class,
            language=state.language,
            route_snapshot=route_snapshot(route),
            campaign=state.campaign,
        )
        state.call_id, state.reference = opened.id, opened.reference
        state.row_language = state.language
        log.info(
            "call %s: %s call from %s to DID %s, route %s, reference %s",
            state.call_id,
            state.direction,
            mask_number(self.caller.caller.number),
            state.did,
            "default" if route.is_default else route.did,
            state.reference,
        )
        return route

    async def _route_and_extension(
        self,
    ) -> tuple[ResolvedRoute, ExtensionInfo | None, int]:
        """The route, its extension, and the retention class's days: the notice says
        them, so they are read here, in the same session, not when the recording starts."""
        async with self.ctx.sessions() as session:
            route = await resolve_route(
                session, self.state.did, self.ctx.default_route, self.ctx.default_language
            )
            self._ringing = await ring_group.what_rings(session, route, self.ctx.retention)
            extension = await get_extension(session, route.target)
            self._campaign_class = await read_campaign(session, self.state)
            days = await class_days(
                session, call_retention_class(route, extension, self._campaign_class),
                self.ctx.retention)
            return route, extension, ring_group.told_days(days, self._ringing)

    async def _answer_caller(self) -> None:
        if self.state.caller_answered:
            return
        # Taken before the request: Asterisk answers as soon as it gets it, but under
        # load this task may resume long after the reply, and that wait is exactly the
        # delay the caller lives through before the disclosure.
        answering = utcnow()
        await self._on_caller(self.ctx.ari.answer(self.caller.id))
        self.state.caller_answered = True
        self.state.answered_at = answering

    async def _ask_consent(self, route: ResolvedRoute) -> ConsentOutcome:
        """Start the evidence clip, answer the caller, and ask.

        The clip starts while the caller is still ringing, and the caller is answered
        only once Asterisk says it is recording: so the clip holds the disclosure from
        its first audio, and between the answer and the disclosure there is only the
        answer's reply and the play request. A caller who knows the menu presses 1 as
        soon as they are answered; every step left before the disclosure after the
        answer is time in which that key comes too early to count (issue 9).
        """
        assert self.call_id is not None
        self._evidence = EvidenceClip(self.ctx, self.state, self.inbox)
        await self._evidence.start()
        try:
            await self._answer_caller()
            await self._choose_language(route)
            lang = self.state.language
            disclosure = announcement.disclosure_prompt(self.ctx.prompts, lang, self._facts())
            dialogue = ConsentDialogue(
                self.player,
                disclosure,
                announcement.invalid_choice_prompt(self.ctx.prompts, lang, route.legal_basis),
                legal_basis=route.legal_basis,
                max_repeats=self.ctx.call.max_repeats,
                timeout_s=route.prompt_timeout_s,
                withdrawal_offer=(
                    self.ctx.prompts.get(lang, "withdrawal-offer")
                    if self._offers_withdrawal(route)
                    else None
                ),
            )
            await slow_point("disclosure.after-answer")  # tests: the disclosure starts late
            answer = await self._on_caller(dialogue.ask(self.caller.id))
        finally:
            await self._evidence.stop()
        listed = answer.outcome is ConsentOutcome.WITHDRAWN and await self._withdraw()
        await self._save_consent(answer.outcome, answer, heard=disclosure)
        early = " ".join(key.digit for key in answer.keys if key.early)
        log.info("call %s: consent %s%s", self.call_id, answer.outcome.value,
                 f" (pressed before the disclosure, no answer: {early})" if early else "")

        confirmation = confirmation_prompt(route.legal_basis, answer.outcome)
        if answer.outcome is ConsentOutcome.WITHDRAWN and not listed:
            # Only this call is certain to go unrecorded: say no more than that.
            confirmation = "confirm-declined"
        if answer.outcome is ConsentOutcome.TIMEOUT and route.timeout_means is TimeoutRule.HANGUP:
            await self._tell_caller_and_hang_up(route, "timeout-hangup")
            raise CallEnded("abandoned", "no choice within the timeout (route hangs up)")
        if confirmation is not None:
            await self._play_to_caller(route, confirmation)
        return answer.outcome

    def _facts(self) -> DisclosureFacts:
        """What the route's disclosure says: its basis, the class's days, the reference."""
        assert self.state.retention_days is not None
        return DisclosureFacts(self.state.legal_basis, self.state.retention_days,
                               self.state.reference)

    async def _choose_language(self, route: ResolvedRoute) -> None:
        """A route offering languages: "(Turkish) press 1. For English, press 3."; the key
        picks the language, anything else (or silence) keeps the route's own. Skipped
        where the caller's country decides, or the route offers one language."""
        if len(route.languages) < 2 or route.language_by_country:
            return
        menu = announcement.language_menu(self.ctx.prompts, route.languages,
                                          route.language_keys)
        self._language_menu = menu
        heard = await self._on_caller(self.player.hear(self.caller.id, menu.media))
        key = heard.key or await self._on_caller(
            self.player.wait_key(self.caller.id, route.prompt_timeout_s)
        )
        self.state.heard_language = announcement.language_for_key(
            key.digit if key else None, route.languages, route.language_keys
        )
        log.info("call %s: language %s (%s)", self.call_id, self.state.language,
                 f"key {key.digit}" if key else "no key")

    def _skips_recording(self, route: ResolvedRoute) -> bool:
        """On the do-not-record list, and the route does not record under a legal duty."""
        return self.state.do_not_record and route.legal_basis is not LegalBasis.LEGAL_OBLIGATION

    def _offers_withdrawal(self, route: ResolvedRoute) -> bool:
        """Only where it can be honoured: a known number and no duty to record anyway."""
        return (
            route.offer_withdrawal
            and route.legal_basis is not LegalBasis.LEGAL_OBLIGATION
            and self.state.subject_key is not None
        )

    async def _withdraw(self) -> bool:
        """Pressed 8: list the caller and open their withdrawal request, now."""
        assert self.call_id is not None
        number = self.caller.caller.number
        if not number:
            return False
        if await withdraw_by_keypress(self.ctx, number, self.call_id) is None:
            return False
        self.state.do_not_record = True
        return True

    async def _confirm_do_not_record(self, route: ResolvedRoute) -> ConsentOutcome:
        """A listed caller is not asked again: told their call is not recorded, connected."""
        started = utcnow()
        await self._play_to_caller(route, "do-not-record")
        answer = ConsentAnswer(ConsentOutcome.NOT_ASKED, None, 1, started, utcnow())
        await self._save_consent(
            ConsentOutcome.NOT_ASKED, answer,
            heard=self.ctx.prompts.get(self.state.language, "do-not-record"),
        )
        log.info("call %s: caller is on the do-not-record list; not asked", self.call_id)
        return ConsentOutcome.NOT_ASKED

    async def _play_notice(self, route: ResolvedRoute) -> ConsentOutcome:
        """The short notice; 0 (while it plays or just after) plays the full notice, and
        the proof keeps both."""
        await self._choose_language(route)
        started = utcnow()
        lang, facts = self.state.language, self._facts()
        heard = announcement.notice_prompt(self.ctx.prompts, lang, facts)
        key = (await self._on_caller(self.player.hear(self.caller.id, heard.media))).key
        wait = self.ctx.call.notice_key_wait_s
        if key is None and wait > 0:
            key = await self._on_caller(self.player.wait_key(self.caller.id, wait))
        digit = None
        if key is not None and key.digit == announcement.KEY_FULL_NOTICE:
            digit = key.digit
            full = announcement.full_notice_prompt(self.ctx.prompts, lang, facts)
            await self._on_caller(self.player.play(self.caller.id, full.media, barge_in=False))
            heard = self.ctx.prompts.compose(
                "notice+full-notice",
                [(p.language, p.name) for p in (*heard.heard, *full.heard)],
                lang,
            )
            log.info("call %s: caller pressed 0 and heard the full notice", self.call_id)
        answer = ConsentAnswer(ConsentOutcome.NOT_ASKED, digit, 1, started, utcnow())
        await self._save_consent(ConsentOutcome.NOT_ASKED, answer, heard=heard)
        return ConsentOutcome.NOT_ASKED

    async def _record_not_asked(self, route: ResolvedRoute) -> ConsentOutcome:
        now = utcnow()
        answer = ConsentAnswer(ConsentOutcome.NOT_ASKED, None, 0, now, now)
        await self._save_consent(ConsentOutcome.NOT_ASKED, answer, heard=None)
        return ConsentOutcome.NOT_ASKED

    async def _ring_department(self, route: ResolvedRoute) -> DialResult:
        assert self.call_id is not None
        ringback: str | None = None
        if self.state.caller_answered:
            ringback = await self._on_caller(self.player.start(self.caller.id, "tone:ring"))
        else:
            await self._on_caller(self.ctx.ari.ring(self.caller.id))
        ringing = self._ringing or await ring_group.what_rings_now(self.ctx, route)
        try:  # a ring group the default route names but nobody created: unreachable
            result = await self._dialer.ring(ringing) if ringing else DialResult.UNREACHABLE
        finally:
            if ringback is not None:
                await self.player.stop(ringback)
        if result is DialResult.ANSWERED and ringing is not None:
            await ring_group.record_answer(self.ctx, self.state, ringing)
        log.info("call %s: %s %s", self.call_id, self.state.extension, result.value)
        return result

    async def _hold_agent(self, route: ResolvedRoute) -> None:
        """On-connect: the agent is told to hold while the caller hears the disclosure."""
        assert self.state.agent_id is not None
        prompt = self.ctx.prompts.get(route.language.value, "agent-connecting")
        await self.player.start(self.state.agent_id, prompt.media)

    async def _join(self, route: ResolvedRoute) -> None:
        assert self.call_id is not None and self.state.agent_id is not None
        bridge_id = names.bridge_id(self.call_id)
        self.ctx.ownership.claim(bridge_id, self.inbox)
        self.state.bridge_id = bridge_id
        await self.ctx.ari.create_bridge(type=BRIDGE_TYPE, bridge_id=bridge_id,
                                         name=f"pbx-bridge {self.call_id}")
        await self._on_caller(
            self.ctx.ari.add_channel(bridge_id, [self.caller.id, self.state.agent_id])
        )
        self.state.joined = True

    async def _decide(self, route: ResolvedRoute, consent: ConsentOutcome) -> RecordingDecision:
        mode = await self._extension_mode(route)
        days = self.state.retention_days  # read when the call opened (or was adopted)
        assert days is not None
        decision = decide_recording(
            route.legal_basis, consent,
            campaign_mode(RecordingMode(mode), self.state.campaign_recording),
            do_not_record=self.state.do_not_record,
        )
        log.info("call %s: recording %s (%s)", self.call_id, decision.plan.value, decision.reason)
        self._recorder = ConversationRecorder(
            self.ctx, self.state, self.inbox, retention_days=days
        )
        return decision

    async def _extension_mode(self, route: ResolvedRoute) -> RecordingMode:
        """The answering extension's cell for this call: inbound, from the trunk."""
        async with self.ctx.sessions() as session:
            return await extension_recording(session, self.state.extension)

    async def _converse(self, route: ResolvedRoute, decision: RecordingDecision) -> tuple[str, str]:
        """Both parties talk until one hangs up; the agent's feature codes act meanwhile.

        Only the agent's keys are read here: the caller's cannot pause or discard a
        recording. With no code part-typed and no pause running the wait has no limit,
        so a call whose agent presses nothing costs nothing more.
        """
        assert self._recorder is not None
        if decision.plan is RecordingPlan.RECORD:
            await self._recorder.start()
        keys = FeatureCodeParser(feature_codes(self.ctx.call),
                                 self.ctx.call.on_demand_digit_window_s,
                                 self.ctx.call.transfer_digit_timeout_s)
        loop = asyncio.get_running_loop()
        # Loop time of the automatic resume (an adopted call may be paused already).
        left = self._recorder.pause_left_s(60.0 * self.ctx.call.pci_pause_max_minutes)
        pause_ends = None if left is None else loop.time() + left
        self._conversing = True
        while True:
            wake = min((t for t in (keys.waiting_until(), pause_ends) if t is not None),
                       default=None)
            item = await self.inbox.next(None if wake is None else max(0.0, wake - loop.time()))
            now = loop.time()
            if item is None:
                action = keys.expire(now)
            elif (isinstance(item, ev.ChannelDtmfReceived)
                  and item.channel.id == self.state.agent_id):  # the agent now
                action = keys.feed(item.digit, now)
            elif isinstance(item, CallCommandRequest) and item.action.kind in TRANSFER_KINDS:
                decision = await self._transfer(decision, item.action, actor=item.actor,
                                                report=transfer_answer(item))
                action = None
            elif isinstance(item, CallCommandRequest):  # from the API: as the agent's code
                await self._answer_command(route, decision, item)
                action = None
            else:
                continue
            if pause_ends is not None and now >= pause_ends and self._recorder.paused:
                await self._auto_resume(route)
            if action is not None and action.kind in TRANSFER_KINDS:
                decision = await self._transfer(decision, action)
            elif action is not None:
                await self._agent_feature(route, decision, action)
            if not self._recorder.paused:
                pause_ends = None
            elif pause_ends is None:
                pause_ends = now + 60.0 * self.ctx.call.pci_pause_max_minutes

    async def _answer_command(
        self, route: ResolvedRoute, decision: RecordingDecision, request: CallCommandRequest
    ) -> None:
        """A command by API runs the agent's own feature code, with the asker as actor."""
        assert self._recorder is not None

        async def run(action: FeatureAction, actor: str) -> None:
            await self._agent_feature(route, decision, action, actor=actor)

        await answer_command(request, self._recorder, run)

    async def _agent_feature(
        self, route: ResolvedRoute, decision: RecordingDecision, action: FeatureAction,
        *, actor: str | None = None,
    ) -> None:
        """``actor``: who asked, when not the agent's keypad (a command by API)."""
        assert self._recorder is not None
        actor = actor or agent_actor(self.state.extension)
        if action.kind is FeatureKind.PAUSE:
            name = ("agent-recording-paused" if await self._quietly_false(
                self._recorder.pause(actor)) else "agent-not-recording")
        elif action.kind is FeatureKind.RESUME:
            name = ("agent-recording-resumed" if await self._quietly_false(
                self._recorder.resume(actor)) else "agent-not-recording")
        elif action.kind is FeatureKind.RETENTION:
            name = await self._retain_as(route, action.retention_class, actor)
        elif decision.plan is not RecordingPlan.ON_DEMAND:
            log.info("call %s: agent asked to %s; not allowed (%s)",
                     self.call_id, action.kind.value, decision.reason)
            name = "agent-recording-not-allowed"
        elif action.kind is FeatureKind.RECORD_START:
            name = "agent-recording-started" if await self._recorder.start() else (
                "agent-recording-not-allowed")
        else:
            await self._recorder.stop()
            name = "agent-recording-stopped"
        await self._tell_agent(route, name)

    async def _transfer(
        self, decision: RecordingDecision, action: FeatureAction, *, actor: str | None = None,
        report: Callable[[str | None], None] | None = None,
    ) -> RecordingDecision:
        """The agent (or an API user, ``actor``) hands the call on (flow/transfer.py);
        the new extension's policy."""
        assert self._recorder is not None
        transfer = CallTransfer(self.ctx, self.state, self.inbox, self.player, self._dialer,
                                self._recorder)
        actor = actor or agent_actor(self.state.extension)
        return await transfer.run(request_of(action, actor), decision, report)

    async def _tell_agent(self, route: ResolvedRoute, name: str) -> None:
        assert self.state.agent_id is not None
        prompt = self.ctx.prompts.get(route.language.value, name)
        await self.player.start(self.state.agent_id, prompt.media)

    async def _auto_resume(self, route: ResolvedRoute) -> None:
        """A pause left on past the limit: recording again, and the agent is told."""
        assert self._recorder is not None
        log.warning("call %s: PCI pause reached %s min; resuming", self.call_id,
                    self.ctx.call.pci_pause_max_minutes)
        if await self._quietly_false(self._recorder.resume(AUTO_RESUME_ACTOR)):
            await self._tell_agent(route, "agent-pause-auto-resumed")

    async def _quietly_false(self, step: Awaitable[bool]) -> bool:
        """A pause step Asterisk refused (the recording just ended): nothing changed."""
        try:
            return await step
        except AriError as exc:
            log.warning("call %s: pause step refused: %s", self.call_id, exc)
            return False

    async def _retain_as(self, route: ResolvedRoute, class_name: str, actor: str) -> str:
        """The agent keeps this call's recordings per ``class_name``; the prompt to play."""
        assert self.call_id is not None and self._recorder is not None
        try:
            async with self.ctx.sessions() as session:
                days = await class_days(session, class_name, self.ctx.retention)
                current = await class_days(session, self.state.retention_class,
                                           self.ctx.retention)
        except UnknownRetentionClass as exc:
            log.error("call %s: agent chose retention: %s", self.call_id, exc)
            return "agent-retention-failed"
        refused = retention_choice_refused(route.legal_basis, current, days)
        if refused is not None:
            log.warning("call %s: agent chose retention %s: refused, %s", self.call_id,
                        class_name, refused)
            return "agent-retention-failed"
        await change_call_retention(self.ctx.sessions, self.call_id, class_name,
                                    self.ctx.retention, actor=actor)
        self._recorder.retain_as(class_name, days)
        log.info("call %s: agent chose retention class %s (%d days)", self.call_id,
                 class_name, days)
        return "agent-retention-set"

    async def _resume_connected(
        self, route: ResolvedRoute, consent: ConsentOutcome
    ) -> tuple[str, str]:
        """After a restart: the parties are still talking; watch them until they finish.

        The resync put the bridge, the agent leg and any running recording in the state
        (and the dispatcher's ownership map), with the route the call started with: the
        decision is that route's, and a running recording simply goes on.
        """
        decision = await self._decide(route, consent)
        log.info("call %s: adopted after restart", self.call_id)
        if self.state.agent_id is None:
            raise AgentGone("", "agent left while the service was down")
        return await self._converse(route, decision)

    # -- helpers of the steps -------------------------------------------------------------

    async def _save_consent(
        self,
        outcome: ConsentOutcome,
        answer: ConsentAnswer,
        *,
        heard: Prompt | None,
    ) -> None:
        """The proof: what the caller heard (the language menu, every segment of the
        disclosure or notice, each with its version and sha256) and did."""
        assert self.call_id is not None
        prompt = None if heard is None else announcement.heard_after_menu(
            self.ctx.prompts, self._language_menu, heard)
        proof = ConsentProof(
            decision=outcome.value,
            digit=answer.digit,
            language=self.state.language,
            prompt_name=prompt.name if prompt else None,
            prompt_version=prompt.version if prompt else None,
            prompt_sha256=prompt.audio_sha256 if prompt else None,
            prompt_text_sha256=prompt.text_sha256 if prompt else None,
            times_played=answer.times_played,
            evidence_recording_id=self.state.evidence_recording_id,
            prompt_started_at=answer.prompt_started_at if prompt else None,
            decided_at=answer.decided_at,
            disclosure_started_at=answer.disclosure_started_at,
            answer_to_disclosure_s=self._disclosure_delay(answer),
            key_history=answer.keys if prompt and prompt.name == "disclosure" else None,
            prompt_segments=(
                announcement.heard_segments(prompt) if prompt else None
            ),
        )
        language = self.state.language_to_write()  # chosen by key: the row learns it
        await self.ctx.journal.save_consent(self.call_id, self.caller.caller.number or None,
                                            proof, call_language=language)
        self.state.row_language = self.state.language
        self.state.consent = outcome
        CONSENT_DECISIONS.labels(outcome.value).inc()

    def _disclosure_delay(self, answer: ConsentAnswer) -> float | None:
        """Seconds from answering the caller to the disclosure's first audio.

        Under load this grows, and with it the keys pressed before the disclosure began
        (which answer nothing). The start is Asterisk's PlaybackStarted time.
        """
        if answer.disclosure_started_at is None:
            return None
        delay = (answer.disclosure_started_at - self.state.answered_at).total_seconds()
        ANSWER_TO_DISCLOSURE.observe(max(delay, 0.0))
        return round(delay, 3)

    async def _play_to_caller(self, route: ResolvedRoute, name: str) -> None:
        prompt = self.ctx.prompts.get(self.state.language, name)
        await self._on_caller(self.player.play(self.caller.id, prompt.media, barge_in=False))

    async def _tell_caller_and_hang_up(self, route: ResolvedRoute, message: str) -> None:
        await self._answer_caller()
        await self._play_to_caller(route, message)
        await self._on_caller(self.ctx.ari.hangup(self.caller.id))

    async def _on_caller(self, step: Awaitable[T]) -> T:
        """Run a step on the caller's channel; its disappearance means the caller left."""
        try:
            return await step
        except AriNotFound as exc:
            raise CallerGone(self.caller.id, "channel gone") from exc

    async def _carry_on_without_database(self) -> None:
        """The database went away mid-call: nothing more can be written, but the caller
        must not be cut off for it.

        A connected call is left to Asterisk as on a shutdown; the resync after the
        outage adopts it (or closes it, if it ended meanwhile). A call not yet connected
        cannot be asked for consent with proof, so it goes back to the dialplan, whose
        fallback treats it as if the service were down (PBX_BRIDGE_FALLBACK_DIAL).
        """
        if self.state.joined:
            log.warning("call %s: database unavailable; the connected call is left to "
                        "Asterisk until it is back", self.call_id)
            self.detach()
            return
        log.warning("call %s: database unavailable; caller handed to the dialplan fallback",
                    self.call_id or "(not yet opened)")
        if self._evidence is not None:
            await self._evidence.stop()
        await self._dialer.hangup()
        await self._destroy_bridge()
        self.detach()
        if self.inbox.is_gone(self.caller.id):
            return
        try:
            await self.ctx.ari.set_variable(self.caller.id, DEGRADED_VARIABLE, "database")
            await self.ctx.ari.continue_in_dialplan(self.caller.id)
        except AriError as exc:
            log.warning("call %s: could not hand the caller to the dialplan (%s); hanging up",
                        self.call_id, exc)
            await self._quietly(self.ctx.ari.hangup(self.caller.id))
        self.ctx.ownership.release(self.caller.id)

    async def _finish(self, disposition: str, cause: str) -> None:
        if self._evidence is not None:
            await self._evidence.stop()
        if self._recorder is not None:
            await self._recorder.stop()
        await self._dialer.hangup()
        await self._destroy_bridge()
        if not self.inbox.is_gone(self.caller.id):
            await self._quietly(self.ctx.ari.hangup(self.caller.id))
        self.ctx.ownership.release(self.caller.id)
        if self.call_id is None:
            return
        # Kept until written: if the database is away, the app writes it when it is back.
        self.unwritten_end = CallEnd(self.call_id, disposition, cause, utcnow(),
                                     self.state.language_to_write())
        CALLS.labels(disposition).inc()
        await write_call_end(self.ctx, self.unwritten_end)
        self.unwritten_end = None
        log.info("call %s: ended, %s (%s)", self.call_id, disposition, cause)

    async def _destroy_bridge(self) -> None:
        bridge_id, self.state.bridge_id = self.state.bridge_id, None
        if bridge_id is not None:
            await self._quietly(self.ctx.ari.destroy_bridge(bridge_id))
            self.ctx.ownership.release(bridge_id)

    async def _quietly(self, step: Awaitable[object]) -> None:
        try:
            await step
        except AriError as exc:
            if not isinstance(exc, AriNotFound):
                log.warning("call %s: clean-up step failed: %s", self.call_id, exc)
