"""Recordings on the customer's own FTP or FTPS (explicit TLS) server.

Each operation opens its own control connection and closes it: FTP sessions time out,
servers restart, and a fresh login per recording costs milliseconds, so nothing stale can
break a later upload. A put goes to ``.<name>.part-<random>`` in the final folder and is
renamed over the final name, so a reader never sees half a recording. FTPS sends
``AUTH TLS`` on the plain port, verifies the certificate, then ``PBSZ 0``/``PROT P`` so the
data connections are encrypted too (aioftp reuses the control connection's TLS session for
them, which vsftpd and others require).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path, PurePosixPath
from urllib.parse import quote

import aioftp
from aioftp.client import DataConnectionThrottleStreamIO
from aioftp.common import SSLSessionBoundContext, async_enterable

from storage.audio_facts import digest_file
from storage.backends.base import (
    RANGE_PIECE_BYTES,
    ObjectInfo,
    RemoteFolderBackend,
    StoredObject,
    save_pieces,
)
from storage.backends.settings import FtpBackendSettings
from storage.errors import (
    BackendRefused,
    BackendUnavailable,
    IntegrityMismatch,
    ObjectNotFound,
)

log = logging.getLogger(__name__)

CHUNK_BYTES = 256 * 1024
TEMP_MARK = ".part-"
# Replies that mean "not now" although they are 5xx: the disk may be freed.
_TRANSIENT_5XX = frozenset({"552"})
# Replies to SIZE/DELE/RETR meaning "no such file" (or a folder, which is not an object).
_NO_FILE = frozenset({"550"})
_warned_insecure: set[str] = set()


class _ExplicitTlsClient(aioftp.Client):
    """aioftp starts TLS on a data connection the moment it opens it, before the transfer
    command. vsftpd (following RFC 4217's sequence) only starts the data handshake after it
    has read that command, so both sides wait for each other until the timeout. This client
    opens the data connection in plain TCP, sends the command, then starts TLS on it with
    the control connection's session (servers reject data connections that do not reuse it,
    which stops a stranger from stealing the transfer)."""

    _data_tls: ssl.SSLContext | None = None

    async def _open_connection(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        control = self._stream
        ssl_object = None if control is None else control.writer.get_extra_info("ssl_object")
        if ssl_object is None:
            return await super()._open_connection(host, port)
        self._data_tls = SSLSessionBoundContext(
            ssl.PROTOCOL_TLS_CLIENT, context=ssl_object.context, session=ssl_object.session
        )
        return await asyncio.wait_for(
            asyncio.open_connection(host, port), self.connection_timeout
        )

    @async_enterable
    async def get_stream(
        self,
        command: str | None = None,
        expected_codes: str | tuple[str, ...] = (),
        wait_codes: str | tuple[str, ...] = (),
        censor_after: int | None = None,
        conn_type: aioftp.client.ConnType = "I",
        offset: int = 0,
    ) -> DataConnectionThrottleStreamIO:
        self._data_tls = None
        reader, writer = await self.get_passive_connection(conn_type)
        data_tls, self._data_tls = self._data_tls, None
        try:
            if offset:
                await self.command("REST " + str(offset), "350")
            await self.command(command, expected_codes, wait_codes, censor_after)
            if data_tls is not None:
                await writer.start_tls(
                    data_tls,
                    server_hostname=self.server_host,
                    ssl_handshake_timeout=self.socket_timeout,
                )
        except BaseException:
            writer.close()
            raise
        return DataConnectionThrottleStreamIO(
            self, reader, writer, throttles={"_": self.throttle}, timeout=self.socket_timeout
        )


class FtpBackend(RemoteFolderBackend):
    def __init__(self, settings: FtpBackendSettings, name: str = "ftp") -> None:
        self.settings = settings
        self.name = name
        self.jurisdiction = settings.jurisdiction
        self.tls = settings.type == "ftps"
        self._base = PurePosixPath(settings.base_dir or "/")
        # None until a server told us which remote sha256 command it has ("" for none).
        self._hash_command: str | None = None
        if self.tls and not settings.verify_tls and name not in _warned_insecure:
            _warned_insecure.add(name)
            log.warning(
                "backend %s: FTPS certificate verification is OFF (verify_tls=false); "
                "anyone on the path can read recordings and credentials",
                name,
            )

    def _uri(self, path: PurePosixPath) -> str:
        scheme = "ftps" if self.tls else "ftp"
        host = f"[{self.settings.host}]" if ":" in self.settings.host else self.settings.host
        text = str(path)
        sep = "" if text.startswith("/") else "/"
        return f"{scheme}://{host}:{self.settings.port}{sep}{quote(text, safe='/~')}"

    # -- connection ---------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        if not self.settings.verify_tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        cafile = str(self.settings.ca_file) if self.settings.ca_file else None
        return ssl.create_default_context(cafile=cafile)

    @contextlib.asynccontextmanager
    async def _session(self, action: str) -> AsyncIterator[aioftp.Client]:
        """A logged-in binary-mode client; every failure leaves as our own error class."""
        s = self.settings
        client = _ExplicitTlsClient(socket_timeout=s.timeout_s, connection_timeout=s.timeout_s)
        try:
            try:
                await client.connect(s.host, s.port)
                if self.tls:
                    # Building the context reads the CA file: off the loop.
                    ctx = await asyncio.to_thread(self._ssl_context)
                    await client.upgrade_to_tls(ctx)
                await client.login(s.username, s.password.get_secret_value())
                await client.command("TYPE I", "200")
                yield client
            except aioftp.StatusCodeError as exc:
                raise self._reply_error(action, exc) from exc
            except ssl.SSLCertVerificationError as exc:
                raise BackendRefused(
                    f"backend {self.name}: TLS certificate of {s.host}:{s.port} does not "
                    f"verify: {exc.verify_message}"
                ) from exc
            except ssl.SSLError as exc:
                raise BackendRefused(
                    f"backend {self.name}: TLS with {s.host}:{s.port} failed during {action}: "
                    f"{exc.reason}"
                ) from exc
            except (OSError, TimeoutError, EOFError) as exc:
                raise BackendUnavailable(
                    f"backend {self.name}: {s.host}:{s.port} unreachable during {action}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
        finally:
            client.close()

    def _reply_error(self, action: str, exc: aioftp.StatusCodeError) -> Exception:
        code = str(exc.received_codes[-1]) if exc.received_codes else "???"
        info = " ".join(str(line).strip() for line in (exc.info or []))[:200]
        message = f"backend {self.name}: server replied {code} during {action}: {info}"
        if code.startswith("4") or code in _TRANSIENT_5XX:
            return BackendUnavailable(message)
        if code in ("530", "532"):
            return BackendRefused(f"backend {self.name}: login refused ({code}): {info}")
        return BackendRefused(message)

    # -- operations ---------------------------------------------------------------------

    async def put(self, src: Path, key: str) -> StoredObject:
        path = self.remote_path(key)
        temp = path.parent / f".{path.name}{TEMP_MARK}{uuid.uuid4().hex[:16]}"
        digest = await asyncio.to_thread(digest_file, src)
        async with self._session("put") as client:
            await self._make_folders(client, path.parent)
            try:
                async with client.upload_stream(temp) as stream:
                    async for chunk in _read_chunks(src):
                        await stream.write(chunk)
                await client.rename(temp, path)
            except aioftp.StatusCodeError as exc:
                if exc.received_codes and str(exc.received_codes[-1]) in _NO_FILE and (
                    await self._size(client, temp) is not None
                ):
                    # Some servers will not rename over an existing file.
                    await self._delete_file(client, path)
                    await client.rename(temp, path)
                else:
                    await self._discard(client, temp)
                    raise
            except BaseException:
                await self._discard(client, temp)
                raise
            size = await self._size(client, path)
            if size != digest.size_bytes:
                raise IntegrityMismatch(
                    f"backend {self.name}: stored size {size} != source size {digest.size_bytes}"
                )
            remote_sha = await self._remote_sha256(client, path)
        if remote_sha is not None and remote_sha != digest.sha256:
            raise IntegrityMismatch(f"backend {self.name}: stored sha256 differs from source")
        return StoredObject(
            key,
            self.location_for(key),
            digest.size_bytes,
            digest.sha256,
            checksum_verified=remote_sha is not None,
        )

    async def stat(self, key: str) -> ObjectInfo | None:
        path = self.remote_path(key)
        async with self._session("stat") as client:
            size = await self._size(client, path)
            if size is None:
                return None
            sha = await self._remote_sha256(client, path)
        return ObjectInfo(key, self.location_for(key), size, sha)

    async def get(self, key: str, dest: Path) -> None:
        path = self.remote_path(key)
        async with self._session("get") as client:
            if await self._size(client, path) is None:
                raise ObjectNotFound(f"backend {self.name}: no object under {key!r}")
            async with client.download_stream(path) as stream:
                await save_pieces(stream.iter_by_block(CHUNK_BYTES), dest)

    async def read_range(
        self, key: str, offset: int, length: int, *, piece_bytes: int = RANGE_PIECE_BYTES
    ) -> AsyncGenerator[bytes, None]:
        path = self.remote_path(key)
        async with self._session("read") as client:
            if await self._size(client, path) is None:
                raise ObjectNotFound(f"backend {self.name}: no object under {key!r}")
            # REST <offset> then RETR: the server starts sending at the offset.
            stream = await client.download_stream(path, offset=offset)
            left, at_end = length, False
            try:
                while left > 0:
                    piece = await stream.read(min(piece_bytes, left))
                    if not piece:
                        at_end = True
                        break
                    left -= len(piece)
                    yield piece
            except BaseException:
                stream.close()
                raise
            if at_end:
                await stream.finish()
            else:
                # Stopping mid-file: closing the data connection aborts the transfer (the
                # server answers 426); the session's close drops the control connection.
                stream.close()

    async def delete(self, key: str) -> None:
        path = self.remote_path(key)
        async with self._session("delete") as client:
            await self._delete_file(client, path)

    # -- protocol pieces ----------------------------------------------------------------

    async def _make_folders(self, client: aioftp.Client, folder: PurePosixPath) -> None:
        """MKD each level, ignoring "exists": cheaper than probing each with LIST first."""
        parts = [*reversed(folder.parents), folder] if str(folder) not in ("/", ".") else []
        for level in parts:
            if str(level) in ("/", "."):
                continue
            await client.command(f"MKD {level}", ("257", "550", "521"))

    async def _size(self, client: aioftp.Client, path: PurePosixPath) -> int | None:
        code, info = await client.command(f"SIZE {path}", ("213", *_NO_FILE))
        if str(code) in _NO_FILE:
            return None
        return int(info[0].strip())

    async def _delete_file(self, client: aioftp.Client, path: PurePosixPath) -> None:
        code, info = await client.command(f"DELE {path}", ("250", *_NO_FILE))
        if str(code) in _NO_FILE and await self._size(client, path) is not None:
            raise BackendRefused(
                f"backend {self.name}: cannot delete {path}: {' '.join(info).strip()}"
            )

    async def _discard(self, client: aioftp.Client, temp: PurePosixPath) -> None:
        """Best effort: a dead connection cannot delete, and the next put replaces the key."""
        with contextlib.suppress(aioftp.StatusCodeError, OSError, TimeoutError):
            await client.command(f"DELE {temp}", ("2xx", "5xx"))

    async def _remote_sha256(self, client: aioftp.Client, path: PurePosixPath) -> str | None:
        """The server's own sha256 of the stored file, where it offers one (HASH, XSHA256)."""
        if self._hash_command is None:
            self._hash_command = await self._discover_hash(client)
        if self._hash_command == "HASH":
            code, info = await client.command(f"HASH {path}", ("213", "5xx", "4xx"))
            # 213 SHA-256 0-1234 <hex> <path>
            fields = info[0].split() if str(code) == "213" else []
            return fields[2].lower() if len(fields) >= 3 else None
        if self._hash_command == "XSHA256":
            code, info = await client.command(f"XSHA256 {path}", ("2xx", "5xx", "4xx"))
            fields = info[0].split() if str(code).startswith("2") else []
            return fields[0].lower() if fields else None
        return None

    async def _discover_hash(self, client: aioftp.Client) -> str:
        _, features = await client.command("FEAT", ("211", "5xx"))
        feats = {line.strip().split(" ")[0].upper() for line in features}
        if "HASH" in feats:
            code, _ = await client.command("OPTS HASH SHA-256", ("200", "5xx"))
            if str(code) == "200":
                return "HASH"
        if "XSHA256" in feats:
            return "XSHA256"
        return ""


async def _read_chunks(src: Path) -> AsyncIterator[bytes]:
    fh = await asyncio.to_thread(src.open, "rb")
    try:
        while chunk := await asyncio.to_thread(fh.read, CHUNK_BYTES):
            yield chunk
    finally:
        await asyncio.to_thread(fh.close)

