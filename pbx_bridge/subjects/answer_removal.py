"""Deleting the answers already written for a subject: access reports and export ZIPs.

An earlier access or export request left the subject's data collected in one place
(the report names the number; the ZIP holds the recordings). Erasing the subject while
those files wait in the export folder for their expiry would leave the most complete
copy behind, so erasure and anonymisation delete them too.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Sequence
from pathlib import Path

from pbx_bridge.calls.models import DataSubjectRequest
from pbx_bridge.subjects.answer_files import UnsafeReference, checked_reference
from pbx_bridge.subjects.env import RequestEnv
from storage.audit_trail import record_event

_ANSWERED_TYPES = ("access", "export")


def _places(export_dir: Path, request: DataSubjectRequest) -> list[Path]:
    places = [Path(request.export_path)] if request.export_path else []
    try:
        reference = checked_reference(request.reference)
    except UnsafeReference:
        return places
    return [*places, export_dir / reference, export_dir / f"{reference}.zip"]


def _remove(paths: Sequence[Path]) -> list[str]:
    """Blocking: delete each file or folder that exists; returns the names removed."""
    removed: list[str] = []
    for path in dict.fromkeys(paths):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            continue
        removed.append(path.name)
    return removed


async def remove_answers(
    env: RequestEnv, request: DataSubjectRequest, answered: Sequence[DataSubjectRequest]
) -> list[dict[str, object]]:
    """Delete the files written for ``answered`` requests; one entry per request touched."""
    export_dir = env.settings.privacy.export_dir
    done: list[dict[str, object]] = []
    for earlier in answered:
        if earlier.type not in _ANSWERED_TYPES:
            continue
        removed = await asyncio.to_thread(_remove, _places(export_dir, earlier))
        if not removed and earlier.export_path is None:
            continue
        async with env.sessions() as session:
            row = await session.get(DataSubjectRequest, earlier.id)
            if row is not None:
                row.export_path = None
            await record_event(
                session,
                actor=env.actor,
                action="dsar.answer_deleted",
                target=f"dsar:{earlier.id}",
                details={
                    "reference": earlier.reference,
                    "files": removed,
                    "because": request.reference,
                },
            )
            await session.commit()
        done.append({"reference": earlier.reference, "type": earlier.type, "files": removed})
    return done
