"""Stereo recordings through the real Asterisk: caller left, agent right, one row.

The caller sends 440 Hz and the agent 1000 Hz, so each channel of the stored file proves
whose audio it holds, and that it holds only theirs.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import soundfile
from e2e_harness import ServiceHarness, recordings_of
from test_call_flow import (
    CALLER,
    DID,
    assert_asterisk_kept_nothing,
    assert_intact,
    place_on_demand_call,
)
from test_recovery import wait_until_recording

from pbx_bridge.sandbox import sipp
from pbx_bridge.sandbox.audio import AGENT_TONE_HZ, CALLER_TONE_HZ, tone_power

pytestmark = pytest.mark.asterisk

# A channel "holds" a tone when the tone carries this many times the energy of the other.
DOMINANCE = 20.0


def enable_stereo(service: ServiceHarness) -> None:
    config = service.config_path.read_text(encoding="utf-8")
    assert config.count("[call]\n") == 1
    service.config_path.write_text(config.replace("[call]\n", "[call]\nstereo = true\n"))


def layout_of(service: ServiceHarness, recording_id: str) -> str:
    with sqlite3.connect(service.workdir / "pbx-bridge.db") as db:
        (layout,) = db.execute(
            "SELECT layout FROM recordings WHERE id = ?", (recording_id,)
        ).fetchone()
    return str(layout)


def split_channels(path: Path, out: Path) -> tuple[Path, Path]:
    """Each channel of a stereo file as its own mono WAV, for ``tone_power``."""
    data, rate = soundfile.read(str(path), dtype="int16", always_2d=True)
    assert data.shape[1] == 2, f"{path}: {data.shape[1]} channel(s), not stereo"
    left, right = out / "left.wav", out / "right.wav"
    soundfile.write(str(left), data[:, 0], rate, subtype="PCM_16")
    soundfile.write(str(right), data[:, 1], rate, subtype="PCM_16")
    return left, right


def assert_caller_left_agent_right(path: Path, out: Path) -> tuple[Path, Path]:
    left, right = split_channels(path, out)
    caller_l, agent_l = tone_power(left, CALLER_TONE_HZ), tone_power(left, AGENT_TONE_HZ)
    caller_r, agent_r = tone_power(right, CALLER_TONE_HZ), tone_power(right, AGENT_TONE_HZ)
    assert caller_l > DOMINANCE * agent_l, f"left: 440 Hz {caller_l:.3f}, 1000 Hz {agent_l:.3f}"
    assert agent_r > DOMINANCE * caller_r, f"right: 1000 Hz {agent_r:.3f}, 440 Hz {caller_r:.3f}"
    assert caller_l > 0.5 and agent_r > 0.5, (caller_l, agent_r)
    return left, right


def tail_rms(path: Path, seconds: float) -> float:
    data, rate = soundfile.read(str(path), dtype="float64")
    tail: npt.NDArray[np.float64] = np.asarray(data[-round(seconds * rate) :])
    return float(np.sqrt(np.mean(tail**2)))


def conversation_of(call: dict[str, Any]) -> dict[str, Any]:
    (conversation,) = recordings_of(call, "conversation")
    return conversation


async def test_consented_call_is_stored_as_one_stereo_recording(
    service: ServiceHarness, tmp_path: Path
) -> None:
    enable_stereo(service)
    service.start()
    agent = await sipp.start_agent(service.asterisk.agent_ports["100"], "answer", ring_s=1.0)
    result = await sipp.call(
        service.asterisk.sip_address, DID, CALLER, dtmf=[(2.0, "1")], hangup_after_s=16.0
    )
    assert result.answered and result.hangup_by == "caller", result
    await agent.wait(timeout_s=20)

    (call,) = await service.wait_for_calls(1)
    assert call["consent"]["decision"] == "granted"
    conversation = conversation_of(call)
    path = assert_intact(conversation)
    assert layout_of(service, conversation["id"]) == "stereo"
    info = soundfile.info(str(path))
    assert (info.channels, info.samplerate) == (2, 8000)
    assert conversation["duration_s"] > 4.0
    assert_caller_left_agent_right(path, tmp_path)

    # The evidence clip is still what the caller heard and pressed, in one channel.
    (evidence,) = recordings_of(call, "evidence")
    assert layout_of(service, evidence["id"]) == "mixed"
    assert soundfile.info(str(assert_intact(evidence))).channels == 1
    assert_asterisk_kept_nothing(service)


async def test_on_demand_stereo_records_between_star_one_and_star_two(
    service: ServiceHarness, tmp_path: Path
) -> None:
    enable_stereo(service)
    call = await place_on_demand_call(service)
    conversation = conversation_of(call)
    path = assert_intact(conversation)
    assert layout_of(service, conversation["id"]) == "stereo"
    assert 2.5 < conversation["duration_s"] < 5.5, conversation  # *1 at 2.3 s, *2 at 6.3 s
    assert_caller_left_agent_right(path, tmp_path)
    assert_asterisk_kept_nothing(service)


async def test_stereo_recording_survives_a_service_restart(
    service: ServiceHarness, tmp_path: Path
) -> None:
    """The service is restarted mid-call: the adopted call keeps its two legs recording
    (their snoops are not cleared as strays), and the one row ends up stored."""
    enable_stereo(service)
    service.start()
    agent = await sipp.start_agent(service.asterisk.agent_ports["100"], "answer", max_wait_s=120)
    # Long enough that a restart slowed by a loaded machine (10 s and more) still finds
    # the call live.
    caller = await sipp.start_caller(
        service.asterisk.sip_address, DID, CALLER, dtmf=[(2.0, "1")], hangup_after_s=45.0,
        max_wait_s=120.0,
    )
    await wait_until_recording(service)
    recording_began = time.monotonic()
    await asyncio.sleep(2.0)
    assert service.stop() == 0
    service.start()

    result = await caller.wait(timeout_s=120)
    call_ended = time.monotonic()
    await agent.wait(timeout_s=30)
    assert result.answered and result.hangup_by == "caller", result

    (call,) = await service.wait_for_calls(1)
    assert call["disposition"] == "answered"
    conversation = conversation_of(call)
    path = assert_intact(conversation)
    assert layout_of(service, conversation["id"]) == "stereo"
    # Recorded to the end of the call, not only until the restart.
    assert conversation["duration_s"] > (call_ended - recording_began) - 2.0, conversation
    left, right = assert_caller_left_agent_right(path, tmp_path)
    assert tail_rms(left, 2.0) > 0.05 and tail_rms(right, 2.0) > 0.05
    assert "adopted after restart" in service.log_text()
    assert_asterisk_kept_nothing(service)
