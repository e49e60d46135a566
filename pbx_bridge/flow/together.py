"""Independent steps of a call at once, failing as the first step that failed.

Under load every round trip (a REST request, a database statement) waits its turn on a
busy event loop; steps that do not need each other's results wait those turns side by
side instead of one after another. ``asyncio.TaskGroup`` would do it, but it raises an
``ExceptionGroup``, and the call flow tells a caller's hangup (``CallerGone``) or a lost
database from other failures by the exception's own type: here the first failure is
raised as itself, once the other steps are cancelled and finished.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar, overload

A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")


@overload
async def together(a: Awaitable[A], b: Awaitable[B], /) -> tuple[A, B]: ...


@overload
async def together(a: Awaitable[A], b: Awaitable[B], c: Awaitable[C], /) -> tuple[A, B, C]: ...


async def together(*steps: Awaitable[Any]) -> tuple[Any, ...]:
    tasks = [asyncio.ensure_future(step) for step in steps]
    try:
        return tuple(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        # Let them finish (database sessions close, requests end) before going on.
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
