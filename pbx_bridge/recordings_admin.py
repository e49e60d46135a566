"""Admin operations on recordings that need the call's data or the service's settings.

The storage layer knows nothing of calls; a retention change must count from the call's
end, and showing a recording means joining its caller. Those belong here, in the upper
layer, next to the one place that turns settings into backends for the admin commands.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.calls.changes import SYSTEM_ACTOR
from pbx_bridge.calls.history import RecordingView, recording_view
from pbx_bridge.calls.models import Call
from pbx_bridge.calls.pauses import PauseSpan, pauses_of
from pbx_bridge.calls.retention import class_days
from pbx_bridge.config import RetentionSettings, Settings
from pbx_bridge.privacy import mask_number
from pbx_bridge.storage_setup import build_backends
from storage.audio_facts import digest_file
from storage.audit_trail import record_event
from storage.backends.base import Backend
from storage.deletion import DestroyKey, RecordingDeleter, latest_tombstone
from storage.errors import RecordingNotFound, StorageError
from storage.keys import destroy_data_key
from storage.models import (
    CopyStatus,
    Recording,
    RecordingCopy,
    RecordingKind,
    RecordingStatus,
    Tombstone,
)
from storage.replication import mark_sidecars_stale
from storage.source import RecordingSource

_NUMBER_IN_TEXT = re.compile(r"\+?\d[\d ]{6,}\d")


class RecordingGone(StorageError):
    """The recording was deleted (or is being deleted): nothing can change or be fetched."""


class NoReadableCopy(StorageError):
    """No verified copy on a configured backend could be read."""


class OutputExists(StorageError, ValueError):
    """The output file exists; the admin must choose another path or remove it."""


def backends_from_settings(settings: Settings) -> dict[str, Backend]:
    """The configured backends by name, built as the service builds them."""
    return build_backends(settings.storage)


def deleter_from_settings(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    backends: Mapping[str, Backend],
    *,
    source: RecordingSource | None = None,
) -> RecordingDeleter:
    """The deleter as the admin commands use it; the caller closes the backends."""
    return RecordingDeleter(
        sessions,
        backends,
        spool_dir=settings.storage.spool_dir,
        source=source,
        destroy_key=_key_destroyer(sessions),
    )


def _key_destroyer(sessions: async_sessionmaker[AsyncSession]) -> DestroyKey:
    async def destroy_key(recording_id: str) -> None:
        await destroy_data_key(sessions, recording_id)

    return destroy_key


# -- retention change ------------------------------------------------------------------


@dataclass(frozen=True)
class RetentionChange:
    recording_id: str
    retention_class: str
    retention_days: int
    old_retain_until: datetime | None
    retain_until: datetime | None  # None while the call is live


def _check_changeable(row: Recording) -> None:
    if row.status in (RecordingStatus.DELETED, RecordingStatus.DELETING):
        raise RecordingGone(
            f"recording {row.id} is {row.status}: its retention can no longer change"
        )


async def _call_end(session: AsyncSession, row: Recording) -> datetime | None:
    """The call's end; for a recording without a call row, its own end."""
    call = await session.get(Call, row.call_id)
    if call is None:
        return row.finished_at
    return call.ended_at


def _apply(row: Recording, class_name: str, days: int, ended: datetime | None) -> RetentionChange:
    old = row.retain_until
    row.retention_class = class_name
    row.retention_days = days
    row.retain_until = None if ended is None else ended + timedelta(days=days)
    return RetentionChange(row.id, class_name, days, old, row.retain_until)


async def _record_retention_change(
    session: AsyncSession, change: RetentionChange, old_class: str, actor: str
) -> None:
    await record_event(
        session,
        actor=actor,
        action="recording.retention_changed",
        target=f"recording:{change.recording_id}",
        details={
            "class": {"from": old_class, "to": change.retention_class},
            "days": change.retention_days,
            "retain_until": {"from": change.old_retain_until, "to": change.retain_until},
        },
    )


async def change_retention(
    sessions: async_sessionmaker[AsyncSession],
    recording_id: str,
    class_name: str,
    retention_settings: RetentionSettings,
    *,
    actor: str = SYSTEM_ACTOR,
) -> RetentionChange:
    """Give one recording another class; ``retain_until`` counts from the call's end."""
    async with sessions() as session:
        days = await class_days(session, class_name, retention_settings)
        row = await session.get(Recording, recording_id, with_for_update=True)
        if row is None:
            raise RecordingNotFound(f"no recording {recording_id}")
        _check_changeable(row)
        old_class = row.retention_class
        change = _apply(row, class_name, days, await _call_end(session, row))
        await mark_sidecars_stale(session, row.id)
        await _record_retention_change(session, change, old_class, actor)
        await session.commit()
    return change


async def change_call_retention(
    sessions: async_sessionmaker[AsyncSession],
    call_id: str,
    class_name: str,
    retention_settings: RetentionSettings,
    *,
    kinds: Collection[str] = (RecordingKind.CONVERSATION.value,),
    actor: str = SYSTEM_ACTOR,
) -> list[RetentionChange]:
    """Every recording of a call (conversations by default: consent evidence keeps its own).

    The call's own class changes too, so recordings it makes later follow.
    """
    async with sessions() as session:
        days = await class_days(session, class_name, retention_settings)
        call = await session.get(Call, call_id)
        if call is None:
            raise RecordingNotFound(f"no call {call_id}")
        rows = (
            await session.scalars(
                select(Recording)
                .where(Recording.call_id == call_id, Recording.kind.in_(list(kinds)))
                .order_by(Recording.started_at, Recording.id)
                .with_for_update()
            )
        ).all()
        live = [
            r
            for r in rows
            if r.status not in (RecordingStatus.DELETED, RecordingStatus.DELETING)
        ]
        old_classes = [row.retention_class for row in live]
        changes = [_apply(row, class_name, days, call.ended_at) for row in live]
        old_call_class = call.retention_class
        call.retention_class = class_name
        for row in live:
            await mark_sidecars_stale(session, row.id)
        for change, old_class in zip(changes, old_classes, strict=True):
            await _record_retention_change(session, change, old_class, actor)
        # The choice itself, also when the call has no recording (yet).
        await record_event(
            session, actor=actor, action="call.retention_changed", target=f"call:{call_id}",
            details={"class": {"from": old_call_class, "to": class_name}, "days": days,
                     "recordings": [change.recording_id for change in changes]},
        )
        await session.commit()
    return changes


# -- showing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CopyView:
    backend: str
    key: str
    status: str
    encrypted: bool
    size_bytes: int | None
    sha256: str | None
    location: str | None
    verified_at: datetime | None
    deleted_at: datetime | None


@dataclass(frozen=True)
class TombstoneView:
    reason: str
    note: str | None
    actor: str | None
    requested_at: datetime
    deleted_at: datetime
    deleted_where: list[dict[str, str]]


@dataclass(frozen=True)
class RecordingDetail:
    recording: RecordingView
    asterisk_name: str
    retention_days: int
    error: str | None
    finished_at: datetime | None
    stored_at: datetime | None
    hold_reason: str | None
    held_at: datetime | None
    delete_reason: str | None
    delete_note: str | None
    deleted_at: datetime | None
    copies: tuple[CopyView, ...]
    tombstone: TombstoneView | None
    # PCI pauses: muted spans, as offsets into the file (calls/pauses.py).
    pauses: tuple[PauseSpan, ...] = ()

    def masked(self) -> RecordingDetail:
        return RecordingDetail(**{**self.__dict__, "recording": self.recording.masked()})


def _copy_view(row: RecordingCopy) -> CopyView:
    return CopyView(
        row.backend,
        row.key,
        row.status,
        row.encrypted,
        row.size_bytes,
        row.sha256,
        row.location,
        row.verified_at,
        row.deleted_at,
    )


def _tombstone_view(row: Tombstone) -> TombstoneView:
    return TombstoneView(
        row.reason,
        row.note,
        row.actor,
        row.requested_at,
        row.deleted_at,
        json.loads(row.deleted_where),
    )


async def recording_detail(session: AsyncSession, recording_id: str) -> RecordingDetail:
    found = (
        await session.execute(
            select(Recording, Call.caller)
            .outerjoin(Call, Call.id == Recording.call_id)
            .where(Recording.id == recording_id)
        )
    ).first()
    if found is None:
        raise RecordingNotFound(f"no recording {recording_id}")
    row, caller = found
    copies = (
        await session.scalars(
            select(RecordingCopy)
            .where(RecordingCopy.recording_id == recording_id)
            .order_by(RecordingCopy.backend)
        )
    ).all()
    tombstone = await latest_tombstone(session, recording_id)
    pauses = (await pauses_of(session, [recording_id])).get(recording_id, [])
    view = recording_view(row, caller)
    return RecordingDetail(
        recording=view,
        asterisk_name=row.asterisk_name,
        retention_days=row.retention_days,
        error=row.error,
        finished_at=row.finished_at,
        stored_at=row.stored_at,
        hold_reason=row.hold_reason,
        held_at=row.held_at,
        delete_reason=row.delete_reason,
        delete_note=row.delete_note,
        deleted_at=row.deleted_at,
        copies=tuple(_copy_view(c) for c in copies),
        tombstone=None if tombstone is None else _tombstone_view(tombstone),
        pauses=tuple(pauses),
    )


# -- fetching --------------------------------------------------------------------------


@dataclass(frozen=True)
class FetchedRecording:
    path: Path
    backend: str
    key: str
    size_bytes: int
    sha256: str
    decrypted: bool


async def fetch_recording(
    sessions: async_sessionmaker[AsyncSession],
    backends: Mapping[str, Backend],
    recording_id: str,
    dest: Path,
    settings: Settings,
    *,
    actor: str | None = None,
) -> FetchedRecording:
    """Copy the recording from its first readable verified copy to ``dest``.

    The bytes land in a temporary file beside ``dest`` and are checked against the
    copy's recorded sha256 before they take its name, so ``dest`` is never half a file.
    With ``actor`` the copy is recorded as ``recording.downloaded`` (committed before the
    file takes its name: no copy leaves unrecorded); without, the caller records its own
    purpose (an export).
    """
    if await asyncio.to_thread(dest.exists):
        raise OutputExists(f"{dest} exists; choose another path or remove it")
    async with sessions() as session:
        row = await session.get(Recording, recording_id)
        if row is None:
            raise RecordingNotFound(f"no recording {recording_id}")
        if row.status in (RecordingStatus.DELETED, RecordingStatus.DELETING):
            raise RecordingGone(f"recording {recording_id} is {row.status}")
        copies = (
            await session.scalars(
                select(RecordingCopy)
                .where(
                    RecordingCopy.recording_id == recording_id,
                    RecordingCopy.status == CopyStatus.VERIFIED.value,
                )
                .order_by(RecordingCopy.verified_at, RecordingCopy.backend)
            )
        ).all()
    problems: list[str] = []
    temp = dest.parent / f".{dest.name}.{uuid.uuid4().hex}.part"
    for copy in copies:
        backend = backends.get(copy.backend)
        if backend is None:
            problems.append(f"{copy.backend}: not configured")
            continue
        try:
            return await _fetch_copy(
                sessions, backend, copy, row, temp, dest, settings, actor=actor
            )
        except (StorageError, OSError) as exc:
            problems.append(f"{copy.backend}: {exc}")
        finally:
            await asyncio.to_thread(temp.unlink, missing_ok=True)
    detail = "; ".join(problems) if problems else "no verified copy"
    raise NoReadableCopy(f"recording {recording_id}: {detail}")


async def _fetch_copy(
    sessions: async_sessionmaker[AsyncSession],
    backend: Backend,
    copy: RecordingCopy,
    row: Recording,
    temp: Path,
    dest: Path,
    settings: Settings,
    *,
    actor: str | None,
) -> FetchedRecording:
    await backend.get(copy.key, temp)
    stored = await asyncio.to_thread(digest_file, temp)
    if copy.sha256 and stored.sha256 != copy.sha256:
        raise NoReadableCopy(
            f"copy on {copy.backend} does not match its recorded sha256 (damaged?)"
        )
    if copy.encrypted:
        plain = temp.with_name(temp.name + ".plain")
        try:
            await _decrypt(sessions, temp, plain, row.id, settings)
            await asyncio.to_thread(os.replace, plain, temp)
        finally:
            await asyncio.to_thread(plain.unlink, missing_ok=True)
    facts = await asyncio.to_thread(digest_file, temp)
    if row.sha256 and facts.sha256 != row.sha256:
        raise NoReadableCopy(f"copy on {copy.backend} does not match the recording's sha256")
    if actor is not None:
        async with sessions() as session:
            await record_event(
                session,
                actor=actor,
                action="recording.downloaded",
                target=f"recording:{row.id}",
                details={
                    "backend": copy.backend,
                    "sha256": facts.sha256,
                    "size_bytes": facts.size_bytes,
                    "decrypted": copy.encrypted,
                    "out": _masked_path(dest),
                },
            )
            await session.commit()
    await asyncio.to_thread(os.replace, temp, dest)
    return FetchedRecording(
        dest, copy.backend, copy.key, facts.size_bytes, facts.sha256, copy.encrypted
    )


def _masked_path(path: Path) -> str:
    """Where the copy went, with any number-like run masked: an admin may name the file
    after the caller, and the audit trail can never be erased."""
    return _NUMBER_IN_TEXT.sub(lambda m: mask_number(m.group().replace(" ", "")), str(path))


async def _decrypt(
    sessions: async_sessionmaker[AsyncSession],
    src: Path,
    dest: Path,
    recording_id: str,
    settings: Settings,
) -> None:
    # Imported here: only encrypted copies need the cipher and the master keys.
    from storage import crypto
    from storage.keyring import Keyring
    from storage.keys import load_data_key

    ring = await asyncio.to_thread(Keyring.load, settings.storage.keys_dir)
    data_key = await load_data_key(sessions, ring, recording_id)
    await asyncio.to_thread(crypto.decrypt_file, src, dest, data_key, context=recording_id)
