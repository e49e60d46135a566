"""Every backend against a real server: vsftpd (FTP, explicit FTPS), OpenSSH sftp, moto S3.

One conformance suite runs over all kinds (local included, as the reference), then each
protocol's own failure modes: a server that goes away and comes back, a certificate or
host key that does not verify, checksums the server reports.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from backend_servers import FtpServer, ManagedServer, S3Server, SftpServer, free_port
from pydantic import SecretStr

from storage.backends.base import Backend
from storage.backends.factory import build_backend, build_backends
from storage.backends.ftp import FtpBackend
from storage.backends.local import LocalBackend
from storage.backends.probe import PROBE_FOLDER, probe
from storage.backends.s3 import S3Backend
from storage.backends.settings import LocalBackendSettings
from storage.backends.sftp import SftpBackend
from storage.errors import BackendRefused, BackendUnavailable, ObjectNotFound, UnsafeKey

pytest_plugins = ["backend_servers"]

KINDS = ["local", "ftp", "ftps", "sftp", "s3"]
REMOTE_KINDS = ["ftp", "ftps", "sftp", "s3"]


@dataclass
class Subject:
    """A backend under test plus what the test needs to look behind its back."""

    kind: str
    backend: Backend
    # The folder on disk that backs the backend's root (None for S3).
    disk_root: Path | None
    server: ManagedServer | None
    make: Callable[..., Backend]

    def names_on_disk(self) -> list[str]:
        assert self.disk_root is not None
        return sorted(
            str(path.relative_to(self.disk_root))
            for path in self.disk_root.rglob("*")
            if path.is_file()
        )


@pytest.fixture(params=KINDS)
async def subject(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Subject]:
    kind: str = request.param
    result: Subject
    if kind == "local":
        root = tmp_path / "local"

        def make_local(**overrides: object) -> Backend:
            return build_backend("local", LocalBackendSettings(path=root))

        result = Subject(kind, make_local(), root, None, make_local)
    elif kind in ("ftp", "ftps"):
        ftp: FtpServer = request.getfixturevalue(f"{kind}_server")
        base = f"/t-{uuid.uuid4().hex[:8]}"

        def make_ftp(**overrides: object) -> Backend:
            return FtpBackend(ftp.settings(base_dir=base, **overrides), kind)

        result = Subject(kind, make_ftp(), ftp.root / base[1:], ftp.server, make_ftp)
    elif kind == "sftp":
        sftp: SftpServer = request.getfixturevalue("sftp_server")
        folder = sftp.root / f"t-{uuid.uuid4().hex[:8]}"

        def make_sftp(**overrides: object) -> Backend:
            return SftpBackend(sftp.settings(base_dir=str(folder), **overrides), kind)

        result = Subject(kind, make_sftp(), folder, sftp.server, make_sftp)
    else:
        s3: S3Server = request.getfixturevalue("s3_server")
        prefix = f"t-{uuid.uuid4().hex[:8]}"

        def make_s3(**overrides: object) -> Backend:
            return S3Backend(s3.settings(prefix=prefix, **overrides), kind)

        result = Subject(kind, make_s3(), None, s3.server, make_s3)
    try:
        yield result
    finally:
        await result.backend.close()


async def s3_listing(backend: Backend) -> list[str]:
    assert isinstance(backend, S3Backend)
    client = await backend._s3()
    answer = await client.list_objects_v2(Bucket=backend.settings.bucket)
    prefix = backend.object_key("x")[:-1]
    return sorted(
        obj["Key"][len(prefix):] for obj in answer.get("Contents", [])
        if obj["Key"].startswith(prefix)
    )


async def stored_names(subject: Subject) -> list[str]:
    if subject.kind == "s3":
        return await s3_listing(subject.backend)
    return await asyncio.to_thread(subject.names_on_disk)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# -- conformance -------------------------------------------------------------------------


async def test_round_trip(subject: Subject, tmp_path: Path) -> None:
    data = os.urandom(200_000) + b"RIFF-end"
    src = write(tmp_path / "src.wav", data)
    key = "2025/01/31/call-1/rec-1.wav"

    stored = await subject.backend.put(src, key)

    assert stored.key == key
    assert stored.size == len(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    info = await subject.backend.stat(key)
    assert info is not None and info.size == len(data)
    if info.sha256 is not None:
        assert info.sha256 == stored.sha256
    back = tmp_path / "back.wav"
    await subject.backend.get(key, back)
    assert back.read_bytes() == data
    await subject.backend.delete(key)
    assert await subject.backend.stat(key) is None
    with pytest.raises(ObjectNotFound):
        await subject.backend.get(key, tmp_path / "missing.wav")


async def test_put_twice_replaces_and_leaves_no_temp(subject: Subject, tmp_path: Path) -> None:
    key = "2025/02/01/call-2/deep/er/rec-2.wav"
    await subject.backend.put(write(tmp_path / "a", b"first version" * 100), key)
    second = b"second" * 50
    stored = await subject.backend.put(write(tmp_path / "b", second), key)

    assert stored.size == len(second)
    assert await stored_names(subject) == [key]  # one object, no .part- or .tmp- leftovers
    back = tmp_path / "back"
    await subject.backend.get(key, back)
    assert back.read_bytes() == second


async def test_delete_twice_is_fine(subject: Subject, tmp_path: Path) -> None:
    key = "2025/03/01/c/r.wav"
    await subject.backend.put(write(tmp_path / "a", b"x"), key)
    await subject.backend.delete(key)
    await subject.backend.delete(key)
    await subject.backend.delete("never/was/here.wav")
    assert await subject.backend.stat(key) is None


async def test_folder_is_not_an_object(subject: Subject, tmp_path: Path) -> None:
    await subject.backend.put(write(tmp_path / "a", b"x"), "2025/04/01/c/r.wav")
    assert await subject.backend.stat("2025/04/01") is None


UNSAFE_KEYS = ["../escape.wav", "/etc/passwd", "2025/../../x.wav", "a//b.wav", "a\\b.wav"]


@pytest.mark.parametrize("key", UNSAFE_KEYS)
async def test_unsafe_keys_refused_before_any_network_call(
    subject: Subject, tmp_path: Path, key: str
) -> None:
    await assert_refused_offline(subject, tmp_path, key)


@pytest.mark.parametrize("subject", REMOTE_KINDS, indirect=True)
@pytest.mark.parametrize("key", ["a\r\nDELE b.wav", "tab\there.wav", "del\x7f.wav"])
async def test_control_characters_refused_by_remote_backends(
    subject: Subject, tmp_path: Path, key: str
) -> None:
    # A CR/LF would end an FTP command early and start another one.
    await assert_refused_offline(subject, tmp_path, key)


async def assert_refused_offline(subject: Subject, tmp_path: Path, key: str) -> None:
    # Pointed at a port nobody listens on: a network attempt would be BackendUnavailable.
    backend = subject.make(port=free_port()) if subject.kind in ("ftp", "ftps", "sftp") else (
        subject.make(endpoint_url=f"http://127.0.0.1:{free_port()}")
        if subject.kind == "s3" else subject.backend
    )
    src = write(tmp_path / "a", b"x")
    with pytest.raises(UnsafeKey):
        await backend.put(src, key)
    with pytest.raises(UnsafeKey):
        await backend.stat(key)
    with pytest.raises(UnsafeKey):
        await backend.get(key, tmp_path / "out")
    with pytest.raises(UnsafeKey):
        await backend.delete(key)
    await backend.close()


async def test_probe_passes(subject: Subject) -> None:
    result = await probe(subject.backend)

    assert result.ok, result.steps
    assert [s.step for s in result.steps][:5] == ["put", "stat", "get", "compare", "delete"]
    assert all(step.ok for step in result.steps)
    names = await stored_names(subject)
    assert not [n for n in names if n.startswith(PROBE_FOLDER) and not n.endswith("/")]


# -- a server that goes away and comes back -----------------------------------------------


@pytest.mark.parametrize("kind", REMOTE_KINDS)
async def test_server_down_is_unavailable_then_recovers(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    server_holder = request.getfixturevalue(f"{kind}_server")
    server: ManagedServer = server_holder.server
    backend: Backend
    if kind == "s3":
        backend = S3Backend(server_holder.settings(), kind)
    elif kind == "sftp":
        backend = SftpBackend(server_holder.settings(), kind)
    else:
        backend = FtpBackend(server_holder.settings(), kind)
    src = write(tmp_path / "a", b"before")
    await backend.put(src, "down/before.wav")
    await server.astop()
    try:
        with pytest.raises(BackendUnavailable):
            await backend.put(src, "down/during.wav")
        with pytest.raises(BackendUnavailable):
            await backend.stat("down/before.wav")
        result = await probe(backend)
        assert not result.ok
        assert result.steps[0].step == "put" and not result.steps[0].ok
        assert "unreachable" in result.steps[0].detail
    finally:
        await server.astart()
    stored = await backend.put(write(tmp_path / "b", b"after"), "down/after.wav")
    assert stored.size == 5
    assert (await backend.stat("down/after.wav")) is not None
    await backend.close()


# -- FTP / FTPS ---------------------------------------------------------------------------


async def test_ftps_with_wrong_ca_is_refused(ftps_server: FtpServer) -> None:
    certs = ftps_server.certs
    assert certs is not None
    backend = FtpBackend(ftps_server.settings(ca_file=certs.other_ca_cert), "ftps-wrong-ca")
    with pytest.raises(BackendRefused, match="does not verify"):
        await backend.stat("x.wav")


async def test_ftps_system_store_does_not_trust_test_ca(ftps_server: FtpServer) -> None:
    backend = FtpBackend(ftps_server.settings(ca_file=None), "ftps-system-store")
    with pytest.raises(BackendRefused):
        await backend.stat("x.wav")


async def test_ftps_verify_off_works_and_warns(
    ftps_server: FtpServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    certs = ftps_server.certs
    assert certs is not None
    with caplog.at_level(logging.WARNING):
        backend = FtpBackend(
            ftps_server.settings(ca_file=certs.other_ca_cert, verify_tls=False), "ftps-insecure"
        )
    assert any("verification is OFF" in r.message for r in caplog.records)
    stored = await backend.put(write(tmp_path / "a", b"tls"), "insecure/a.wav")
    assert stored.size == 3


async def test_plain_ftp_against_ftps_only_server_is_refused(ftps_server: FtpServer) -> None:
    backend = FtpBackend(ftps_server.settings(type="ftp"), "ftp-no-tls")
    with pytest.raises(BackendRefused):
        await backend.stat("x.wav")


async def test_ftp_wrong_password_is_refused_without_leaking_it(ftp_server: FtpServer) -> None:
    secret = "Sup3r-s3cret-pw"
    backend = FtpBackend(ftp_server.settings(password=SecretStr(secret)), "ftp-bad-login")
    with pytest.raises(BackendRefused, match="login refused") as caught:
        await backend.stat("x.wav")
    assert secret not in str(caught.value)
    assert secret not in backend.location_for("a.wav")


async def test_ftp_size_only_verification_is_declared(
    ftp_server: FtpServer, tmp_path: Path
) -> None:
    # vsftpd offers no HASH/XSHA256: the backend must say it only checked the size.
    backend = FtpBackend(ftp_server.settings(), "ftp")
    stored = await backend.put(write(tmp_path / "a", b"abc"), "verify/a.wav")
    assert stored.checksum_verified is False
    assert stored.location.startswith(f"ftp://127.0.0.1:{ftp_server.port}/recordings/verify/")


# -- SFTP ---------------------------------------------------------------------------------


async def test_sftp_with_wrong_known_hosts_is_refused(sftp_server: SftpServer) -> None:
    backend = SftpBackend(sftp_server.settings(known_hosts=sftp_server.wrong_known_hosts), "s")
    with pytest.raises(BackendRefused, match="host key"):
        await backend.stat("x.wav")


async def test_sftp_password_login(sftp_server: SftpServer, tmp_path: Path) -> None:
    password = sftp_server.account.password
    backend = SftpBackend(
        sftp_server.settings(private_key_file=None, password=SecretStr(password)), "s"
    )
    stored = await backend.put(write(tmp_path / "a", b"pw"), "pw/a.wav")
    assert stored.size == 2
    wrong = SftpBackend(
        sftp_server.settings(private_key_file=None, password=SecretStr("nope")), "s"
    )
    with pytest.raises(BackendRefused, match="login refused"):
        await wrong.stat("pw/a.wav")


async def test_sftp_readback_verifies_sha256(sftp_server: SftpServer, tmp_path: Path) -> None:
    data = os.urandom(70_000)
    backend = SftpBackend(sftp_server.settings(), "s", readback=True)
    stored = await backend.put(write(tmp_path / "a", data), "rb/a.wav")
    assert stored.checksum_verified is True
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    plain = await SftpBackend(sftp_server.settings(), "s").put(tmp_path / "a", "rb/b.wav")
    assert plain.checksum_verified is False
    assert plain.location.startswith(f"sftp://pbxstore@127.0.0.1:{sftp_server.port}/")


# -- S3 -----------------------------------------------------------------------------------


async def test_s3_sha256_in_metadata_and_native_checksum(
    s3_server: S3Server, tmp_path: Path
) -> None:
    data = os.urandom(10_000)
    backend = S3Backend(s3_server.settings(prefix="meta"), "s3")
    try:
        stored = await backend.put(write(tmp_path / "a", data), "m/a.wav")
        digest = hashlib.sha256(data).hexdigest()
        assert stored.checksum_verified is True
        assert stored.location == "s3://recordings/meta/m/a.wav"
        client = await backend._s3()
        head = await client.head_object(Bucket="recordings", Key="meta/m/a.wav")
        assert head["Metadata"]["sha256"] == digest
        info = await backend.stat("m/a.wav")
        assert info is not None and info.sha256 == digest
    finally:
        await backend.close()


async def test_s3_multipart_round_trip(s3_server: S3Server, tmp_path: Path) -> None:
    data = os.urandom(11 * 1024 * 1024)
    backend = S3Backend(
        s3_server.settings(prefix="multi"), "s3", multipart_threshold=1024, part_bytes=5 << 20
    )
    try:
        stored = await backend.put(write(tmp_path / "big", data), "big.wav")
        assert stored.size == len(data)
        info = await backend.stat("big.wav")
        assert info is not None and info.sha256 == hashlib.sha256(data).hexdigest()
        await backend.get("big.wav", tmp_path / "back")
        assert (tmp_path / "back").read_bytes() == data
    finally:
        await backend.close()


async def test_s3_missing_bucket_is_refused(s3_server: S3Server, tmp_path: Path) -> None:
    # moto accepts any key pair; a missing bucket is the refusal it can show.
    backend = S3Backend(s3_server.settings(bucket="no-such-bucket"), "s3")
    try:
        with pytest.raises(BackendRefused, match="NoSuchBucket"):
            await backend.put(write(tmp_path / "a", b"x"), "a.wav")
    finally:
        await backend.close()


# -- factory ------------------------------------------------------------------------------


def test_factory_builds_each_kind(
    ftp_server: FtpServer, sftp_server: SftpServer, s3_server: S3Server, tmp_path: Path
) -> None:
    backends = build_backends({
        "disk": LocalBackendSettings(path=tmp_path),
        "customer-ftp": ftp_server.settings(),
        "customer-sftp": sftp_server.settings(),
        "archive": s3_server.settings(jurisdiction="DE"),
    })
    assert isinstance(backends["disk"], LocalBackend)
    assert isinstance(backends["customer-ftp"], FtpBackend)
    assert isinstance(backends["customer-sftp"], SftpBackend)
    assert isinstance(backends["archive"], S3Backend)
    assert {name: b.name for name, b in backends.items()} == {n: n for n in backends}
    assert backends["archive"].jurisdiction == "DE"
    assert backends["disk"].jurisdiction == "TR"


# -- ranged reads (the player seeking into a recording) -----------------------------------


async def read_all(pieces: AsyncIterator[bytes]) -> list[bytes]:
    return [piece async for piece in pieces]


async def test_read_range_returns_exactly_the_asked_bytes(
    subject: Subject, tmp_path: Path
) -> None:
    data = os.urandom(300_000)
    key = "2025/05/01/call-r/rec-r.wav"
    await subject.backend.put(write(tmp_path / "src", data), key)

    for offset, length in [(0, 1), (0, 31), (1000, 70_000), (150_000, 150_000), (299_999, 1)]:
        pieces = await read_all(
            subject.backend.read_range(key, offset, length, piece_bytes=16 * 1024)
        )
        assert b"".join(pieces) == data[offset : offset + length], (offset, length)
        assert all(0 < len(piece) <= 16 * 1024 for piece in pieces)
    # Asking past the end gives what there is; the caller knows what it expected.
    tail = await read_all(subject.backend.read_range(key, 290_000, 50_000))
    assert b"".join(tail) == data[290_000:]
    with pytest.raises(ObjectNotFound):
        await read_all(subject.backend.read_range("never/was/here.wav", 0, 10))


async def test_read_range_stopped_early_releases_its_connection(
    subject: Subject, tmp_path: Path
) -> None:
    data = os.urandom(2 * 1024 * 1024)
    key = "2025/05/02/call-s/rec-s.wav"
    await subject.backend.put(write(tmp_path / "src", data), key)

    # A listener seeking away: many reads abandoned after their first piece.
    for round_ in range(12):
        offset = round_ * 100_000
        pieces = subject.backend.read_range(key, offset, len(data) - offset)
        first = await anext(pieces)
        assert first == data[offset : offset + len(first)]
        await pieces.aclose()
    # The server still serves (no session or data connection left hanging).
    assert b"".join(await read_all(subject.backend.read_range(key, 5, 10))) == data[5:15]
    info = await subject.backend.stat(key)
    assert info is not None and info.size == len(data)
