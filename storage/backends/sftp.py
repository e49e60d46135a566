"""Recordings on the customer's own SFTP server (asyncssh).

Each operation opens its own SSH connection: a restarted server or a dropped NAT mapping
can never leave a dead session behind for the next recording. Host keys are checked
against the configured known_hosts file (or ~/.ssh/known_hosts), read afresh on every
connection so an admin's fix takes effect without a restart. A put writes
``.<name>.part-<random>`` beside the final name and renames it over the final name with
the posix-rename extension (atomic replace), or remove + rename where the server lacks it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import stat as stat_mode
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path, PurePosixPath
from urllib.parse import quote

import asyncssh

from storage.audio_facts import digest_file
from storage.backends.base import (
    RANGE_PIECE_BYTES,
    ObjectInfo,
    RemoteFolderBackend,
    StoredObject,
    save_pieces,
)
from storage.backends.settings import SftpBackendSettings
from storage.errors import (
    BackendRefused,
    BackendUnavailable,
    IntegrityMismatch,
    ObjectNotFound,
)

log = logging.getLogger(__name__)

CHUNK_BYTES = 256 * 1024
TEMP_MARK = ".part-"
_warned_insecure: set[str] = set()


class SftpBackend(RemoteFolderBackend):
    def __init__(
        self, settings: SftpBackendSettings, name: str = "sftp", *, readback: bool = False
    ) -> None:
        self.settings = settings
        self.name = name
        self.jurisdiction = settings.jurisdiction
        # Hash the stored copy by reading it back: proves the bytes, costs a download.
        self.readback = readback
        self._base = PurePosixPath(settings.base_dir or ".")
        if not settings.host_key_checking and name not in _warned_insecure:
            _warned_insecure.add(name)
            log.warning(
                "backend %s: SFTP host key checking is OFF (host_key_checking=false); "
                "a machine in the middle would receive recordings and credentials",
                name,
            )

    def _uri(self, path: PurePosixPath) -> str:
        s = self.settings
        host = f"[{s.host}]" if ":" in s.host else s.host
        text = str(path)
        # A relative base is relative to the login folder, which URIs spell "/~/".
        shown = text if text.startswith("/") else "/~/" + text.removeprefix(".").lstrip("/")
        return f"sftp://{quote(s.username, safe='')}@{host}:{s.port}{quote(shown, safe='/~')}"

    # -- connection ---------------------------------------------------------------------

    def _client_options(self) -> dict[str, object]:
        """Everything asyncssh needs that lives in files: read in a worker thread."""
        s = self.settings
        options: dict[str, object] = {}
        if s.host_key_checking:
            known = s.known_hosts or Path(os.path.expanduser("~/.ssh/known_hosts"))
            options["known_hosts"] = asyncssh.read_known_hosts(str(known))
        else:
            options["known_hosts"] = None
        if s.private_key_file is not None:
            options["client_keys"] = [asyncssh.read_private_key(str(s.private_key_file))]
        else:
            options["client_keys"] = None
        if s.password is not None:
            options["password"] = s.password.get_secret_value()
        return options

    @contextlib.asynccontextmanager
    async def _sftp(self, action: str) -> AsyncIterator[asyncssh.SFTPClient]:
        s = self.settings
        where = f"backend {self.name}: {s.host}:{s.port}"
        try:
            try:
                options = await asyncio.to_thread(self._client_options)
            except (OSError, asyncssh.KeyImportError) as exc:
                raise BackendRefused(
                    f"backend {self.name}: cannot read known_hosts or private key: {exc}"
                ) from exc
            async with asyncssh.connect(
                s.host, s.port, username=s.username, config=None, agent_path=None,
                connect_timeout=s.timeout_s, login_timeout=s.timeout_s,
                keepalive_interval=s.timeout_s, **options,
            ) as conn, conn.start_sftp_client() as sftp:
                yield sftp
        except asyncssh.HostKeyNotVerifiable as exc:
            raise BackendRefused(f"{where}: host key does not verify: {exc.reason}") from exc
        except asyncssh.PermissionDenied as exc:
            raise BackendRefused(f"{where}: login refused: {exc.reason}") from exc
        except asyncssh.SFTPPermissionDenied as exc:
            raise BackendRefused(
                f"{where}: permission denied during {action}: {exc.reason}"
            ) from exc
        except asyncssh.SFTPError as exc:
            raise BackendUnavailable(
                f"{where}: SFTP error during {action}: {exc.reason}"
            ) from exc
        except asyncssh.DisconnectError as exc:
            raise BackendUnavailable(
                f"{where}: disconnected during {action}: {exc.reason}"
            ) from exc
        except (OSError, TimeoutError, asyncssh.ChannelOpenError) as exc:
            raise BackendUnavailable(
                f"{where}: unreachable during {action}: {type(exc).__name__}: {exc}"
            ) from exc

    # -- operations ---------------------------------------------------------------------

    async def put(self, src: Path, key: str) -> StoredObject:
        path = self.remote_path(key)
        temp = path.parent / f".{path.name}{TEMP_MARK}{uuid.uuid4().hex[:16]}"
        digest = await asyncio.to_thread(digest_file, src)
        async with self._sftp("put") as sftp:
            await sftp.makedirs(str(path.parent), exist_ok=True)
            try:
                async with sftp.open(str(temp), "wb") as remote:
                    async for chunk in _read_chunks(src):
                        await remote.write(chunk)
                await self._replace(sftp, temp, path)
            except BaseException:
                with contextlib.suppress(asyncssh.Error, OSError):
                    await sftp.remove(str(temp))
                raise
            attrs = await sftp.stat(str(path))
            if attrs.size != digest.size_bytes:
                raise IntegrityMismatch(
                    f"backend {self.name}: stored size {attrs.size} != source size "
                    f"{digest.size_bytes}"
                )
            remote_sha = await self._read_back(sftp, path) if self.readback else None
        if remote_sha is not None and remote_sha != digest.sha256:
            raise IntegrityMismatch(f"backend {self.name}: stored sha256 differs from source")
        return StoredObject(
            key, self.location_for(key), digest.size_bytes, digest.sha256,
            checksum_verified=remote_sha is not None,
        )

    async def _replace(
        self, sftp: asyncssh.SFTPClient, temp: PurePosixPath, path: PurePosixPath
    ) -> None:
        try:
            await sftp.posix_rename(str(temp), str(path))
        except asyncssh.SFTPOpUnsupported:
            # Not atomic: between the two calls a reader finds no object (never half a one).
            with contextlib.suppress(asyncssh.SFTPNoSuchFile):
                await sftp.remove(str(path))
            await sftp.rename(str(temp), str(path))

    async def _read_back(self, sftp: asyncssh.SFTPClient, path: PurePosixPath) -> str:
        sha = hashlib.sha256()
        async with sftp.open(str(path), "rb") as remote:
            while chunk := _as_bytes(await remote.read(CHUNK_BYTES)):
                await asyncio.to_thread(sha.update, chunk)
        return sha.hexdigest()

    async def stat(self, key: str) -> ObjectInfo | None:
        path = self.remote_path(key)
        async with self._sftp("stat") as sftp:
            try:
                attrs = await sftp.stat(str(path))
            except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath):
                return None
        if attrs.permissions is not None and not stat_mode.S_ISREG(attrs.permissions):
            return None  # a folder on the way to other keys is not an object
        return ObjectInfo(key, self.location_for(key), attrs.size or 0)

    @contextlib.asynccontextmanager
    async def _open_object(self, action: str, key: str) -> AsyncIterator[asyncssh.SFTPClientFile]:
        """The object opened for reading, on a connection of its own."""
        path = self.remote_path(key)
        async with self._sftp(action) as sftp:
            try:
                remote_file = await sftp.open(str(path), "rb")
            except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath) as exc:
                raise ObjectNotFound(f"backend {self.name}: no object under {key!r}") from exc
            async with remote_file:
                yield remote_file

    async def get(self, key: str, dest: Path) -> None:
        async with self._open_object("get", key) as remote_file:
            await save_pieces(_file_pieces(remote_file), dest)

    async def read_range(
        self, key: str, offset: int, length: int, *, piece_bytes: int = RANGE_PIECE_BYTES
    ) -> AsyncGenerator[bytes, None]:
        async with self._open_object("read", key) as remote_file:
            position, end = offset, offset + length
            while position < end:
                # An explicit offset per read: SFTP reads are positional, no seek state.
                piece = _as_bytes(
                    await remote_file.read(min(piece_bytes, end - position), position)
                )
                if not piece:
                    return
                position += len(piece)
                yield piece

    async def delete(self, key: str) -> None:
        path = self.remote_path(key)
        async with self._sftp("delete") as sftp:
            with contextlib.suppress(asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath):
                await sftp.remove(str(path))


async def _read_chunks(src: Path) -> AsyncIterator[bytes]:
    fh = await asyncio.to_thread(src.open, "rb")
    try:
        while chunk := await asyncio.to_thread(fh.read, CHUNK_BYTES):
            yield chunk
    finally:
        await asyncio.to_thread(fh.close)


async def _file_pieces(remote_file: asyncssh.SFTPClientFile) -> AsyncIterator[bytes]:
    while chunk := _as_bytes(await remote_file.read(CHUNK_BYTES)):
        yield chunk


def _as_bytes(data: str | bytes) -> bytes:
    """Files opened "rb" without an encoding yield bytes; asyncssh's types say str | bytes."""
    return data.encode() if isinstance(data, str) else data
