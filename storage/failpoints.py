"""Named crash points, so the recovery tests can kill the service exactly between two
committed steps (a real SIGKILL, not a simulated one) and prove a restart resumes there;
and named slow points, where a test makes one step as late as it is under load.

Inert unless ``PBX_BRIDGE_FAILPOINTS`` names the point; never set it in production.
"""

from __future__ import annotations

import asyncio
import os
import signal

FAILPOINTS_ENV = "PBX_BRIDGE_FAILPOINTS"

_ACTIVE = frozenset(
    name.strip() for name in os.environ.get(FAILPOINTS_ENV, "").split(",") if name.strip()
)


def crash_point(name: str) -> None:
    """SIGKILL this process if the point is armed: no clean-up, no flushing, like a crash."""
    if name in _ACTIVE:
        os.kill(os.getpid(), signal.SIGKILL)


async def slow_point(name: str, seconds: float = 1.0) -> None:
    """Pause ``seconds`` here if the point is armed, as a loaded service would."""
    if name in _ACTIVE:
        await asyncio.sleep(seconds)
