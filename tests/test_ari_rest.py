"""The REST client against a real HTTP server on 127.0.0.1 that records each request and
answers it from a script: what goes on the wire, what comes back."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

import pytest
from aiohttp import web

from pbx_bridge.ari import (
    AriAuthError,
    AriBadRequest,
    AriClient,
    AriConflict,
    AriConnectionError,
    AriForbidden,
    AriHttpError,
    AriNotFound,
    AriPreconditionFailed,
    AriResponseError,
    AriServerError,
    AriUnprocessable,
    Bridge,
    Channel,
    LiveRecording,
    Playback,
)

PASSWORD = "s3cret/pa:ss"
CHANNEL = {
    "id": "c1", "name": "PJSIP/100-00000001", "state": "Ring",
    "caller": {"name": "", "number": "05321234567"}, "connected": {"name": "", "number": ""},
    "accountcode": "", "dialplan": {"context": "from-trunk", "exten": "2125550100",
                                    "priority": 3, "app_name": "Stasis", "app_data": "pbxb"},
    "creationtime": "2026-11-24T08:54:24.187+0000", "language": "tr",
}


@dataclass(frozen=True)
class Reply:
    """One scripted answer: a JSON or text body, a body sent in chunks, or one cut short
    (``broken``: fewer bytes than its Content-Length, then the connection closed)."""

    status: int = 204
    json: Any = None
    text: str | None = None
    chunks: Sequence[bytes] = ()
    broken: bool = False
    delay_s: float = 0.0


@dataclass(frozen=True)
class Seen:
    method: str
    raw_path: str  # path and query string as sent
    path: str  # the path decoded
    params: dict[str, str]
    headers: dict[str, str]
    content: bytes


class Recorder:
    """Collects requests and answers each with the next scripted reply (204 when none)."""

    def __init__(self, *replies: Reply) -> None:
        self.requests: list[Seen] = []
        self._replies = list(replies)

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        self.requests.append(Seen(
            request.method, request.raw_path, unquote(request.raw_path.split("?")[0]),
            dict(parse_qsl(request.query_string)),
            {k.lower(): v for k, v in request.headers.items()},
            await request.read()))
        reply = self._replies.pop(0) if self._replies else Reply()
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.chunks or reply.broken:
            response = web.StreamResponse(status=reply.status)
            response.content_type = "audio/wav"
            size = sum(len(c) for c in reply.chunks)
            response.content_length = size + (1000 if reply.broken else 0)
            await response.prepare(request)
            for chunk in reply.chunks:
                await response.write(chunk)
            if reply.broken:
                assert request.transport is not None
                request.transport.close()
            return response
        if reply.json is not None:
            return web.json_response(reply.json, status=reply.status)
        if reply.text is not None:
            return web.Response(status=reply.status, text=reply.text)
        return web.Response(status=reply.status)

    def then(self, *replies: Reply) -> None:
        """Script more replies, after those already waiting."""
        self._replies.extend(replies)

    @property
    def last(self) -> Seen:
        return self.requests[-1]


@asynccontextmanager
async def client(rec: Recorder, *, timeout_s: float = 10.0) -> AsyncIterator[AriClient]:
    """An AriClient talking to ``rec`` over a real socket."""
    server = web.Server(rec.handle)
    runner = web.ServerRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with AriClient(f"http://127.0.0.1:{port}/", "pbx", PASSWORD, app="pbxb",
                             timeout=timeout_s) as ari:
            yield ari
    finally:
        await runner.cleanup()


def params(request: Seen) -> dict[str, str]:
    return request.params


async def test_requests_carry_basic_auth_and_the_ari_prefix() -> None:
    rec = Recorder(Reply(200, json={"ping": "pong", "asterisk_id": "a",
                                              "timestamp": "2026-11-24T08:54:14.124+0000"}))
    async with client(rec) as ari:
        pong = await ari.ping()
    assert pong.ping == "pong" and pong.timestamp is not None
    req = rec.last
    assert req.method == "GET" and req.path == "/ari/asterisk/ping"
    expected = base64.b64encode(f"pbx:{PASSWORD}".encode()).decode()
    assert req.headers["authorization"] == f"Basic {expected}"


async def test_info_and_application_parse_into_models() -> None:
    info = {"build": {"os": "Linux"}, "system": {"version": "22.10.1", "entity_id": "e"},
            "config": {"name": "", "default_language": "en", "setid": {}},
            "status": {"startup_time": "2026-11-24T08:54:10.104+0000",
                       "last_reload_time": "2026-11-24T08:54:10.104+0000"}}
    app = {"name": "pbxb", "channel_ids": ["c1", "c2"], "bridge_ids": ["pbxb-call-1"],
           "endpoint_ids": [], "device_names": [], "events_allowed": [],
           "events_disallowed": []}
    rec = Recorder(Reply(200, json=info), Reply(200, json=app))
    async with client(rec) as ari:
        got_info = await ari.info()
        got_app = await ari.application()
    assert got_info.version == "22.10.1" and got_info.default_language == "en"
    assert got_info.startup_time is not None
    assert rec.last.path == "/ari/applications/pbxb"
    assert got_app.channel_ids == ("c1", "c2") and got_app.bridge_ids == ("pbxb-call-1",)


async def test_channel_commands_use_the_documented_methods_and_paths() -> None:
    rec = Recorder()
    async with client(rec) as ari:
        await ari.answer("c1")
        await ari.ring("c1")
        await ari.ring_stop("c1")
        await ari.hangup("c1")
        await ari.hangup("c/2", reason="busy")
        await ari.start_moh("c1")
        await ari.stop_moh("c1")
        await ari.dial("agent-1", caller="c1", timeout_s=25)
        await ari.continue_in_dialplan("c1", context="ctx", extension="s", priority=2)
        await ari.set_variable("c1", "CONSENT", "granted")
        await ari.send_dtmf("c1", "1#")
    seen = [(r.method, r.raw_path) for r in rec.requests]
    assert seen == [
        ("POST", "/ari/channels/c1/answer"),
        ("POST", "/ari/channels/c1/ring"),
        ("DELETE", "/ari/channels/c1/ring"),
        ("DELETE", "/ari/channels/c1?reason=normal"),
        ("DELETE", "/ari/channels/c%2F2?reason=busy"),
        ("POST", "/ari/channels/c1/moh"),
        ("DELETE", "/ari/channels/c1/moh"),
        ("POST", "/ari/channels/agent-1/dial?caller=c1&timeout=25"),
        ("POST", "/ari/channels/c1/continue?context=ctx&extension=s&priority=2"),
        ("POST", "/ari/channels/c1/variable?variable=CONSENT&value=granted"),
        ("POST", "/ari/channels/c1/dtmf?dtmf=1%23&duration=100&between=100"),
    ]


async def test_play_joins_several_media_and_returns_a_playback() -> None:
    rec = Recorder(Reply(201, json={
        "id": "pb1", "media_uri": "sound:a", "next_media_uri": "sound:b",
        "target_uri": "channel:c1", "language": "tr", "state": "queued"}))
    async with client(rec) as ari:
        playback = await ari.play("c1", ["sound:a", "sound:b"], playback_id="pb1", lang="tr")
    assert isinstance(playback, Playback)
    assert playback.target_kind == "channel" and playback.target_id == "c1"
    assert rec.last.path == "/ari/channels/c1/play"
    assert params(rec.last) == {"media": "sound:a,sound:b", "playbackId": "pb1", "lang": "tr"}
    async with client(rec) as ari:
        with pytest.raises(ValueError):
            await ari.play("c1", [])


async def test_record_and_record_bridge_send_ari_parameter_names() -> None:
    live = {"name": "rec-1", "format": "wav", "state": "queued", "target_uri": "bridge:b1"}
    rec = Recorder(Reply(201, json={**live, "target_uri": "channel:c1"}),
                   Reply(201, json=live))
    async with client(rec) as ari:
        first = await ari.record("c1", "rec-1", max_duration_s=60, beep=True,
                                 terminate_on="#", if_exists="overwrite")
        second = await ari.record_bridge("b1", "rec-1")
    assert isinstance(first, LiveRecording) and first.target_id == "c1"
    assert second.target_kind == "bridge"
    assert rec.requests[0].path == "/ari/channels/c1/record"
    assert params(rec.requests[0]) == {
        "name": "rec-1", "format": "wav", "maxDurationSeconds": "60", "maxSilenceSeconds": "0",
        "ifExists": "overwrite", "beep": "true", "terminateOn": "#"}
    assert rec.requests[1].path == "/ari/bridges/b1/record"
    assert params(rec.requests[1])["beep"] == "false"
    assert params(rec.requests[1])["ifExists"] == "fail"


async def test_snoop_and_create_channel_with_variables_body() -> None:
    snoop = {**CHANNEL, "id": "pbxb-snoop-1", "name": "Snoop/c1-00000000"}
    agent = {**CHANNEL, "id": "pbxb-agent-1", "state": "Down"}
    rec = Recorder(Reply(200, json=snoop), Reply(200, json=agent))
    async with client(rec) as ari:
        snooped = await ari.snoop("c1", app="pbxb", app_args="snoop,42", snoop_id="pbxb-snoop-1")
        created = await ari.create_channel(
            "PJSIP/101", app="pbxb", app_args="agent,42", channel_id="pbxb-agent-1",
            originator="c1", variables={"CALLERID(num)": "05321234567"})
    assert isinstance(snooped, Channel) and snooped.id == "pbxb-snoop-1"
    assert params(rec.requests[0]) == {"spy": "both", "whisper": "none", "app": "pbxb",
                                       "appArgs": "snoop,42", "snoopId": "pbxb-snoop-1"}
    req = rec.requests[1]
    assert (req.method, req.path) == ("POST", "/ari/channels/create")
    assert params(req) == {"endpoint": "PJSIP/101", "app": "pbxb", "appArgs": "agent,42",
                           "channelId": "pbxb-agent-1", "originator": "c1"}
    assert json.loads(req.content) == {"variables": {"CALLERID(num)": "05321234567"}}
    assert created.state == "Down" and created.caller.number == "05321234567"


async def test_originate_requires_app_or_dialplan() -> None:
    rec = Recorder(Reply(200, json=CHANNEL))
    async with client(rec) as ari:
        await ari.originate("Local/s@test", app="pbxb", app_args="x")
        with pytest.raises(ValueError):
            await ari.originate("Local/s@test")
        with pytest.raises(ValueError):
            await ari.originate("Local/s@test", app="pbxb", context="c", extension="s")
    assert rec.last.path == "/ari/channels"
    assert params(rec.last) == {"endpoint": "Local/s@test", "app": "pbxb", "appArgs": "x",
                                "timeout": "30"}


async def test_get_variable_tells_unset_variable_from_missing_channel() -> None:
    rec = Recorder(
        Reply(200, json={"value": "granted"}),
        Reply(404, json={"message": "Provided variable was not found"}),
        Reply(404, json={"message": "Channel not found"}),
    )
    async with client(rec) as ari:
        assert await ari.get_variable("c1", "CONSENT") == "granted"
        assert await ari.get_variable("c1", "NOPE") is None
        with pytest.raises(AriNotFound):
            await ari.get_variable("gone", "CONSENT")
    assert params(rec.requests[0]) == {"variable": "CONSENT"}


async def test_bridge_operations() -> None:
    bridge = {"id": "pbxb-call-1", "technology": "simple_bridge", "bridge_type": "mixing",
              "bridge_class": "stasis", "creator": "Stasis", "name": "call 1",
              "channels": [], "creationtime": "2026-11-24T08:54:28.604+0000"}
    rec = Recorder(Reply(200, json=bridge), Reply(204),
                   Reply(204), Reply(200, json=[bridge]),
                   Reply(204))
    async with client(rec) as ari:
        created = await ari.create_bridge(bridge_id="pbxb-call-1", name="call 1")
        await ari.add_channel("pbxb-call-1", ["c1", "agent-1"], role="participant")
        await ari.remove_channel("pbxb-call-1", "c1")
        bridges = await ari.list_bridges()
        await ari.destroy_bridge("pbxb-call-1")
    assert isinstance(created, Bridge) and created.bridge_type == "mixing"
    assert bridges == [created]
    assert params(rec.requests[0]) == {"type": "mixing", "bridgeId": "pbxb-call-1",
                                       "name": "call 1"}
    assert rec.requests[1].path == "/ari/bridges/pbxb-call-1/addChannel"
    assert params(rec.requests[1]) == {"channel": "c1,agent-1", "role": "participant"}
    assert params(rec.requests[2]) == {"channel": "c1"}
    assert (rec.requests[4].method, rec.requests[4].path) == (
        "DELETE", "/ari/bridges/pbxb-call-1")


async def test_playback_and_recording_paths() -> None:
    rec = Recorder(
        Reply(204), Reply(204), Reply(204),
        Reply(200, json=[{"name": "r1", "format": "wav"}]), Reply(204),
    )
    async with client(rec) as ari:
        await ari.stop_playback("pb1")
        await ari.stop_recording("r1")
        await ari.cancel_recording("r1")
        stored = await ari.list_stored_recordings()
        await ari.delete_stored_recording("r1")
    assert [(r.method, r.path) for r in rec.requests] == [
        ("DELETE", "/ari/playbacks/pb1"),
        ("POST", "/ari/recordings/live/r1/stop"),
        ("DELETE", "/ari/recordings/live/r1"),
        ("GET", "/ari/recordings/stored"),
        ("DELETE", "/ari/recordings/stored/r1"),
    ]
    assert stored[0].name == "r1" and stored[0].format == "wav"


@pytest.mark.parametrize(
    ("status", "body", "exc_type"),
    [
        (400, {"message": "Invalid parameters"}, AriBadRequest),
        (401, {"message": "Authentication required"}, AriAuthError),
        (403, {"message": "The recording file could not be opened"}, AriForbidden),
        (404, {"message": "Channel not found"}, AriNotFound),
        (409, {"message": "Channel not in Stasis application"}, AriConflict),
        (412, {"message": "Channel in invalid state"}, AriPreconditionFailed),
        (422, {"message": "specified format is unknown on this system"}, AriUnprocessable),
        (500, {"error": "Allocation failed"}, AriServerError),
        (503, None, AriServerError),
        (418, None, AriHttpError),
    ],
)
async def test_error_statuses_map_to_specific_exceptions(
    status: int, body: dict[str, Any] | None, exc_type: type[AriHttpError]
) -> None:
    response = (Reply(status, json=body) if body is not None
                else Reply(status, text="teapot"))
    async with client(Recorder(response)) as ari:
        with pytest.raises(exc_type) as info:
            await ari.answer("c1")
    err = info.value
    assert type(err) is exc_type
    assert (err.status, err.method, err.path) == (status, "POST", "/channels/c1/answer")
    if body is not None:
        assert err.message == next(iter(body.values()))
    assert PASSWORD not in str(err)


async def test_403_is_also_an_auth_error() -> None:
    async with client(Recorder(Reply(403, json={"message": "x"}))) as ari:
        with pytest.raises(AriAuthError):
            await ari.get_stored_recording("r1")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_unreachable_asterisk_is_a_connection_error_without_secrets() -> None:
    # Nothing listens on this port: a real socket-level refusal.
    url = f"http://127.0.0.1:{closed_port()}"
    async with AriClient(url, "pbx", PASSWORD, app="pbxb", timeout=2.0) as ari:
        with pytest.raises(AriConnectionError) as refused:
            await ari.info()
    assert f"cannot reach Asterisk at {url}" in str(refused.value)
    assert PASSWORD not in str(refused.value)


async def test_a_slow_asterisk_is_a_timeout_not_unreachable() -> None:
    async with client(Recorder(Reply(200, json=CHANNEL, delay_s=2.0)), timeout_s=0.3) as ari:
        with pytest.raises(AriConnectionError, match=r"did not answer in time \(ReadTimeout\)"):
            await ari.get_channel("c1")


async def test_garbage_bodies_are_response_errors() -> None:
    rec = Recorder(Reply(200, text="<html>"), Reply(200, json={"name": "x"}),
                   Reply(200, json={"not": "a list"}))
    async with client(rec) as ari:
        with pytest.raises(AriResponseError):
            await ari.info()
        with pytest.raises(AriResponseError):
            await ari.get_channel("c1")  # a channel without an id
        with pytest.raises(AriResponseError):
            await ari.list_channels()


async def test_channel_model_reads_everything_the_flow_uses() -> None:
    async with client(Recorder(Reply(200, json=CHANNEL))) as ari:
        channel = await ari.get_channel("c1")
    assert channel.caller.number == "05321234567"
    assert channel.dialplan_exten == "2125550100" and channel.dialplan_priority == 3
    assert channel.language == "tr" and channel.channelvars == {}


async def test_download_streams_to_file_in_chunks(tmp_path: Path) -> None:
    payload = bytes(range(256)) * 2048  # 512 KiB, several chunks
    chunks = [payload[start:start + 10_000] for start in range(0, len(payload), 10_000)]
    rec = Recorder(Reply(200, chunks=chunks))
    dest = tmp_path / "r1.wav"
    async with client(rec) as ari:
        written = await ari.download_stored_recording("r 1", dest)
    assert rec.last.raw_path == "/ari/recordings/stored/r%201/file"
    assert written == len(payload)
    assert dest.read_bytes() == payload
    assert not (tmp_path / "r1.wav.part").exists()


async def test_failed_download_leaves_no_file(tmp_path: Path) -> None:
    dest = tmp_path / "missing.wav"
    rec = Recorder(Reply(404, json={"message": "Recording not found"}),
                   Reply(200, chunks=[b"RIFF...."], broken=True))
    async with client(rec) as ari:
        with pytest.raises(AriNotFound, match="Recording not found"):
            await ari.download_stored_recording("missing", dest)
        assert await asyncio.to_thread(lambda: list(tmp_path.iterdir())) == []
        with pytest.raises(AriConnectionError, match="download interrupted"):
            await ari.download_stored_recording("half", dest)
    assert await asyncio.to_thread(lambda: list(tmp_path.iterdir())) == []


async def test_client_closes_its_pool_even_when_the_body_raises() -> None:
    with pytest.raises(RuntimeError):
        async with client(Recorder(Reply(200, json={"ping": "pong"}))) as ari:
            await ari.ping()
            raise RuntimeError("boom")
    assert ari.closed
    with pytest.raises(AriConnectionError, match="closed"):
        await ari.ping()


async def test_command_bodies_are_not_decoded() -> None:
    # A command's answer is read (the connection goes back to the pool) but not parsed:
    # a body that is not JSON does not fail it, and the next request reuses the socket.
    rec = Recorder(Reply(200, text="not json"), Reply(200, json={"ping": "pong"}))
    async with client(rec) as ari:
        await ari.answer("c1")
        assert (await ari.ping()).ping == "pong"
    assert len(rec.requests) == 2


async def test_modules_sounds_and_global_variables_for_the_check() -> None:
    rec = Recorder(
        Reply(200, json=[{"name": "res_stasis.so", "description": "Stasis",
                                   "use_count": 19, "status": "Running",
                                   "support_level": "core"}]),
        Reply(200, json={"id": "tr/disclosure", "formats": [
            {"language": "pbx-bridge", "format": "slin"}]}),
        Reply(200, json={"value": "1796116038"}),
        Reply(404, json={"message": "Sound not found"}),
    )
    async with client(rec) as ari:
        modules = await ari.modules()
        sound = await ari.get_sound("tr/disclosure")
        epoch = await ari.get_global_variable("EPOCH")
        with pytest.raises(AriNotFound):
            await ari.get_sound("en/nothing")
    assert modules[0].name == "res_stasis.so" and modules[0].status == "Running"
    assert modules[0].use_count == 19
    assert sound.id == "tr/disclosure" and sound.languages == {"pbx-bridge"}
    assert epoch == "1796116038"
    paths = [r.raw_path for r in rec.requests]
    # A sound id with "/" is one path segment, quoted, as ARI expects.
    assert paths[:3] == ["/ari/asterisk/modules", "/ari/sounds/tr%2Fdisclosure",
                         "/ari/asterisk/variable?variable=EPOCH"]
