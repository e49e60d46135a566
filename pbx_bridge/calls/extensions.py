"""Extensions' own recording policy (always / on-demand / never) and retention class.

Writers flush but do not commit: the caller owns the transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pbx_bridge.calls.changes import SYSTEM_ACTOR, record_change, snapshot
from pbx_bridge.calls.models import Extension
from pbx_bridge.calls.retention import require_class
from pbx_bridge.config import RecordingMode
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


def validate_extension(number: str) -> str:
    if not EXTENSION_PATTERN.fullmatch(number):
        raise InvalidExtension(
            f"invalid extension {number!r}: use 1-64 letters, digits or _ + * # -"
        )
    return number


def _info(row: Extension) -> ExtensionInfo:
    return ExtensionInfo(row.number, RecordingMode(row.recording), row.retention_class)


async def set_extension(
    session: AsyncSession,
    number: str,
    recording: RecordingMode,
    retention_class: str | None = None,
    *,
    actor: str = SYSTEM_ACTOR,
) -> ExtensionInfo:
    """Create or update an extension; ``retention_class=None`` keeps the current one."""
    validate_extension(number)
    if retention_class is not None:
        await require_class(session, retention_class)
    row = await session.get(Extension, number)
    before = None if row is None else snapshot(row)
    if row is None:
        row = Extension(number=number, recording=recording.value, retention_class=retention_class)
        session.add(row)
    else:
        row.recording = recording.value
        if retention_class is not None:
            row.retention_class = retention_class
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


async def extension_recording(session: AsyncSession, number: str) -> RecordingMode:
    info = await get_extension(session, number)
    return DEFAULT_RECORDING_MODE if info is None else info.recording
