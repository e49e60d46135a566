"""One sandboxed Asterisk: its own folders, ports and process inside the shared root.

Synchronous on purpose: this is process management for tests, the demo and
benchmarks; async callers wrap ``start``/``stop`` in ``asyncio.to_thread``.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from pbx_bridge.sandbox import config_files
from pbx_bridge.sandbox.errors import SandboxCommandError, SandboxError, SandboxStartError
from pbx_bridge.sandbox.ports import free_port_range, free_ports
from pbx_bridge.sandbox.root import ensure_root

INSTANCES_DIR = "srv/pbx-bridge-sandbox"
AGENTS = ("100", "101", "102")
# The trunk's far end for agents' calls out (pjsip.conf's [carrier] aor): where a test's
# callee listens, as an agent phone does for the calls it is rung with.
TRUNK = "carrier"
PARTIES = (*AGENTS, TRUNK)
# Where each agent phone places its own calls from (pjsip.conf's [100-identify] ...):
# an address of its own, so the trunk's match (127.0.0.1) does not take them.
AGENT_ADDRESSES = {"100": "127.0.0.2", "101": "127.0.0.3", "102": "127.0.0.4"}
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
RTP_RANGE_SIZE = 200
LARGE_RTP_PORTS = (28000, 32767)  # below Linux's ephemeral ports (32768-60999)

_running: set[AsteriskSandbox] = set()


@dataclass(frozen=True)
class SandboxPorts:
    """Every port one instance binds on 127.0.0.1 (plus where its agents listen)."""

    ari: int
    sip: int
    rtp_start: int
    rtp_end: int
    agents: dict[str, int] = field(default_factory=dict)

    @classmethod
    def pick_free(
        cls, root: Path | None = None, rtp_ports: int = RTP_RANGE_SIZE, name: str | None = None
    ) -> SandboxPorts:
        """Free ports now; the RTP block also avoids blocks other instances in ``root`` own
        (Asterisk binds RTP ports only during calls, so "free now" is not enough), but not
        the one instance ``name`` saved last time, which it may take again.

        Each live channel holds two RTP ports (RTP and RTCP), so ``rtp_ports`` bounds the
        calls at once: the default is plenty for tests. A larger block (a load benchmark)
        comes from ports above the tests' blocks and below the kernel's ephemeral ports.
        """
        ari, sip, *agent_ports = free_ports(2 + len(PARTIES))
        exclude = _rtp_ranges_in_use(root, but=name) if root is not None else []
        low, high = (21000, 27990) if rtp_ports <= RTP_RANGE_SIZE else LARGE_RTP_PORTS
        rtp_start, rtp_end = free_port_range(
            rtp_ports, low, high, randomize=True, exclude=exclude
        )
        return cls(ari, sip, rtp_start, rtp_end, dict(zip(PARTIES, agent_ports, strict=True)))


def _rtp_ranges_in_use(root: Path, but: str | None = None) -> list[tuple[int, int]]:
    """RTP blocks of the instances running now (a stopped one has no pid file left)."""
    ranges = []
    for state_file in (root / INSTANCES_DIR).glob("*/instance.json"):
        if state_file.parent.name == but or not _pid_file_alive(state_file.parent):
            continue
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            ports = json.loads(state_file.read_text(encoding="utf-8"))["ports"]
            ranges.append((int(ports["rtp_start"]), int(ports["rtp_end"])))
    return ranges


class AsteriskSandbox:
    """An Asterisk 22 running in a chroot with pbx-bridge's sample configuration.

    Several instances can share one cached root: each has its own folders under
    ``ROOT/srv/pbx-bridge-sandbox/NAME`` and its own ``asterisk.conf`` (``-C``).
    """

    def __init__(
        self,
        name: str = "test",
        ports: SandboxPorts | None = None,
        ari_password: str | None = None,
        prompts_dir: Path | None = None,
        root: Path | None = None,
        extra_dialplan: str = "",
        conf_dir: Path | None = None,
    ) -> None:
        """``extra_dialplan``: more contexts for this instance only (a benchmark's baseline),
        written beside the shipped dialplan; the shipped files stay as they are.
        ``conf_dir``: an /etc/asterisk an admin set up, used instead of the samples."""
        if not name.replace("-", "").replace("_", "").isalnum():
            raise SandboxError(f"instance name must be letters, digits, - or _: {name!r}")
        self.name = name
        self._root_arg = root
        self._root: Path | None = root if root and root.exists() else None
        self.ports = ports or SandboxPorts.pick_free(self.root, name=name)
        if set(self.ports.agents) != set(PARTIES):
            raise SandboxError(f"ports needed for exactly {PARTIES}")
        self._password = ari_password or secrets.token_urlsafe(16)
        self.prompts_dir = prompts_dir
        self._extra_dialplan = extra_dialplan
        self.conf_dir = conf_dir
        self._process: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None

    # ------------------------------------------------------------ locations
    @property
    def root(self) -> Path:
        if self._root is None:
            self._root = ensure_root(self._root_arg)
        return self._root

    @property
    def chroot_base(self) -> str:
        return f"/{INSTANCES_DIR}/{self.name}"

    @property
    def instance_dir(self) -> Path:
        """Host path of this instance's folder."""
        return self.root / INSTANCES_DIR / self.name

    @property
    def conf_in_chroot(self) -> str:
        return f"{self.chroot_base}/etc/asterisk.conf"

    @property
    def ari_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.ari}"

    @property
    def ari_username(self) -> str:
        return config_files.ARI_USER

    @property
    def ari_password(self) -> str:
        return self._password

    @property
    def sip_address(self) -> str:
        return f"127.0.0.1:{self.ports.sip}"

    @property
    def agent_ports(self) -> dict[str, int]:
        return dict(self.ports.agents)

    @property
    def recordings_dir(self) -> Path:
        """Where ARI recordings land (``spool/recording``), as a host path."""
        return self.instance_dir / "spool" / "recording"

    @property
    def etc_dir(self) -> Path:
        """This instance's /etc/asterisk (http.conf, indications.conf...), as a host path."""
        return self.instance_dir / "etc"

    @property
    def sounds_dir(self) -> Path:
        """Asterisk's sounds folder; the prompts are installed in its pbx-bridge/."""
        return self.instance_dir / "data" / "sounds"

    @property
    def cli_argv(self) -> list[str]:
        """The command running one Asterisk CLI command (appended) on this instance."""
        return ["chroot", str(self.root), "asterisk", "-C", self.conf_in_chroot, "-rx"]

    @property
    def log_path(self) -> Path:
        """Asterisk's own log (notice..verbose, DTMF) for this instance."""
        return self.instance_dir / "log" / config_files.SANDBOX_LOG

    @property
    def console_path(self) -> Path:
        return self.instance_dir / "asterisk.out"

    @property
    def pid_path(self) -> Path:
        return self.instance_dir / "asterisk.pid"

    @property
    def pid(self) -> int | None:
        return self._pid

    # ------------------------------------------------------------ lifecycle
    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Install our configuration, start Asterisk and wait until ARI answers."""
        if self.is_running():
            return
        self._prepare()
        console = self.console_path.open("ab")
        try:
            self._process = subprocess.Popen(
                ["chroot", str(self.root), "asterisk", "-f", "-n", "-C", self.conf_in_chroot],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            console.close()
        self._pid = self._process.pid
        self.pid_path.write_text(f"{self._pid}\n", encoding="utf-8")
        _running.add(self)
        try:
            self._wait_for_ari(timeout_s)
        except SandboxStartError:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop gracefully (``core stop now``), then SIGTERM, then SIGKILL. Idempotent."""
        pid = self._pid
        if pid is None or not _alive(pid):
            self._forget()
            return
        with contextlib.suppress(SandboxCommandError):
            self.cli("core stop now", timeout_s=5.0)
        if not self._wait_exit(pid, STOP_TIMEOUT_S):
            _signal_group(pid, signal.SIGTERM)
            if not self._wait_exit(pid, 5.0):
                _signal_group(pid, signal.SIGKILL)
                self._wait_exit(pid, 5.0)
        self._forget()

    def kill(self) -> None:
        """Crash Asterisk (SIGKILL, no shutdown) and return only once it is gone: the
        signal is delivered asynchronously, and a start() in that window would see the
        dying process still alive and start nothing."""
        pid = self._pid
        if pid is None or not _alive(pid):
            self._forget()
            return
        _signal_group(pid, signal.SIGKILL)
        if not self._wait_exit(pid, STOP_TIMEOUT_S):
            raise SandboxError(
                f"Asterisk (pid {pid}) still alive {STOP_TIMEOUT_S:.0f}s after SIGKILL"
            )
        self._forget()

    def restart(self, timeout_s: float = START_TIMEOUT_S) -> None:
        self.stop()
        self.start(timeout_s)

    def detach(self) -> None:
        """Let Asterisk outlive this Python process (used by ``sandbox up``)."""
        _running.discard(self)
        self._process = None

    def is_running(self) -> bool:
        return self._pid is not None and _alive(self._pid)

    def cli(self, command: str, timeout_s: float = 10.0) -> str:
        """Run an Asterisk CLI command on this instance and return its output."""
        args = [*self.cli_argv, command]
        try:
            result = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SandboxCommandError(f"asterisk -rx {command!r}: {exc}") from exc
        if result.returncode != 0:
            raise SandboxCommandError(
                f"asterisk -rx {command!r} exited {result.returncode}: "
                f"{(result.stderr or result.stdout).strip()}"
            )
        return result.stdout

    def log_tail(self, lines: int = 40) -> str:
        chunks = []
        for path in (self.console_path, self.log_path):
            if path.exists():
                text = path.read_text(encoding="utf-8", errors="replace").splitlines()
                chunks.append(f"--- {path.name}\n" + "\n".join(text[-lines:]))
        return "\n".join(chunks) or "(no Asterisk output)"

    # ------------------------------------------------------------ persistence
    def save_state(self) -> None:
        """Remember ports and password so ``sandbox status/down`` can find the instance."""
        state = {"name": self.name, "ports": asdict(self.ports), "ari_password": self._password}
        (self.instance_dir / "instance.json").write_text(json.dumps(state), encoding="utf-8")

    @classmethod
    def load(cls, name: str, root: Path | None = None) -> AsteriskSandbox:
        """The instance ``name`` as last saved; its pid from the pid file."""
        base = ensure_root(root) / INSTANCES_DIR / name
        try:
            state = json.loads((base / "instance.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SandboxError(f"no sandbox instance {name!r} at {base}") from exc
        ports = SandboxPorts(**state["ports"])
        sandbox = cls(name, ports, state["ari_password"], root=root)
        with contextlib.suppress(OSError, ValueError):
            sandbox._pid = int((base / "asterisk.pid").read_text(encoding="utf-8").strip())
        return sandbox

    # ------------------------------------------------------------ context manager
    def __enter__(self) -> AsteriskSandbox:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------ internals
    def _prepare(self) -> None:
        base = self.instance_dir
        for sub in ("etc", "lib/keys", "spool/recording", "run", "log", "cache"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        settings = config_files.InstanceSettings(
            ari_port=self.ports.ari,
            sip_port=self.ports.sip,
            rtp_start=self.ports.rtp_start,
            rtp_end=self.ports.rtp_end,
            agent_ports=self.ports.agents,
            ari_password=self._password,
        )
        config_files.install(
            self.etc_dir,
            config_files.InstancePaths(self.chroot_base),
            settings,
            extra_dialplan=self._extra_dialplan,
            conf_dir=self.conf_dir,
        )
        self._install_data_dir()
        self.save_state()

    def _install_data_dir(self) -> None:
        """astdatadir = the root's /usr/share/asterisk plus our prompts under sounds/."""
        data = self.instance_dir / "data"
        if data.exists():
            shutil.rmtree(data)
        sounds = self.sounds_dir
        sounds.mkdir(parents=True)
        shared = self.root / "usr/share/asterisk"
        for entry in shared.iterdir():
            if entry.name != "sounds":
                (data / entry.name).symlink_to(f"/usr/share/asterisk/{entry.name}")
        for entry in (shared / "sounds").iterdir():
            (sounds / entry.name).symlink_to(f"/usr/share/asterisk/sounds/{entry.name}")
        if self.prompts_dir is not None:
            if not self.prompts_dir.is_dir():
                raise SandboxError(f"prompts folder {self.prompts_dir} does not exist")
            shutil.copytree(self.prompts_dir, sounds / "pbx-bridge")

    def _wait_for_ari(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        url = f"{self.ari_url}/ari/asterisk/info"
        auth = (self.ari_username, self._password)
        last = "no answer"
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self._process is not None and self._process.poll() is not None:
                    raise SandboxStartError(
                        f"Asterisk exited with {self._process.returncode} during start\n"
                        + self.log_tail()
                    )
                try:
                    response = client.get(url, auth=auth)
                    if response.status_code == 200:
                        return
                    last = f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    last = type(exc).__name__
                time.sleep(0.2)
        raise SandboxStartError(
            f"ARI at {url} did not answer within {timeout_s:.0f}s ({last})\n" + self.log_tail()
        )

    def _wait_exit(self, pid: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process is not None and self._process.pid == pid:
                if self._process.poll() is not None:
                    return True
            elif not _alive(pid):
                return True
            time.sleep(0.1)
        return False

    def _forget(self) -> None:
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=1)
        self._process = None
        self._pid = None
        _running.discard(self)
        with contextlib.suppress(OSError, SandboxError):
            self.pid_path.unlink(missing_ok=True)


def _pid_file_alive(instance_dir: Path) -> bool:
    try:
        pid = int((instance_dir / "asterisk.pid").read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return False
    return _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still "exists"; treat it as gone.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


@atexit.register
def _stop_all() -> None:
    """Never leave an Asterisk behind when the test run (or demo) ends."""
    for sandbox in list(_running):
        with contextlib.suppress(SandboxError, OSError):
            sandbox.stop()
