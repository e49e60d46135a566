"""What the console's call search needs once per process: its cursor key and the subject
index (for number filters)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac

from pbx_bridge.calls.search import CursorSigner
from pbx_bridge.config import PrivacySettings
from pbx_bridge.subjects.index import SubjectIndex, subject_index_from_settings


def cursor_signer(secret_key: bytes) -> CursorSigner:
    """Cursors signed with a key of their own, derived from ``[web] secret_key``."""
    key = hmac.new(secret_key, b"pbx-bridge web calls cursor", hashlib.sha256).digest()
    return CursorSigner(lambda: key)


class Subjects:
    """The subject index (for number filters), loaded once, off the event loop: it may
    read, or on first use create, the subject key file."""

    def __init__(self, privacy: PrivacySettings) -> None:
        self._privacy = privacy
        self._index: SubjectIndex | None = None
        self._lock = asyncio.Lock()

    async def index(self) -> SubjectIndex:
        async with self._lock:
            if self._index is None:
                self._index = await asyncio.to_thread(subject_index_from_settings, self._privacy)
            return self._index
