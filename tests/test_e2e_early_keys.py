"""A caller who presses 1 the moment they are answered, before the disclosure has begun.

Through a real Asterisk 22 and sipp: the key is not consent (a consent route records
nothing), it stays in the consent row's history marked as before the disclosure, and the
measured delay from answer to the disclosure's first audio is stored.

On an idle machine the disclosure begins a few ms after the answer (the evidence clip is
already running by then), before any real keypress can end; under load it begins later.
The slow point ``disclosure.after-answer`` holds the disclosure back 1 s after the
answer, as a loaded event loop would, so the key arrives before it.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from e2e_harness import ServiceHarness, recordings_of

from pbx_bridge.sandbox import sipp

pytestmark = pytest.mark.asterisk

CALLER, CALLER_B = "05321234567", "05329876543"
DID, DID_B = "2125550107", "2125550108"


async def test_a_key_pressed_on_answer_is_kept_but_is_not_consent(
    service: ServiceHarness,
) -> None:
    """Caller A presses 1 on answer and never again; caller B presses it again at 3 s.

    Both calls run at once (A waits for the whole 71 s disclosure and the timeout).
    """
    # Silence after the disclosure hangs up, so A's call ends without an agent.
    service.cli("route", "set", DID, "--legal-basis", "consent", "--timeout-means", "hangup",
                "--prompt-timeout", "2")
    service.cli("route", "set", DID_B, "--legal-basis", "consent")
    service.start(failpoints=["disclosure.after-answer"])
    agent = await sipp.start_agent(service.asterisk.agent_ports["100"], "answer")
    # Each digit starts with the first RTP packet after 200 OK and lasts 200 ms.
    only_early, early_then_informed = await asyncio.gather(
        sipp.call(service.asterisk.sip_address, DID, CALLER, dtmf=[(0.0, "1")],
                  max_wait_s=100.0),
        sipp.call(service.asterisk.sip_address, DID_B, CALLER_B,
                  dtmf=[(0.0, "1"), (3.0, "1")], hangup_after_s=12.0),
    )
    await agent.wait(timeout_s=30)
    assert only_early.answered and only_early.hangup_by == "remote", only_early
    assert early_then_informed.answered, early_then_informed

    calls = {c["did"]: c for c in await service.wait_for_calls(2)}
    call = calls[DID]
    consent = call["consent"]
    assert consent["decision"] == "timeout", consent
    assert consent["digit"] is None
    assert consent["early_keys"] == ["1"]
    assert history(consent) == [("1", True)]
    assert consent["key_history"][0]["at"] <= consent["disclosure_started_at"]
    assert 1.0 <= consent["answer_to_disclosure_s"] < 4.0, consent  # 1 s is the slow point
    assert call["disposition"] == "abandoned"
    assert recordings_of(call, "conversation") == []
    (evidence,) = recordings_of(call, "evidence")
    assert evidence["id"] == consent["evidence_recording_id"]

    granted = calls[DID_B]["consent"]
    assert granted["decision"] == "granted" and granted["digit"] == "1", granted
    assert history(granted) == [("1", True), ("1", False)]
    assert len(recordings_of(calls[DID_B], "conversation")) == 1

    listed = {c["call_id"]: c for c in json.loads(service.cli("consents", "list", "--json").stdout)}
    assert listed[call["id"]]["decision"] == "timeout"
    assert listed[call["id"]]["early_keys"] == ["1"]
    assert listed[call["id"]]["answer_to_disclosure_s"] == consent["answer_to_disclosure_s"]
    header, *lines = service.cli("consents", "list").stdout.splitlines()
    table = [dict(zip(re.split(r"\s{2,}", header), re.split(r"\s{2,}", line), strict=True))
             for line in lines]
    row = next(r for r in table if r["CALL"] == call["id"])
    assert (row["DECISION"], row["DIGIT"], row["EARLY"]) == ("timeout", "-", "1")
    assert "consent timeout (pressed before the disclosure, no answer: 1)" in service.log_text()


def history(consent: dict[str, Any]) -> list[tuple[str, bool]]:
    return [(k["digit"], k["before_disclosure"]) for k in consent["key_history"]]
