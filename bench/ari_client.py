"""CPU per ARI REST request of the client stacks the service could use, on a real Asterisk.

    bench/run ari_client [--requests 2000] [--concurrency 8] [--rounds 3] [--json]
                         [--sandbox NAME]

One sandboxed Asterisk (`$PBX_BRIDGE_E2E_SANDBOX`, else `ari-bench`); in one process, in
alternating rounds, each client sends ``--requests`` requests, ``--concurrency`` at a
time, half `GET /asterisk/ping` (a JSON object decoded and parsed) and half `POST
/asterisk/variable` (a command Asterisk answers with 204), through a pool of
``--concurrency`` kept-alive connections:

- ``httpx-aiohttp``: the client the service had until 2026-12-01 (httpx's request and
  response objects on httpx-aiohttp's `AiohttpTransport`: aiohttp's connector and HTTP
  parser underneath), rebuilt here as it did each request: query, auth, metric, JSON
  decoding, our model; the baseline;
- ``AriClient``: the service's client now (plain aiohttp underneath, `pbx_bridge/ari/rest.py`);
- ``aiohttp``: a bare aiohttp `ClientSession` doing the same requests (the floor: no
  metric, no model, no error mapping).

Measured: this process's CPU time (`time.process_time`, all threads) per request, not
wall time: the machine is shared, and Asterisk's CPU is not in it. The event loop is the
service's (uvloop when installed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from pbx_bridge import event_loop
from pbx_bridge.ari.models import AsteriskPing
from pbx_bridge.ari.rest import KEEPALIVE_EXPIRY_S, AriClient, _query
from pbx_bridge.metrics import observe_ari_request
from pbx_bridge.sandbox import AsteriskSandbox, ensure_root

Request = Callable[[int], Awaitable[None]]


async def _drive(request: Request, total: int, concurrency: int) -> None:
    """``total`` requests, ``concurrency`` in flight at once (as the call flows do)."""
    queue = iter(range(total))

    async def worker() -> None:
        for i in queue:
            await request(i)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _measure(request: Request, total: int, concurrency: int) -> dict[str, float]:
    await _drive(request, concurrency * 4, concurrency)  # warm: connections open
    cpu, wall = time.process_time(), time.perf_counter()
    await _drive(request, total, concurrency)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"cpu_ms_per_request": cpu * 1000 / total, "wall_s": wall}


def _ari_request(ari: AriClient) -> Request:
    async def request(i: int) -> None:
        if i % 2:
            await ari.ping()
        else:
            await ari._command("POST", "/asterisk/variable",
                               {"variable": "BENCH", "value": str(i)})

    return request


async def run_ari_client(
    asterisk: AsteriskSandbox, total: int, concurrency: int
) -> dict[str, float]:
    async with AriClient(asterisk.ari_url, asterisk.ari_username, asterisk.ari_password,
                         app="bench", max_connections=concurrency) as ari:
        return await _measure(_ari_request(ari), total, concurrency)


async def run_httpx_aiohttp(
    asterisk: AsteriskSandbox, total: int, concurrency: int
) -> dict[str, float]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency,
                          keepalive_expiry=KEEPALIVE_EXPIRY_S)
    async with httpx.AsyncClient(
        base_url=f"{asterisk.ari_url}/ari",
        auth=httpx.BasicAuth(asterisk.ari_username, asterisk.ari_password),
        limits=limits, timeout=10.0, headers={"Accept": "application/json"},
        transport=AiohttpTransport(limits=limits, trust_env=False),
    ) as http:
        async def send(method: str, path: str, params: dict[str, str | None]) -> httpx.Response:
            started = time.perf_counter()
            try:
                response = await http.request(method, path, params=_query(params))
            finally:
                observe_ari_request(method, path, time.perf_counter() - started)
            assert response.status_code < 400, response.status_code
            return response

        async def request(i: int) -> None:
            if i % 2:
                response = await send("GET", "/asterisk/ping", {})
                assert AsteriskPing.from_json(response.json()).ping == "pong"
            else:
                await send("POST", "/asterisk/variable", {"variable": "BENCH", "value": str(i)})

        return await _measure(request, total, concurrency)


async def run_aiohttp(asterisk: AsteriskSandbox, total: int, concurrency: int) -> dict[str, float]:
    base = f"{asterisk.ari_url}/ari"
    connector = aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=KEEPALIVE_EXPIRY_S)
    auth = aiohttp.encode_basic_auth(asterisk.ari_username, asterisk.ari_password)
    headers = {"Accept": "application/json", "Authorization": auth}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        async def request(i: int) -> None:
            if i % 2:
                async with session.get(f"{base}/asterisk/ping") as response:
                    body = await response.json()
                    assert body["ping"] == "pong", body
            else:
                async with session.post(f"{base}/asterisk/variable",
                                        params={"variable": "BENCH", "value": str(i)}) as r:
                    assert r.status == 204, r.status
                    await r.read()

        return await _measure(request, total, concurrency)


CLIENTS: dict[str, Callable[[AsteriskSandbox, int, int], Awaitable[dict[str, float]]]] = {
    "httpx-aiohttp": run_httpx_aiohttp,
    "AriClient": run_ari_client,
    "aiohttp": run_aiohttp,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sandbox", default=os.environ.get("PBX_BRIDGE_E2E_SANDBOX", "ari-bench"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    ensure_root()
    results: dict[str, list[dict[str, float]]] = {name: [] for name in CLIENTS}
    with AsteriskSandbox(name=args.sandbox) as asterisk:
        for _ in range(args.rounds):
            for name, client in CLIENTS.items():
                results[name].append(
                    event_loop.run(client(asterisk, args.requests, args.concurrency)))
    report: dict[str, Any] = {
        name: {
            "cpu_ms_per_request_median": statistics.median(
                r["cpu_ms_per_request"] for r in runs),
            "cpu_ms_per_request": [round(r["cpu_ms_per_request"], 3) for r in runs],
            "wall_s": [round(r["wall_s"], 2) for r in runs],
        }
        for name, runs in results.items()
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    base = report["httpx-aiohttp"]["cpu_ms_per_request_median"]
    loop = "uvloop" if event_loop.loop_factory() else "asyncio"
    print(f"{args.requests} requests x {args.rounds} rounds, {args.concurrency} concurrent, "
          f"{loop} loop, load {os.getloadavg()[0]:.1f}")
    for name, row in report.items():
        median = row["cpu_ms_per_request_median"]
        print(f"{name:14s} CPU {median:.3f} ms/request (rounds {row['cpu_ms_per_request']}) "
              f"= {median / base:.2f}x httpx-aiohttp; wall {row['wall_s']} s")


if __name__ == "__main__":
    main()
