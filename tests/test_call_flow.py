"""The call flow end to end: sipp callers and agents, a real Asterisk 22, the real service.

The caller sends a 440 Hz tone and the agent a 1000 Hz tone, so a recording's spectrum
tells whose audio it holds.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from e2e_harness import ServiceHarness, days_after, local_file, recordings_of
from heard_prompts import assert_heard, in_language

from pbx_bridge.config import LegalBasis
from pbx_bridge.disclosure import DisclosureFacts, disclosure, short_notice
from pbx_bridge.sandbox import sipp
from pbx_bridge.sandbox.audio import AGENT_TONE_HZ, CALLER_TONE_HZ, tone_power

pytestmark = pytest.mark.asterisk

CALLER = "05321234567"
DID = "2125550100"


def manifest_entry(built_prompts: Path, key: str) -> dict[str, Any]:
    entry: dict[str, Any] = json.loads((built_prompts / "manifest.json").read_text())[
        "prompts"
    ][key]
    return entry


def assert_hears(path: Path, *, caller: bool, agent: bool) -> None:
    """The recording holds each party's tone clearly above an unrelated frequency."""
    floor = tone_power(path, 700.0) + 1e-9
    assert (tone_power(path, CALLER_TONE_HZ) > 20 * floor) is caller, "caller's 440 Hz"
    assert (tone_power(path, AGENT_TONE_HZ) > 20 * floor) is agent, "agent's 1000 Hz"


def assert_intact(recording: dict[str, Any]) -> Path:
    path = local_file(recording)
    assert recording["status"] == "stored"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == recording["sha256"]
    assert path.stat().st_size == recording["size_bytes"]
    return path


def assert_asterisk_kept_nothing(service: ServiceHarness) -> None:
    left = list(service.asterisk.recordings_dir.glob("*"))
    assert left == [], f"left in Asterisk's recording folder: {left}"


async def test_consent_granted_records_both_parties(
    service: ServiceHarness, built_prompts: Path
) -> None:
    """(a) 1 = consent: both parties in the recording, retention right, evidence kept."""
    service.start()
    agent = await sipp.start_agent(service.asterisk.agent_ports["100"], "answer", ring_s=1.0)
    result = await sipp.call(
        service.asterisk.sip_address, DID, CALLER, dtmf=[(2.0, "1")], hangup_after_s=16.0
    )
    assert result.answered and result.hangup_by == "caller", result
    await agent.wait(timeout_s=20)

    (call,) = await service.wait_for_calls(1)
    assert call["caller"] == CALLER
    assert call["did"] == DID
    assert call["extension"] == "100"
    assert call["direction"] == "inbound"
    assert call["disposition"] == "answered"
    assert call["linkedid"]
    assert call["answered_at"] is not None

    consent = call["consent"]
    assert consent["decision"] == "granted"
    assert consent["digit"] == "1"
    # The consent route's disclosure: 60 days of the default class, the call's reference.
    assert call["reference"] and len(call["reference"]) == 9
    facts = DisclosureFacts(LegalBasis.CONSENT, 60, call["reference"])
    assert_heard(consent, built_prompts, in_language("tr", disclosure(facts)))

    (conversation,) = recordings_of(call, "conversation")
    path = assert_intact(conversation)
    assert conversation["duration_s"] > 4.0
    assert_hears(path, caller=True, agent=True)
    assert days_after(call["ended_at"], conversation["retain_until"]) == timedelta(days=60)

    (evidence,) = recordings_of(call, "evidence")
    assert evidence["id"] == consent["evidence_recording_id"]
    evidence_path = assert_intact(evidence)
    assert 1.0 < evidence["duration_s"] < 6.0  # from the disclosure to the keypress at 2 s
    assert_hears(evidence_path, caller=True, agent=False)
    assert days_after(call["ended_at"], evidence["retain_until"]) == timedelta(days=730)

    assert_asterisk_kept_nothing(service)
    assert "05321234567" not in "\n".join(
        line for line in service.log_text().splitlines() if " INFO " in line
    ), "caller's number logged unmasked at INFO"


async def wait_quietly(*processes: sipp.SippProcess) -> None:
    await asyncio.gather(*(p.wait(timeout_s=120) for p in processes))


async def test_declined_is_connected_but_not_recorded(
    service: ServiceHarness, built_prompts: Path
) -> None:
    """(b) 2 = decline: the caller still reaches the department; only the evidence is kept."""
    service.start()
    agent = await sipp.start_agent(service.asterisk.agent_ports["100"], "answer", ring_s=0.5)
    result = await sipp.call(
        service.asterisk.sip_address, DID, CALLER, dtmf=[(2.0, "2")], hangup_after_s=14.0
    )
    agent_result = await agent.wait(timeout_s=20)
    assert result.answered and agent_result.answered, (result, agent_result)

    (call,) = await service.wait_for_calls(1)
    assert call["disposition"] == "answered"
    assert call["consent"]["decision"] == "declined"
    assert call["consent"]["digit"] == "2"
    assert recordings_of(call, "conversation") == []
    (evidence,) = recordings_of(call, "evidence")
    assert_intact(evidence)
    assert_asterisk_kept_nothing(service)


async def test_silence_follows_the_route_timeout_rule(
    service: ServiceHarness, built_prompts: Path
) -> None:
    """(c) No key: 'declined' connects unrecorded; 'hangup' says goodbye and hangs up.

    Both calls run at once (they each wait for the whole disclosure), which also shows
    two calls are handled side by side.
    """
    service.cli("route", "set", "2125550103", "--timeout-means", "hangup", "--language", "en")
    service.start()
    agent = await sipp.start_agent(service.asterisk.agent_ports["100"], "answer", max_wait_s=165)
    declined, hung_up = await asyncio.gather(
        sipp.call(service.asterisk.sip_address, DID, CALLER, hangup_after_s=115.0),
        sipp.call(
            service.asterisk.sip_address, "2125550103", "+905551112233", max_wait_s=125.0
        ),
    )
    await agent.wait(timeout_s=30)
    assert declined.answered and declined.hangup_by == "caller", declined
    assert hung_up.answered and hung_up.hangup_by == "remote", hung_up

    calls = {c["did"]: c for c in await service.wait_for_calls(2)}
    connected, goodbye = calls[DID], calls["2125550103"]
    assert connected["consent"]["decision"] == "timeout"
    assert connected["consent"]["digit"] is None
    assert connected["disposition"] == "answered"
    assert recordings_of(connected, "conversation") == []

    assert goodbye["consent"]["decision"] == "timeout"
    assert goodbye["consent"]["language"] == "en"
    english = DisclosureFacts(LegalBasis.CONSENT, 60, goodbye["reference"])
    assert_heard(goodbye["consent"], built_prompts, in_language("en", disclosure(english)))
    assert goodbye["disposition"] == "abandoned"
    assert goodbye["answered_at"] is None
    assert recordings_of(goodbye, "conversation") == []
    assert_asterisk_kept_nothing(service)


async def test_caller_hanging_up_during_disclosure_is_abandoned(
    service: ServiceHarness,
) -> None:
    """(d) Hangup mid-disclosure: abandoned, the department never rings, Asterisk is clean."""
    service.start()
    result = await sipp.call(service.asterisk.sip_address, DID, CALLER, hangup_after_s=3.0)
    assert result.answered and result.hangup_by == "caller", result

    (call,) = await service.wait_for_calls(1)
    assert call["disposition"] == "abandoned"
    assert call["answered_at"] is None
    assert call["consent"] is None  # no answer was given, so none is claimed
    assert recordings_of(call, "conversation") == []
    (evidence,) = recordings_of(call, "evidence")
    assert_intact(evidence)
    assert_asterisk_kept_nothing(service)
    assert "extension 100" not in service.log_text()  # never dialled


async def test_extension_that_never_records(service: ServiceHarness) -> None:
    """(e) Consent given, but extension 101 never records."""
    service.cli("ext", "set", "101", "--recording", "never")
    service.cli("route", "set", "2125550105", "--target", "101")
    service.start()
    agent = await sipp.start_agent(service.asterisk.agent_ports["101"], "answer")
    result = await sipp.call(
        service.asterisk.sip_address, "2125550105", CALLER, dtmf=[(2.0, "1")],
        hangup_after_s=13.0,
    )
    agent_result = await agent.wait(timeout_s=20)
    assert result.answered and agent_result.answered

    (call,) = await service.wait_for_calls(1)
    assert call["consent"]["decision"] == "granted"
    assert call["extension"] == "101"
    assert call["disposition"] == "answered"
    assert recordings_of(call, "conversation") == []
    assert "extension never records" in service.log_text()


async def test_nine_repeats_the_disclosure_up_to_the_limit(service: ServiceHarness) -> None:
    """(f) 9 replays the disclosure (twice at most by default); a third 9 re-asks instead."""
    service.start()
    agent = await sipp.start_agent(service.asterisk.agent_ports["100"], "answer")
    result = await sipp.call(
        service.asterisk.sip_address, DID, CALLER,
        dtmf=[(1.5, "9"), (3.0, "9"), (4.5, "9"), (6.5, "1")],
        hangup_after_s=18.0,
    )
    await agent.wait(timeout_s=20)
    assert result.answered

    (call,) = await service.wait_for_calls(1)
    consent = call["consent"]
    assert consent["decision"] == "granted"
    assert consent["times_played"] == 3  # first play + the 2 repeats allowed
    (evidence,) = recordings_of(call, "evidence")
    assert 5.5 < evidence["duration_s"] < 10.0  # the clip spans all plays up to the "1"
    assert len(recordings_of(call, "conversation")) == 1


async def place_on_demand_call(service: ServiceHarness) -> dict[str, Any]:
    """A consenting caller to extension 102 (on-demand), whose agent presses *1 at 2.3 s
    and *2 at 6.3 s after answering; returns the settled call."""
    service.cli("ext", "set", "102", "--recording", "on-demand")
    service.cli("route", "set", "2125550107", "--target", "102")
    service.start()
    agent = await sipp.start_agent(
        service.asterisk.agent_ports["102"], "answer", ring_s=0.5,
        dtmf=[(2.0, "*"), (2.3, "1"), (6.0, "*"), (6.3, "2")],
    )
    result = await sipp.call(
        service.asterisk.sip_address, "2125550107", CALLER, dtmf=[(2.0, "1")],
        hangup_after_s=20.0,
    )
    await agent.wait(timeout_s=25)
    assert result.answered
    (call,) = await service.wait_for_calls(1)
    return call


async def test_agent_records_on_demand(service: ServiceHarness) -> None:
    """(g) Extension 102 records only between the agent's *1 and *2."""
    call = await place_on_demand_call(service)
    (conversation,) = recordings_of(call, "conversation")
    path = assert_intact(conversation)
    assert 2.5 < conversation["duration_s"] < 5.5, conversation  # *1 at 2.3 s, *2 at 6.3 s
    assert_hears(path, caller=True, agent=True)
    assert_asterisk_kept_nothing(service)


async def test_department_busy_unanswered_or_unreachable(service: ServiceHarness) -> None:
    """The caller hears why, the call is closed with the right disposition."""
    service.cli("route", "set", "2125550111", "--target", "101")
    service.cli("route", "set", "2125550112", "--target", "102")
    service.cli("route", "set", "2125550113", "--target", "199")  # no such endpoint
    service.start()
    busy_agent = await sipp.start_agent(service.asterisk.agent_ports["101"], "busy")
    silent_agent = await sipp.start_agent(
        service.asterisk.agent_ports["102"], "no-answer", max_wait_s=40
    )
    results = await asyncio.gather(
        *(
            sipp.call(service.asterisk.sip_address, did, CALLER, dtmf=[(1.5, "2")],
                      max_wait_s=40.0)
            for did in ("2125550111", "2125550112", "2125550113")
        )
    )
    await asyncio.gather(busy_agent.wait(timeout_s=45), silent_agent.wait(timeout_s=45))
    assert all(r.answered and r.hangup_by == "remote" for r in results), results

    calls = {c["did"]: c for c in await service.wait_for_calls(3)}
    assert calls["2125550111"]["disposition"] == "busy"
    assert calls["2125550112"]["disposition"] == "no-answer"
    assert calls["2125550113"]["disposition"] == "failed"
    for call in calls.values():
        assert call["answered_at"] is None
        assert recordings_of(call, "conversation") == []


async def test_on_connect_disclosure_after_the_agent_answers(
    service: ServiceHarness,
) -> None:
    """On-connect: the department answers first; the caller hears the disclosure, then talks."""
    service.cli("route", "set", "2125550121", "--announcement", "on-connect")
    service.start()
    agent = await sipp.start_agent(service.asterisk.agent_ports["100"], "answer", ring_s=1.0)
    result = await sipp.call(
        service.asterisk.sip_address, "2125550121", CALLER, dtmf=[(2.0, "1")],
        hangup_after_s=14.0,
    )
    await agent.wait(timeout_s=20)
    assert result.answered

    (call,) = await service.wait_for_calls(1)
    assert call["consent"]["decision"] == "granted"
    assert call["answered_at"] <= call["consent"]["at"]  # asked after the agent answered
    (conversation,) = recordings_of(call, "conversation")
    assert_hears(assert_intact(conversation), caller=True, agent=True)


async def test_notice_only_route_records_under_legitimate_interest(
    service: ServiceHarness, built_prompts: Path
) -> None:
    """Notice-only: no question; the notice heard is kept as proof, and the call recorded."""
    service.cli(
        "route", "set", "2125550122", "--announcement", "notice-only",
        "--legal-basis", "legitimate-interest",
    )
    service.start()
    agent = await sipp.start_agent(service.asterisk.agent_ports["100"], "answer")
    result = await sipp.call(
        service.asterisk.sip_address, "2125550122", CALLER, hangup_after_s=36.0
    )
    await agent.wait(timeout_s=45)
    assert result.answered

    (call,) = await service.wait_for_calls(1)
    assert call["consent"]["decision"] == "not-asked"
    facts = DisclosureFacts(LegalBasis.LEGITIMATE_INTEREST, 60, call["reference"])
    assert_heard(call["consent"], built_prompts, in_language("tr", short_notice(facts)))
    (conversation,) = recordings_of(call, "conversation")
    assert_hears(assert_intact(conversation), caller=True, agent=True)


async def test_agent_hanging_up_ends_the_call_for_the_caller(service: ServiceHarness) -> None:
    """Either side may end the call: the agent's BYE hangs the caller up too."""
    service.start()
    agent = await sipp.start_agent(
        service.asterisk.agent_ports["100"], "answer", hangup_after_s=4.0
    )
    result = await sipp.call(
        service.asterisk.sip_address, DID, CALLER, dtmf=[(2.0, "1")], max_wait_s=30.0
    )
    agent_result = await agent.wait(timeout_s=20)
    assert agent_result.hangup_by == "agent", agent_result
    assert result.answered and result.hangup_by == "remote", result

    (call,) = await service.wait_for_calls(1)
    assert call["disposition"] == "answered"
    (conversation,) = recordings_of(call, "conversation")
    assert 2.0 < conversation["duration_s"] < 6.0
    assert_asterisk_kept_nothing(service)
