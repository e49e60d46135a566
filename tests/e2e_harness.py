"""The service under test as an operator runs it: `pbx-bridge run` in its own process,
configured by one TOML file, beside a sandboxed Asterisk. Tests drive it with sipp and
read the results back through the CLI, as a PBX admin or DPO would.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pbx_bridge.sandbox import AsteriskSandbox

# The console script the package installs, beside this interpreter.
# The first resync after a start is over: done, owed to a database outage, or postponed.
RESYNC_OVER = re.compile(r"resynchronised with Asterisk|left for the resync when it is back"
                         r"|resync postponed")
CLI = [str(Path(sys.executable).parent / "pbx-bridge")]


class ServiceHarness:
    def __init__(
        self,
        asterisk: AsteriskSandbox,
        workdir: Path,
        prompts_dir: Path,
        *,
        extra_config: str = "",
        storage_config: str = "",
        database_url: str | None = None,
        log_level: str = "DEBUG",
        installed: tuple[Sequence[str], Path] | None = None,
    ) -> None:
        """``installed``: the CLI and config file of a service installed as the README
        says (tests/test_install.py), used as they are instead of writing a config."""
        self.asterisk = asterisk
        self.workdir = workdir
        self.cli_command = list(installed[0]) if installed else CLI
        self.config_path = installed[1] if installed else workdir / "pbx-bridge.toml"
        self.log_path = workdir / "service.log"
        self.recordings_path = workdir / "recordings"
        self.spool_path = workdir / "spool"
        self._process: subprocess.Popen[bytes] | None = None
        self._env_extra: dict[str, str] = {}
        # The subject key lives with this test's database (the default, ./var/subject.key,
        # would be shared by every test run from the same folder).
        self.subject_key_path = workdir / "subject.key"
        privacy = (
            ""
            if "[privacy]" in extra_config
            else f'[privacy]\nsubject_key_file = "{self.subject_key_path}"\n'
        )
        if installed:
            return
        self.config_path.write_text(
            f"""
[ari]
url = "{asterisk.ari_url}"
username = "{asterisk.ari_username}"
password = "{asterisk.ari_password}"
reconnect_initial_s = 0.2
reconnect_max_s = 1.0

[database]
url = "{database_url or f'sqlite+aiosqlite:///{workdir}/pbx-bridge.db'}"

[storage]
spool_dir = "{self.spool_path}"
{storage_config}

[storage.local]
path = "{self.recordings_path}"

[prompts]
build_dir = "{prompts_dir}"

[call]
ring_timeout_s = 8

[default_route]
target = "100"
prompt_timeout_s = 3

{privacy}
[log]
level = "{log_level}"
{extra_config}
""",
            encoding="utf-8",
        )

    # -- the CLI, as an admin uses it -----------------------------------------------------

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self.cli_command, "--config", str(self.config_path), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"pbx-bridge {' '.join(args)} exited {result.returncode}:\n{result.stderr}"
            )
        return result

    def calls(self) -> list[dict[str, Any]]:
        out = self.cli("calls", "list", "--json", "--unmasked", "--limit", "1000").stdout
        calls: list[dict[str, Any]] = json.loads(out)
        return calls

    # -- the service process ---------------------------------------------------------------

    def start(
        self,
        *,
        failpoints: Sequence[str] = (),
        command: Sequence[str] | None = None,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """``pbx-bridge --config CONFIG run``, or ``command`` (a systemd unit's ExecStart)
        in ``cwd`` with exactly ``env``."""
        assert self._process is None or self._process.poll() is not None
        if env is None:
            env = {**os.environ, **self._env_extra}
            env.pop("PBX_BRIDGE_FAILPOINTS", None)
            if failpoints:
                env["PBX_BRIDGE_FAILPOINTS"] = ",".join(failpoints)
        log = self.log_path.open("ab")
        started_at = log.tell()
        self._process = subprocess.Popen(
            list(command or [*self.cli_command, "--config", str(self.config_path), "run"]),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        log.close()
        self.wait_ready(log_from=started_at)

    def wait_ready(self, timeout_s: float = 20.0, *, log_from: int | None = None) -> None:
        """Ready once our Stasis app is registered (only then are calls routed to it) and,
        given where this start's log begins, once the first resync is over: before it, a
        test that cuts the database or Asterisk would race the service's own start."""
        import httpx

        deadline = time.monotonic() + timeout_s
        if log_from is not None:
            while not RESYNC_OVER.search(self._log_since(log_from)):
                if self._process is not None and self._process.poll() is not None:
                    raise AssertionError(f"service exited early:\n{self.log_tail()}")
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"service did not resync within {timeout_s}s:\n{self.log_tail()}")
                time.sleep(0.1)
        url = f"{self.asterisk.ari_url}/ari/applications/pbx-bridge"
        auth = (self.asterisk.ari_username, self.asterisk.ari_password)
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise AssertionError(f"service exited early:\n{self.log_tail()}")
            try:
                if httpx.get(url, auth=auth, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"service not ready within {timeout_s}s:\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, timeout_s: float = 15.0) -> int | None:
        if self._process is None:
            return None
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        return self._process.returncode

    def kill(self) -> None:
        assert self._process is not None
        self._process.kill()
        self._process.wait()

    def wait_exit(self, timeout_s: float) -> int:
        assert self._process is not None
        return self._process.wait(timeout_s)

    def _log_since(self, offset: int) -> str:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_text().splitlines()[-lines:])

    # -- waiting for results ---------------------------------------------------------------

    async def wait_for_calls(
        self,
        count: int,
        *,
        timeout_s: float = 60.0,
        settled: Callable[[dict[str, Any]], bool] | None = None,
    ) -> list[dict[str, Any]]:
        """Wait until ``count`` calls have ended and every recording reached a final state."""
        settled = settled or call_settled
        deadline = time.monotonic() + timeout_s
        calls: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            calls = await asyncio.to_thread(self.calls)
            if len(calls) >= count and all(settled(c) for c in calls):
                return calls
            await asyncio.sleep(0.5)
        raise AssertionError(
            f"calls not settled within {timeout_s}s: {json.dumps(calls, indent=1)}\n"
            f"service log:\n{self.log_tail()}"
        )


def call_settled(call: dict[str, Any]) -> bool:
    return call["ended_at"] is not None and all(
        r["status"] in ("stored", "failed") and r["retain_until"] is not None
        for r in call["recordings"]
    )


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def days_after(start: str, end: str) -> timedelta:
    return parse_time(end) - parse_time(start)


def recordings_of(call: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r for r in call["recordings"] if r["kind"] == kind]


def local_file(recording: dict[str, Any]) -> Path:
    location = recording["location"]
    assert location.startswith("file://"), location
    return Path(location.removeprefix("file://"))
