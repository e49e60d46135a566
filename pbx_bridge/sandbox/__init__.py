"""A throw-away Asterisk 22 with pbx-bridge's configuration, plus sipp callers and agents.

Used by ``make demo``, the end-to-end tests and the benchmarks.
"""

from pbx_bridge.sandbox.errors import (
    SandboxCommandError,
    SandboxError,
    SandboxRootError,
    SandboxStartError,
    SippError,
)
from pbx_bridge.sandbox.instance import AsteriskSandbox, SandboxPorts
from pbx_bridge.sandbox.ports import free_port, free_ports
from pbx_bridge.sandbox.root import ensure_root

__all__ = [
    "AsteriskSandbox",
    "SandboxCommandError",
    "SandboxError",
    "SandboxPorts",
    "SandboxRootError",
    "SandboxStartError",
    "SippError",
    "ensure_root",
    "free_port",
    "free_ports",
]
