"""Expected failures become one line on stderr and an exit code, never a traceback.

Exit 2: the input or configuration is wrong (the operator fixes the command or file).
Exit 1: the command was fine but the system is not ready (database missing, stale schema,
a folder of ours full or unwritable).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer

from pbx_bridge.calls.campaigns import InvalidCampaign, UnknownCampaign
from pbx_bridge.calls.extensions import InvalidExtension, UnknownCell
from pbx_bridge.calls.outbound_routes import UnknownOutboundRoute
from pbx_bridge.calls.retention import (
    InvalidRetentionClass,
    RetentionClassInUse,
    UnknownRetentionClass,
)
from pbx_bridge.calls.ring_groups import InvalidRingGroup, RingGroupInUse, UnknownRingGroup
from pbx_bridge.calls.routes import InvalidRoute, UnknownRoute
from pbx_bridge.config import ConfigError
from pbx_bridge.jurisdiction import JurisdictionViolation
from storage.database import DatabaseError
from storage.errors import DiskError, KeyringError, TranscodeUnavailable

EXIT_RUNTIME = 1
EXIT_USAGE = 2

USAGE_ERRORS: tuple[type[Exception], ...] = (
    ConfigError,
    InvalidCampaign,
    InvalidExtension,
    InvalidRetentionClass,
    InvalidRoute,
    JurisdictionViolation,
    KeyringError,
    InvalidRingGroup,
    RetentionClassInUse,
    RingGroupInUse,
    TranscodeUnavailable,
    UnknownCampaign,
    UnknownCell,
    UnknownOutboundRoute,
    UnknownRetentionClass,
    UnknownRingGroup,
    UnknownRoute,
)
RUNTIME_ERRORS: tuple[type[Exception], ...] = (DatabaseError, DiskError)


def fail(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def reporting_errors() -> Iterator[None]:
    try:
        yield
    except USAGE_ERRORS as exc:
        fail(str(exc), EXIT_USAGE)
    except RUNTIME_ERRORS as exc:
        fail(str(exc), EXIT_RUNTIME)
