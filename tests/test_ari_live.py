"""The ARI client against a real Asterisk 22 (the project's sandbox), including a restart.

Calls are Local channels into the sandbox's own dialplan: originating
`Local/DID@pbx-bridge-inbound/n` into our app puts the `;2` half through
`Stasis(pbx-bridge,inbound,DID)` exactly like a trunk call, and the `;1` half into the app
once `;2` answers. Audio played on one half is heard (and recordable) on the other.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from sandbox_names import sandbox_name

from pbx_bridge.ari import (
    AriAuthError,
    AriClient,
    AriNotFound,
    AriUnprocessable,
    EventStream,
    StreamConnected,
    StreamDisconnected,
    StreamItem,
)
from pbx_bridge.ari import events as ev
from pbx_bridge.sandbox import AsteriskSandbox, SandboxError, SandboxPorts
from pbx_bridge.sandbox.instance import PARTIES

pytestmark = pytest.mark.asterisk

APP = "pbx-bridge"  # the sandbox dialplan's Stasis() application
DID = "2125550100"
E = TypeVar("E", bound=StreamItem)


def _free_tcp_udp(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def _ports() -> SandboxPorts:
    """Everything inside 28000-29999, the range this test file may use."""
    singles = [p for p in range(28400, 29999) if _free_tcp_udp(p)][:2 + len(PARTIES)]
    rtp_start = next(s for s in range(28000, 28400, 2)
                     if all(_free_tcp_udp(p) for p in range(s, s + 40)))
    ari, sip, *parties = singles
    return SandboxPorts(ari, sip, rtp_start, rtp_start + 38,
                        dict(zip(PARTIES, parties, strict=True)))


@pytest.fixture(scope="module")
def sandbox() -> Iterator[AsteriskSandbox]:
    if os.geteuid() != 0 or shutil.which("chroot") is None:
        pytest.fail("the Asterisk sandbox needs root and chroot (run the tests as root)")
    box = AsteriskSandbox(name=sandbox_name("ari-live"), ports=_ports())
    try:
        box.start()
    except SandboxError as exc:
        pytest.fail(f"sandbox did not start: {exc}")
    try:
        yield box
    finally:
        box.stop()


@pytest.fixture
async def ari(sandbox: AsteriskSandbox) -> AsyncIterator[AriClient]:
    async with AriClient(sandbox.ari_url, sandbox.ari_username, sandbox.ari_password,
                         app=APP) as client:
        yield client


@pytest.fixture
async def stream(sandbox: AsteriskSandbox) -> AsyncIterator[EventStream]:
    async with EventStream(sandbox.ari_url, sandbox.ari_username, sandbox.ari_password, APP,
                           initial_backoff_s=0.2, max_backoff_s=2.0) as events:
        first = await asyncio.wait_for(anext(events), 10)
        assert first == StreamConnected(first=True)
        yield events


async def wait_for(
    stream: EventStream, kind: type[E], match: Callable[[E], bool] = lambda _: True,
    wait_s: float = 10.0,
) -> E:
    """Skip unrelated events until one of `kind` that matches arrives."""
    async def scan() -> E:
        async for item in stream:
            if isinstance(item, kind) and match(item):
                return item
        raise AssertionError("stream ended")

    return await asyncio.wait_for(scan(), wait_s)


async def place_call(ari: AriClient, stream: EventStream) -> tuple[str, str]:
    """An inbound-like call: returns (caller leg as the app sees it, far-end leg)."""
    tag = uuid.uuid4().hex[:8]
    far, near = f"far-{tag}", f"in-{tag}"
    await ari.originate(f"Local/{DID}@pbx-bridge-inbound/n", app=APP, app_args="far",
                        channel_id=far, other_channel_id=near)
    start = await wait_for(stream, ev.StasisStart, lambda e: e.channel.id == near)
    assert start.args == ("inbound", DID, "")  # no campaign set
    assert start.channel.dialplan_context == "pbx-bridge-inbound"
    assert start.channel.dialplan_exten == DID
    await ari.answer(near)
    far_start = await wait_for(stream, ev.StasisStart, lambda e: e.channel.id == far)
    assert far_start.args == ("far",) and far_start.channel.state == "Up"
    return near, far


async def test_info_ping_and_application(ari: AriClient, stream: EventStream) -> None:
    info = await ari.info()
    assert info.version.startswith("22.") and info.startup_time is not None
    pong = await ari.ping()
    assert pong.ping == "pong" and pong.asterisk_id == info.entity_id
    app = await ari.application()
    assert app.name == APP and app.channel_ids == ()
    with pytest.raises(AriNotFound):
        await ari.get_channel("no-such-channel")


async def test_wrong_password_is_an_auth_error(sandbox: AsteriskSandbox) -> None:
    async with AriClient(sandbox.ari_url, sandbox.ari_username, "wrong", app=APP) as bad:
        with pytest.raises(AriAuthError) as info:
            await bad.ping()
    assert info.value.status == 401
    events = EventStream(sandbox.ari_url, sandbox.ari_username, "wrong", APP,
                         initial_backoff_s=0.1, max_backoff_s=0.5)
    pending = asyncio.ensure_future(anext(events))
    await asyncio.sleep(1.0)
    assert not pending.done()
    assert isinstance(events.last_error, AriAuthError)
    await events.close()
    with pytest.raises(StopAsyncIteration):
        await pending


async def test_call_play_dtmf_record_download(
    ari: AriClient, stream: EventStream, tmp_path: Path
) -> None:
    near, far = await place_call(ari, stream)
    assert set((await ari.application()).channel_ids) >= {near, far}
    channel = await ari.get_channel(near)
    assert channel.state == "Up" and channel.dialplan_app_name == "Stasis"

    # DTMF pressed on the far half reaches the caller leg as ChannelDtmfReceived.
    await ari.send_dtmf(far, "1")
    dtmf = await wait_for(stream, ev.ChannelDtmfReceived, lambda e: e.channel.id == near)
    assert dtmf.digit == "1" and dtmf.duration_ms > 0

    await ari.set_variable(near, "PBXB_CONSENT", "granted")
    assert await ari.get_variable(near, "PBXB_CONSENT") == "granted"
    assert await ari.get_variable(near, "PBXB_UNSET") is None

    name = f"ari-live-{uuid.uuid4().hex[:8]}"
    with pytest.raises(AriUnprocessable):
        await ari.record(near, name, format="nosuchformat")
    live = await ari.record(near, name, format="wav")
    assert live.name == name and live.target_uri == f"channel:{near}"
    started = await wait_for(stream, ev.RecordingStarted, lambda e: e.recording.name == name)
    assert ev.event_target(started) == near
    assert (await ari.get_live_recording(name)).state == "recording"

    playback = await ari.play(far, "sound:hello-world", playback_id=f"pb-{name}")
    assert playback.target_uri == f"channel:{far}" and playback.state == "queued"
    await wait_for(stream, ev.PlaybackStarted, lambda e: e.playback.id == playback.id)
    done = await wait_for(stream, ev.PlaybackFinished, lambda e: e.playback.id == playback.id)
    assert done.playback.state == "done" and ev.event_target(done) == far
    with pytest.raises(AriNotFound):
        await ari.stop_playback(playback.id)  # already finished

    await ari.stop_recording(name)
    finished = await wait_for(stream, ev.RecordingFinished, lambda e: e.recording.name == name)
    assert finished.recording.state == "done"
    with pytest.raises(AriNotFound):
        await ari.get_live_recording(name)

    assert name in {r.name for r in await ari.list_stored_recordings()}
    assert (await ari.get_stored_recording(name)).format == "wav"
    dest = tmp_path / "call.wav"
    written = await ari.download_stored_recording(name, dest)
    data = await asyncio.to_thread(dest.read_bytes)
    assert written == len(data)
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    # hello-world is ~1.5 s of 8 kHz 16-bit audio: far more than a bare 44-byte header.
    assert written > 16_000
    await ari.delete_stored_recording(name)
    with pytest.raises(AriNotFound):
        await ari.get_stored_recording(name)

    await ari.hangup(near)
    # Both halves go at once, in either order.
    destroyed: dict[str, ev.ChannelDestroyed] = {}
    while set(destroyed) != {near, far}:
        gone = await wait_for(stream, ev.ChannelDestroyed, lambda e: e.channel.id in (near, far))
        destroyed[gone.channel.id] = gone
    assert destroyed[near].cause == 16 and destroyed[near].cause_txt == "Normal Clearing"
    assert (await ari.application()).channel_ids == ()


async def test_event_filter_keeps_unused_event_types_away(
    ari: AriClient, stream: EventStream
) -> None:
    app = await ari.filter_events(ev.UNUSED_EVENT_TYPES)
    assert set(app.events_disallowed) == set(ev.UNUSED_EVENT_TYPES)
    try:
        near, far = await place_call(ari, stream)
        await ari.set_variable(near, "PBXB_FILTERED", "1")  # a ChannelVarset, unfiltered
        await ari.send_dtmf(far, "5")
        seen: list[StreamItem] = []

        async def until_the_key() -> None:
            async for item in stream:
                seen.append(item)
                if isinstance(item, ev.ChannelDtmfReceived) and item.channel.id == near:
                    return

        await asyncio.wait_for(until_the_key(), 10)
        types = {item.type for item in seen if isinstance(item, ev.Event)}
        assert "ChannelDtmfReceived" in types and not types & set(ev.UNUSED_EVENT_TYPES)

        # Lifted again, the same variable's change arrives.
        assert (await ari.filter_events(())).events_disallowed == ()
        await ari.set_variable(near, "PBXB_FILTERED", "2")
        varset = await wait_for(stream, ev.ChannelVarset, lambda e: e.variable == "PBXB_FILTERED")
        assert varset.value == "2"
        await ari.hangup(near)
    finally:
        await ari.filter_events(())


async def test_bridge_snoop_and_bridge_recording(ari: AriClient, stream: EventStream) -> None:
    near, far = await place_call(ari, stream)
    bridge_id = f"pbxb-call-{uuid.uuid4().hex[:8]}"
    bridge = await ari.create_bridge(bridge_id=bridge_id, name="live test")
    assert bridge.id == bridge_id and bridge.bridge_type == "mixing"
    await ari.add_channel(bridge_id, [near])
    entered = await wait_for(stream, ev.ChannelEnteredBridge, lambda e: e.bridge.id == bridge_id)
    assert entered.channel is not None and entered.channel.id == near
    assert ev.event_channel_ids(entered) == (near,)
    assert (await ari.get_bridge(bridge_id)).channels == (near,)
    assert bridge_id in {b.id for b in await ari.list_bridges()}

    rec_name = f"ari-live-br-{uuid.uuid4().hex[:8]}"
    live = await ari.record_bridge(bridge_id, rec_name)
    assert live.target_uri == f"bridge:{bridge_id}"
    started = await wait_for(stream, ev.RecordingStarted,
                             lambda e: e.recording.name == rec_name)
    assert ev.event_target(started) == bridge_id

    snoop_id = f"pbxb-snoop-{uuid.uuid4().hex[:8]}"
    snoop = await ari.snoop(near, spy="both", app=APP, app_args="snoop", snoop_id=snoop_id)
    assert snoop.id == snoop_id
    snoop_start = await wait_for(stream, ev.StasisStart, lambda e: e.channel.id == snoop_id)
    assert snoop_start.args == ("snoop",)
    await ari.hangup(snoop_id)

    await ari.cancel_recording(rec_name)  # discard: nothing stored
    await wait_for(stream, ev.RecordingFinished, lambda e: e.recording.name == rec_name)
    with pytest.raises(AriNotFound):
        await ari.get_stored_recording(rec_name)
    await ari.destroy_bridge(bridge_id)
    with pytest.raises(AriNotFound):
        await ari.get_bridge(bridge_id)
    await ari.hangup(near)
    await wait_for(stream, ev.ChannelDestroyed, lambda e: e.channel.id == far)


async def test_stream_reconnects_across_an_asterisk_restart(
    sandbox: AsteriskSandbox, ari: AriClient, stream: EventStream
) -> None:
    restart = asyncio.ensure_future(asyncio.to_thread(sandbox.restart))
    lost = await asyncio.wait_for(anext(stream), 30)
    assert isinstance(lost, StreamDisconnected)
    back = await wait_for(stream, StreamConnected, wait_s=90)
    assert back == StreamConnected(first=False)
    await restart
    # The application is registered again: a new call reaches us over the new connection.
    near, _far = await place_call(ari, stream)
    await ari.hangup(near)
    await wait_for(stream, ev.ChannelDestroyed, lambda e: e.channel.id == near)


async def test_asterisk_answers_keepalive_pings(sandbox: AsteriskSandbox) -> None:
    """Asterisk's websocket answers pings, so keepalive does not drop a healthy stream."""
    async with EventStream(sandbox.ari_url, sandbox.ari_username, sandbox.ari_password,
                           "pbxb-ping", ping_interval_s=0.2, ping_timeout_s=1.0) as events:
        assert await asyncio.wait_for(anext(events), 10) == StreamConnected(first=True)
        with pytest.raises(TimeoutError):
            # Nothing at all (in particular no StreamDisconnected) over ~10 ping rounds.
            await asyncio.wait_for(anext(events), 2.0)
        assert events.connected
