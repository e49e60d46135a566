"""The pipeline's side of encryption at rest: one encrypted file per recording, made once.

The data key is created (or, after a restart, found again) before the file is encrypted,
so every encrypted copy of a recording opens with the same key, and destroying that key
makes all of them unreadable at once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.crypto import encrypt_file
from storage.keyring import Keyring
from storage.keys import create_data_key

ENCRYPTED_SUFFIX = ".enc"


class EnvelopeEncryptor:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], keyring: Keyring) -> None:
        self._sessions = sessions
        self._keyring = keyring
        self._locks: dict[str, asyncio.Lock] = {}

    async def encrypted_copy(self, recording_id: str, plain: Path) -> Path:
        """``<prepared file>.enc`` beside the plain file; encrypted by the first caller."""
        dest = plain.with_name(plain.name + ENCRYPTED_SUFFIX)
        lock = self._locks.setdefault(recording_id, asyncio.Lock())
        async with lock:
            if not await asyncio.to_thread(dest.is_file):
                data_key = await create_data_key(self._sessions, self._keyring, recording_id)
                await asyncio.to_thread(encrypt_file, plain, dest, data_key, recording_id)
        self._locks.pop(recording_id, None)
        return dest
