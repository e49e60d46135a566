"""Playing a 60-minute recording by HTTP range: encrypted copy vs plain copy vs the file.

One 8 kHz 16-bit stereo WAV of ``--minutes`` (60: ~115 MB; noise, written in blocks) is
stored as the pipeline stores it: a plain copy on one ``LocalBackend``, and a copy sealed
with the project's own ``crypto.encrypt_file`` under a data key made by ``storage.keys``
on another, with its recording, copy and data key rows in SQLite (or ``--database``).
Three ways of serving it, each by a fresh uvicorn process on loopback (so its peak RSS is
that variant's alone):

- **file**: Starlette's ``FileResponse`` of the plain WAV on disk (the baseline: what a
  server does with no storage layer, no database, no decryption);
- **plain**: ``media_endpoint`` (``storage.playback``) reading the plain copy;
- **encrypted**: ``media_endpoint`` decrypting the encrypted copy chunk by chunk.

For each, an httpx client asks ``Range: bytes=0-`` (the start) and ``bytes=<middle>-`` (a
seek to the middle): the time to the first body byte (median of ``--repeat`` requests
abandoned after that byte, each a recording looked up and opened afresh), and one full
read of the range (throughput). The server reports its peak RSS against its RSS before
the first request: streaming 115 MB must leave it flat. Every byte read is hashed and
compared with the WAV's slice; a difference fails the run.

    .venv/bin/python bench/playback.py [--minutes M] [--repeat N] [--quick] [--database URL]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import (
    BenchCheckFailed,
    bench_database,
    cpu_seconds,
    emit_result,
    mb,
    peak_rss_kib,
    rss_kib,
    work_folder,
)

SCRIPT = Path(__file__).resolve()
RATE = 8000
CHANNELS = 2
BLOCK_SECONDS = 30
RECORDING_ID = "0c2b6d7e-5a1f-4e55-9a3e-60d1f0c0ffee"
KEY = "2026/12/01/call-bench/rec-bench.wav"
VARIANTS = ("file", "plain", "encrypted")


# -- setup (parent process) ----------------------------------------------------------------


def make_wav(path: Path, minutes: float) -> None:
    """Blocking, before any loop. Written in blocks: the parent's memory stays small too."""
    import numpy as np
    import soundfile

    rng = np.random.default_rng(7)
    left = round(minutes * 60 * RATE)
    with soundfile.SoundFile(
        path, "w", samplerate=RATE, channels=CHANNELS, format="WAV", subtype="PCM_16"
    ) as out:
        while left > 0:
            frames = min(left, BLOCK_SECONDS * RATE)
            out.write(rng.integers(-3000, 3000, (frames, CHANNELS), dtype=np.int16))
            left -= frames


async def store(url: str, work: Path, wav: Path) -> dict[str, Any]:
    """Rows and copies as the pipeline leaves them; returns what the servers need."""
    from storage import crypto
    from storage.backends.local import LocalBackend
    from storage.database import make_engine, make_session_factory, upgrade
    from storage.keyring import Keyring, generate_master_key
    from storage.keys import create_data_key
    from storage.models import CopyStatus, Recording, RecordingCopy, RecordingStatus

    await upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    keys_dir = work / "keys"
    await asyncio.to_thread(generate_master_key, keys_dir)
    keyring = await asyncio.to_thread(Keyring.load, keys_dir, {})
    plain_backend = LocalBackend(work / "plain")
    vault_backend = LocalBackend(work / "vault")
    plain = await plain_backend.put(wav, KEY)
    now = datetime.now(UTC)
    async with sessions() as session:
        session.add(Recording(
            id=RECORDING_ID, call_id="call-bench", kind="conversation",
            status=RecordingStatus.STORED.value, asterisk_name=RECORDING_ID,
            legal_basis="consent", retention_class="default", retention_days=30,
            format="wav", layout="stereo", sha256=plain.sha256, size_bytes=plain.size,
            location=plain.location, started_at=now, finished_at=now, stored_at=now,
        ))
        await session.commit()
    data_key = await create_data_key(sessions, keyring, RECORDING_ID)
    sealed = work / "sealed.wav.enc"
    started = time.perf_counter()
    await asyncio.to_thread(crypto.encrypt_file, wav, sealed, data_key, RECORDING_ID)
    encrypt_s = time.perf_counter() - started
    vault = await vault_backend.put(sealed, KEY)
    await asyncio.to_thread(sealed.unlink)
    async with sessions() as session:
        for name, stored, encrypted in (("plain", plain, False), ("vault", vault, True)):
            session.add(RecordingCopy(
                recording_id=RECORDING_ID, backend=name, key=KEY,
                status=CopyStatus.VERIFIED.value, encrypted=encrypted,
                size_bytes=stored.size, sha256=stored.sha256, location=stored.location,
                verified_at=now,
            ))
        await session.commit()
    await engine.dispose()
    return {"plain_bytes": plain.size, "sealed_bytes": vault.size, "encrypt_s": encrypt_s,
            "keys_dir": str(keys_dir)}


# -- the server (its own process) -------------------------------------------------------------


async def serve(variant: str, url: str, work: Path, keys_dir: Path, port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Route

    from pbx_bridge.byte_ranges import RangeAnswer
    from pbx_bridge.media_stream import media_endpoint
    from storage.backends.local import LocalBackend
    from storage.database import make_engine, make_session_factory
    from storage.keyring import Keyring
    from storage.playback import PlaybackSource, Player

    engine = make_engine(url)
    backends = {"plain": LocalBackend(work / "plain"), "vault": LocalBackend(work / "vault")}
    if variant == "encrypted":
        del backends["plain"]  # the encrypted copy is then the only one to open
    player = Player(make_session_factory(engine), backends,
                    await asyncio.to_thread(Keyring.load, keys_dir, {}))
    path = work / "plain" / KEY

    async def allow(request: Request, recording_id: str) -> Response | None:
        return None

    async def played(request: Request, source: PlaybackSource, answer: RangeAnswer) -> None:
        return None

    async def file_endpoint(request: Request) -> Response:
        return FileResponse(path, media_type="audio/wav", headers={"Cache-Control": "no-store"})

    endpoint = file_endpoint if variant == "file" else media_endpoint(
        player, authorize=allow, on_play=played)

    async def memory(request: Request) -> Response:
        # Asked once the client is done: uvicorn re-raises SIGTERM after serving, so the
        # figures cannot wait for the process's end.
        return JSONResponse({"rss_before_kib": before, "peak_rss_kib": peak_rss_kib(),
                             "cpu_s": cpu_seconds()})

    app = Starlette(routes=[Route("/media/{recording_id}", endpoint),
                            Route("/memory", memory)])
    before = rss_kib()
    server = uvicorn.Server(uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
        access_log=False,
    ))
    print("READY", flush=True)
    await server.serve()
    await engine.dispose()


# -- the client (parent process) ------------------------------------------------------------


async def measure(
    port: int, size: int, wav: Path, repeat: int, full_repeat: int
) -> dict[str, Any]:
    import httpx

    url = f"http://127.0.0.1:{port}/media/{RECORDING_ID}"
    stats_url = f"http://127.0.0.1:{port}/memory"
    out: dict[str, Any] = {}
    async with httpx.AsyncClient(timeout=120) as client:
        # One untimed request first: the server's first request pays imports and pools.
        async with client.stream("GET", url, headers={"Range": "bytes=0-0"}) as answer:
            await answer.aread()
        starts = {"start": 0, "middle": size // 2}
        firsts: dict[str, list[float]] = {where: [] for where in starts}
        for _ in range(repeat):  # interleaved, so load changes hit both alike
            for where, start in starts.items():
                firsts[where].append(await _first_byte(client, url, start))
        for where, start in starts.items():
            headers = {"Range": f"bytes={start}-"}
            # Checked once, untimed: hashing on the client would cap what is measured.
            expected = await asyncio.to_thread(_slice_sha, wav, start)
            sha = hashlib.sha256()
            async with client.stream("GET", url, headers=headers) as answer:
                async for piece in answer.aiter_raw():
                    sha.update(piece)
            if sha.hexdigest() != expected:
                raise BenchCheckFailed(f"{where}: the bytes are not the recording's slice")
            fulls: list[float] = []
            cpu_before = (await client.get(stats_url)).json()["cpu_s"]
            for _ in range(full_repeat):
                began = time.perf_counter()
                got = 0
                async with client.stream("GET", url, headers=headers) as answer:
                    async for piece in answer.aiter_raw():
                        got += len(piece)
                fulls.append(time.perf_counter() - began)
                if got != size - start:
                    raise BenchCheckFailed(f"{where}: {got} bytes, not {size - start}")
            cpu_s = (await client.get(stats_url)).json()["cpu_s"] - cpu_before
            full_s = statistics.median(fulls)
            out[where] = {
                "ttfb_ms_median": statistics.median(firsts[where]) * 1000,
                "ttfb_ms_min": min(firsts[where]) * 1000,
                "bytes": size - start,
                "full_s": full_s,
                "mb_per_s": mb(size - start) / full_s,
                "server_cpu_ms_per_mib": cpu_s * 1000 / (mb(size - start) * full_repeat),
            }
        memory = (await client.get(stats_url)).json()
    out["rss_before_mib"] = memory["rss_before_kib"] / 1024
    out["peak_rss_mib"] = memory["peak_rss_kib"] / 1024
    return out


async def _first_byte(client: Any, url: str, start: int) -> float:
    """Seconds to the first body byte of ``bytes=<start>-``; the rest is abandoned."""
    began = time.perf_counter()
    async with client.stream("GET", url, headers={"Range": f"bytes={start}-"}) as answer:
        if answer.status_code != 206:
            raise BenchCheckFailed(f"bytes={start}-: status {answer.status_code}")
        async for _piece in answer.aiter_raw():
            return time.perf_counter() - began
    raise BenchCheckFailed(f"bytes={start}-: empty body")


def _slice_sha(path: Path, start: int) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as fh:
        fh.seek(start)
        while block := fh.read(1024 * 1024):
            sha.update(block)
    return sha.hexdigest()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_variant(variant: str, url: str, work: Path, keys_dir: str, wav: Path, size: int,
                repeat: int, full_repeat: int) -> dict[str, Any]:
    port = free_port()
    argv = [sys.executable, str(SCRIPT), "--serve", variant, "--url", url, "--work", str(work),
            "--keys-dir", keys_dir, "--port", str(port)]
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "READY":
            raise BenchCheckFailed(f"{variant}: server did not start")
        deadline = time.monotonic() + 15
        while True:  # READY is printed just before uvicorn binds
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        result = asyncio.run(measure(port, size, wav, repeat, full_repeat))
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--full-repeat", type=int, default=3,
                        help="full reads of each range (the median is reported)")
    parser.add_argument("--quick", action="store_true", help="10 minutes, 5 + 1 repeats")
    parser.add_argument("--database", default="sqlite", help="a PostgreSQL URL, or sqlite")
    parser.add_argument("--serve", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--keys-dir", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.url, args.work, Path(args.keys_dir), args.port))
        return
    minutes, repeat, full_repeat = (
        (10.0, 5, 1) if args.quick else (args.minutes, args.repeat, args.full_repeat)
    )
    with work_folder("pbxb-playback-") as work:
        wav = work / "source.wav"
        started = time.perf_counter()
        make_wav(wav, minutes)
        with bench_database(args.database, work) as (url, kind):
            facts = asyncio.run(store(url, work, wav))
            setup_s = time.perf_counter() - started
            size = facts["plain_bytes"]
            print(f"playback: {minutes:g} min 8 kHz 16-bit stereo WAV, {mb(size):.1f} MiB "
                  f"(encrypted {mb(facts['sealed_bytes']):.1f} MiB, sealed in "
                  f"{facts['encrypt_s']:.2f} s; setup {setup_s:.1f} s), database {kind}, "
                  f"load {os.getloadavg()[0]:.1f}")
            results = {v: run_variant(v, url, work, facts["keys_dir"], wav, size, repeat,
                                      full_repeat)
                       for v in VARIANTS}
    print(f"  {'served as':<10} {'range':<7} {'TTFB median':>12} {'min':>8} "
          f"{'full range':>11} {'MiB/s':>7} {'CPU ms/MiB':>10} {'RSS before':>11} {'peak':>7}")
    for variant, result in results.items():
        for where in ("start", "middle"):
            item = result[where]
            print(f"  {variant:<10} {where:<7} {item['ttfb_ms_median']:9.2f} ms "
                  f"{item['ttfb_ms_min']:5.2f} ms {item['full_s']:9.2f} s "
                  f"{item['mb_per_s']:7.0f} {item['server_cpu_ms_per_mib']:10.2f} "
                  f"{result['rss_before_mib']:8.1f} MiB "
                  f"{result['peak_rss_mib']:4.1f} MiB")
    emit_result({"minutes": minutes, "size_bytes": size, "variants": results,
                 "encrypt_s": facts["encrypt_s"]})


if __name__ == "__main__":
    main()
