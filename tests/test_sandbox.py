"""The sandboxed Asterisk runs our sample configuration and dialplan for real."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from sandbox_names import sandbox_name

from pbx_bridge.sandbox import AsteriskSandbox, sipp
from pbx_bridge.sandbox.audio import (
    AGENT_TONE_HZ,
    CALLER_TONE_HZ,
    dominant_frequencies,
    tone_power,
    write_tone_wav,
)

pytestmark = pytest.mark.asterisk


@pytest.fixture(scope="module")
def prompts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("prompts")
    write_tone_wav(folder / "tr" / "test.wav", 700.0, 1.0)
    (folder / "manifest.json").write_text("{}", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def sandbox(prompts_dir: Path) -> Iterator[AsteriskSandbox]:
    with AsteriskSandbox(sandbox_name("main"), prompts_dir=prompts_dir) as instance:
        yield instance


class Ari:
    """Just enough ARI to drive the sandbox from a test."""

    def __init__(self, sandbox: AsteriskSandbox) -> None:
        self.sandbox = sandbox
        self.http = httpx.AsyncClient(
            base_url=f"{sandbox.ari_url}/ari",
            auth=(sandbox.ari_username, sandbox.ari_password),
            timeout=10.0,
        )
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        s = self.sandbox
        url = (
            f"ws://127.0.0.1:{s.ports.ari}/ari/events?app=pbx-bridge"
            f"&api_key={s.ari_username}:{s.ari_password}"
        )
        self.ws = await websockets.connect(url)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            await self.events.put(json.loads(raw))

    async def expect(self, kind: str, timeout_s: float = 15.0, **match: str) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            event = await asyncio.wait_for(self.events.get(), max(remaining, 0.01))
            if event["type"] == kind and all(event.get(k) == v for k, v in match.items()):
                return event

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        await self.ws.close()
        await self.http.aclose()


@pytest.fixture
async def ari(sandbox: AsteriskSandbox) -> AsyncIterator[Ari]:
    client = Ari(sandbox)
    await client.connect()
    yield client
    await client.close()


def test_ari_reports_asterisk_22(sandbox: AsteriskSandbox) -> None:
    info = httpx.get(
        f"{sandbox.ari_url}/ari/asterisk/info",
        auth=(sandbox.ari_username, sandbox.ari_password),
    ).json()
    assert info["system"]["version"].startswith("22.")
    assert "pbx-bridge-inbound" in sandbox.cli("dialplan show pbx-bridge-inbound")


def test_wrong_ari_password_is_refused(sandbox: AsteriskSandbox) -> None:
    response = httpx.get(f"{sandbox.ari_url}/ari/asterisk/info", auth=("pbx-bridge", "nope"))
    assert response.status_code == 401


async def test_trunk_call_enters_stasis_with_did_and_dtmf(
    sandbox: AsteriskSandbox, ari: Ari, tmp_path: Path
) -> None:
    caller = await sipp.start_caller(
        sandbox.sip_address,
        did="+902121234567",
        from_number="05321234567",
        dtmf=[(1.0, "9"), (1.8, "*"), (2.6, "1")],
        max_wait_s=20,
        log_base=tmp_path,
    )
    async with caller:
        start = await ari.expect("StasisStart")
        channel = start["channel"]
        assert start["args"] == ["inbound", "+902121234567", ""]  # no campaign set
        assert channel["caller"]["number"] == "05321234567"
        assert channel["name"].startswith("PJSIP/carrier-")
        assert (await ari.http.post(f"/channels/{channel['id']}/answer")).status_code == 204
        played = await ari.http.post(
            f"/channels/{channel['id']}/play", params={"media": "sound:pbx-bridge/tr/test"}
        )
        assert played.status_code == 201
        finished = await ari.expect("PlaybackFinished")
        assert finished["playback"]["state"] == "done"
        digits = [(await ari.expect("ChannelDtmfReceived"))["digit"] for _ in range(3)]
        assert digits == ["9", "*", "1"]
        await ari.http.delete(f"/channels/{channel['id']}")
        result = await caller.wait(15)
    assert result.ok, result.log_dir
    assert result.answered
    assert result.hangup_by == "remote"


async def test_bridge_recording_holds_caller_and_agent_tones(
    sandbox: AsteriskSandbox, ari: Ari, tmp_path: Path
) -> None:
    agent = await sipp.start_agent(
        sandbox.agent_ports["100"],
        "answer",
        ring_s=0.5,
        dtmf=[(1.0, "*"), (1.3, "1")],
        log_base=tmp_path,
    )
    caller = await sipp.start_caller(
        sandbox.sip_address,
        "2120000000",
        "+905321234567",
        hangup_after_s=8.0,
        log_base=tmp_path,
    )
    async with agent, caller:
        inbound = (await ari.expect("StasisStart"))["channel"]["id"]
        await ari.http.post(f"/channels/{inbound}/answer")
        outbound = await ari.http.post(
            "/channels",
            json={"endpoint": "PJSIP/100", "app": "pbx-bridge", "appArgs": "dialed,100"},
        )
        assert outbound.status_code == 200, outbound.text
        agent_channel = outbound.json()["id"]
        started = await ari.expect("StasisStart")
        assert started["channel"]["id"] == agent_channel
        assert started["args"] == ["dialed", "100"]
        bridge = (await ari.http.post("/bridges", params={"type": "mixing"})).json()["id"]
        await ari.http.post(
            f"/bridges/{bridge}/addChannel", params={"channel": f"{inbound},{agent_channel}"}
        )
        recording = await ari.http.post(
            f"/bridges/{bridge}/record",
            params={"name": "pytest-bridge", "format": "wav", "ifExists": "overwrite"},
        )
        assert recording.status_code == 201, recording.text
        agent_digits = [
            (await ari.expect("ChannelDtmfReceived", timeout_s=10))["digit"] for _ in range(2)
        ]
        assert agent_digits == ["*", "1"]
        await asyncio.sleep(3.0)
        await ari.http.post("/recordings/live/pytest-bridge/stop")
        await ari.expect("RecordingFinished")
        caller_result = await caller.wait(20)
        agent_result = await agent.wait(10)
        await ari.http.delete(f"/bridges/{bridge}")
    assert caller_result.ok and caller_result.hangup_by == "caller", caller_result.log_dir
    assert agent_result.ok and agent_result.answered, agent_result.log_dir
    wav = sandbox.recordings_dir / "pytest-bridge.wav"
    assert tone_power(wav, CALLER_TONE_HZ) > 0.2
    assert tone_power(wav, AGENT_TONE_HZ) > 0.2
    assert {round(f, -1) for f in dominant_frequencies(wav, 2)} == {440.0, 1000.0}


async def test_busy_agent_rejects_the_originate(
    sandbox: AsteriskSandbox, ari: Ari, tmp_path: Path
) -> None:
    agent = await sipp.start_agent(sandbox.agent_ports["101"], "busy", log_base=tmp_path)
    async with agent:
        await ari.http.post("/channels", json={"endpoint": "PJSIP/101", "app": "pbx-bridge"})
        destroyed = await ari.expect("ChannelDestroyed")
        assert destroyed["cause"] == 17  # user busy
        result = await agent.wait(10)
    assert result.ok and result.hangup_by == "agent-busy"


async def test_unanswered_agent_is_cancelled(
    sandbox: AsteriskSandbox, ari: Ari, tmp_path: Path
) -> None:
    agent = await sipp.start_agent(sandbox.agent_ports["102"], "no-answer", log_base=tmp_path)
    async with agent:
        created = await ari.http.post(
            "/channels", json={"endpoint": "PJSIP/102", "app": "pbx-bridge", "timeout": 2}
        )
        assert created.status_code == 200
        await ari.expect("ChannelDestroyed", timeout_s=10)
        result = await agent.wait(10)
    assert result.ok and result.hangup_by == "remote-cancel", result.log_dir


def test_restart_keeps_recordings_and_answers_again(sandbox: AsteriskSandbox) -> None:
    marker = sandbox.recordings_dir / "kept.wav"
    write_tone_wav(marker, 440.0, 0.1)
    first_pid = sandbox.pid
    started = time.monotonic()
    sandbox.restart()
    assert time.monotonic() - started < 30
    assert sandbox.pid != first_pid
    assert marker.exists()
    response = httpx.get(
        f"{sandbox.ari_url}/ari/asterisk/info",
        auth=(sandbox.ari_username, sandbox.ari_password),
    )
    assert response.status_code == 200


def test_two_instances_run_side_by_side(sandbox: AsteriskSandbox) -> None:
    with AsteriskSandbox(sandbox_name("second")) as second:
        assert second.ports.ari != sandbox.ports.ari
        assert second.ports.sip != sandbox.ports.sip
        rtp = range(sandbox.ports.rtp_start, sandbox.ports.rtp_end + 1)
        assert second.ports.rtp_start not in rtp and second.ports.rtp_end not in rtp
        assert "pbx-bridge-inbound" in second.cli("dialplan show pbx-bridge-inbound")
        assert sandbox.cli("core show uptime").strip()
        pid = second.pid
        assert pid is not None
    assert subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0
    # the first one is unaffected by the second's shutdown
    assert (
        httpx.get(
            f"{sandbox.ari_url}/ari/asterisk/info",
            auth=(sandbox.ari_username, sandbox.ari_password),
        ).status_code
        == 200
    )


async def test_agent_hangs_up_itself(sandbox: AsteriskSandbox, ari: Ari, tmp_path: Path) -> None:
    agent = await sipp.start_agent(
        sandbox.agent_ports["100"], "answer", hangup_after_s=1.5, log_base=tmp_path
    )
    async with agent:
        created = await ari.http.post(
            "/channels", json={"endpoint": "PJSIP/100", "app": "pbx-bridge"}
        )
        channel = created.json()["id"]
        await ari.expect("StasisStart")
        destroyed = await ari.expect("ChannelDestroyed", timeout_s=10)
        assert destroyed["channel"]["id"] == channel
        result = await agent.wait(10)
    assert result.ok and result.hangup_by == "agent", result.log_dir


async def test_caller_gives_up_before_answer(
    sandbox: AsteriskSandbox, ari: Ari, tmp_path: Path
) -> None:
    caller = await sipp.start_caller(
        sandbox.sip_address, "2120000001", "05320000000", cancel_after_s=1.0, log_base=tmp_path
    )
    async with caller:
        channel = (await ari.expect("StasisStart"))["channel"]["id"]
        await ari.http.post(f"/channels/{channel}/ring")
        ended = await ari.expect("StasisEnd", timeout_s=10)
        assert ended["channel"]["id"] == channel
        result = await caller.wait(10)
    assert result.ok and result.hangup_by == "caller-cancel", result.log_dir
    assert not result.answered


def test_extra_dialplan_takes_its_own_dids_and_leaves_the_rest_to_stasis(
    prompts_dir: Path,
) -> None:
    """A benchmark's baseline flow sits beside the shipped dialplan without changing it."""

    from pbx_bridge.sandbox import SandboxPorts, ensure_root

    extra = "[pbx-bridge-inbound]\nexten => 5550199,1,Goto(bench-extra,s,1)\n\n" \
        "[bench-extra]\nexten => s,1,Answer()\n same => n,Hangup()\n"
    root = ensure_root()
    name = sandbox_name("extra")
    ports = SandboxPorts.pick_free(root, rtp_ports=1000, name=name)
    with AsteriskSandbox(name, ports, prompts_dir=prompts_dir, root=root,
                         extra_dialplan=extra) as instance:
        ours = instance.cli("dialplan show 5550199@pbx-bridge-inbound")
        other = instance.cli("dialplan show 5550100@pbx-bridge-inbound")
        rtp = (instance.instance_dir / "etc" / "rtp.conf").read_text(encoding="utf-8")
    # Asterisk lists the matching extensions best first: the exact DID before `_X.`.
    first = next(line for line in ours.splitlines() if " 1. " in line)
    assert "'5550199' =>" in first and "Goto(bench-extra,s,1)" in first, ours
    assert "Stasis(pbx-bridge,inbound,${EXTEN},${PBX_BRIDGE_CAMPAIGN})" in other
    assert f"rtpstart = {ports.rtp_start}" in rtp and f"rtpend = {ports.rtp_end}" in rtp
    assert ports.rtp_end - ports.rtp_start + 1 == 1000 and ports.rtp_start >= 28000
