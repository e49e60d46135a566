"""The cached Debian root that holds Asterisk for the sandbox.

Building it takes mmdebstrap a few seconds to minutes, so it is built once and
reused; every sandbox instance lives in its own folder inside it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path

from pbx_bridge.sandbox.errors import SandboxRootError

DEFAULT_CACHE = Path("/var/cache/pbx-bridge/asterisk-root")
CACHE_ENV = "PBX_BRIDGE_SANDBOX_CACHE"
SUITE = "sid"
PACKAGES = ("asterisk", "asterisk-core-sounds-en-wav")
BUILD_TIMEOUT_S = 1800
_INFO = "I: "  # mmdebstrap's phase lines ("I: downloading packages with apt...")

# Root here cannot read files owned by other users (the build maps the asterisk
# user to whatever uid is free on the host), so these go to root before use.
ASTERISK_DIRS = (
    "etc/asterisk",
    "var/lib/asterisk",
    "var/spool/asterisk",
    "var/log/asterisk",
    "var/run/asterisk",
    "usr/share/asterisk",
)


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else DEFAULT_CACHE


def is_root_ready(root: Path) -> bool:
    return (root / "usr/sbin/asterisk").exists() and (root / "usr/share/asterisk").is_dir()


def ensure_root(
    cache_dir: Path | None = None, on_phase: Callable[[str], None] | None = None
) -> Path:
    """Return a ready Asterisk root, building it with mmdebstrap on first use.

    The build goes to a temporary folder beside the cache and is renamed into
    place only when complete, so an interrupted build never looks usable.
    ``on_phase`` hears each of mmdebstrap's phases as it begins (a minute is long to
    wait without a word).
    """
    root = (cache_dir or default_cache_dir()).resolve()
    if is_root_ready(root):
        return root
    if root.exists():
        raise SandboxRootError(
            f"{root} exists but holds no Asterisk; remove it to rebuild the sandbox root"
        )
    mmdebstrap = shutil.which("mmdebstrap")
    if mmdebstrap is None:
        raise SandboxRootError("mmdebstrap is not installed (apt-get install mmdebstrap)")
    root.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{root.name}.build-", dir=root.parent))
    try:
        _debootstrap(mmdebstrap, build, on_phase or (lambda _phase: None))
        chown_asterisk_dirs(build)
        if not is_root_ready(build):
            raise SandboxRootError("mmdebstrap finished but the root has no /usr/sbin/asterisk")
        build.rename(root)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return root


def _debootstrap(mmdebstrap: str, target: Path, on_phase: Callable[[str], None]) -> None:
    # mmdebstrap refuses a non-empty target; mkdtemp made an empty one.
    command = [
        mmdebstrap,
        "--variant=minbase",
        '--aptopt=Acquire::Check-Valid-Until "false"',
        f"--include={','.join(PACKAGES)}",
        SUITE,
        str(target),
    ]
    try:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    except OSError as exc:
        raise SandboxRootError(f"mmdebstrap could not run: {exc}") from exc
    timer = threading.Timer(BUILD_TIMEOUT_S, process.kill)
    timer.start()
    tail: deque[str] = deque(maxlen=20)
    with process:
        try:
            assert process.stdout is not None  # stdout=PIPE
            for line in process.stdout:
                tail.append(line.rstrip("\n"))
                if line.startswith(_INFO):
                    on_phase(line[len(_INFO):].strip().rstrip("."))
            returncode = process.wait()
        finally:
            timed_out = not timer.is_alive()
            timer.cancel()
            if process.poll() is None:  # interrupted: never leave mmdebstrap running
                process.kill()
    if returncode != 0:
        if timed_out and returncode < 0:
            raise SandboxRootError(f"mmdebstrap took longer than {BUILD_TIMEOUT_S} s")
        text = "\n".join(tail)
        raise SandboxRootError(f"mmdebstrap failed (exit {returncode}):\n{text}")


def chown_asterisk_dirs(root: Path) -> None:
    for relative in ASTERISK_DIRS:
        path = root / relative
        if path.is_symlink() or not path.exists():
            continue
        os.chown(path, 0, 0, follow_symlinks=False)
        for parent, dirs, files in os.walk(path):
            for name in (*dirs, *files):
                os.chown(os.path.join(parent, name), 0, 0, follow_symlinks=False)
