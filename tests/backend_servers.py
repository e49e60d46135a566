"""Real FTP, FTPS, SFTP and S3 servers on 127.0.0.1 for backend tests and benchmarks.

vsftpd (plain and explicit-TLS instances), OpenSSH's sshd with internal-sftp, and
moto_server, each on random free ports with its own generated config, keys and folders.
Every server can be stopped and started again on the same port mid-test, so a test can
show a backend failing while its server is down and recovering once it is back.

vsftpd and sshd need a real account to log in as: ``ensure_test_account`` creates one
system user (no home, nologin shell) and gives it a fresh random password per run, and a
PAM service that only checks the password (Debian's ``vsftpd`` service insists on a login
shell listed in /etc/shells).

Import from other tests as ``from backend_servers import ...``; the fixtures at the bottom
are session-scoped (register them with ``pytest_plugins`` or import them into a test
module), and the ``*Server`` classes work outside pytest too (benchmarks).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import datetime
import fcntl
import ipaddress
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import SecretStr

from storage.backends.settings import (
    FtpBackendSettings,
    S3BackendSettings,
    SftpBackendSettings,
)

HOST = "127.0.0.1"
TEST_USER = "pbxstore"
PAM_SERVICE = "pbx-bridge-test-ftp"
PAM_FILE = Path("/etc/pam.d") / PAM_SERVICE
VSFTPD = "/usr/sbin/vsftpd"
SSHD = "/usr/sbin/sshd"
START_TIMEOUT_S = 15.0


class ServerStartError(RuntimeError):
    """A test server did not come up; the message carries the tail of its log."""


# Servers run in their own session (so a Ctrl-C aimed at pytest does not hit them first);
# this makes sure an interpreter that exits without the fixtures' teardown stops them too.
_RUNNING: set[ManagedServer] = set()


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_RUNNING):
        server.stop()


# -- ports, account, certificates -------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def free_port_range(count: int) -> tuple[int, int]:
    """``count`` consecutive free ports, for vsftpd's passive range."""
    for _ in range(200):
        start = secrets.randbelow(20000) + 40000
        socks: list[socket.socket] = []
        try:
            for port in range(start, start + count):
                sock = socket.socket()
                socks.append(sock)
                sock.bind((HOST, port))
            return start, start + count - 1
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise ServerStartError("no free passive port range")


@dataclass(frozen=True)
class TestAccount:
    user: str
    password: str
    uid: int
    gid: int


PASSWORD_FILE = Path("/var/lib/pbx-bridge-test/ftp-account.password")


def ensure_test_account() -> TestAccount:
    """One system user for vsftpd and sshd logins.

    Its random password is made once and kept (root-only) in PASSWORD_FILE, so test runs
    that overlap (two sessions, or a benchmark beside the tests) never change it under
    each other's running servers. Parallel workers take a lock: only one creates it.
    """
    PASSWORD_FILE.parent.mkdir(parents=True, exist_ok=True)
    with (PASSWORD_FILE.parent / "account.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _ensure_test_account()


def _ensure_test_account() -> TestAccount:
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--home-dir", "/",
             "--shell", "/usr/sbin/nologin", TEST_USER],
            check=True, capture_output=True,
        )
        PASSWORD_FILE.unlink(missing_ok=True)
    if PASSWORD_FILE.exists():
        password = PASSWORD_FILE.read_text(encoding="ascii").strip()
    else:
        password = secrets.token_urlsafe(18)
        PASSWORD_FILE.parent.mkdir(parents=True, exist_ok=True)
        PASSWORD_FILE.write_text(password, encoding="ascii")
        PASSWORD_FILE.chmod(0o600)
        subprocess.run(
            ["chpasswd"], input=f"{TEST_USER}:{password}\n", text=True, check=True,
            capture_output=True,
        )
    pam = "auth required pam_unix.so\naccount required pam_unix.so\n"
    if not PAM_FILE.exists() or PAM_FILE.read_text() != pam:
        PAM_FILE.write_text(pam)
    entry = pwd.getpwnam(TEST_USER)
    return TestAccount(TEST_USER, password, entry.pw_uid, entry.pw_gid)


@dataclass(frozen=True)
class TestCertificates:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    other_ca_cert: Path  # a CA that signed nothing here: verification must fail with it


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_certificates(folder: Path) -> TestCertificates:
    """A throw-away CA, a server certificate for 127.0.0.1/localhost, and a stranger CA."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _ca("pbx-bridge test CA")
    _, other_cert = _ca("pbx-bridge unrelated CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    certs = TestCertificates(
        folder / "ca.pem", folder / "server.pem", folder / "server.key", folder / "other-ca.pem"
    )
    certs.ca_cert.write_bytes(ca_cert.public_bytes(pem))
    certs.other_ca_cert.write_bytes(other_cert.public_bytes(pem))
    certs.server_cert.write_bytes(cert.public_bytes(pem))
    certs.server_key.write_bytes(
        key.private_bytes(
            pem, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    certs.server_key.chmod(0o600)
    return certs


# -- a server process that can be stopped and started again ------------------------------


def _children(pid: int) -> list[int]:
    """Descendants of ``pid``: sshd and vsftpd fork a process per session (sshd's call
    setsid), and "server down" must end those sessions too."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@dataclass(eq=False)
class ManagedServer:
    """One server process on a fixed port; ``stop()``/``start()`` keep port and data."""

    name: str
    port: int
    workdir: Path
    argv: list[str]
    env: dict[str, str] | None = None
    on_started: Callable[[], None] | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.out"

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        if self.is_running():
            return
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.workdir, env=self.env, start_new_session=True,
            )
        _RUNNING.add(self)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerStartError(f"{self.name} exited: {self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 0.5):
                break
            time.sleep(0.05)
        else:
            self.stop()
            raise ServerStartError(f"{self.name} did not listen on {self.port}: {self.log_tail()}")
        if self.on_started is not None:
            self.on_started()

    def stop(self) -> None:
        process, self.process = self.process, None
        _RUNNING.discard(self)
        if process is None or process.poll() is not None:
            return
        pids = [*_children(process.pid), process.pid]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            for pid in [*_children(process.pid), process.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            process.wait(timeout=5)
        # Session children that outlived the listener would keep old connections alive.
        for pid in pids[:-1]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


# -- vsftpd ------------------------------------------------------------------------------


@dataclass
class FtpServer:
    """vsftpd in the foreground; with ``certs`` it is FTPS-only (explicit TLS, PROT P)."""

    workdir: Path
    account: TestAccount
    certs: TestCertificates | None = None
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.root = self.workdir / "root"
        self.root.mkdir(parents=True, exist_ok=True)
        os.chown(self.root, self.account.uid, self.account.gid)
        low, high = free_port_range(12)
        config = self.workdir / "vsftpd.conf"
        lines = [
            "listen=YES", "listen_ipv6=NO", f"listen_address={HOST}", f"listen_port={self.port}",
            "background=NO", "anonymous_enable=NO", "local_enable=YES", "write_enable=YES",
            "local_umask=022", "chroot_local_user=YES", "allow_writeable_chroot=YES",
            f"local_root={self.root}", "pasv_enable=YES", f"pasv_min_port={low}",
            f"pasv_max_port={high}", f"pasv_address={HOST}", "port_enable=NO",
            # The seccomp sandbox trips over container syscall filters.
            "seccomp_sandbox=NO", f"pam_service_name={PAM_SERVICE}", "userlist_enable=NO",
            "xferlog_enable=YES", f"vsftpd_log_file={self.workdir / 'vsftpd.log'}",
            "log_ftp_protocol=YES", "secure_chroot_dir=/var/run/vsftpd/empty",
            "idle_session_timeout=60", "data_connection_timeout=30",
        ]
        if self.certs is not None:
            lines += [
                "ssl_enable=YES", f"rsa_cert_file={self.certs.server_cert}",
                f"rsa_private_key_file={self.certs.server_key}",
                "force_local_data_ssl=YES", "force_local_logins_ssl=YES",
                "ssl_sslv2=NO", "ssl_sslv3=NO", "ssl_tlsv1=YES", "require_ssl_reuse=YES",
                "ssl_ciphers=HIGH",
            ]
        config.write_text("\n".join(lines) + "\n")
        Path("/var/run/vsftpd/empty").mkdir(parents=True, exist_ok=True)
        name = "vsftpd-tls" if self.certs else "vsftpd"
        self.server = ManagedServer(name, self.port, self.workdir, [VSFTPD, str(config)])

    def settings(self, **overrides: object) -> FtpBackendSettings:
        values: dict[str, object] = {
            "type": "ftps" if self.certs else "ftp", "host": HOST, "port": self.port,
            "username": self.account.user, "password": SecretStr(self.account.password),
            "base_dir": "/recordings", "jurisdiction": "TR", "timeout_s": 5.0,
        }
        if self.certs is not None:
            values["ca_file"] = self.certs.ca_cert
        values.update(overrides)
        return FtpBackendSettings.model_validate(values)


# -- sshd / internal-sftp ----------------------------------------------------------------


@dataclass
class SftpServer:
    """OpenSSH's sshd limited to internal-sftp for the test account, keys generated here."""

    workdir: Path
    account: TestAccount
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.root = self.workdir / "root"
        self.root.mkdir(parents=True, exist_ok=True)
        os.chown(self.root, self.account.uid, self.account.gid)
        host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.host_key_file = self.workdir / "ssh_host_ed25519_key"
        host_key.write_private_key(str(self.host_key_file))
        self.host_key_file.chmod(0o600)
        client_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key_file = self.workdir / "client_key"
        client_key.write_private_key(str(self.client_key_file))
        self.client_key_file.chmod(0o600)
        authorized = self.workdir / "authorized_keys"
        authorized.write_bytes(client_key.export_public_key())
        authorized.chmod(0o644)
        host_public = host_key.export_public_key().decode().strip()
        self.known_hosts = self.workdir / "known_hosts"
        self.known_hosts.write_text(f"[{HOST}]:{self.port} {host_public}\n")
        stranger = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
        self.wrong_known_hosts = self.workdir / "wrong_known_hosts"
        self.wrong_known_hosts.write_text(f"[{HOST}]:{self.port} {stranger.strip()}\n")
        config = self.workdir / "sshd_config"
        config.write_text(
            "\n".join([
                f"ListenAddress {HOST}", f"HostKey {self.host_key_file}",
                f"PidFile {self.workdir / 'sshd.pid'}", "UsePAM no", "StrictModes no",
                f"AuthorizedKeysFile {authorized}", "PubkeyAuthentication yes",
                "PasswordAuthentication yes", "KbdInteractiveAuthentication no",
                "PermitRootLogin no", f"AllowUsers {self.account.user}",
                "Subsystem sftp internal-sftp", "ForceCommand internal-sftp",
                "AllowTcpForwarding no", "X11Forwarding no", "LogLevel VERBOSE",
            ]) + "\n"
        )
        # Privilege separation needs this folder; containers often lack it.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.server = ManagedServer(
            "sshd", self.port, self.workdir,
            [SSHD, "-D", "-e", "-f", str(config), "-p", str(self.port)],
        )

    def settings(self, **overrides: object) -> SftpBackendSettings:
        values: dict[str, object] = {
            "type": "sftp", "host": HOST, "port": self.port, "username": self.account.user,
            "private_key_file": self.client_key_file, "known_hosts": self.known_hosts,
            "base_dir": str(self.root / "recordings"), "jurisdiction": "TR", "timeout_s": 5.0,
        }
        values.update(overrides)
        return SftpBackendSettings.model_validate(values)


# -- moto_server -------------------------------------------------------------------------


@dataclass
class S3Server:
    """moto_server; the bucket is created again after every (re)start, since moto keeps
    everything in memory."""

    workdir: Path
    bucket: str = "recordings"
    port: int = field(default_factory=free_port)
    access_key_id: str = "testing"
    secret_access_key: str = "testing"

    def __post_init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
        self.endpoint_url = f"http://{HOST}:{self.port}"
        self.server = ManagedServer(
            "moto", self.port, self.workdir,
            [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(self.port)],
            env=env, on_started=self._create_bucket,
        )

    def _create_bucket(self) -> None:
        import boto3  # type: ignore[import-untyped]

        client = boto3.client(
            "s3", endpoint_url=self.endpoint_url, region_name="us-east-1",
            aws_access_key_id=self.access_key_id, aws_secret_access_key=self.secret_access_key,
        )
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=self.bucket)

    def settings(self, **overrides: object) -> S3BackendSettings:
        values: dict[str, object] = {
            "type": "s3", "bucket": self.bucket, "prefix": "recordings",
            "endpoint_url": self.endpoint_url, "region": "us-east-1",
            "access_key_id": self.access_key_id,
            "secret_access_key": SecretStr(self.secret_access_key),
            "path_style": True, "jurisdiction": "TR",
        }
        values.update(overrides)
        return S3BackendSettings.model_validate(values)


# -- pytest fixtures ---------------------------------------------------------------------


@contextlib.contextmanager
def _running(server: ManagedServer) -> Iterator[None]:
    try:
        server.start()
        yield
    finally:
        server.stop()


@pytest.fixture(scope="session")
def backend_workdir() -> Iterator[Path]:
    # Not under pytest's tmp_path: /tmp/pytest-of-root is 0700, and vsftpd and sftp work as
    # the test user after login, who could not reach a folder inside it.
    folder = Path(tempfile.mkdtemp(prefix="pbx-backends-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def test_account() -> TestAccount:
    return ensure_test_account()


@pytest.fixture(scope="session")
def test_certificates(backend_workdir: Path) -> TestCertificates:
    return make_certificates(backend_workdir / "certs")


@pytest.fixture(scope="session")
def ftp_server(backend_workdir: Path, test_account: TestAccount) -> Iterator[FtpServer]:
    server = FtpServer(backend_workdir / "ftp", test_account)
    with _running(server.server):
        yield server


@pytest.fixture(scope="session")
def ftps_server(
    backend_workdir: Path, test_account: TestAccount, test_certificates: TestCertificates
) -> Iterator[FtpServer]:
    server = FtpServer(backend_workdir / "ftps", test_account, test_certificates)
    with _running(server.server):
        yield server


@pytest.fixture(scope="session")
def sftp_server(backend_workdir: Path, test_account: TestAccount) -> Iterator[SftpServer]:
    folder = backend_workdir / "sftp"
    folder.mkdir()
    server = SftpServer(folder, test_account)
    with _running(server.server):
        yield server


@pytest.fixture(scope="session")
def s3_server(backend_workdir: Path) -> Iterator[S3Server]:
    folder = backend_workdir / "s3"
    folder.mkdir()
    server = S3Server(folder)
    with _running(server.server):
        yield server
