"""The agent's feature codes through the real Asterisk and sipp: the PCI pause and the
per-call retention choice.

The caller sends 440 Hz and the agent 1000 Hz all through the call, so a span of the
stored file that holds neither proves that nothing of the call was written there; the
span's length and the file's against the call's prove that the timeline was kept
(a muted recording, not a paused one).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import soundfile
from e2e_harness import ServiceHarness, local_file, parse_time, recordings_of
from test_call_flow import CALLER, DID, assert_asterisk_kept_nothing, assert_intact

from pbx_bridge.sandbox import sipp
from pbx_bridge.sandbox.audio import AGENT_TONE_HZ, CALLER_TONE_HZ

pytestmark = pytest.mark.asterisk

# The agent's *5 at 3.3 s and *6 at 9.3 s after answering: a 6 s pause.
PAUSE_KEYS = [(3.0, "*"), (3.3, "5"), (9.0, "*"), (9.3, "6")]
PAUSE_S = 6.0
# Samples this small are silence (Asterisk writes zeros for a muted recording).
SILENT = 1e-3
# Trimmed off each end of a span before judging it: when a key's event reaches the
# service and the mute takes effect is not known to the sample.
EDGE_S = 0.5


def resumed_prompt_s(service: ServiceHarness) -> float:
    """How long the agent's "recording resumed" prompt plays (the longest language)."""
    built = service.asterisk.prompts_dir
    assert built is not None
    return max(soundfile.info(str(path)).duration
               for path in built.glob("*/agent-recording-resumed.wav"))


def configure(service: ServiceHarness, extra: str = "") -> None:
    config = service.config_path.read_text(encoding="utf-8")
    assert config.count("[call]\n") == 1
    service.config_path.write_text(config.replace(
        "[call]\n",
        '[call]\nretention_codes = { "7" = "sales", "0" = "discard" }\n' + extra,
    ))


def tone_amplitude(samples: npt.NDArray[np.float64], rate: int, freq_hz: float) -> float:
    """The amplitude of ``freq_hz`` in these samples (a full-scale sine gives ~1)."""
    if samples.size == 0:
        return 0.0
    window = np.hanning(samples.size)
    spectrum = np.abs(np.fft.rfft(samples * window)) * 2.0 / window.sum()
    freqs = np.fft.rfftfreq(samples.size, d=1.0 / rate)
    return float(spectrum[np.abs(freqs - freq_hz) <= 15.0].max())


def span(samples: npt.NDArray[np.float64], rate: int, start_s: float, end_s: float
         ) -> npt.NDArray[np.float64]:
    return samples[max(0, round(start_s * rate)) : round(end_s * rate)]


def longest_silence_s(samples: npt.NDArray[np.float64], rate: int) -> float:
    quiet = np.abs(samples) < SILENT
    best = run = 0
    for value in quiet:
        run = run + 1 if value else 0
        best = max(best, run)
    return best / rate


def show(service: ServiceHarness, recording_id: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        service.cli("recordings", "show", recording_id, "--json").stdout
    )
    return data


def audit_actions(service: ServiceHarness, action: str) -> list[tuple[str, str, dict[str, Any]]]:
    with sqlite3.connect(service.workdir / "pbx-bridge.db") as db:
        rows = db.execute(
            "SELECT actor, target, details FROM audit_log WHERE action = ? ORDER BY seq",
            (action,),
        ).fetchall()
    return [(actor, target, json.loads(details)) for actor, target, details in rows]


async def place_call(
    service: ServiceHarness,
    agent_keys: list[tuple[float, str]],
    *,
    caller_keys: list[tuple[float, str]] | None = None,
    hangup_after_s: float = 20.0,
) -> None:
    """A consenting caller to extension 100 (records always); the agent presses
    ``agent_keys`` (seconds after answering); returns once both sipps are done."""
    service.start()
    agent = await sipp.start_agent(
        service.asterisk.agent_ports["100"], "answer", ring_s=0.5, dtmf=agent_keys
    )
    result = await sipp.call(
        service.asterisk.sip_address, DID, CALLER, dtmf=caller_keys or [(2.0, "1")],
        hangup_after_s=hangup_after_s,
    )
    await agent.wait(timeout_s=30)
    assert result.answered and result.hangup_by == "caller", result


@pytest.mark.parametrize("stereo", [False, True], ids=["mixed", "stereo"])
async def test_pci_pause_is_silence_of_the_same_length(
    service: ServiceHarness, stereo: bool
) -> None:
    configure(service, "stereo = true\n" if stereo else "")
    await place_call(service, PAUSE_KEYS, hangup_after_s=24.0)

    (call,) = await service.wait_for_calls(1, timeout_s=90)
    (conversation,) = recordings_of(call, "conversation")
    path = assert_intact(conversation)
    detail = show(service, conversation["id"])
    (pause,) = detail["pauses"]
    assert (pause["paused_by"], pause["resumed_by"]) == ("agent:100", "agent:100")
    assert abs((pause["end_s"] - pause["start_s"]) - PAUSE_S) < 1.0, pause

    data, rate = soundfile.read(str(path), dtype="float64", always_2d=True)
    duration = data.shape[0] / rate
    # The offsets are the call's clock. On a loaded machine Asterisk writes a few per cent
    # fewer frames than wall time (the mixing and the snoops run late and do not catch
    # up), all through the file alike: judge the span on the file's own clock.
    written = (parse_time(detail["finished_at"]) - parse_time(detail["started_at"]))
    clock = duration / written.total_seconds()
    assert 0.85 < clock <= 1.02, (duration, written)
    start_s, end_s = pause["start_s"] * clock, pause["end_s"] * clock
    assert data.shape[1] == (2 if stereo else 1)
    for channel in range(data.shape[1]):
        samples = np.asarray(data[:, channel])
        during = span(samples, rate, start_s + EDGE_S, end_s - EDGE_S)
        before = span(samples, rate, start_s - 2.0, start_s - EDGE_S)
        after = span(samples, rate, end_s + EDGE_S, end_s + 2.5)
        # Nothing of either party in the pause: no 440 Hz (the caller reading out card
        # digits), no 1000 Hz, no sample above silence.
        assert float(np.abs(during).max()) < SILENT, (channel, float(np.abs(during).max()))
        assert tone_amplitude(during, rate, CALLER_TONE_HZ) < 1e-4
        assert tone_amplitude(during, rate, AGENT_TONE_HZ) < 1e-4
        tone = CALLER_TONE_HZ if (not stereo or channel == 0) else AGENT_TONE_HZ
        assert tone_amplitude(before, rate, tone) > 0.01, (channel, "before the pause")
        assert tone_amplitude(after, rate, tone) > 0.01, (channel, "after the pause")
        # The silence in the file is as long as the pause (no audio left out around it).
        # Stereo's agent side is what reached the caller: while "recording resumed" plays
        # to the agent, Asterisk holds the agent's voice back from the bridge, so the
        # caller heard nothing of the agent then, and the file says so.
        extra_s = resumed_prompt_s(service) if stereo and channel == 1 else 0.0
        silence_s = longest_silence_s(samples, rate)
        assert -0.6 < silence_s - (end_s - start_s) < extra_s + 0.6, (channel, silence_s, pause)

    # The file holds the whole conversation: a paused (not muted) recording would be
    # PAUSE_S shorter than the time the parties were connected (10.6 s of 17 s, tried).
    connected = (parse_time(call["ended_at"]) - parse_time(call["answered_at"])).total_seconds()
    assert 0.85 * connected < duration <= connected + 0.5, (duration, connected)
    assert duration > connected - PAUSE_S + 2.0, (duration, connected)
    assert abs(duration - conversation["duration_s"]) < 0.2

    (paused,) = audit_actions(service, "recording.paused")
    (resumed,) = audit_actions(service, "recording.resumed")
    assert paused[:2] == ("agent:100", f"recording:{conversation['id']}")
    assert resumed[:2] == ("agent:100", f"recording:{conversation['id']}")
    assert_asterisk_kept_nothing(service)


async def test_pause_left_on_resumes_by_itself(service: ServiceHarness) -> None:
    """A pause past [call] pci_pause_max_minutes ends by itself (0.05 min = 3 s)."""
    configure(service, "pci_pause_max_minutes = 0.05\n")
    await place_call(service, [(3.0, "*"), (3.3, "5")])
    (call,) = await service.wait_for_calls(1, timeout_s=90)
    (conversation,) = recordings_of(call, "conversation")
    path = assert_intact(conversation)
    (pause,) = show(service, conversation["id"])["pauses"]
    assert pause["resumed_by"] == "auto"
    assert 2.5 < pause["end_s"] - pause["start_s"] < 4.5, pause
    samples, rate = soundfile.read(str(path), dtype="float64")
    after = span(np.asarray(samples), rate, pause["end_s"] + EDGE_S, pause["end_s"] + 2.5)
    assert tone_amplitude(after, rate, CALLER_TONE_HZ) > 0.01


async def test_star_seven_keeps_the_call_per_its_class_and_callers_keys_do_nothing(
    service: ServiceHarness,
) -> None:
    configure(service)
    service.cli("retention", "set", "sales", "730")
    # The caller presses *5 and *0 while talking: the agent's codes, not the caller's.
    await place_call(
        service, [(2.0, "*"), (2.3, "7")],
        caller_keys=[(2.0, "1"), (12.0, "*"), (12.3, "5"), (14.0, "*"), (14.3, "0")],
    )

    (call,) = await service.wait_for_calls(1, timeout_s=90)
    (conversation,) = recordings_of(call, "conversation")
    assert_intact(conversation)
    assert conversation["retention_class"] == "sales"
    kept = parse_time(conversation["retain_until"]) - parse_time(call["ended_at"])
    assert kept.days == 730 and kept.seconds == 0, kept
    assert show(service, conversation["id"])["pauses"] == []
    # The consent evidence keeps its own period.
    (evidence,) = recordings_of(call, "evidence")
    assert evidence["retention_class"] != "sales"
    (changed,) = audit_actions(service, "recording.retention_changed")
    assert changed[0] == "agent:100" and changed[2]["class"]["to"] == "sales"
    assert audit_actions(service, "recording.paused") == []


async def test_star_zero_keeps_no_conversation_recording(service: ServiceHarness) -> None:
    configure(service)
    service.cli("retention", "set", "discard", "0")
    await place_call(service, [(2.0, "*"), (2.3, "0")], hangup_after_s=14.0)

    def gone(call: dict[str, Any]) -> bool:
        return call["ended_at"] is not None and all(
            r["status"] == ("deleted" if r["kind"] == "conversation" else "stored")
            for r in call["recordings"]
        )

    (call,) = await service.wait_for_calls(1, timeout_s=90, settled=gone)
    (conversation,) = recordings_of(call, "conversation")
    detail = show(service, conversation["id"])
    assert detail["retention_class"] == "discard"
    assert detail["tombstone"] is not None and detail["tombstone"]["reason"] == "retention"
    assert all(copy["status"] == "deleted" for copy in detail["copies"]), detail["copies"]
    stored = list((service.recordings_path).rglob("*"))
    assert not [p for p in stored if p.is_file() and conversation["id"] in p.name], stored
    (evidence,) = recordings_of(call, "evidence")
    assert local_file(evidence).exists()
    assert_asterisk_kept_nothing(service)
