"""Metrics and health: the backlog queries (SQLite and PostgreSQL), the gauges they set,
the ARI path templates, and the real /metrics and /healthz listener over HTTP."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import pytest
from database_fixtures import db_url, migrated_url, pg_database, sessions
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.config import ConfigError
from pbx_bridge.health import ServiceHealth
from pbx_bridge.metrics import ari_path_template
from pbx_bridge.metrics_refresh import MetricsRefresh
from pbx_bridge.metrics_server import MetricsServer
from pbx_bridge.sandbox.ports import free_port
from pbx_bridge.subjects.index import SubjectIndex
from pbx_bridge.subjects.numbers import SubjectKeyer
from pbx_bridge.subjects.register import RequestChannel, RequestType, open_request, start
from storage.backlog import read_backlog
from storage.database import DatabaseUnavailable, make_engine, make_session_factory
from storage.models import Recording, RecordingCopy, new_id

__all__ = ["db_url", "migrated_url", "pg_database", "sessions"]

NOW = datetime.fromisoformat("2026-12-01T12:00:00+00:00")
INDEX = SubjectIndex(SubjectKeyer(bytes(range(32))), "TR")


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/channels/pbxb-3f2a/play", "/channels/{id}/play"),
        ("/channels/1733040000.42/variable", "/channels/{id}/variable"),
        ("/channels", "/channels"),
        ("/channels/create", "/channels/create"),
        ("/bridges/pbxb-call-9/addChannel", "/bridges/{id}/addChannel"),
        ("/recordings/stored/pbxb-rec-1/file", "/recordings/stored/{id}/file"),
        ("/recordings/live/pbxb-rec-1/stop", "/recordings/live/{id}/stop"),
        ("/playbacks/pbxb-77", "/playbacks/{id}"),
        ("/sounds/pbx-bridge%2Ftr%2Fdisclosure", "/sounds/{id}"),
        ("/applications/pbx-bridge", "/applications/{id}"),
        ("/asterisk/info", "/asterisk/info"),
        ("/channels/05321234567/dial?caller=905321234567", "/channels/{id}/dial"),
    ],
)
def test_ari_paths_become_templates_without_ids_or_numbers(path: str, template: str) -> None:
    assert ari_path_template(path) == template


def _recording(status: str, **fields: object) -> Recording:
    rid = new_id()
    values: dict[str, object] = dict(
        id=rid, call_id=new_id(), kind="conversation", status=status, asterisk_name=rid,
        legal_basis="consent", retention_class="default", retention_days=60,
        started_at=NOW - timedelta(hours=2),
    )
    values.update(fields)
    return Recording(**values)


def _copy(recording: Recording, backend: str, status: str) -> RecordingCopy:
    return RecordingCopy(recording_id=recording.id, backend=backend, key=recording.id,
                         status=status)


async def _fill(session: AsyncSession) -> None:
    """Stored and long-deleted rows (overdue retain_until, already purged), a backlog."""
    expired_long_ago = NOW - timedelta(days=400)
    for _ in range(5):
        session.add(_recording("deleted", retain_until=expired_long_ago))
    for _ in range(3):
        session.add(_recording("stored", retain_until=NOW + timedelta(days=30)))
    session.add(_recording("stored", retain_until=NOW - timedelta(hours=1)))  # overdue 1 h
    # Overdue longer, but on legal hold: kept on purpose, not late.
    session.add(_recording("stored", retain_until=NOW - timedelta(days=9), hold_reason="case"))
    # A backend down keeps it in `deleting`: overdue 3 h, the oldest that is late.
    session.add(_recording("deleting", retain_until=NOW - timedelta(hours=3)))
    session.add(_recording("recording"))  # still being recorded: not "unstored"
    waiting = _recording("prepared", finished_at=NOW - timedelta(minutes=12))
    spooled = _recording("spooled", finished_at=NOW - timedelta(minutes=4))
    session.add_all([waiting, spooled])
    await session.flush()
    session.add_all([
        _copy(waiting, "local", "verified"),
        _copy(waiting, "ftp", "pending"),
        _copy(spooled, "ftp", "dead"),
    ])
    late = await open_request(session, INDEX, number="05321234567", type=RequestType.ACCESS,
                              channel=RequestChannel.EMAIL, actor="cli:test", due_days=30,
                              now=NOW - timedelta(days=31))
    await start(session, late, actor="cli:test", now=NOW - timedelta(days=30))
    await open_request(session, INDEX, number="05321234568", type=RequestType.ACCESS,
                       channel=RequestChannel.EMAIL, actor="cli:test", due_days=30,
                       now=NOW - timedelta(days=2))
    await session.commit()


async def test_backlog_counts_what_waits(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        await _fill(session)
    async with sessions() as session:
        backlog = await read_backlog(session, NOW)
    assert backlog.recordings == {
        "recording": 1, "finished": 0, "spooled": 1, "prepared": 1, "stored": 5,
        "failed": 0, "deleting": 1, "deleted": 5,
    }
    assert backlog.copies == {("ftp", "pending"): 1, ("ftp", "dead"): 1}
    assert backlog.oldest_unstored_at == NOW - timedelta(minutes=12)
    assert backlog.oldest_overdue_until == NOW - timedelta(hours=3)


async def test_an_empty_database_has_no_backlog(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        backlog = await read_backlog(session, NOW)
    assert set(backlog.recordings.values()) == {0}
    assert backlog.copies == {}
    assert backlog.oldest_unstored_at is None and backlog.oldest_overdue_until is None


def _value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def test_the_refresh_sets_every_gauge(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        await _fill(session)
    refresh = MetricsRefresh(sessions, backends=["local", "ftp", "s3"], interval_s=15,
                             clock=lambda: NOW)
    await refresh.run_once()
    assert _value("pbx_bridge_recordings", status="stored") == 5
    assert _value("pbx_bridge_recordings", status="failed") == 0
    assert _value("pbx_bridge_recording_copies", backend="ftp", status="pending") == 1
    assert _value("pbx_bridge_recording_copies", backend="ftp", status="dead") == 1
    # A backend with nothing waiting still has its series, at 0.
    assert _value("pbx_bridge_recording_copies", backend="s3", status="pending") == 0
    assert _value("pbx_bridge_oldest_unstored_recording_age_seconds") == 12 * 60
    assert _value("pbx_bridge_purge_lag_seconds") == 3 * 3600
    assert _value("pbx_bridge_dsar_requests_overdue") == 1
    assert refresh.database_error is None


async def test_a_refresh_without_the_database_says_why() -> None:
    engine = make_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    refresh = MetricsRefresh(make_session_factory(engine), backends=[], interval_s=15)
    with pytest.raises(DatabaseUnavailable):  # the driver's refused connect, named
        await refresh.run_once()
    assert refresh.database_error is not None
    await engine.dispose()


# -- the listener ---------------------------------------------------------------------------


@dataclass
class _Calls:
    live_calls: int = 0
    database_outage: bool = False


@dataclass
class _Events:
    connected: bool = True
    last_error: object = None


@dataclass
class _Refresh:
    database_error: str | None = None


async def test_metrics_and_healthz_over_http() -> None:
    calls, events, refresh = _Calls(live_calls=3), _Events(), _Refresh()
    health = ServiceHealth(calls, events, refresh)
    health.bind_gauges()
    listen = f"127.0.0.1:{free_port(socket.SOCK_STREAM)}"
    async with MetricsServer(listen, health), httpx.AsyncClient(
        base_url=f"http://{listen}"
    ) as http:
        scrape = await http.get("/metrics")
        assert scrape.status_code == 200
        assert scrape.headers["content-type"].startswith("text/plain; version=")
        assert "\npbx_bridge_live_calls 3.0\n" in scrape.text
        assert "\npbx_bridge_ari_connected 1.0\n" in scrape.text

        ok = await http.get("/healthz")
        assert (ok.status_code, ok.json()) == (200, {"status": "ok", "live_calls": 3})

        events.connected, events.last_error = False, "ARI events: connection refused"
        refresh.database_error = "connection refused"
        down = await http.get("/healthz")
        assert down.status_code == 503
        assert down.json()["problems"] == [
            "ARI event stream not connected: ARI events: connection refused",
            "database unreachable: connection refused",
        ]
        scrape = await http.get("/metrics")
        assert "\npbx_bridge_database_unavailable 1.0\n" in scrape.text

        events.connected, refresh.database_error, calls.database_outage = True, None, True
        owed = await http.get("/healthz")
        assert owed.status_code == 503
        assert owed.json()["problems"] == [
            "database unavailable: call records wait for the resync"
        ]
        refresh.database_error = "connection refused"  # both noticed: still one line
        both = await http.get("/healthz")
        assert both.json()["problems"] == [
            "database unreachable: connection refused; call records wait for the resync"
        ]
        assert (await http.get("/nothing")).status_code == 404
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as http:
            await http.get(f"http://{listen}/healthz")


async def test_a_port_already_taken_stops_start_up_naming_the_key() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        health = ServiceHealth(_Calls(), _Events(), None)
        with pytest.raises(ConfigError, match=r"metrics\.listen: cannot listen on 127"):
            async with MetricsServer(listen, health):
                pass
