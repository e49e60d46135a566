"""One rule for naming the Asterisk sandboxes a test run starts.

Two runs on one host (two developers, CI beside a benchmark) and the parallel workers of
one run (pytest-xdist) each need their own instances: the name is the run's
``PBX_BRIDGE_E2E_SANDBOX`` (default ``e2e``), the worker's id, then the test's own part.
"""

from __future__ import annotations

import os


def sandbox_name(part: str | None = None) -> str:
    name = os.environ.get("PBX_BRIDGE_E2E_SANDBOX", "e2e")
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        name = f"{name}-{worker}"
    return name if part is None else f"{name}-{part}"
