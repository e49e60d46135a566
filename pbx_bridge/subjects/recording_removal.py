"""Deleting a subject's recordings for a request, through the storage pipeline's delete.

Every deletion goes through ``RecordingDeleter.request``, so a request gets the same
guarantees as retention: intent committed first, every copy, the spool, the data key,
a tombstone only once nothing is left. A recording whose deletion could not finish (a
backend is down) stays ``deleting`` and is reported pending: the request is not done
until a later run (or the service's purger) has finished it. What is kept, and why, is
reported beside what was deleted, because the answer to the subject must say both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from pbx_bridge.calls.models import DataSubjectRequest
from pbx_bridge.recordings_admin import backends_from_settings, deleter_from_settings
from pbx_bridge.subjects.env import RequestEnv
from storage.audit_trail import record_event
from storage.backends.base import Backend
from storage.deletion import (
    BUSY,
    DeletionOutcome,
    RecordingBusy,
    RecordingDeleter,
    RecordingOnHold,
    latest_tombstone,
)
from storage.errors import RecordingNotFound
from storage.models import CopyStatus, Recording, RecordingCopy, RecordingStatus

log = logging.getLogger(__name__)

# Why a recording the request covers is not deleted, or None to delete it.
KeepRule = Callable[[Recording], str | None]

_BUSY = frozenset(status.value for status in BUSY)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _describe(row: Recording) -> dict[str, object]:
    return {
        "recording_id": row.id,
        "call_id": row.call_id,
        "kind": row.kind,
        "legal_basis": row.legal_basis,
        "started_at": _iso(row.started_at),
    }


def _outcome_fields(outcome: DeletionOutcome) -> dict[str, object]:
    return {
        "reason": outcome.reason,
        "deleted_at": _iso(outcome.deleted_at),
        "places": [
            {"place": where.get("backend"), "key": where.get("key")}
            for where in outcome.deleted_where
        ],
        "tombstone_id": outcome.tombstone_id,
    }


@dataclass
class RemovalReport:
    """What one run did to the recordings a request covers."""

    deleted: list[dict[str, object]] = field(default_factory=list)
    already_deleted: list[dict[str, object]] = field(default_factory=list)
    pending: list[dict[str, object]] = field(default_factory=list)
    kept: list[dict[str, object]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.pending

    @property
    def did_something(self) -> bool:
        return bool(self.deleted or self.pending)

    def as_dict(self) -> dict[str, object]:
        return {
            "deleted": self.deleted,
            "already_deleted": self.already_deleted,
            "pending": self.pending,
            "kept": self.kept,
        }


async def remove_recordings(
    env: RequestEnv,
    request: DataSubjectRequest,
    recordings: Sequence[Recording],
    *,
    reason: str,
    keep: KeepRule,
    backends: Mapping[str, Backend] | None = None,
) -> RemovalReport:
    """Delete every recording ``keep`` does not keep; report each one exactly once.

    ``backends`` defaults to the configured ones (built here and closed afterwards);
    tests pass their own.
    """
    report = RemovalReport()
    to_delete: list[Recording] = []
    for row in sorted(recordings, key=lambda r: (r.started_at, r.id)):
        if row.status == RecordingStatus.DELETED:
            report.already_deleted.append(await _already_deleted(env, row))
            continue
        if row.status != RecordingStatus.DELETING:
            why = keep(row)
            if why is None and row.hold_reason is not None:
                why = f"on legal hold ({row.hold_reason}); not deleted while the hold lasts"
            if why is not None:
                report.kept.append({**_describe(row), "why": why})
                continue
            if row.status in _BUSY:
                report.pending.append(
                    {
                        **_describe(row),
                        "status": row.status,
                        "why": "still being recorded or stored; run the request again "
                        "once it is stored",
                    }
                )
                continue
        # A deletion already under way (for any reason) is finished: it is wanted anyway.
        to_delete.append(row)
    if not to_delete:
        return report
    async with AsyncExitStack() as stack:
        if backends is None:
            built = backends_from_settings(env.settings)
            for backend in built.values():
                stack.push_async_callback(backend.close)
            backends = built
        deleter = deleter_from_settings(env.settings, env.sessions, backends)
        for row in to_delete:
            await _delete_one(env, request, deleter, row, reason, report)
    return report


async def _already_deleted(env: RequestEnv, row: Recording) -> dict[str, object]:
    async with env.sessions() as session:
        tombstone = await latest_tombstone(session, row.id)
    entry = {**_describe(row), "deleted_at": _iso(row.deleted_at), "reason": row.delete_reason}
    if tombstone is not None:
        entry.update(
            deleted_at=_iso(tombstone.deleted_at),
            reason=tombstone.reason,
            note=tombstone.note,
            tombstone_id=tombstone.id,
        )
    return entry


async def _cleared_places(
    env: RequestEnv, recording_id: str, outcome: DeletionOutcome
) -> list[str]:
    """Copies are tracked on their rows; the spool and data key in the outcome."""
    async with env.sessions() as session:
        copies = await session.scalars(
            select(RecordingCopy.backend)
            .where(
                RecordingCopy.recording_id == recording_id,
                RecordingCopy.status == CopyStatus.DELETED.value,
            )
            .order_by(RecordingCopy.backend)
        )
        cleared = list(copies.all())
    return cleared + [str(where.get("backend")) for where in outcome.deleted_where]


async def _delete_one(
    env: RequestEnv,
    request: DataSubjectRequest,
    deleter: RecordingDeleter,
    row: Recording,
    reason: str,
    report: RemovalReport,
) -> None:
    described = _describe(row)
    try:
        outcome = await deleter.request(
            row.id, reason=reason, note=request.reference, actor=env.actor
        )
    except RecordingOnHold as exc:  # held between our read and the claim
        report.kept.append({**described, "why": str(exc)})
        return
    except RecordingBusy as exc:
        report.pending.append({**described, "status": row.status, "why": str(exc)})
        return
    except RecordingNotFound:
        log.warning("request %s: recording %s vanished before deletion", request.reference,
                    row.id)
        return
    if outcome.done:
        report.deleted.append({**described, **_outcome_fields(outcome)})
    else:
        report.pending.append(
            {
                **described,
                "status": outcome.status,
                "why": "deletion started; some places could not be cleared yet",
                "places_cleared": await _cleared_places(env, row.id, outcome),
                "places_pending": [
                    {"place": p.place, "key": p.key, "why": p.why} for p in outcome.pending
                ],
            }
        )
    async with env.sessions() as session:
        await record_event(
            session,
            actor=env.actor,
            action="recording.deletion_requested",
            target=f"recording:{row.id}",
            outcome="ok" if outcome.done else "pending",
            details={
                "reason": outcome.reason or reason,
                "request": request.reference,
                "status": outcome.status,
                "places_cleared": len(outcome.deleted_where),
                "places_pending": [p.place for p in outcome.pending],
            },
        )
        await session.commit()
