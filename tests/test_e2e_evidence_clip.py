"""The evidence clip holds the disclosure from its very first sample.

The clip is proof of what the caller heard. The service starts it while the caller is
still ringing and answers only once Asterisk says it is recording, so that nothing
stands between the answer and the disclosure but the play request (issue 9: a key
pressed before the disclosure began is not consent, and a late disclosure loses such
callers). This checks, through a real Asterisk 22 and sipp, that the ordering still
gives a complete clip: the disclosure's audio file is found in the stored clip sample
for sample, its first word included, and the clip began no later than the file's first
sample. The caller sends silence, so the clip's audio is the disclosure alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from e2e_harness import ServiceHarness, local_file, recordings_of

from pbx_bridge.sandbox import sipp
from pbx_bridge.sandbox.audio import read_mono

pytestmark = pytest.mark.asterisk

CALLER = "05321234567"
DID = "2125550100"
HEAD_S = 0.25  # the stretch of the first word that must be found whole
MATCH = 0.9  # normalised cross-correlation of that stretch with the clip


def first_sound(samples: npt.NDArray[np.float64], level: float = 0.02) -> int:
    """Index of the first sample of the first word (espeak-ng leads with a little silence)."""
    loud = np.flatnonzero(np.abs(samples) > level)
    assert loud.size, "the disclosure is silent"
    return int(loud[0])


def disclosure_in_clip(
    clip: npt.NDArray[np.float64], disclosure: npt.NDArray[np.float64], rate: int
) -> tuple[int, float]:
    """Where the disclosure's first sample lies in the clip, and how well its first word
    matches there (1.0: sample for sample, up to G.711 quantisation)."""
    onset = first_sound(disclosure)
    head = disclosure[onset : onset + round(HEAD_S * rate)]
    if clip.size < head.size:
        return -onset, 0.0
    dot = np.correlate(clip, head, mode="valid")
    energy = np.convolve(clip**2, np.ones(head.size), mode="valid")
    score = dot / (np.linalg.norm(head) * np.sqrt(np.maximum(energy, 1e-12)))
    at = int(np.argmax(score))
    return at - onset, float(score[at])


async def test_the_clip_holds_the_disclosure_from_its_first_sample(
    service: ServiceHarness, built_prompts: Path
) -> None:
    service.start()
    agent = await sipp.start_agent(service.asterisk.agent_ports["100"], "answer")
    caller = await sipp.start_caller(
        service.asterisk.sip_address, DID, CALLER, dtmf=[(3.0, "1")], hangup_after_s=9.0,
        tone_hz=0.0,
    )
    result = await caller.wait(timeout_s=60)
    await agent.wait(timeout_s=30)
    assert result.answered, result

    (call,) = await service.wait_for_calls(1)
    consent = call["consent"]
    assert consent["decision"] == "granted" and consent["key_history"][0]["before_disclosure"] \
        is False, consent
    (evidence,) = recordings_of(call, "evidence")
    assert evidence["status"] == "stored"
    clip, rate = read_mono(local_file(evidence))
    manifest = json.loads((built_prompts / "manifest.json").read_text())
    # The disclosure's first segment: what the caller hears first, composed per route.
    first = manifest["prompts"]["tr/disclosure-intro"]["file"]
    disclosure, file_rate = read_mono(built_prompts / first)
    assert rate == file_rate == 8000

    start, match = disclosure_in_clip(clip, disclosure, rate)
    assert match > MATCH, f"the disclosure's first word is not in the clip ({match:.2f})"
    assert start >= 0, f"the clip began {-start / rate:.3f} s after the disclosure"
    # The clip runs on until the caller's key, 3 s after the answer.
    heard_s = (clip.size - start) / rate
    assert 2.0 < heard_s < 6.0, heard_s

    # The check would see a clip that lost the disclosure's start: cut the first 50 ms
    # of the first word off this one and its head is no longer found.
    cut = start + first_sound(disclosure) + round(0.05 * rate)
    late_start, late_match = disclosure_in_clip(clip[cut:], disclosure, rate)
    assert late_match <= MATCH or late_start < 0, (late_start, late_match)
