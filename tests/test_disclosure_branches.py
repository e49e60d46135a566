"""The truthful disclosure's branches through the real flow on the scripted fake Asterisk
(tests/fake_ari.py, tests/flow_rig.py; SQLite and PostgreSQL): which sounds one playback
lists, in order, for each kind of route, and what the consent row keeps of them."""

from __future__ import annotations

import json

import pytest
from database_fixtures import db_url, migrated_url, pg_database, sessions
from fake_ari import Caller, segments_of
from flow_rig import FlowRig
from test_flow_branches import RING, connected, rig, talk_then_caller_hangs_up

from pbx_bridge.calls.reference import damm_valid
from pbx_bridge.config import Announcement, LegalBasis
from pbx_bridge.disclosure import DisclosureFacts, disclosure, full_notice, short_notice

__all__ = ["db_url", "migrated_url", "pg_database", "rig", "sessions"]  # fixtures, for pytest


def heard_names(consent_segments: str | None) -> list[str]:
    return [s["name"] for s in json.loads(consent_segments or "[]")]


async def test_a_legitimate_interest_route_offers_only_the_objection_and_records(
    rig: FlowRig,
) -> None:
    await rig.route(legal_basis=LegalBasis.LEGITIMATE_INTEREST)
    caller = rig.asterisk.call_in(Caller())  # silent: no objection
    await talk_then_caller_hangs_up(rig, caller, recorded=True)
    ended = await rig.ended_call()

    assert rig.asterisk.prompts(caller) == ["disclosure", RING]  # nothing to confirm
    reference = ended.call.reference
    assert reference is not None and damm_valid(reference)
    facts = DisclosureFacts(LegalBasis.LEGITIMATE_INTEREST, 60, reference)
    (played, *_) = rig.asterisk.media[caller]
    assert segments_of(played) == [f"tr/{name}" for name in disclosure(facts)]
    assert "tr/choices-consent" not in segments_of(played)
    assert ended.consent is not None and ended.consent.decision == "timeout"
    assert heard_names(ended.consent.prompt_segments) == list(disclosure(facts))
    (conversation,) = ended.of_kind("conversation")
    assert conversation.legal_basis == "legitimate-interest"
    # One play request for the whole disclosure: no request added per segment.
    plays = [r for r in rig.asterisk.requests if r.method == "play" and r.target == caller]
    assert len(plays) == 2  # the disclosure and the ringback


async def test_a_wrong_key_on_a_legitimate_interest_route_is_re_asked_without_press_1(
    rig: FlowRig,
) -> None:
    await rig.route(legal_basis=LegalBasis.LEGITIMATE_INTEREST)
    caller = rig.asterisk.call_in(Caller(keys=[("disclosure", "5"),
                                               ("invalid-choice-objection", "2")]))
    await talk_then_caller_hangs_up(rig, caller, recorded=False)
    ended = await rig.ended_call()
    assert rig.asterisk.prompts(caller) == [
        "disclosure", "invalid-choice-objection", "confirm-declined", RING]
    assert ended.consent is not None and ended.consent.decision == "declined"


@pytest.mark.parametrize("basis", [LegalBasis.LEGITIMATE_INTEREST, LegalBasis.CONTRACT])
async def test_pressing_1_where_no_consent_is_asked_is_no_consent(
    rig: FlowRig, basis: LegalBasis
) -> None:
    """1 is not on the menu of a route that does not record on consent: the caller goes
    on and is recorded on the route's basis, hears "thank you" (not "your consent is
    recorded"), and the row says not-objected, the key kept in its history."""
    await rig.route(legal_basis=basis)
    caller = rig.asterisk.call_in(Caller(keys=[("disclosure", "1")]))
    await talk_then_caller_hangs_up(rig, caller, recorded=True)
    ended = await rig.ended_call()

    assert rig.asterisk.prompts(caller) == ["disclosure", "confirm-not-objected", RING]
    assert rig.asterisk.media[caller][1] == "sound:pbx-bridge/tr/confirm-not-objected"
    consent = ended.consent
    assert consent is not None and (consent.decision, consent.digit) == ("not-objected", "1")
    assert [k["digit"] for k in json.loads(consent.key_history or "[]")] == ["1"]
    (conversation,) = ended.of_kind("conversation")
    assert conversation.legal_basis == basis.value


async def test_notice_only_0_plays_the_full_notice_and_the_proof_keeps_both(
    rig: FlowRig,
) -> None:
    await rig.route(legal_basis=LegalBasis.LEGAL_OBLIGATION,
                    announcement=Announcement.NOTICE_ONLY)
    caller = rig.asterisk.call_in(Caller(keys=[("notice", "0")]))
    await talk_then_caller_hangs_up(rig, caller, recorded=True)
    ended = await rig.ended_call()

    assert rig.asterisk.prompts(caller) == ["notice", "full-notice", RING]
    assert rig.asterisk.heard(caller)[0].how == "interrupted"  # 0 stops the notice
    facts = DisclosureFacts(LegalBasis.LEGAL_OBLIGATION, 60, ended.call.reference)
    notice, full, _ = rig.asterisk.media[caller]
    assert segments_of(notice) == [f"tr/{name}" for name in short_notice(facts)]
    assert segments_of(full) == [f"tr/{name}" for name in full_notice(facts)]
    consent = ended.consent
    assert consent is not None and (consent.decision, consent.digit) == ("not-asked", "0")
    assert consent.prompt_name == "notice+full-notice"
    assert heard_names(consent.prompt_segments) == [*short_notice(facts), *full_notice(facts)]


async def test_notice_only_without_0_keeps_the_notice_alone(rig: FlowRig) -> None:
    rig.call = rig.call.model_copy(update={"notice_key_wait_s": 0.05})
    await rig.restart()
    await rig.route(legal_basis=LegalBasis.CONTRACT, announcement=Announcement.NOTICE_ONLY)
    caller = rig.asterisk.call_in(Caller())
    await talk_then_caller_hangs_up(rig, caller, recorded=True)
    ended = await rig.ended_call()
    assert rig.asterisk.prompts(caller) == ["notice", RING]
    assert ended.consent is not None and ended.consent.prompt_name == "notice"
    facts = DisclosureFacts(LegalBasis.CONTRACT, 60, ended.call.reference)
    assert heard_names(ended.consent.prompt_segments) == list(short_notice(facts))


async def test_the_key_picks_the_language_and_the_menu_is_in_the_proof(rig: FlowRig) -> None:
    await rig.route(languages=("tr", "en"), language_keys=("1", "3"))
    caller = rig.asterisk.call_in(Caller(keys=[("language-choice", "3"), ("disclosure", "1")]))
    await talk_then_caller_hangs_up(rig, caller, recorded=True)
    ended = await rig.ended_call()

    assert rig.asterisk.prompts(caller) == [
        "language-choice", "disclosure", "confirm-granted", RING]
    menu, spoken, confirmation, _ = rig.asterisk.media[caller]
    assert segments_of(menu) == ["tr/language-choice", "tr/number-1",
                                 "en/language-choice", "en/number-3"]
    assert all(s.startswith("en/") for s in segments_of(spoken))
    assert confirmation == "sound:pbx-bridge/en/confirm-granted"
    consent = ended.consent
    assert consent is not None and consent.language == "en" and consent.decision == "granted"
    assert ended.call.language == "en"  # the call's row says the language heard, too
    facts = DisclosureFacts(LegalBasis.CONSENT, 60, ended.call.reference)
    assert heard_names(consent.prompt_segments) == [
        "language-choice", "number-1", "language-choice", "number-3", *disclosure(facts)]


async def test_no_key_at_the_menu_keeps_the_routes_language(rig: FlowRig) -> None:
    await rig.route(languages=("tr", "en"), language_keys=("1", "3"))
    caller = rig.asterisk.call_in(Caller(keys=[("disclosure", "2")]))
    await talk_then_caller_hangs_up(rig, caller, recorded=False)
    ended = await rig.ended_call()
    assert rig.asterisk.media[caller][1].startswith("sound:pbx-bridge/tr/disclosure-intro")
    assert ended.consent is not None and ended.consent.language == "tr"


async def test_a_caller_who_chose_by_key_and_left_during_the_disclosure_keeps_it(
    rig: FlowRig,
) -> None:
    """No consent row is written for a caller who hangs up during the disclosure: the
    call's end still says the language they chose and heard."""
    await rig.route(languages=("tr", "en"), language_keys=("1", "3"))
    caller = rig.asterisk.call_in(Caller(keys=[("language-choice", "3")],
                                         hang_up_at="disclosure"))
    ended = await rig.ended_call()
    assert rig.asterisk.prompts(caller)[:2] == ["language-choice", "disclosure"]
    assert ended.consent is None and ended.call.disposition == "abandoned"
    assert ended.call.language == "en"


async def test_the_callers_country_picks_the_language_of_the_call_and_its_proof(
    rig: FlowRig,
) -> None:
    rig.country_languages = {"GB": "en"}
    await rig.restart()
    await rig.route(language_by_country=True)
    caller = rig.asterisk.call_in(Caller(number="+442079460000",
                                         keys=[("disclosure", "1")]))
    await talk_then_caller_hangs_up(rig, caller, recorded=True)
    ended = await rig.ended_call()

    assert rig.asterisk.prompts(caller) == ["disclosure", "confirm-granted", RING]  # no menu
    spoken, confirmation, _ = rig.asterisk.media[caller]
    assert all(s.startswith("en/") for s in segments_of(spoken))
    assert confirmation == "sound:pbx-bridge/en/confirm-granted"
    assert ended.call.language == "en"
    consent = ended.consent
    assert consent is not None and consent.language == "en"
    facts = DisclosureFacts(LegalBasis.CONSENT, 60, ended.call.reference)
    assert heard_names(consent.prompt_segments) == list(disclosure(facts))


async def test_a_country_not_listed_hears_the_routes_language(rig: FlowRig) -> None:
    rig.country_languages = {"GB": "en"}
    await rig.restart()
    await rig.route(language_by_country=True)
    caller = rig.asterisk.call_in(Caller(keys=[("disclosure", "2")]))  # a Turkish number
    await talk_then_caller_hangs_up(rig, caller, recorded=False)
    ended = await rig.ended_call()
    assert rig.asterisk.media[caller][0].startswith("sound:pbx-bridge/tr/disclosure-intro")
    assert ended.call.language == "tr"
    assert ended.consent is not None and ended.consent.language == "tr"


async def test_an_adopted_call_goes_on_in_the_language_the_caller_chose(rig: FlowRig) -> None:
    await rig.route(languages=("tr", "en"), language_keys=("1", "3"))
    caller = rig.asterisk.call_in(Caller(keys=[("language-choice", "3"), ("disclosure", "1")]))
    await rig.asterisk.until(lambda: connected(rig))
    await rig.restart()
    await rig.asterisk.until(lambda: rig.app is not None and rig.app.live_calls == 1)
    assert rig.app is not None
    (adopted,) = rig.app.sessions()
    assert adopted.state.adopted and adopted.state.language == "en"
    rig.asterisk.hang_up(caller)
    ended = await rig.ended_call()
    assert ended.call.language == "en"
