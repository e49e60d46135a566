"""Asterisk's stored recordings, as the storage pipeline sees them: fetched over ARI.

Going through ARI rather than Asterisk's spool folder lets Asterisk run on another host,
and keeps the pipeline ignorant of ARI: errors are translated here into the storage
layer's transient / missing distinction.
"""

from __future__ import annotations

from pathlib import Path

from pbx_bridge.ari import AriClient, AriConnectionError, AriNotFound, AriServerError
from storage.source import SourceMissing, SourceState, SourceUnavailable

# States of a live recording in which Asterisk is still writing the file.
_LIVE_STATES = frozenset({"queued", "recording", "paused"})


class AriRecordingSource:
    def __init__(self, ari: AriClient) -> None:
        self._ari = ari

    async def fetch(self, name: str, format: str, dest: Path) -> int:
        try:
            return await self._ari.download_stored_recording(name, dest)
        except AriNotFound as exc:
            raise SourceMissing(f"Asterisk has no stored recording {name}") from exc
        except (AriConnectionError, AriServerError) as exc:
            raise SourceUnavailable(f"fetching {name}: {exc}") from exc

    async def delete(self, name: str, format: str) -> None:
        try:
            await self._ari.delete_stored_recording(name)
        except AriNotFound:
            return
        except (AriConnectionError, AriServerError) as exc:
            raise SourceUnavailable(f"deleting {name}: {exc}") from exc

    async def state(self, name: str) -> SourceState:
        try:
            try:
                live = await self._ari.get_live_recording(name)
            except AriNotFound:
                pass
            else:
                if live.state in _LIVE_STATES:
                    return SourceState.LIVE
            try:
                await self._ari.get_stored_recording(name)
            except AriNotFound:
                return SourceState.MISSING
            return SourceState.STORED
        except (AriConnectionError, AriServerError) as exc:
            raise SourceUnavailable(f"state of {name}: {exc}") from exc

    async def list_stored(self) -> list[str]:
        try:
            return [rec.name for rec in await self._ari.list_stored_recordings()]
        except (AriConnectionError, AriServerError) as exc:
            raise SourceUnavailable(f"listing stored recordings: {exc}") from exc
