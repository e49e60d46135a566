"""Recordings in an S3-compatible bucket (AWS, MinIO, Ceph RGW, ...) through aiobotocore.

An S3 PUT is atomic by itself: readers see the old object or the new one. Every object
carries its sha256 twice: as user metadata (``x-amz-meta-sha256``, which every
S3-compatible server keeps) and as S3's own ``ChecksumSHA256``, which the server checks
against the bytes it received and refuses the upload if they differ. Files above
``multipart_threshold`` go up in parts so an hour-long recording never sits in memory.
One client (with its HTTP connection pool) is kept per backend; botocore reconnects by
itself when the server went away meanwhile.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiobotocore.config import AioConfig  # type: ignore[import-untyped]
from aiobotocore.session import get_session  # type: ignore[import-untyped]
from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
)
from botocore.exceptions import SSLError as BotoSSLError

from storage.audio_facts import digest_file
from storage.backends.base import (
    RANGE_PIECE_BYTES,
    Backend,
    ObjectInfo,
    StoredObject,
    validate_remote_key,
)
from storage.backends.settings import S3BackendSettings
from storage.errors import (
    BackendRefused,
    BackendUnavailable,
    IntegrityMismatch,
    ObjectNotFound,
)

CHUNK_BYTES = 1024 * 1024
MULTIPART_THRESHOLD = 64 * 1024 * 1024
PART_BYTES = 16 * 1024 * 1024
METADATA_SHA256 = "sha256"
# Codes that say "fix the configuration", as opposed to "try again later".
_REFUSED_CODES = frozenset({
    "AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch",
    "NoSuchBucket", "InvalidBucketName", "AuthorizationHeaderMalformed", "ExpiredToken",
    "InvalidToken", "AccountProblem", "PermanentRedirect",
})


def _native_sha256(head: dict[str, Any]) -> str | None:
    """S3's ChecksumSHA256 of a whole object, as hex; None for a multipart composite."""
    value = head.get("ChecksumSHA256")
    if not value or "-" in value or head.get("ChecksumType") == "COMPOSITE":
        return None
    try:
        return base64.b64decode(value).hex()
    except ValueError:
        return None


class S3Backend(Backend):
    def __init__(
        self,
        settings: S3BackendSettings,
        name: str = "s3",
        *,
        multipart_threshold: int = MULTIPART_THRESHOLD,
        part_bytes: int = PART_BYTES,
    ) -> None:
        self.settings = settings
        self.name = name
        self.jurisdiction = settings.jurisdiction
        self.multipart_threshold = multipart_threshold
        self.part_bytes = max(part_bytes, 5 * 1024 * 1024)
        self._prefix = settings.prefix.strip("/")
        self._client: Any = None
        self._exit: contextlib.AsyncExitStack | None = None
        self._lock = asyncio.Lock()

    @property
    def location(self) -> str:
        return f"s3://{self.settings.bucket}/{quote(self._prefix, safe='/~')}"

    def object_key(self, key: str) -> str:
        validate_remote_key(key)
        return f"{self._prefix}/{key}" if self._prefix else key

    def location_for(self, key: str) -> str:
        return f"s3://{self.settings.bucket}/{quote(self.object_key(key), safe='/~')}"

    # -- client -------------------------------------------------------------------------

    async def _s3(self) -> Any:
        async with self._lock:
            if self._client is None:
                s = self.settings
                config = AioConfig(
                    s3={"addressing_style": "path"} if s.path_style else {},
                    retries={"max_attempts": 2, "mode": "standard"},
                    connect_timeout=10,
                    read_timeout=60,
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                )
                verify: bool | str = s.verify_tls
                if s.verify_tls and s.ca_file is not None:
                    verify = str(s.ca_file)
                secret = s.secret_access_key.get_secret_value() if s.secret_access_key else None
                stack = contextlib.AsyncExitStack()
                self._client = await stack.enter_async_context(
                    get_session().create_client(
                        "s3", region_name=s.region, endpoint_url=s.endpoint_url,
                        aws_access_key_id=s.access_key_id, aws_secret_access_key=secret,
                        verify=verify, config=config,
                    )
                )
                self._exit = stack
            return self._client

    async def close(self) -> None:
        async with self._lock:
            stack, self._exit, self._client = self._exit, None, None
        if stack is not None:
            await stack.aclose()

    def _error(self, action: str, exc: Exception) -> Exception:
        where = f"backend {self.name}: bucket {self.settings.bucket}"
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            message = f"{where}: {action} refused: {code} {error.get('Message', '')}".strip()
            if code in _REFUSED_CODES or status in (401, 403):
                return BackendRefused(message)
            if status >= 500 or status in (408, 429) or code in ("SlowDown", "RequestTimeout"):
                return BackendUnavailable(message)
            return BackendRefused(message)
        if isinstance(exc, BotoSSLError):
            return BackendRefused(f"{where}: TLS verification failed during {action}: {exc}")
        if isinstance(exc, NoCredentialsError):
            return BackendRefused(f"{where}: no credentials configured or found")
        if isinstance(exc, EndpointConnectionError | BotoCoreError | OSError | TimeoutError):
            return BackendUnavailable(f"{where}: unreachable during {action}: {exc}")
        return BackendUnavailable(f"{where}: {action} failed: {type(exc).__name__}: {exc}")

    @contextlib.asynccontextmanager
    async def _calls(self, action: str) -> Any:
        try:
            yield await self._s3()
        except (ClientError, BotoCoreError, OSError, TimeoutError) as exc:
            raise self._error(action, exc) from exc

    # -- operations ---------------------------------------------------------------------

    async def put(self, src: Path, key: str) -> StoredObject:
        okey = self.object_key(key)
        digest = await asyncio.to_thread(digest_file, src)
        b64 = base64.b64encode(bytes.fromhex(digest.sha256)).decode()
        metadata = {METADATA_SHA256: digest.sha256}
        async with self._calls("put") as s3:
            if digest.size_bytes <= self.multipart_threshold:
                body = await asyncio.to_thread(src.read_bytes)
                await s3.put_object(
                    Bucket=self.settings.bucket, Key=okey, Body=body, Metadata=metadata,
                    ChecksumAlgorithm="SHA256", ChecksumSHA256=b64,
                    ContentType="application/octet-stream",
                )
                multipart = False
            else:
                await self._put_multipart(s3, src, okey, metadata)
                multipart = True
            head = await s3.head_object(
                Bucket=self.settings.bucket, Key=okey, ChecksumMode="ENABLED"
            )
        size = int(head["ContentLength"])
        if size != digest.size_bytes:
            raise IntegrityMismatch(
                f"backend {self.name}: stored size {size} != source size {digest.size_bytes}"
            )
        # A multipart object's checksum is one of its parts' checksums, not the file's.
        native = None if multipart else _native_sha256(head)
        if native is not None and native != digest.sha256:
            raise IntegrityMismatch(f"backend {self.name}: stored sha256 differs from source")
        return StoredObject(
            key, self.location_for(key), size, digest.sha256, checksum_verified=native is not None
        )

    async def _put_multipart(
        self, s3: Any, src: Path, okey: str, metadata: dict[str, str]
    ) -> None:
        bucket = self.settings.bucket
        upload = await s3.create_multipart_upload(
            Bucket=bucket, Key=okey, Metadata=metadata, ChecksumAlgorithm="SHA256",
            ContentType="application/octet-stream",
        )
        upload_id = upload["UploadId"]
        parts: list[dict[str, Any]] = []
        try:
            fh = await asyncio.to_thread(src.open, "rb")
            try:
                number = 1
                while chunk := await asyncio.to_thread(fh.read, self.part_bytes):
                    part_sha = await asyncio.to_thread(_b64_sha256, chunk)
                    answer = await s3.upload_part(
                        Bucket=bucket, Key=okey, UploadId=upload_id, PartNumber=number,
                        Body=chunk, ChecksumSHA256=part_sha,
                    )
                    parts.append(
                        {"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": part_sha}
                    )
                    number += 1
            finally:
                await asyncio.to_thread(fh.close)
            await s3.complete_multipart_upload(
                Bucket=bucket, Key=okey, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            with contextlib.suppress(ClientError, BotoCoreError, OSError):
                await s3.abort_multipart_upload(Bucket=bucket, Key=okey, UploadId=upload_id)
            raise

    async def stat(self, key: str) -> ObjectInfo | None:
        okey = self.object_key(key)
        try:
            async with self._calls("stat") as s3:
                head = await s3.head_object(
                    Bucket=self.settings.bucket, Key=okey, ChecksumMode="ENABLED"
                )
        except BackendRefused as exc:
            if _is_missing(exc.__cause__):
                return None
            raise
        sha = head.get("Metadata", {}).get(METADATA_SHA256) or _native_sha256(head)
        return ObjectInfo(key, self.location_for(key), int(head["ContentLength"]), sha)

    async def get(self, key: str, dest: Path) -> None:
        okey = self.object_key(key)
        try:
            async with self._calls("get") as s3:
                answer = await s3.get_object(Bucket=self.settings.bucket, Key=okey)
                fh = await asyncio.to_thread(dest.open, "wb")
                try:
                    async with answer["Body"] as body:
                        while chunk := await body.read(CHUNK_BYTES):
                            await asyncio.to_thread(fh.write, chunk)
                finally:
                    await asyncio.to_thread(fh.close)
        except BackendRefused as exc:
            if _is_missing(exc.__cause__):
                raise ObjectNotFound(f"backend {self.name}: no object under {key!r}") from exc
            raise

    async def read_range(
        self, key: str, offset: int, length: int, *, piece_bytes: int = RANGE_PIECE_BYTES
    ) -> AsyncGenerator[bytes, None]:
        okey = self.object_key(key)
        if length <= 0:
            return
        try:
            async with self._calls("read") as s3:
                try:
                    answer = await s3.get_object(
                        Bucket=self.settings.bucket, Key=okey,
                        Range=f"bytes={offset}-{offset + length - 1}",
                    )
                except ClientError as exc:
                    if _error_code(exc) == "InvalidRange":  # offset at or past the end
                        return
                    raise
                async with answer["Body"] as body:
                    while piece := await body.read(piece_bytes):
                        yield piece
        except BackendRefused as exc:
            if _is_missing(exc.__cause__):
                raise ObjectNotFound(f"backend {self.name}: no object under {key!r}") from exc
            raise

    async def delete(self, key: str) -> None:
        okey = self.object_key(key)
        async with self._calls("delete") as s3:
            await s3.delete_object(Bucket=self.settings.bucket, Key=okey)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _is_missing(exc: BaseException | None) -> bool:
    if not isinstance(exc, ClientError):
        return False
    return _error_code(exc) in ("404", "NoSuchKey", "NotFound")


def _b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()
