"""The metrics move on a real call, and /healthz tells when Asterisk or the database is gone.

`pbx-bridge run` with ``[metrics] listen`` beside the sandboxed Asterisk: /metrics is
scraped before and after one caller who presses 1, and every counter the call touches
must have moved by exactly what that call did. Then Asterisk is stopped, or a real
PostgreSQL cut away behind a proxy, and /healthz must say which, and recover with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from database_fixtures import pg_database, pg_url
from e2e_harness import ServiceHarness, recordings_of
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url
from tcp_proxy import ThreadedProxy
from test_storage_e2e import place_consenting_call

from pbx_bridge.sandbox import AsteriskSandbox
from pbx_bridge.sandbox.ports import free_port

pytestmark = pytest.mark.asterisk

__all__ = ["pg_database", "pg_url"]  # fixtures, imported for pytest

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@contextlib.contextmanager
def serving_metrics(
    asterisk: AsteriskSandbox, workdir: Path, prompts: Path, database_url: str | None = None
) -> Iterator[ServiceHarness]:
    """A migrated service with /metrics on a free port (``metrics_url``), refreshing fast."""
    listen = f"127.0.0.1:{free_port(socket.SOCK_STREAM)}"
    harness = ServiceHarness(
        asterisk, workdir, prompts, database_url=database_url,
        extra_config=f'[metrics]\nlisten = "{listen}"\nrefresh_interval_s = 0.5\n',
    )
    harness.metrics_url = f"http://{listen}"  # type: ignore[attr-defined]
    harness.cli("db", "upgrade")
    try:
        yield harness
    finally:
        harness.stop()
        if not asterisk.is_running():
            asterisk.start()  # the next test expects it up


@pytest.fixture
def metrics_service(
    asterisk: AsteriskSandbox, built_prompts: Path, tmp_path: Path
) -> Iterator[ServiceHarness]:
    with serving_metrics(asterisk, tmp_path, built_prompts) as harness:
        yield harness


async def scrape(base_url: str) -> Samples:
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str) -> float:
    return sum(v for (sample, _), v in samples.items() if sample == name)


async def healthz(base_url: str) -> tuple[int, dict[str, object]]:
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as http:
        response = await http.get("/healthz")
    return response.status_code, response.json()


async def eventually(check: Callable[[], Awaitable[object]], timeout_s: float = 20.0) -> None:
    """Until what ``check`` returns is truthy, or fail."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"not within {timeout_s}s (last: {last!r})")


async def test_one_consenting_call_moves_each_metric_by_what_it_did(
    metrics_service: ServiceHarness,
) -> None:
    service = metrics_service
    url: str = service.metrics_url  # type: ignore[attr-defined]
    service.start()
    await eventually(lambda: _status_is(url, 200))
    before = await scrape(url)
    assert value(before, "pbx_bridge_live_calls") == 0
    assert value(before, "pbx_bridge_ari_connected") == 1
    assert value(before, "pbx_bridge_database_unavailable") == 0

    await place_consenting_call(service)
    (call,) = await service.wait_for_calls(1)
    assert call["disposition"] == "answered" and call["consent"]["decision"] == "granted"
    assert len(recordings_of(call, "conversation")) == 1
    assert len(recordings_of(call, "evidence")) == 1

    # The database gauges follow within their refresh interval.
    async def refreshed() -> Samples | None:
        samples = await scrape(url)
        stored = value(samples, "pbx_bridge_recordings", status="stored")
        return samples if stored == value(before, "pbx_bridge_recordings", status="stored") + 2 \
            else None

    await eventually(refreshed)
    after = await scrape(url)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("pbx_bridge_calls_total", disposition="answered") == 1
    assert total(after, "pbx_bridge_calls_total") - total(before, "pbx_bridge_calls_total") == 1
    assert moved("pbx_bridge_consent_decisions_total", outcome="granted") == 1
    assert (total(after, "pbx_bridge_consent_decisions_total")
            - total(before, "pbx_bridge_consent_decisions_total")) == 1
    # The caller's 1 interrupted the disclosure: one keypress, one stopped prompt.
    assert moved("pbx_bridge_keypress_to_action_seconds_count") == 1
    assert 0 < moved("pbx_bridge_keypress_to_action_seconds_sum") < 2.5
    # One disclosure began playing, some time after the answer.
    assert moved("pbx_bridge_answer_to_disclosure_seconds_count") == 1
    assert 0 < moved("pbx_bridge_answer_to_disclosure_seconds_sum") < 10
    # Answer, snoop, record, play, dial, bridge, ...: many ARI requests, each timed.
    grown = (total(after, "pbx_bridge_ari_request_duration_seconds_count")
             - total(before, "pbx_bridge_ari_request_duration_seconds_count"))
    assert grown >= 10
    paths = {dict(labels).get("path", "") for (name, labels) in after
             if name == "pbx_bridge_ari_request_duration_seconds_count"}
    assert "/channels/{id}/answer" in paths and "/bridges/{id}/addChannel" in paths
    assert not [p for p in paths if "pbxb" in p or any(ch.isdigit() for ch in p)], paths
    assert value(after, "pbx_bridge_live_calls") == 0
    assert value(after, "pbx_bridge_recordings", status="failed") == 0
    assert value(after, "pbx_bridge_recording_copies", backend="local", status="pending") == 0
    assert value(after, "pbx_bridge_recording_copies", backend="local", status="dead") == 0
    assert value(after, "pbx_bridge_oldest_unstored_recording_age_seconds") == 0
    assert value(after, "pbx_bridge_purge_lag_seconds") == 0
    assert value(after, "pbx_bridge_dsar_requests_overdue") == 0
    assert value(after, "pbx_bridge_metrics_refresh_timestamp_seconds") > time.time() - 30
    assert await healthz(url) == (200, {"status": "ok", "live_calls": 0})
    # SIGTERM stops the listener with the service, promptly and cleanly.
    assert await asyncio.to_thread(service.stop, 10.0) == 0
    assert not await _status_is(url, 200)


async def test_healthz_says_asterisk_is_gone_and_recovers_with_it(
    metrics_service: ServiceHarness, asterisk: AsteriskSandbox
) -> None:
    service = metrics_service
    url: str = service.metrics_url  # type: ignore[attr-defined]
    service.start()
    await eventually(lambda: _status_is(url, 200))
    reconnects = value(await scrape(url), "pbx_bridge_ari_reconnects_total")

    await asyncio.to_thread(asterisk.stop)
    await eventually(lambda: _status_is(url, 503))
    status, body = await healthz(url)
    assert status == 503 and body["status"] == "unavailable"
    problems = body["problems"]
    assert isinstance(problems, list) and len(problems) == 1
    assert problems[0].startswith("ARI event stream not connected")
    assert value(await scrape(url), "pbx_bridge_ari_connected") == 0

    await asyncio.to_thread(asterisk.start)
    await eventually(lambda: _status_is(url, 200), timeout_s=30)
    assert value(await scrape(url), "pbx_bridge_ari_reconnects_total") == reconnects + 1
    assert service.running()


async def test_healthz_says_the_database_is_gone_and_recovers_with_it(
    asterisk: AsteriskSandbox, built_prompts: Path, tmp_path: Path, pg_url: str
) -> None:
    direct = make_url(pg_url)
    assert direct.host is not None and direct.port is not None
    with ThreadedProxy(direct.host, direct.port) as proxy, serving_metrics(
        asterisk, tmp_path, built_prompts,
        database_url=direct.set(port=proxy.port).render_as_string(hide_password=False),
    ) as service:
        url: str = service.metrics_url  # type: ignore[attr-defined]
        service.start()
        await eventually(lambda: _status_is(url, 200))

        await asyncio.to_thread(proxy.cut)
        await eventually(lambda: _status_is(url, 503))
        status, body = await healthz(url)
        assert status == 503
        problems = body["problems"]
        assert isinstance(problems, list) and len(problems) == 1
        assert problems[0].startswith("database unreachable: "), problems
        samples = await scrape(url)
        assert value(samples, "pbx_bridge_database_unavailable") == 1
        assert value(samples, "pbx_bridge_ari_connected") == 1
        assert value(samples, "pbx_bridge_job_failures_total", job="metrics_refresh",
                     kind="transient") >= 1

        await asyncio.to_thread(proxy.restore)
        await eventually(lambda: _status_is(url, 200), timeout_s=30)
        assert value(await scrape(url), "pbx_bridge_database_unavailable") == 0
        assert service.running()


async def _status_is(url: str, wanted: int) -> bool:
    try:
        status, _ = await healthz(url)
    except httpx.TransportError:
        return False
    return status == wanted


def test_a_metrics_port_already_taken_stops_start_up_with_the_key_named(
    asterisk: AsteriskSandbox, built_prompts: Path, tmp_path: Path
) -> None:
    with socket.socket() as taken, serving_metrics(asterisk, tmp_path, built_prompts) as service:
        url: str = service.metrics_url  # type: ignore[attr-defined]
        host, port = url.removeprefix("http://").rsplit(":", 1)
        taken.bind((host, int(port)))
        taken.listen()
        result = service.cli("run", check=False)
    assert result.returncode != 0
    assert f"metrics.listen: cannot listen on {host}:{port}" in result.stderr, result.stderr
