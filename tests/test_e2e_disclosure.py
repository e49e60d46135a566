"""The truthful disclosure through the real Asterisk and sipp (issue 11, "the caller hears
the truth"): what Asterisk played, in order (its own log, one line per sound file), against
what the route's composition says, and what was stored.

- a legitimate-interest route asks no consent and offers no refusal, only the objection
  (2) that its basis honours; the caller stays silent and the call is recorded;
- the call's reference number is played digit by digit and is the one stored on the call;
- on a notice-only (legal-obligation) route, 0 plays the full notice, and the consent
  row keeps both as proof;
- a route offering two languages: the caller picks English by its key, or a route
  following the caller's country gives a London number English; the call's row, the
  consent proof and every sound played say English;
- on a legitimate-interest route a caller's 1 is thanked, never taken for consent.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from e2e_harness import ServiceHarness, recordings_of
from heard_prompts import assert_heard, in_language
from test_call_flow import assert_hears, assert_intact

from pbx_bridge.config import LegalBasis
from pbx_bridge.disclosure import DisclosureFacts, disclosure, full_notice, short_notice
from pbx_bridge.sandbox import AsteriskSandbox, sipp

pytestmark = pytest.mark.asterisk

CALLER = "05321234567"
PLAYING = re.compile(r"<(?P<channel>[^>]+)> Playing '(?P<sound>[^']+?)\.\w+'")


def played_since(asterisk: AsteriskSandbox, offset: int) -> list[str]:
    """The sound files Asterisk played to callers (not agents) since ``offset``, in order,
    as ``language/name``."""
    with asterisk.log_path.open("rb") as log:
        log.seek(offset)
        text = log.read().decode("utf-8", "replace")
    return [
        m["sound"].removeprefix("pbx-bridge/")
        for m in PLAYING.finditer(text)
        if "/agent-" not in m["sound"] and m["sound"].startswith("pbx-bridge/")
    ]


def log_size(asterisk: AsteriskSandbox) -> int:
    return asterisk.log_path.stat().st_size if asterisk.log_path.exists() else 0


async def called(
    service: ServiceHarness, did: str, dtmf: list[tuple[float, str]], *,
    caller: str = CALLER,
) -> tuple[dict[str, Any], list[str]]:
    """Start the service and call ``did`` pressing ``dtmf``, agent 100 answering, 20 s:
    the call as stored, and what Asterisk played to the caller, in order."""
    service.start()
    offset = log_size(service.asterisk)
    agent = await sipp.start_agent(service.asterisk.agent_ports["100"], "answer")
    result = await sipp.call(service.asterisk.sip_address, did, caller, dtmf=dtmf,
                             hangup_after_s=20.0)
    await agent.wait(timeout_s=40)
    assert result.answered, result
    (call,) = await service.wait_for_calls(1)
    return call, played_since(service.asterisk, offset)


async def test_legitimate_interest_offers_no_refusal_says_the_reference_and_records(
    service: ServiceHarness, built_prompts: Path
) -> None:
    service.cli("retention", "set", "support", "365")
    service.cli("route", "set", "2125550140", "--legal-basis", "legitimate-interest",
                "--retention", "support", "--language", "en", "--prompt-timeout", "2")
    service.start()
    offset = log_size(service.asterisk)
    agent = await sipp.start_agent(service.asterisk.agent_ports["100"], "answer",
                                   max_wait_s=150)
    result = await sipp.call(service.asterisk.sip_address, "2125550140", CALLER,
                             hangup_after_s=95.0, max_wait_s=130.0)
    await agent.wait(timeout_s=60)
    assert result.answered, result

    (call,) = await service.wait_for_calls(1)
    reference = call["reference"]
    assert reference and len(reference) == 9
    facts = DisclosureFacts(LegalBasis.LEGITIMATE_INTEREST, 365, reference)
    expected = [f"en/{name}" for name in disclosure(facts)]
    played = played_since(service.asterisk, offset)
    assert played[:len(expected)] == expected, played
    assert "en/choices-consent" not in played and "en/basis-consent" not in played
    assert "en/choices-objection" in played  # 2 objects: the one key that changes something
    digits = played.index("en/reference-intro") + 1
    assert "".join(p.removeprefix("en/number-") for p in played[digits:digits + 9]) == reference
    # 365 days, spoken: three hundred sixty five.
    days = played.index("en/retention-before") + 1
    assert played[days:days + 5] == ["en/number-3", "en/number-hundred", "en/number-60",
                                     "en/number-5", "en/retention-after"]

    consent = call["consent"]
    assert consent["decision"] == "timeout"  # silence is no objection: recorded
    # One playback, started at once: its first media's start (Asterisk starts each of the
    # segments with its own PlaybackStarted), not the last one's a minute later.
    assert consent["answer_to_disclosure_s"] is not None
    assert 0 <= consent["answer_to_disclosure_s"] < 10, consent
    assert_heard(consent, built_prompts, in_language("en", disclosure(facts)))
    (conversation,) = recordings_of(call, "conversation")
    assert_hears(assert_intact(conversation), caller=True, agent=True)
    assert conversation["legal_basis"] == "legitimate-interest"
    found = service.cli("calls", "list", "--json", "--reference", reference).stdout
    assert call["id"] in found


async def test_notice_only_press_0_plays_the_full_notice_and_keeps_both(
    service: ServiceHarness, built_prompts: Path
) -> None:
    service.cli("route", "set", "2125550141", "--legal-basis", "legal-obligation",
                "--announcement", "notice-only", "--language", "en")
    service.start()
    offset = log_size(service.asterisk)
    agent = await sipp.start_agent(service.asterisk.agent_ports["100"], "answer",
                                   max_wait_s=150)
    # 0 at 4 s: during the short notice (barge-in), well after its first audio.
    result = await sipp.call(service.asterisk.sip_address, "2125550141", CALLER,
                             dtmf=[(4.0, "0")], hangup_after_s=90.0, max_wait_s=130.0)
    await agent.wait(timeout_s=60)
    assert result.answered, result

    (call,) = await service.wait_for_calls(1)
    facts = DisclosureFacts(LegalBasis.LEGAL_OBLIGATION, 60, call["reference"])
    played = played_since(service.asterisk, offset)
    full = [f"en/{name}" for name in full_notice(facts)]
    assert played[0] == "en/notice-legal-obligation"
    at = played.index("en/disclosure-intro")
    assert played[at:at + len(full)] == full, played
    assert not any("choices" in p for p in played)
    consent = call["consent"]
    assert consent["decision"] == "not-asked" and consent["digit"] == "0"
    assert consent["prompt_name"] == "notice+full-notice"
    # The short notice as it was offered (the 0 cut it short) and the full notice.
    assert_heard(consent, built_prompts,
                 in_language("en", (*short_notice(facts), *full_notice(facts))))
    (conversation,) = recordings_of(call, "conversation")
    assert_hears(assert_intact(conversation), caller=True, agent=True)


async def test_the_caller_chooses_english_by_its_key(
    service: ServiceHarness, built_prompts: Path
) -> None:
    service.cli("route", "set", "2125550142", "--languages", "tr,en",
                "--language-keys", "1,3")
    # 3 while the menu plays (English), then 1 during the English disclosure: consent.
    call, played = await called(service, "2125550142", [(3.0, "3"), (9.0, "1")])
    assert played[0] == "tr/language-choice", played
    english = played.index("en/disclosure-intro")
    assert all(p.startswith("en/") for p in played[english:]), played
    consent = call["consent"]
    assert consent["decision"] == "granted" and consent["language"] == "en"
    assert call["language"] == "en"  # the call's row, too: the language heard
    menu = [("tr", "language-choice"), ("tr", "number-1"), ("en", "language-choice"),
            ("en", "number-3")]
    facts = DisclosureFacts(LegalBasis.CONSENT, 60, call["reference"])
    # Every segment's version and sha256 are the English build's (the menu's its own).
    assert_heard(consent, built_prompts, menu + in_language("en", disclosure(facts)))
    assert played[played.index("en/confirm-granted") - 1].startswith("en/"), played
    (conversation,) = recordings_of(call, "conversation")
    assert_intact(conversation)


async def test_the_callers_country_picks_english(
    service: ServiceHarness, built_prompts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PBX_BRIDGE_PROMPTS__COUNTRY_LANGUAGES", '{"GB": "en"}')
    service.cli("route", "set", "2125550144", "--language-by-country")
    # A London number; 1 during the English disclosure: consent. No menu is played.
    call, played = await called(service, "2125550144", [(6.0, "1")],
                                caller="+442079460000")
    assert played[0] == "en/disclosure-intro", played
    assert all(p.startswith("en/") for p in played), played
    assert "en/confirm-granted" in played
    assert call["language"] == "en"
    consent = call["consent"]
    assert consent["decision"] == "granted" and consent["language"] == "en"
    facts = DisclosureFacts(LegalBasis.CONSENT, 60, call["reference"])
    assert_heard(consent, built_prompts, in_language("en", disclosure(facts)))


async def test_pressing_1_on_a_legitimate_interest_route_is_thanked_not_called_consent(
    service: ServiceHarness,
) -> None:
    service.cli("route", "set", "2125550143", "--legal-basis", "legitimate-interest",
                "--language", "en")
    # 1 at 4 s, during the disclosure (barge-in): not a key its menu offers.
    call, played = await called(service, "2125550143", [(4.0, "1")])
    assert played[0] == "en/disclosure-intro", played
    assert "en/confirm-not-objected" in played and "en/confirm-granted" not in played
    consent = call["consent"]
    assert (consent["decision"], consent["digit"]) == ("not-objected", "1"), consent
    assert [k["digit"] for k in consent["key_history"]] == ["1"]
    (conversation,) = recordings_of(call, "conversation")
    assert_hears(assert_intact(conversation), caller=True, agent=True)
    assert conversation["legal_basis"] == "legitimate-interest"
