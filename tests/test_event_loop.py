"""The service runs on uvloop when it is installed, and on asyncio's loop when it is not."""

from __future__ import annotations

import asyncio
import builtins
from typing import Any

import pytest
import uvloop

from pbx_bridge import event_loop


async def running_loop_and(value: int) -> tuple[asyncio.AbstractEventLoop, int]:
    await asyncio.sleep(0)
    return asyncio.get_running_loop(), value


def test_the_service_runs_on_uvloop_when_installed() -> None:
    loop, value = event_loop.run(running_loop_and(7))
    assert isinstance(loop, uvloop.Loop) and value == 7
    assert loop.is_closed()


def test_without_uvloop_it_runs_on_asyncio_s_own_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_uvloop(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "uvloop":
            raise ImportError("No module named 'uvloop'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_uvloop)
    loop, value = event_loop.run(running_loop_and(8))
    assert not isinstance(loop, uvloop.Loop) and isinstance(loop, asyncio.BaseEventLoop)
    assert value == 8
