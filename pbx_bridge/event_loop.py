"""The service's event loop: uvloop when it is installed (the ``uvloop`` extra), else
asyncio's own.

The service is one event loop doing many small things per call (HTTP to ARI, websocket
frames, database round trips through aiosqlite's thread); uvloop does the loop's part of
that (callbacks, sockets, timers, wake-ups from threads) in C, which saves about a tenth
of the service's CPU per call (bench/README.md). Nothing in the service depends on which
loop runs it, and the tests run the service on uvloop, as `make venv` installs it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop if installed; None means asyncio's default."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the fastest loop available (Python 3.11 has no
    ``loop_factory`` on ``asyncio.run``; ``asyncio.Runner`` is the same thing)."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
