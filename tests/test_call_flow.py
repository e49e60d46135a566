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

    disclosure = manifest_entry(built_prompts, "tr/disclosure")
    consent = call["consent"]
    assert consent["decision"] == "granted"
    assert consent["digit"] == "1"
    assert consent["prompt_version"] == disclosure["version"]
    assert consent["prompt_sha256"] == disclosure["audio_sha256"]

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
