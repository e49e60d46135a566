"""Named crash points, so the recovery tests can kill the service exactly between two
committed steps (a real SIGKILL, not a simulated one) and prove a restart resumes there.

Inert unless ``PBX_BRIDGE_FAILPOINTS`` names the point; never set it in production.
"""

from __future__ import annotations

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
