"""Each recording's data key, as the database keeps it: wrapped, rotatable, destroyable.

The wrapped key is bound to the recording id (the wrap context), so a row's key cannot be
made to open another recording. Destroying it is what makes deletion reach copies we
cannot reach ourselves (an old backup of a customer's FTP server): without the data key
those bytes are noise. Every write is a conditional UPDATE or an INSERT under the primary
key, so a rotate running beside the service can neither resurrect a destroyed key nor
replace a key that was just created.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.crypto import new_data_key
from storage.errors import (
    DataKeyDestroyed,
    DataKeyNotFound,
    DecryptionFailed,
    RecordingNotFound,
    UnknownMasterKey,
)
from storage.keyring import Keyring
from storage.models import DataKey, Recording, utcnow

log = logging.getLogger(__name__)

ROTATE_BATCH = 200


@dataclass(frozen=True)
class RotateReport:
    rewrapped: int
    already_current: int
    failed: int
    # Recording ids whose key could not be unwrapped (master key not loaded, or altered).
    failed_ids: tuple[str, ...] = field(default=())


async def master_keys_in_use(session: AsyncSession) -> dict[str, int]:
    """Master key id → how many live data keys it wraps: without that key file, those
    recordings cannot be read (nor rotated)."""
    rows = await session.execute(
        select(DataKey.master_key_id, func.count())
        .where(DataKey.destroyed_at.is_(None), DataKey.wrapped_key.is_not(None),
               DataKey.master_key_id.is_not(None))
        .group_by(DataKey.master_key_id)
    )
    return {str(key_id): int(count) for key_id, count in rows.all()}


async def create_data_key(
    sessions: async_sessionmaker[AsyncSession], keyring: Keyring, recording_id: str
) -> bytes:
    """The recording's data key, made on first call and the same one ever after.

    A restart between encrypting one copy and the next must reuse the key, or the first
    copy would be unreadable. Raises ``DataKeyDestroyed`` once the key is destroyed (a
    deleted recording is never re-encrypted under a fresh key) and ``RecordingNotFound``
    when there is no such recording.
    """
    async with sessions() as session:
        existing = await session.get(DataKey, recording_id)
        if existing is not None:
            return _unwrap(keyring, existing)
        data_key = new_data_key()
        key_id, wrapped = keyring.wrap(data_key, recording_id)
        session.add(DataKey(recording_id=recording_id, master_key_id=key_id, wrapped_key=wrapped))
        try:
            await session.commit()
        except IntegrityError:
            await session.rollback()
        else:
            return data_key
    # Lost a race with another creator, or the recording row does not exist.
    async with sessions() as session:
        existing = await session.get(DataKey, recording_id)
        if existing is None:
            if await session.get(Recording, recording_id) is None:
                raise RecordingNotFound(f"no recording {recording_id}: cannot make a data key")
            raise DataKeyNotFound(f"recording {recording_id}: data key could not be stored")
        return _unwrap(keyring, existing)


async def load_data_key(
    sessions: async_sessionmaker[AsyncSession], keyring: Keyring, recording_id: str
) -> bytes:
    async with sessions() as session:
        row = await session.get(DataKey, recording_id)
    if row is None:
        raise DataKeyNotFound(f"recording {recording_id} has no data key (never encrypted)")
    return _unwrap(keyring, row)


async def destroy_data_key(sessions: async_sessionmaker[AsyncSession], recording_id: str) -> bool:
    """Forget the wrapped key for good; True if this call destroyed a live key.

    Idempotent: a second call, or a recording that never had a key, changes nothing.
    """
    async with sessions() as session:
        result = await session.execute(
            update(DataKey)
            .where(DataKey.recording_id == recording_id, DataKey.destroyed_at.is_(None))
            .values(wrapped_key=None, destroyed_at=utcnow())
        )
        await session.commit()
    destroyed = bool(getattr(result, "rowcount", 0))
    if destroyed:
        log.info("data key of recording %s destroyed", recording_id)
    return destroyed


async def rotate(
    sessions: async_sessionmaker[AsyncSession],
    keyring: Keyring,
    *,
    batch_size: int = ROTATE_BATCH,
) -> RotateReport:
    """Re-wrap every live data key under the active master key; data files stay as they are.

    Walks the keys in primary-key order and commits each batch, so an interrupted run keeps
    what it did and a re-run finds those keys already current.
    """
    target = keyring.active_id
    rewrapped = already_current = 0
    failed: list[str] = []
    after = ""
    while True:
        async with sessions() as session:
            rows = (
                await session.execute(
                    select(DataKey.recording_id, DataKey.master_key_id, DataKey.wrapped_key)
                    .where(DataKey.recording_id > after, DataKey.wrapped_key.is_not(None))
                    .order_by(DataKey.recording_id)
                    .limit(batch_size)
                )
            ).all()
            if not rows:
                break
            for recording_id, key_id, wrapped in rows:
                after = recording_id
                if wrapped is None:  # destroyed between the filter and here: nothing to do
                    continue
                if key_id == target:
                    already_current += 1
                    continue
                try:
                    data_key = keyring.unwrap(key_id or "", wrapped, recording_id)
                except (UnknownMasterKey, DecryptionFailed) as exc:
                    log.warning("data key of recording %s not rotated: %s", recording_id, exc)
                    failed.append(recording_id)
                    continue
                new_id, new_wrapped = keyring.wrap(data_key, recording_id)
                result = await session.execute(
                    update(DataKey)
                    .where(
                        DataKey.recording_id == recording_id,
                        DataKey.master_key_id == key_id,
                        DataKey.destroyed_at.is_(None),
                    )
                    .values(master_key_id=new_id, wrapped_key=new_wrapped, rotated_at=utcnow())
                )
                # Zero rows: destroyed (or rotated by someone else) meanwhile; leave it be.
                if getattr(result, "rowcount", 0):
                    rewrapped += 1
            await session.commit()
    log.info(
        "data keys rotated to master key %s: %d re-wrapped, %d already current, %d failed",
        target, rewrapped, already_current, len(failed),
    )
    return RotateReport(rewrapped, already_current, len(failed), tuple(failed))


def unwrap_data_key(keyring: Keyring, row: DataKey) -> bytes:
    """The key of a row the caller has already read (with the recording, in one session);
    raises ``DataKeyDestroyed`` for a destroyed one."""
    return _unwrap(keyring, row)


def _unwrap(keyring: Keyring, row: DataKey) -> bytes:
    if row.destroyed_at is not None or row.wrapped_key is None or row.master_key_id is None:
        raise DataKeyDestroyed(
            f"data key of recording {row.recording_id} was destroyed"
            + (f" at {row.destroyed_at:%Y-%m-%d %H:%M:%S} UTC" if row.destroyed_at else "")
        )
    return keyring.unwrap(row.master_key_id, row.wrapped_key, row.recording_id)
