"""A real ``pbx-bridge web`` process for the tests: its own SQLite database and config, a
free port, started as a subprocess and waited for until ``/healthz`` answers.

Import the fixtures by name into a test module (``from web_harness import web_console``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from pbx_bridge.calls.models import Call
from pbx_bridge.config import PrivacySettings
from pbx_bridge.sandbox.ports import free_ports
from pbx_bridge.subjects.index import subject_index_from_settings
from storage.database import make_engine, make_session_factory

CLI = [str(Path(sys.executable).parent / "pbx-bridge")]
SECRET_KEY = "test-secret-key-" + "0123456789abcdef" * 2
READY_TIMEOUT_S = 30.0
CALL_DEFAULTS: dict[str, object] = {
    "direction": "inbound", "did": "2125550100", "extension": "101",
    "announcement": "before-connect", "legal_basis": "consent", "retention_class": "default",
    "language": "tr", "disposition": "answered",
}


def web_config(state: Path, port: int, *, database_url: str | None = None) -> str:
    url = database_url or f"sqlite+aiosqlite:///{state}/pbx-bridge.db"
    return (
        f'[database]\nurl = "{url}"\n\n'
        f'[privacy]\nsubject_key_file = "{state}/subject.key"\n'
        f'export_dir = "{state}/exports"\n\n'
        f'[storage]\nspool_dir = "{state}/spool"\n\n'
        f'[storage.local]\npath = "{state}/recordings"\n\n'
        f'[web]\nlisten = "127.0.0.1:{port}"\nbase_url = "http://127.0.0.1:{port}"\n'
        f'secret_key = "{SECRET_KEY}"\n'
        # Cheap password hashes: the tests sign in often; the cost is not what they test.
        '[auth]\nargon2_time_cost = 1\nargon2_memory_kib = 8192\nargon2_parallelism = 1\n'
    )


class WebConsole:
    """``pbx-bridge web`` on a free port with a config of its own under ``state``."""

    def __init__(self, state: Path, *, database_url: str | None = None) -> None:
        self.state = state
        state.mkdir(parents=True, exist_ok=True)
        (self.port,) = free_ports(1)
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url or f"sqlite+aiosqlite:///{state}/pbx-bridge.db"
        self.config_path = state / "pbx-bridge.toml"
        self.config_path.write_text(
            web_config(state, self.port, database_url=database_url), encoding="utf-8"
        )
        self.log_path = state / "web.log"
        self._process: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
        return {**env, "PBX_BRIDGE_CONFIG": str(self.config_path)}

    def cli(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [*CLI, *args], env=self.env(), input=stdin, capture_output=True, text=True,
            timeout=60, check=False,
        )
        assert result.returncode == 0, f"pbx-bridge {' '.join(args)}: {result.stderr}"
        return result.stdout

    def add_calls(self, *calls: dict[str, object]) -> list[str]:
        """Rows in the calls table as the call flow writes them (fields as Call's); ids."""
        subjects = subject_index_from_settings(
            PrivacySettings(subject_key_file=self.state / "subject.key")
        )

        async def insert() -> list[str]:
            engine = make_engine(self.database_url)
            try:
                async with make_session_factory(engine)() as session:
                    rows = [Call(**{**CALL_DEFAULTS, **fields}) for fields in calls]
                    for row in rows:  # as the call journal keys them, for number searches
                        row.caller_key = subjects.key_of(row.caller)
                    for index, row in enumerate(rows):
                        row.channel_id = row.linkedid = f"{time.time_ns()}.{index}"
                    session.add_all(rows)
                    await session.commit()
                    return [row.id for row in rows]
            finally:
                await engine.dispose()

        # In a thread of its own: Playwright's sync API keeps a loop running in this one.
        with ThreadPoolExecutor(1) as thread:
            return thread.submit(asyncio.run, insert()).result()

    def start(
        self, command: Sequence[str] | None = None, *, cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                list(command or [*CLI, "web"]), cwd=cwd or self.state, env=env or self.env(),
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.wait_ready()

    def wait_ready(self, path: str = "/healthz") -> httpx.Response:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise AssertionError(f"pbx-bridge web exited:\n{self.log_tail()}")
            try:
                response = httpx.get(self.url + path, timeout=2)
            except httpx.HTTPError:
                time.sleep(0.2)
                continue
            if response.status_code == 200:
                return response
            time.sleep(0.2)
        raise AssertionError(f"pbx-bridge web did not answer {path}:\n{self.log_tail()}")

    def stop(self, timeout_s: float = 20) -> int | None:
        """SIGTERM, as systemd stops it; the exit code (None if it was not running)."""
        process, self._process = self._process, None
        if process is None:
            return None
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                return process.wait(timeout_s)
            except subprocess.TimeoutExpired as exc:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                raise AssertionError(
                    f"pbx-bridge web ignored SIGTERM:\n{self.log_tail()}"
                ) from exc
        return process.returncode

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


@contextmanager
def running_console(
    folder: Path,
    *,
    recorded: Sequence[str] = (),
    users: Mapping[str, Sequence[str]] | None = None,
    password: str = "",
    calls: Sequence[dict[str, object]] = (),
) -> Iterator[WebConsole]:
    """``pbx-bridge web`` on a migrated database set up as a browser test module needs
    it: ``recorded`` extensions (``ext set N --recording always``), ``users`` (name: the
    other options of ``users add``, all with ``password``) and ``calls``
    (:meth:`WebConsole.add_calls`); stopped afterwards."""
    console = WebConsole(folder)
    console.cli("db", "upgrade")
    for extension in recorded:
        console.cli("ext", "set", extension, "--recording", "always")
    for name, options in (users or {}).items():
        console.cli("users", "add", name, *options, "--password-stdin", stdin=password + "\n")
    if calls:
        console.add_calls(*calls)
    console.start()
    try:
        yield console
    finally:
        console.stop()


@pytest.fixture(scope="module")
def web_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebConsole]:
    """A migrated database and ``pbx-bridge web`` serving it, shared by a test module."""
    with running_console(tmp_path_factory.mktemp("web")) as console:
        yield console
