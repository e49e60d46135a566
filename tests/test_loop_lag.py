"""Calls first: storage steps wait while the event loop is late, never for ever."""

from __future__ import annotations

import asyncio
import time

import pytest

from storage.loop_lag import LoopLagMonitor, smoothed
from storage.metrics import STORAGE_DEFERRED


def test_lag_rises_at_once_and_falls_gradually() -> None:
    assert smoothed(0.0, 0.2) == 0.2
    falling = smoothed(0.2, 0.0)
    assert 0.0 < falling < 0.2
    assert smoothed(falling, 0.0) < falling


async def test_calm_returns_at_once_while_the_loop_is_on_time() -> None:
    monitor = LoopLagMonitor(busy_lag_s=0.02, max_wait_s=5.0)
    monitor.note(0.001)
    assert not monitor.busy
    await asyncio.wait_for(monitor.calm(), 0.5)


async def test_a_late_loop_holds_storage_until_it_catches_up() -> None:
    monitor = LoopLagMonitor(busy_lag_s=0.02, max_wait_s=5.0)
    deferred = STORAGE_DEFERRED._value.get()
    monitor.note(0.5)
    assert monitor.busy
    waiting = asyncio.create_task(monitor.calm())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    while monitor.busy:  # on-time wake-ups bring the smoothed lag back down
        monitor.note(0.0)
    await asyncio.wait_for(waiting, 0.5)
    assert STORAGE_DEFERRED._value.get() == deferred + 1


async def test_storage_is_never_held_longer_than_max_wait() -> None:
    monitor = LoopLagMonitor(busy_lag_s=0.02, max_wait_s=0.1)
    monitor.note(1.0)
    started = time.monotonic()
    await monitor.calm()
    assert monitor.busy
    assert 0.09 <= time.monotonic() - started < 2.0


async def test_the_probe_sees_a_blocked_loop_and_stopping_releases_waiters() -> None:
    monitor = LoopLagMonitor(busy_lag_s=0.02, max_wait_s=30.0, probe_s=0.01)
    async with monitor:
        await asyncio.sleep(0.03)
        time.sleep(0.15)  # noqa: ASYNC251 - the loop is blocked, as under a burst of calls
        await asyncio.sleep(0.02)
        assert monitor.lag_s > 0.05
        assert monitor.busy
        waiting = asyncio.create_task(monitor.calm())
        await asyncio.sleep(0)
    await asyncio.wait_for(waiting, 0.5)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        LoopLagMonitor(busy_lag_s=0, max_wait_s=1.0)
