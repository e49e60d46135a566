"""Playing stored recordings by range: plain and encrypted copies, through HTTP (ASGI).

Recordings are stored by the real pipeline (two call legs merged into one stereo WAV, one
plain copy on the primary local backend, one encrypted copy on a second), then read back
through ``storage.playback`` and through ``media_endpoint`` in a Starlette app driven
in-process by httpx. Every range's bytes are compared with the stored plaintext's slice.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from storage_fakes import DirSource, db_url, sessions  # noqa: F401  (fixtures)

from pbx_bridge.byte_ranges import RangeAnswer
from pbx_bridge.config import StorageSettings
from pbx_bridge.media_stream import listen_details, media_endpoint, problem
from pbx_bridge.storage_setup import build_player
from storage import crypto
from storage.backends.base import Backend
from storage.backends.local import LocalBackend
from storage.envelope import EnvelopeEncryptor
from storage.errors import (
    ChunkTampered,
    CopyChanged,
    NoPlayableCopy,
    RecordingErased,
    RecordingNotFound,
)
from storage.keyring import Keyring
from storage.keys import destroy_data_key
from storage.legs import Layout, leg_names
from storage.models import Recording, RecordingCopy, RecordingKind, RecordingStatus
from storage.pipeline import RecordingPipeline
from storage.playback import PlaybackSource, Player
from storage.replication import Target

SECONDS = 12.0  # 8 kHz 16-bit stereo: 384 KB, six 64 KiB chunks when encrypted
MEDIA = "/api/v1/recordings/{recording_id}/media"


def noise_wav(seconds: float, seed: int) -> bytes:
    """Mono noise: every sample differs from its neighbours, so an offset error shows."""
    rng = np.random.default_rng(seed)
    samples = rng.integers(-20000, 20000, round(seconds * 8000), dtype=np.int16)
    buf = io.BytesIO()
    soundfile.write(buf, samples, 8000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


@dataclass
class Stored:
    sessions: async_sessionmaker[AsyncSession]
    row: Recording
    plain: bytes  # the stored plaintext (the primary copy's bytes)
    backends: dict[str, Backend]
    keyring: Keyring
    paths: dict[str, Path]  # backend -> the copy's file
    master: bytes = field(repr=False)
    plays: list[dict[str, object]] = field(default_factory=list)

    def player(self, *names: str) -> Player:
        chosen = {n: self.backends[n] for n in names} if names else self.backends
        return Player(self.sessions, chosen, self.keyring)

    def client(self, player: Player) -> httpx.AsyncClient:
        async def authorize(request: Request, recording_id: str) -> Response | None:
            if request.headers.get("x-test-user") == "admin":
                return problem(403, "Forbidden", "admins cannot listen")
            return None

        async def on_play(request: Request, source: PlaybackSource, answer: RangeAnswer) -> None:
            self.plays.append({"id": source.recording_id, **listen_details(source, answer)})

        app = Starlette(routes=[
            Route(MEDIA, media_endpoint(player, authorize=authorize, on_play=on_play),
                  methods=["GET", "HEAD"]),
        ])
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")

    def url(self, recording_id: str | None = None) -> str:
        return MEDIA.format(recording_id=recording_id or self.row.id)


@pytest.fixture
async def stored(
    sessions: async_sessionmaker[AsyncSession],  # noqa: F811
    tmp_path: Path,
) -> AsyncIterator[Stored]:
    source = DirSource(tmp_path / "asterisk")
    local = LocalBackend(tmp_path / "local")
    vault = LocalBackend(tmp_path / "vault")
    local.name, vault.name = "local", "vault"
    master = os.urandom(32)
    keyring = Keyring({"mk-test": master}, "mk-test")
    pipeline = RecordingPipeline(
        sessions, source, tmp_path / "spool",
        [Target("local", local), Target("vault", vault, encrypt=True)],
        encryptor=EnvelopeEncryptor(sessions, keyring),
        retry_initial_s=0.01, retry_max_s=0.05, stop_timeout_s=0.5,
    )
    async with pipeline:
        row = await pipeline.begin(
            call_id="call-1", kind=RecordingKind.CONVERSATION, legal_basis="consent",
            retention_class="default", retention_days=30, layout=Layout.STEREO,
        )
        for seed, name in enumerate(leg_names(row)):
            source.put(name, noise_wav(SECONDS, seed))
            await pipeline.finished(name)
        await pipeline.wait_idle()
    async with sessions() as session:
        done = await session.get(Recording, row.id)
        copies = {
            c.backend: c
            for c in await session.scalars(
                select(RecordingCopy).where(RecordingCopy.recording_id == row.id)
            )
        }
    assert done is not None and done.status == RecordingStatus.STORED
    assert {b: c.status for b, c in copies.items()} == {"local": "verified", "vault": "verified"}
    paths = {
        "local": tmp_path / "local" / copies["local"].key,
        "vault": tmp_path / "vault" / copies["vault"].key,
    }
    plain = paths["local"].read_bytes()
    assert crypto.is_encrypted(paths["vault"]) and len(plain) == done.size_bytes
    yield Stored(sessions, done, plain, {"local": local, "vault": vault}, keyring, paths,
                 master)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ranges_to_check(size: int) -> list[tuple[int, int]]:
    chunk = crypto.DEFAULT_CHUNK_SIZE
    return [
        (0, 0), (0, 43), (0, size - 1), (chunk - 1, chunk), (chunk, 2 * chunk - 1),
        (size // 2, size // 2 + 100_000), (3 * chunk + 7, 5 * chunk - 9),
        (size - chunk - 1, size - 1), (size - 1, size - 1),
    ]


async def collect(source: PlaybackSource, start: int, end: int) -> list[bytes]:
    return [piece async for piece in source.read_range(start, end)]


# -- the lower layer ---------------------------------------------------------------------


@pytest.mark.parametrize("copy", ["local", "vault"])
async def test_every_range_of_either_copy_is_the_plaintext_slice(
    stored: Stored, copy: str
) -> None:
    source = await stored.player(copy).open(stored.row.id)

    assert source.backend == copy and source.encrypted == (copy == "vault")
    assert source.size == len(stored.plain) == stored.row.size_bytes
    assert source.media_type == "audio/wav" and source.format == "wav"
    assert (source.channels, source.channel_names) == (2, ("caller", "agent"))
    assert source.sha256 == sha(stored.plain)
    for start, end in ranges_to_check(source.size):
        pieces = await collect(source, start, end)
        assert sha(b"".join(pieces)) == sha(stored.plain[start : end + 1]), (start, end)
        assert all(len(piece) <= 320 * 1024 for piece in pieces)  # bounded, never the file
    with pytest.raises(ValueError, match="outside"):
        source.read_range(0, source.size)


async def test_primary_copy_first_then_the_next_verified_one(stored: Stored) -> None:
    assert (await stored.player().open(stored.row.id)).backend == "local"
    stored.paths["local"].unlink()  # the primary copy is gone from its disk
    source = await stored.player().open(stored.row.id)
    assert (source.backend, source.encrypted) == ("vault", True)
    assert b"".join(await collect(source, 1000, 200_000)) == stored.plain[1000:200_001]


async def test_no_copy_opens_names_each_problem(stored: Stored) -> None:
    stored.paths["local"].write_bytes(stored.plain[:-10])  # replaced by something shorter
    without_keys = Player(stored.sessions, stored.backends, None)
    with pytest.raises(NoPlayableCopy) as caught:
        await without_keys.open(stored.row.id)
    message = str(caught.value)
    assert "local: holds" in message and "vault: " in message and "no master key" in message
    with pytest.raises(RecordingNotFound):
        await stored.player().open("no-such-recording")


async def test_plain_copy_cut_off_after_opening_stops_the_stream(stored: Stored) -> None:
    source = await stored.player("local").open(stored.row.id)
    stored.paths["local"].write_bytes(stored.plain[:100_000])
    with pytest.raises(CopyChanged, match="ended"):
        await collect(source, 0, source.size - 1)


async def test_tampered_chunk_ends_the_stream_before_its_bytes(stored: Stored) -> None:
    chunk = crypto.DEFAULT_CHUNK_SIZE
    sealed = bytearray(stored.paths["vault"].read_bytes())
    # One bit in the middle of chunk 3 of the file.
    sealed[crypto.HEADER_BYTES + 3 * (chunk + crypto.TAG_BYTES) + 500] ^= 0x01
    stored.paths["vault"].write_bytes(bytes(sealed))
    source = await stored.player("vault").open(stored.row.id)

    # Chunks before it still play, byte for byte.
    assert b"".join(await collect(source, 0, 3 * chunk - 1)) == stored.plain[: 3 * chunk]
    got: list[bytes] = []
    with pytest.raises(ChunkTampered, match="chunk 3 does not authenticate"):
        async for piece in source.read_range(chunk, 5 * chunk):
            got.append(piece)
    # What came out before the error is exactly the real recording up to chunk 3.
    assert b"".join(got) == stored.plain[chunk : len(b"".join(got)) + chunk]
    assert len(b"".join(got)) <= 2 * chunk


async def test_truncated_encrypted_copy_is_refused_at_its_end(stored: Stored) -> None:
    sealed = stored.paths["vault"].read_bytes()
    stored.paths["vault"].write_bytes(sealed[:-20])
    source = await stored.player("vault").open(stored.row.id)
    assert b"".join(await collect(source, 0, 1000)) == stored.plain[:1001]
    with pytest.raises(ChunkTampered):
        await collect(source, source.size - 10, source.size - 1)


async def test_destroyed_data_key_is_gone(stored: Stored) -> None:
    assert await destroy_data_key(stored.sessions, stored.row.id)
    with pytest.raises(RecordingErased, match="destroyed"):
        await stored.player("vault").open(stored.row.id)


# -- through HTTP -------------------------------------------------------------------------


@pytest.mark.parametrize("copy", ["local", "vault"])
async def test_http_ranges_are_206_with_the_right_bytes(stored: Stored, copy: str) -> None:
    size = len(stored.plain)
    async with stored.client(stored.player(copy)) as client:
        for start, end in ranges_to_check(size):
            answer = await client.get(stored.url(), headers={"Range": f"bytes={start}-{end}"})
            assert answer.status_code == 206, answer.text
            assert answer.headers["content-range"] == f"bytes {start}-{end}/{size}"
            assert answer.headers["content-length"] == str(end - start + 1)
            assert sha(answer.content) == sha(stored.plain[start : end + 1])
        suffix = await client.get(stored.url(), headers={"Range": "bytes=-1000"})
        assert suffix.status_code == 206 and suffix.content == stored.plain[-1000:]
        open_ended = await client.get(stored.url(), headers={"Range": "bytes=300000-"})
        assert open_ended.content == stored.plain[300_000:]

        whole = await client.get(stored.url())
        assert whole.status_code == 200 and sha(whole.content) == sha(stored.plain)
        for name, value in [
            ("accept-ranges", "bytes"), ("content-type", "audio/wav"),
            ("content-length", str(size)), ("cache-control", "no-store"),
            ("etag", f'"{sha(stored.plain)}"'),
        ]:
            assert whole.headers[name] == value

        beyond = await client.get(stored.url(), headers={"Range": f"bytes={size}-"})
        assert beyond.status_code == 416
        assert beyond.headers["content-range"] == f"bytes */{size}"
        assert beyond.content == b""

        head = await client.head(stored.url(), headers={"Range": "bytes=0-99"})
        assert head.status_code == 206 and head.headers["content-length"] == "100"
    assert {str(play["backend"]) for play in stored.plays} == {copy}
    first = stored.plays[0]
    assert first == {
        "id": stored.row.id, "backend": copy, "encrypted": copy == "vault", "status": 206,
        "range": "0-0", "bytes": 1, "size": size, "sha256": sha(stored.plain),
    }
    assert [p["status"] for p in stored.plays if p["status"] != 206] == [200, 416]


async def test_http_tampered_first_chunk_is_refused_not_206(stored: Stored) -> None:
    sealed = bytearray(stored.paths["vault"].read_bytes())
    sealed[crypto.HEADER_BYTES + 10] ^= 0x80  # chunk 0
    stored.paths["vault"].write_bytes(bytes(sealed))
    async with stored.client(stored.player("vault")) as client:
        answer = await client.get(stored.url(), headers={"Range": "bytes=0-1000"})
        assert answer.status_code == 502
        assert answer.headers["content-type"] == "application/problem+json"
        assert "chunk 0 does not authenticate" in answer.json()["detail"]
        # A range that never touches chunk 0 still plays.
        later = await client.get(stored.url(), headers={"Range": "bytes=70000-80000"})
        assert later.status_code == 206 and later.content == stored.plain[70_000:80_001]


async def test_http_tampered_later_chunk_breaks_the_stream(stored: Stored) -> None:
    chunk = crypto.DEFAULT_CHUNK_SIZE
    sealed = bytearray(stored.paths["vault"].read_bytes())
    sealed[crypto.HEADER_BYTES + 4 * (chunk + crypto.TAG_BYTES) + 9] ^= 0x01
    stored.paths["vault"].write_bytes(bytes(sealed))
    async with stored.client(stored.player("vault")) as client:
        # The 206 has started when chunk 4 is reached: the body is never completed
        # (the in-process transport hands the app's error to the client).
        with pytest.raises(ChunkTampered):
            await client.get(stored.url(), headers={"Range": "bytes=0-"})


async def test_http_gone_missing_and_refused(stored: Stored) -> None:
    async with stored.client(stored.player()) as client:
        missing = await client.get(stored.url("no-such-recording"))
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        admin = await client.get(stored.url(), headers={"x-test-user": "admin"})
        assert admin.status_code == 403
        async with stored.sessions() as session:
            await session.execute(
                update(Recording).where(Recording.id == stored.row.id)
                .values(status=RecordingStatus.DELETED.value)
            )
            await session.commit()
        gone = await client.get(stored.url())
        assert gone.status_code == 410 and gone.json()["title"] == "Recording erased"
    assert stored.plays == []  # nothing was played, so no listen to record


async def test_the_web_process_builds_its_player_from_the_config(
    stored: Stored, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded = base64.b64encode(stored.master).decode()
    monkeypatch.setenv("PBX_BRIDGE_MASTER_KEY", f"mk-test:{encoded}")
    settings = StorageSettings.model_validate({
        "local": {"path": str(tmp_path / "local")},
        "backends": {"vault": {"type": "local", "path": str(tmp_path / "vault"),
                               "encrypt": True}},
        "targets": ["vault", "local"],
    })
    player = await build_player(settings, stored.sessions)
    try:
        assert (await player.open(stored.row.id)).backend == "local"  # its location
        stored.paths["local"].unlink()
        source = await player.open(stored.row.id)
        assert (source.backend, source.encrypted) == ("vault", True)
        assert b"".join(await collect(source, 0, 99_999)) == stored.plain[:100_000]
    finally:
        await player.close()
