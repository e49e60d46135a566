"""Extensions' own recording policy (always / on-demand / never) and retention class.

The policy is a matrix, as FreePBX and Wazo offer it: inbound and outbound, each
internal (another extension) and external (a trunk), every cell always, on-demand or
never; a cell left unset follows the extension's single ``recording`` mode
(``flow.policy.cell_mode``).

Writers flush but do not commit: the caller owns the transaction.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pbx_bridge.calls.changes import SYSTEM_ACTOR, record_change, snapshot
from pbx_bridge.calls.models import Extension
from pbx_bridge.calls.retention import require_class
from pbx_bridge.config import RecordingMode
from pbx_bridge.flow.policy import CELL_NAMES, Direction, Scope, cell_mode
from storage.models import utcnow

# An extension nobody configured records whenever the caller's choice allows it: the
# caller's consent (or the route's legal basis) is what limits recording, not silence
# in the extension table.
DEFAULT_RECORDING_MODE = RecordingMode.ALWAYS

EXTENSION_PATTERN = re.compile(r"^[A-Za-z0-9_+*#-]{1,64}$")


class InvalidExtension(ValueError):
    """An extension number that cannot be dialled or stored."""


@dataclass(frozen=True)
class ExtensionInfo:
    number: str
    recording: RecordingMode
    retention_class: str | None
    # The cells set for this extension (``outbound_external`` ...); the others follow
    # ``recording``.
    cells: Mapping[str, RecordingMode] = field(default_factory=dict)

    def mode_for(self, direction: Direction, scope: Scope) -> RecordingMode:
        return cell_mode(self.recording, self.cells, direction, scope)


class UnknownCell(ValueError):
    """A policy cell that is not one of inbound/outbound x internal/external."""


def validate_extension(number: str) -> str:
    if not EXTENSION_PATTERN.fullmatch(number):
        raise InvalidExtension(
            f"invalid extension {number!r}: use 1-64 letters, digits or _ + * # -"
        )
    return number


def _info(row: Extension) -> ExtensionInfo:
    cells = {name: RecordingMode(value) for name in CELL_NAMES
             if (value := getattr(row, name)) is not None}
    return ExtensionInfo(row.number, RecordingMode(row.recording), row.retention_class, cells)


async def set_extension(
    session: AsyncSession,
    number: str,
    recording: RecordingMode | None,
    retention_class: str | None = None,
    *,
    cells: Mapping[str, RecordingMode | None] | None = None,
    actor: str = SYSTEM_ACTOR,
) -> ExtensionInfo:
    """Create or update an extension; ``recording=None`` and ``retention_class=None`` keep
    the current ones (a new extension: ``always``, the route's class). ``cells`` changes
    only the cells it names: a mode sets one, ``None`` makes it follow ``recording``."""
    validate_extension(number)
    for name in cells or {}:
        if name not in CELL_NAMES:
            raise UnknownCell(
                f"unknown recording cell {name!r}: use one of {', '.join(CELL_NAMES)}"
            )
    if retention_class is not None:
        await require_class(session, retention_class)
    row = await session.get(Extension, number)
    before = None if row is None else snapshot(row)
    if row is None:
        row = Extension(number=number, recording=(recording or DEFAULT_RECORDING_MODE).value,
                        retention_class=retention_class)
        session.add(row)
    else:
        if recording is not None:
            row.recording = recording.value
        if retention_class is not None:
            row.retention_class = retention_class
    for name, mode in (cells or {}).items():
        setattr(row, name, None if mode is None else RecordingMode(mode).value)
    row.updated_at = utcnow()
    await session.flush()
    await record_change(
        session, actor=actor, kind="extension", key=number, before=before, after=snapshot(row)
    )
    return _info(row)


async def get_extension(session: AsyncSession, number: str) -> ExtensionInfo | None:
    row = await session.get(Extension, number)
    return None if row is None else _info(row)


async def list_extensions(session: AsyncSession) -> list[ExtensionInfo]:
    rows = (await session.scalars(select(Extension).order_by(Extension.number))).all()
    return [_info(row) for row in rows]


async def extension_recording(
    session: AsyncSession,
    number: str,
    direction: Direction = Direction.INBOUND,
    scope: Scope = Scope.EXTERNAL,
) -> RecordingMode:
    """The extension's mode for a call of this direction and scope (its cell, else its
    ``recording``; ``always`` for an extension nobody configured)."""
    info = await get_extension(session, number)
    return DEFAULT_RECORDING_MODE if info is None else info.mode_for(direction, scope)
