"""Blind and attended transfers through the real Asterisk and sipp: one call, one
recording, every voice in it.

The caller sends 440 Hz, extension 100 1000 Hz and the extension it hands the call to
1700 Hz, so the stored file proves by its spectrum who was recorded when: the first
agent before the transfer, the second after it (on the agent's side in stereo), neither
while the agents talk apart in an attended transfer, and nothing of a `never` extension.
The branches (busy, cancel, the caller leaving mid-transfer) are in test_transfer_flow.py.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import soundfile
from e2e_harness import ServiceHarness, parse_time, recordings_of
from test_call_flow import CALLER, DID, assert_asterisk_kept_nothing, assert_intact
from test_e2e_agent_features import audit_actions, tone_amplitude

from pbx_bridge.sandbox import sipp
from pbx_bridge.sandbox.audio import AGENT_TONE_HZ, CALLER_TONE_HZ

pytestmark = pytest.mark.asterisk

SECOND_TONE_HZ = 1700.0
# A tone "is there" above this amplitude and "is not" below the other (a full-scale
# sine is ~1; the sipp tones are 0.3, through G.711 and the mixing).
HEARD, ABSENT = 0.01, 0.002


def keys(code: str, at_s: float = 3.0) -> list[tuple[float, str]]:
    """The agent types ``code`` from ``at_s`` s after answering, a key each 0.3 s."""
    return [(at_s + 0.3 * i, digit) for i, digit in enumerate(code)]


def enable_stereo(service: ServiceHarness) -> None:
    config = service.config_path.read_text(encoding="utf-8")
    assert config.count("[call]\n") == 1
    service.config_path.write_text(config.replace("[call]\n", "[call]\nstereo = true\n"))


async def transferred_call(
    service: ServiceHarness,
    first_keys: list[tuple[float, str]],
    target: str,
    *,
    first_hangs_up_s: float | None = None,
    hangup_after_s: float = 26.0,
) -> dict[str, Any]:
    """A consenting caller reaches 100, whose agent types ``first_keys``; ``target``
    answers with the second tone. Returns the call once ended and settled."""
    service.start()
    first = await sipp.start_agent(
        service.asterisk.agent_ports["100"], "answer", ring_s=0.5, dtmf=first_keys,
        hangup_after_s=first_hangs_up_s,
    )
    second = await sipp.start_agent(
        service.asterisk.agent_ports[target], "answer", ring_s=0.5, tone_hz=SECOND_TONE_HZ,
    )
    result = await sipp.call(service.asterisk.sip_address, DID, CALLER, dtmf=[(2.0, "1")],
                             hangup_after_s=hangup_after_s)
    await first.wait(timeout_s=30)
    await second.wait(timeout_s=30)
    assert result.answered and result.hangup_by == "caller", result
    (call,) = await service.wait_for_calls(1, timeout_s=120)
    return call


WINDOW_S = 0.25


def heard_at(samples: npt.NDArray[np.float64], rate: int, freq_hz: float) -> list[float]:
    """Where in the file (window starts, s) the tone is heard: judged from the audio
    itself, not from the call's clock (Asterisk starts writing a little after the row's
    start, and under load writes fewer frames than wall time)."""
    step = round(WINDOW_S * rate)
    return [i / rate for i in range(0, samples.size - step + 1, step)
            if tone_amplitude(samples[i : i + step], rate, freq_hz) > HEARD]


def spans(times: list[float]) -> float:
    return len(times) * WINDOW_S


def the_transfer(call: dict[str, Any], mode: str, target: str) -> dict[str, Any]:
    (transfer,) = call["transfers"]
    assert isinstance(transfer, dict)
    assert (transfer["mode"], transfer["from"], transfer["to"], transfer["outcome"]) == (
        mode, "100", target, "completed"), transfer
    return transfer


@pytest.mark.parametrize("stereo", [False, True], ids=["mixed", "stereo"])
async def test_blind_transfer_keeps_one_recording_with_both_agents(
    service: ServiceHarness, stereo: bool
) -> None:
    if stereo:
        enable_stereo(service)
    call = await transferred_call(service, keys("*8101#"), "101")

    transfer = the_transfer(call, "blind", "101")
    assert transfer["recording"] == "continued"
    assert [h["extension"] for h in call["handled_by"]] == ["100", "101"]
    (conversation,) = recordings_of(call, "conversation")
    path = assert_intact(conversation)
    data, rate = soundfile.read(str(path), dtype="float64", always_2d=True)
    agent_side = np.asarray(data[:, 1] if stereo else data[:, 0])
    caller_side = np.asarray(data[:, 0])
    first, second = (heard_at(agent_side, rate, hz) for hz in (AGENT_TONE_HZ, SECOND_TONE_HZ))
    # The first agent, then the second, in the one file; never both at once (the one
    # window in which the bridge changed agents may hold the end of one and the start
    # of the other).
    assert spans(first) > 2.0 and spans(second) > 4.0, (first, second)
    assert max(first) <= min(second), (first, second)
    duration = data.shape[0] / rate
    assert max(second) > duration - 1.0  # the second agent until the caller hung up
    caller = heard_at(caller_side, rate, CALLER_TONE_HZ)
    assert spans(caller) > 0.9 * duration - 1.0, (spans(caller), duration)
    if stereo:  # the caller's side holds neither agent
        for hz in (AGENT_TONE_HZ, SECOND_TONE_HZ):
            assert tone_amplitude(caller_side, rate, hz) < ABSENT
    (entry,) = audit_actions(service, "call.transferred")
    assert entry[:2] == ("agent:100", f"call:{call['id']}") and entry[2]["to"] == "101"
    assert_asterisk_kept_nothing(service)


async def test_attended_transfer_keeps_one_recording_and_the_agents_talk_apart(
    service: ServiceHarness,
) -> None:
    """100 asks 101 first (the caller holds), then hangs up: the transfer completes."""
    call = await transferred_call(service, keys("*9101#"), "101", first_hangs_up_s=11.0,
                                  hangup_after_s=30.0)

    transfer = the_transfer(call, "attended", "101")
    consulted = (parse_time(transfer["ended_at"])
                 - parse_time(transfer["answered_at"])).total_seconds()
    assert consulted > 4.0, transfer
    (conversation,) = recordings_of(call, "conversation")
    path = assert_intact(conversation)
    samples, rate = soundfile.read(str(path), dtype="float64")
    samples = np.asarray(samples)
    first, second = (heard_at(samples, rate, hz) for hz in (AGENT_TONE_HZ, SECOND_TONE_HZ))
    assert spans(first) > 2.0 and spans(second) > 4.0, (first, second)
    # While the agents talk (their tones in neither), the caller holds, still recorded.
    gap = (max(first) + WINDOW_S, min(second))
    # consulted is wall time; on a loaded machine Asterisk writes a few per cent fewer
    # frames than wall time (as test_e2e_agent_features judges on the file's clock).
    assert gap[1] - gap[0] > 0.85 * consulted - 1.5, (gap, consulted)
    held = [t for t in heard_at(samples, rate, CALLER_TONE_HZ) if gap[0] <= t < gap[1]]
    assert spans(held) > 0.8 * (gap[1] - gap[0]), (held, gap)
    assert [h["extension"] for h in call["handled_by"]] == ["100", "101"]
    assert_asterisk_kept_nothing(service)


async def test_a_transfer_to_a_never_extension_stops_the_recording(
    service: ServiceHarness,
) -> None:
    service.cli("ext", "set", "102", "--recording", "never")
    call = await transferred_call(service, keys("*8102#"), "102")

    transfer = the_transfer(call, "blind", "102")
    assert transfer["recording"] == "stopped"
    (conversation,) = recordings_of(call, "conversation")
    path = assert_intact(conversation)
    samples, rate = soundfile.read(str(path), dtype="float64")
    samples = np.asarray(samples)
    duration = samples.size / rate
    # The file ends at the transfer (the call went on ~10 s more): nothing of 102 in it.
    # The row's start is taken before Asterisk begins writing, and a loaded Asterisk
    # writes fewer frames than wall time: the end is judged with that slack.
    started = parse_time(conversation["started_at"])
    asked = (parse_time(transfer["requested_at"]) - started).total_seconds()
    handed = (parse_time(transfer["ended_at"]) - started).total_seconds()
    assert asked - 2.5 < duration < handed + 1.0, (asked, duration, handed)
    connected = (parse_time(call["ended_at"])
                 - parse_time(conversation["started_at"])).total_seconds()
    assert duration < connected - 6.0, (duration, connected)
    assert tone_amplitude(samples, rate, SECOND_TONE_HZ) < ABSENT
    assert spans(heard_at(samples, rate, AGENT_TONE_HZ)) > 2.0
    assert spans(heard_at(samples, rate, CALLER_TONE_HZ)) > 2.0
    assert_asterisk_kept_nothing(service)


async def test_an_attended_transfer_cancelled_brings_the_first_agent_back(
    service: ServiceHarness,
) -> None:
    """100 asks 101, then presses * (its DTMF heard in the agents' own bridge): back with
    the caller, in the same recording; 101's voice never in it."""
    call = await transferred_call(service, [*keys("*9101#"), (10.0, "*")], "101")

    (transfer,) = call["transfers"]
    assert (transfer["mode"], transfer["outcome"]) == ("attended", "cancelled"), transfer
    assert [h["extension"] for h in call["handled_by"]] == ["100"]
    (conversation,) = recordings_of(call, "conversation")
    path = assert_intact(conversation)
    samples, rate = soundfile.read(str(path), dtype="float64")
    samples = np.asarray(samples)
    assert tone_amplitude(samples, rate, SECOND_TONE_HZ) < ABSENT
    first = heard_at(samples, rate, AGENT_TONE_HZ)
    # 100 before the transfer and again after it, the caller held in between.
    gaps = [(a, b) for a, b in pairwise(first) if b - a > 3.0]
    assert len(gaps) == 1, gaps
    before, after = gaps[0]
    assert before > 2.0 and max(first) - after > 4.0, (gaps, max(first))
    assert audit_actions(service, "call.transferred") == []
    assert_asterisk_kept_nothing(service)
