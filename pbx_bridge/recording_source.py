"""Asterisk's stored recordings, as the storage pipeline sees them: fetched over ARI, or,
where the admin says Asterisk's recording folder is on this host, copied from it.

Going through ARI rather than Asterisk's spool folder lets Asterisk run on another host,
and keeps the pipeline ignorant of ARI: errors are translated here into the storage
layer's transient / missing distinction. That is the default, because it is right
wherever Asterisk runs and asks for no access to Asterisk's files.

A local folder (``[ari] recordings_dir``) saves a download and a delete over ARI per
recording (four of a call's ~24 REST requests, and the download's bytes through the
event loop). It is only as right as the admin's word that the folder is this Asterisk's,
so a recording not found there (or not readable, or not deletable) is taken over ARI:
a wrong folder costs requests, never a recording.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path

from pbx_bridge.ari import AriClient, AriConnectionError, AriNotFound, AriServerError
from pbx_bridge.config import ConfigError
from storage.source import SourceMissing, SourceState, SourceUnavailable

log = logging.getLogger(__name__)

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


class RecordingsDirError(ConfigError):
    """``[ari] recordings_dir`` names a folder the service cannot use."""


def check_recordings_dir(folder: Path) -> None:
    """At start: the folder must exist, and we must read files in it and delete them
    (write and search permission on the folder), or the admin hears it now."""
    if not folder.is_absolute():
        raise RecordingsDirError(f"[ari] recordings_dir must be an absolute path, not {folder}")
    if not folder.is_dir():
        raise RecordingsDirError(
            f"[ari] recordings_dir {folder} is not a folder (Asterisk's astspooldir/recording, "
            "e.g. /var/spool/asterisk/recording; leave it unset to fetch over ARI)")
    if not os.access(folder, os.R_OK | os.W_OK | os.X_OK):
        raise RecordingsDirError(
            f"[ari] recordings_dir {folder}: this user may not read and delete files there "
            "(add it to Asterisk's group, with group write on the folder; under systemd also "
            "ReadWritePaths= and SupplementaryGroups=; or leave it unset to fetch over ARI)")


class LocalRecordingSource:
    """Asterisk's recording folder read and cleaned directly, file work in a thread; ARI
    for what only Asterisk knows (whether a recording is still live, the listing) and for
    any file not found or not usable here."""

    def __init__(self, ari_source: AriRecordingSource, folder: Path) -> None:
        self._ari = ari_source
        self._folder = folder
        self.fallbacks = 0  # files taken over ARI instead (counted for tests and logs)

    def _path(self, name: str, format: str) -> Path | None:
        """The file, for the flat names the service gives its recordings; None otherwise."""
        if not name or "/" in name or name.startswith(".") or "/" in format:
            return None
        return self._folder / f"{name}.{format}"

    async def fetch(self, name: str, format: str, dest: Path) -> int:
        source = self._path(name, format)
        if source is None:
            return await self._ari.fetch(name, format, dest)
        try:
            return await asyncio.to_thread(_copy, source, dest)
        except OSError as exc:
            self._fell_back("fetch", source, exc)
            return await self._ari.fetch(name, format, dest)

    async def delete(self, name: str, format: str) -> None:
        source = self._path(name, format)
        if source is None:
            await self._ari.delete(name, format)
            return
        try:
            await asyncio.to_thread(source.unlink)
        except OSError as exc:
            # Gone already (a delete retried after a crash) or never here: Asterisk says.
            if not isinstance(exc, FileNotFoundError):
                self._fell_back("delete", source, exc)
            await self._ari.delete(name, format)

    async def state(self, name: str) -> SourceState:
        return await self._ari.state(name)

    async def list_stored(self) -> list[str]:
        return await self._ari.list_stored()

    def _fell_back(self, what: str, source: Path, exc: OSError) -> None:
        self.fallbacks += 1
        log.warning("recording file %s: cannot %s it in [ari] recordings_dir (%s); "
                    "taken over ARI instead: is this Asterisk's recording folder?",
                    source.name, what, exc.strerror or type(exc).__name__)


def _copy(source: Path, dest: Path) -> int:
    shutil.copyfile(source, dest)
    return dest.stat().st_size


def recording_source(
    ari: AriClient, recordings_dir: Path | None
) -> AriRecordingSource | LocalRecordingSource:
    """The source ``[ari] recordings_dir`` asks for (checked by check_recordings_dir)."""
    over_ari = AriRecordingSource(ari)
    if recordings_dir is None:
        return over_ari
    log.info("Asterisk's recordings are read from %s (ARI when a file is not there)",
             recordings_dir)
    return LocalRecordingSource(over_ari, recordings_dir)
