"""An agent's call out, through the real flow over the scripted fake Asterisk: the agent's
channel enters the app from [pbx-bridge-outbound], the callee is dialled over the trunk,
hears the notice (or the disclosure, and answers it) before the agent is joined, and the
call is recorded per the outbound route's basis and the agent's outbound cell.

Each test says what the callee heard, prompt by prompt, what the agent's phone was told,
what Asterisk recorded, and what the database holds: the call (direction, the agent's
extension, the callee's number and subject key, the reference) and the consent proof.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from database_fixtures import db_url, migrated_url, pg_database, sessions
from fake_ari import Caller, segments_of
from flow_rig import INDEX, FlowRig
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from test_flow_branches import bridge_recording, connected, rig

from pbx_bridge.calls.extensions import set_extension
from pbx_bridge.calls.outbound_routes import (
    prefixes_of,
    resolve_outbound_route,
    set_outbound_route,
)
from pbx_bridge.calls.routes import InvalidRoute
from pbx_bridge.config import (
    Announcement,
    Language,
    LegalBasis,
    OutboundRouteSettings,
    RecordingMode,
)
from pbx_bridge.disclosure import outbound_untruthful
from pbx_bridge.flow.outbound import is_internal
from pbx_bridge.subjects.do_not_record import ListReason, put_on_list
from storage.models import utcnow

__all__ = ["db_url", "migrated_url", "pg_database", "rig", "sessions"]  # fixtures

NUMBER = "05321234567"
TRUNK = f"{NUMBER}@carrier"  # the fake's name for PJSIP/{number}@carrier
DEFAULT = OutboundRouteSettings()


@pytest.fixture
async def out(rig: FlowRig) -> AsyncIterator[FlowRig]:
    rig.asterisk.agents[TRUNK] = "answer"
    yield rig


async def outbound_route(rig: FlowRig, prefix: str, **fields: object) -> None:
    async with rig.sessions() as session:
        await set_outbound_route(session, prefix, default=DEFAULT,
                                 default_language=Language.TR, **fields)  # type: ignore[arg-type]
        await session.commit()


async def cells(rig: FlowRig, number: str, **modes: str) -> None:
    async with rig.sessions() as session:
        await set_extension(session, number, None,
                            cells={k: RecordingMode(v) for k, v in modes.items()})
        await session.commit()


def callee_of(rig: FlowRig) -> str:
    (callee,) = rig.asterisk.callee_channels()
    return callee


async def talk_then_callee_hangs_up(rig: FlowRig, *, recorded: bool) -> str:
    await rig.asterisk.until(lambda: connected(rig) and bridge_recording(rig) == recorded)
    callee = callee_of(rig)
    rig.asterisk.hang_up(callee)
    return callee


def order(rig: FlowRig, method: str, target: str) -> int:
    return next(i for i, r in enumerate(rig.asterisk.requests)
                if r.method == method and r.target == target)


async def test_the_callee_hears_the_notice_before_the_agent_is_joined(out: FlowRig) -> None:
    """The default outbound route: a notice on our legitimate interest with the call's
    reference; the agent hears ringback until then; recorded (the agent's cell: always)."""
    agent = out.asterisk.call_out(NUMBER, "100")
    callee = await talk_then_callee_hangs_up(out, recorded=True)
    ended = await out.ended_call()

    assert out.asterisk.prompts(callee) == ["notice"]
    assert out.asterisk.prompts(agent) == []  # ringback from their own phone, no prompt
    (notice,) = out.asterisk.media[callee]
    sounds = segments_of(notice)
    reference = ended.call.reference
    assert reference is not None
    assert sounds[0] == "tr/notice-legitimate-interest"
    assert sounds[-1] == "tr/notice-full-offer"
    assert "".join(s.rsplit("-", 1)[-1] for s in sounds
                   if s.startswith("tr/number-"))[-len(reference):] == reference
    assert [r.target for r in out.asterisk.made("create_channel")] == [f"PJSIP/{TRUNK}"]
    assert out.asterisk.made("ring")[0].target == agent
    # Joined only once the notice was heard: the agent's answer comes after it.
    assert order(out, "play", callee) < order(out, "answer", agent)

    call = ended.call
    assert (call.direction, call.extension, call.did) == ("outbound", "100", "outbound")
    assert call.caller == NUMBER and call.caller_key == INDEX.key_of("+905321234567")
    assert call.disposition == "answered" and call.answered_at is not None
    assert call.hangup_cause is not None and call.hangup_cause.startswith("callee hung up")
    assert ended.consent is not None
    assert (ended.consent.decision, ended.consent.prompt_name) == ("not-asked", "notice")
    assert ended.consent.caller == NUMBER
    (conversation,) = ended.of_kind("conversation")
    assert conversation.legal_basis == "legitimate-interest"
    assert conversation.status == "stored"
    assert not out.asterisk.channels and not out.asterisk.bridges


async def test_keypress_route_callee_consents(out: FlowRig) -> None:
    """An outbound route asking (before-connect, consent): the callee hears the full
    disclosure with its keys, presses 1, is told, and the call is recorded."""
    await outbound_route(out, "05", announcement=Announcement.BEFORE_CONNECT,
                         legal_basis=LegalBasis.CONSENT)
    out.asterisk.call_out(NUMBER, "100", callee=Caller(keys=[("disclosure", "1")]))
    callee = await talk_then_callee_hangs_up(out, recorded=True)
    ended = await out.ended_call()

    assert out.asterisk.prompts(callee) == ["disclosure", "confirm-granted"]
    assert ended.call.did == "05" and ended.call.legal_basis == "consent"
    assert ended.consent is not None
    assert (ended.consent.decision, ended.consent.digit) == ("granted", "1")
    (evidence,) = ended.of_kind("evidence")
    assert ended.consent.evidence_recording_id == evidence.id
    (snoop,) = out.asterisk.made("snoop")[:1]
    assert snoop.target == callee  # the clip hears the callee, not the agent
    assert [r.kind for r in ended.recordings] == ["evidence", "conversation"]


async def test_keypress_route_callee_declines(out: FlowRig) -> None:
    await outbound_route(out, "05", announcement=Announcement.BEFORE_CONNECT,
                         legal_basis=LegalBasis.CONSENT)
    out.asterisk.call_out(NUMBER, "100", callee=Caller(keys=[("disclosure", "2")]))
    callee = await talk_then_callee_hangs_up(out, recorded=False)
    ended = await out.ended_call()

    assert out.asterisk.prompts(callee) == ["disclosure", "confirm-declined"]
    assert ended.consent is not None and ended.consent.decision == "declined"
    assert ended.call.disposition == "answered"  # connected all the same
    assert [r.kind for r in ended.recordings] == ["evidence"]
    assert out.asterisk.made("record_bridge") == []


async def test_the_longest_prefix_wins(out: FlowRig) -> None:
    await outbound_route(out, "0", announcement=Announcement.NONE)
    await outbound_route(out, "0532", announcement=Announcement.BEFORE_CONNECT,
                         legal_basis=LegalBasis.CONSENT)
    out.asterisk.call_out(NUMBER, "100", callee=Caller(keys=[("disclosure", "1")]))
    await talk_then_callee_hangs_up(out, recorded=True)
    ended = await out.ended_call()
    assert ended.call.did == "0532"


@pytest.mark.parametrize(
    ("behaviour", "reason", "disposition"),
    [("busy", "busy", "busy"), ("no-answer", "no_answer", "no-answer"),
     ("unreachable", "congestion", "failed")],
)
async def test_the_callee_does_not_answer(
    out: FlowRig, behaviour: str, reason: str, disposition: str
) -> None:
    """The agent's phone is told as a phone expects (486 busy, 480, 503), no prompt."""
    out.asterisk.agents[TRUNK] = behaviour  # type: ignore[assignment]
    agent = out.asterisk.call_out(NUMBER, "100")
    ended = await out.ended_call()

    assert out.asterisk.prompts(agent) == []
    hangup = next(r for r in out.asterisk.made("hangup") if r.target == agent)
    assert hangup.detail == reason
    assert ended.call.disposition == disposition and ended.call.answered_at is None
    assert ended.consent is None and ended.recordings == []
    assert out.asterisk.made("create_bridge") == [] and not out.asterisk.channels


async def test_the_agent_hangs_up_while_the_callee_rings(out: FlowRig) -> None:
    out.asterisk.agents[TRUNK] = "ring"
    agent = out.asterisk.call_out(NUMBER, "100")
    await out.asterisk.until(lambda: bool(out.asterisk.made("dial")))
    callee = callee_of(out)
    out.asterisk.hang_up(agent)
    ended = await out.ended_call()

    assert ended.call.disposition == "abandoned"
    assert ended.call.hangup_cause is not None
    assert ended.call.hangup_cause.startswith("agent hung up while the callee rang")
    assert any(r.target == callee for r in out.asterisk.made("hangup"))  # stops ringing
    assert ended.consent is None and ended.recordings == []
    assert not out.asterisk.channels


async def test_an_outbound_external_never_cell_records_nothing(out: FlowRig) -> None:
    """The callee is still told (the notice is the route's), but the agent's cell forbids
    recording: no recording request at all; the agent's *1 is refused too."""
    await cells(out, "100", outbound_external="never")
    agent = out.asterisk.call_out(NUMBER, "100")
    await out.asterisk.until(lambda: connected(out))
    out.asterisk.press(agent, "*1")
    await out.asterisk.until(lambda: "agent-recording-not-allowed" in [
        h.prompt for h in out.asterisk.heard(agent)])
    out.asterisk.hang_up(callee_of(out))
    ended = await out.ended_call()

    assert out.asterisk.prompts(callee_of(out)) == ["notice"]
    assert out.asterisk.made("record_bridge") == [] and ended.recordings == []
    assert ended.consent is not None and ended.consent.decision == "not-asked"


async def test_an_on_demand_cell_records_between_the_agents_codes(out: FlowRig) -> None:
    await cells(out, "100", outbound_external="on-demand")
    agent = out.asterisk.call_out(NUMBER, "100")
    await out.asterisk.until(lambda: connected(out))
    assert not bridge_recording(out)
    out.asterisk.press(agent, "*1")
    await out.asterisk.until(lambda: bridge_recording(out))
    out.asterisk.hang_up(agent)
    ended = await out.ended_call()
    assert [r.kind for r in ended.recordings] == ["conversation"]
    assert ended.call.hangup_cause is not None
    assert ended.call.hangup_cause.startswith("agent hung up")


async def test_a_callee_on_the_do_not_record_list_is_told_and_not_recorded(
    out: FlowRig,
) -> None:
    async with out.sessions() as session:
        await put_on_list(session, INDEX.key_of(NUMBER) or "", reason=ListReason.WITHDRAW,
                          request_id=None, actor="test", now=utcnow())
        await session.commit()
    out.asterisk.call_out(NUMBER, "100")
    callee = await talk_then_callee_hangs_up(out, recorded=False)
    ended = await out.ended_call()
    assert out.asterisk.prompts(callee) == ["do-not-record"]
    assert ended.recordings == []


@pytest.mark.parametrize(
    ("mine", "theirs", "recorded"),
    [(None, None, True), ("never", None, False), (None, "never", False),
     ("always", "never", False)],
)
async def test_a_call_to_a_colleague_is_internal(
    out: FlowRig, mine: str | None, theirs: str | None, recorded: bool
) -> None:
    """101 is an extension: dialled as one, nobody is announced to, and the stricter of
    the agent's outbound-internal and the colleague's inbound-internal cell decides."""
    if mine:
        await cells(out, "100", outbound_internal=mine)
    if theirs:
        await cells(out, "101", inbound_internal=theirs)
    out.asterisk.agents["101"] = "answer"
    out.asterisk.call_out("101", "100")
    callee = await talk_then_callee_hangs_up(out, recorded=recorded)
    ended = await out.ended_call()

    assert [r.target for r in out.asterisk.made("create_channel")] == ["PJSIP/101"]
    assert out.asterisk.prompts(callee) == []
    assert (ended.call.did, ended.call.caller, ended.call.extension) == ("101", None, "100")
    assert ended.consent is not None and ended.consent.decision == "not-asked"
    assert ended.call.legal_basis == "legitimate-interest"
    assert [r.kind for r in ended.recordings] == (["conversation"] if recorded else [])


# -- pure rules ------------------------------------------------------------------------


def test_which_numbers_are_extensions() -> None:
    pattern = r"^[1-9][0-9]{1,5}$"
    assert is_internal("101", pattern) and is_internal("123456", pattern)
    assert not is_internal("05321234567", pattern)  # a national number
    assert not is_internal("+442071234567", pattern) and not is_internal("1234567", pattern)


def test_prefixes_longest_first() -> None:
    assert prefixes_of("0532") == ["0532", "053", "05", "0"]
    assert prefixes_of("+44") == ["+44", "+4", "+"]


def test_outbound_routes_that_would_mislead_the_callee() -> None:
    assert outbound_untruthful(Announcement.NOTICE_ONLY, LegalBasis.LEGITIMATE_INTEREST) == []
    assert outbound_untruthful(Announcement.BEFORE_CONNECT, LegalBasis.CONSENT) == []
    (why,) = outbound_untruthful(Announcement.ON_CONNECT, LegalBasis.CONSENT)
    assert "on-connect on an outbound route" in why
    (why,) = outbound_untruthful(Announcement.NOTICE_ONLY, LegalBasis.CONSENT)
    assert "nobody is asked" in why


async def test_outbound_routes_resolve_and_refuse(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        await set_outbound_route(session, "+44", default=DEFAULT, default_language=Language.TR,
                                 dial_template="PJSIP/{number}@uk")
        await set_outbound_route(session, "+4420", default=DEFAULT,
                                 default_language=Language.EN)
        found = await resolve_outbound_route(session, "+442071234567", DEFAULT, Language.TR)
        assert found.prefix == "+4420" and found.dial_template is None
        other = await resolve_outbound_route(session, "+441611234567", DEFAULT, Language.TR)
        assert other.prefix == "+44" and other.dial_template == "PJSIP/{number}@uk"
        default = await resolve_outbound_route(session, "05321234567", DEFAULT, Language.TR)
        assert default.is_default and default.announcement is Announcement.NOTICE_ONLY
        for prefix, fields, message in [
            ("44x", {}, "invalid outbound prefix '44x'"),
            ("+44", {"dial_template": "PJSIP/uk"}, "must contain {number}"),
            ("+44", {"legal_basis": LegalBasis.CONSENT}, "nobody is asked"),
            ("+44", {"announcement": Announcement.ON_CONNECT}, "on-connect"),
        ]:
            with pytest.raises(InvalidRoute, match=message):
                await set_outbound_route(session, prefix, default=DEFAULT,
                                         default_language=Language.TR,
                                         **fields)  # type: ignore[arg-type]


async def test_an_adopted_outbound_call_keeps_its_roles(out: FlowRig) -> None:
    """Connected and recorded, the service restarts: the adopted call still knows the
    agent (whose *2 / *1 stop and start the recording) from the callee (whose hangup
    ends it), and keeps its outbound route and basis."""
    await cells(out, "100", outbound_external="on-demand")
    await outbound_route(out, "05", legal_basis=LegalBasis.CONTRACT)
    agent = out.asterisk.call_out(NUMBER, "100")
    await out.asterisk.until(lambda: connected(out))
    out.asterisk.press(agent, "*1")
    await out.asterisk.until(lambda: bridge_recording(out))

    await out.stop()
    await outbound_route(out, "05", legal_basis=LegalBasis.LEGITIMATE_INTEREST)
    await out.start()
    await out.asterisk.until(lambda: out.app is not None and out.app.live_calls == 1)
    assert bridge_recording(out)
    out.asterisk.press(agent, "*2")
    await out.asterisk.until(lambda: not bridge_recording(out))
    out.asterisk.press(agent, "*1")
    await out.asterisk.until(lambda: bridge_recording(out))
    out.asterisk.hang_up(callee_of(out))
    ended = await out.ended_call()

    assert ended.call.direction == "outbound" and ended.call.extension == "100"
    assert ended.call.hangup_cause is not None
    assert ended.call.hangup_cause.startswith("callee hung up")
    assert [r.legal_basis for r in ended.of_kind("conversation")] == ["contract", "contract"]
    assert out.asterisk.prompts(agent) == [
        "agent-recording-started", "agent-recording-stopped", "agent-recording-started"]
