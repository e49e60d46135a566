"""The install works as written: the README's install steps and the systemd unit we ship,
run literally against a sandboxed Asterisk, take a call.

Paths are remapped by one variable, PBX_BRIDGE_PREFIX (README, "Installing beside a real
Asterisk"; the unit's header): every path under the install roots below, in the README's
commands, in the files they install and in the unit's ExecStart and WorkingDirectory, is
taken under a throw-away folder. Nothing else in the commands is changed.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from e2e_harness import CLI, ServiceHarness, local_file, recordings_of
from heard_prompts import assert_heard, in_language
from sandbox_names import sandbox_name
from web_harness import WebConsole

from pbx_bridge.config import LegalBasis
from pbx_bridge.disclosure import DisclosureFacts, disclosure
from pbx_bridge.sandbox import AsteriskSandbox, sipp
from pbx_bridge.sandbox.config_files import SAMPLES_DIR
from pbx_bridge.sandbox.ports import free_ports

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
UNITS = sorted(SAMPLES_DIR.glob("*.service"))
UNIT = SAMPLES_DIR / "pbx-bridge.service"
WEB_UNIT = SAMPLES_DIR / "pbx-bridge-web.service"
INSTALL_SECTION = "## Installing beside a real Asterisk"
PREFIX_VARIABLE = "PBX_BRIDGE_PREFIX"
INSTALL_ROOTS = (
    "/opt/pbx-bridge",
    "/etc/pbx-bridge",
    "/var/lib/pbx-bridge",
    "/etc/asterisk",
    "/usr/share/asterisk",
    "/etc/systemd/system",
)
# The README's example route and extension (step 5).
DID = "2125550100"
EXTENSION = "101"
CALLER = "05321234567"


def under_prefix(text: str, prefix: Path) -> str:
    """``text`` with every install root moved under ``prefix`` (also inside URLs such as
    ``sqlite+aiosqlite:////var/lib/...``)."""
    pattern = "|".join(re.escape(root) for root in INSTALL_ROOTS)
    return re.sub(rf"({pattern})(?=[/\s\"'`;:]|$)", lambda m: f"{prefix}{m.group(1)}", text,
                  flags=re.MULTILINE)


# --- the README's install steps ----------------------------------------------------------


def install_blocks(readme: str) -> list[tuple[str, str]]:
    """The fenced blocks of the install steps (the section up to its first subsection or
    the next section), in order, as (info string, text)."""
    start = readme.index(INSTALL_SECTION) + len(INSTALL_SECTION)
    end = re.search(r"^#{2,3} ", readme[start:], re.MULTILINE)
    section = readme[start : start + end.start() if end else None]
    return [
        (m.group(1).strip(), m.group(2))
        for m in re.finditer(r"^```([^\n]*)\n(.*?)^```\s*$", section, re.MULTILINE | re.DOTALL)
    ]


RELOAD_ASTERISK = "asterisk -rx 'core reload'"


def install_scripts(readme: str) -> tuple[str, str]:
    """The blocks to run, as two scripts: before and after the host-only block that
    reloads Asterisk (there the test starts its sandboxed Asterisk instead)."""
    blocks = install_blocks(readme)
    kinds = {info for info, _ in blocks}
    assert kinds <= {"sh", "sh host-only"}, f"install blocks must be sh or sh host-only: {kinds}"
    host_only = [text for info, text in blocks if info == "sh host-only"]
    # Only what needs a real host is left out: Asterisk's reload, the service user, systemd.
    assert len(host_only) == 2 and host_only[0].strip() == RELOAD_ASTERISK, host_only
    reload_at = blocks.index(("sh host-only", host_only[0]))
    before, after = blocks[:reload_at], blocks[reload_at + 1 :]

    def runnable(part: list[tuple[str, str]]) -> str:
        return "\n".join(text for info, text in part if info == "sh")

    return runnable(before), runnable(after)


def test_install_section_runs_everything_but_the_host_only_steps() -> None:
    before, after = install_scripts(README.read_text(encoding="utf-8"))
    for step in ("pip install .", "/etc/asterisk/ari.conf", "#include pbx-bridge.conf",
                 "pbx-bridge.example.toml", "db upgrade", "prompts build", "route set",
                 "ext set"):
        assert step in before, step
    assert "pbx-bridge check" in after
    assert not any(word in before + after for word in ("useradd", "systemctl", "asterisk -rx"))


def test_prefix_moves_only_the_install_roots(tmp_path: Path) -> None:
    text = (
        'url = "sqlite+aiosqlite:////var/lib/pbx-bridge/pbx-bridge.db"\n'
        "cp a /etc/asterisk/ && python3 -m venv /opt/pbx-bridge\n"
        "/var/lib/pbx-bridge-other /usr/bin/env"
    )
    assert under_prefix(text, tmp_path) == (
        f'url = "sqlite+aiosqlite:///{tmp_path}/var/lib/pbx-bridge/pbx-bridge.db"\n'
        f"cp a {tmp_path}/etc/asterisk/ && python3 -m venv {tmp_path}/opt/pbx-bridge\n"
        "/var/lib/pbx-bridge-other /usr/bin/env"
    )


# --- the systemd unit ----------------------------------------------------------------------


def unit_service_section(path: Path) -> dict[str, list[str]]:
    """The [Service] settings of a unit file (a key may repeat)."""
    settings: dict[str, list[str]] = {}
    section = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def unit_command(path: Path, prefix: Path) -> tuple[list[str], Path]:
    """The unit's ExecStart, split as systemd (and a shell) would, and its working folder,
    both under ``prefix``."""
    service = unit_service_section(path)
    (exec_start,) = service["ExecStart"]
    (workdir,) = service["WorkingDirectory"]
    # No specifiers, variables or prefixes whose meaning differs between systemd and shlex.
    assert not re.search(r"[%$]", exec_start) and exec_start[0] == "/", exec_start
    argv = shlex.split(under_prefix(exec_start, prefix))
    cwd = Path(under_prefix(workdir, prefix))
    outside = [arg for arg in argv if arg.startswith("/") and not arg.startswith(str(prefix))]
    assert not outside, f"paths outside the install roots: {outside}"
    return argv, cwd


def test_unit_runs_the_virtualenvs_pbx_bridge_with_its_config() -> None:
    """The unit and README step 1 agree on /opt/pbx-bridge; the config comes after run."""
    argv, cwd = unit_command(UNIT, Path("/PREFIX"))
    assert argv == [
        "/PREFIX/opt/pbx-bridge/bin/pbx-bridge", "run",
        "--config", "/PREFIX/etc/pbx-bridge/pbx-bridge.toml",
    ]
    assert cwd == Path("/PREFIX/var/lib/pbx-bridge")
    unit_text = UNIT.read_text(encoding="utf-8")
    assert PREFIX_VARIABLE in unit_text
    assert PREFIX_VARIABLE in README.read_text(encoding="utf-8")


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_systemd_analyze_verify_passes_on_every_unit(unit: Path, tmp_path: Path) -> None:
    """In a throw-away root holding the system's own units (for sysinit.target and the
    like) and an executable where each ExecStart says, with no warning at all."""
    assert UNITS, "no unit files shipped?"
    root = tmp_path / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    installed = root / "etc/systemd/system" / unit.name
    installed.parent.mkdir(parents=True)
    shutil.copy(unit, installed)
    for exec_start in unit_service_section(unit).get("ExecStart", []):
        binary = root / shlex.split(exec_start)[0].lstrip("/")
        binary.parent.mkdir(parents=True, exist_ok=True)
        binary.write_text("#!/bin/sh\n", encoding="utf-8")
        binary.chmod(0o755)
    result = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", f"/etc/systemd/system/{unit.name}"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0 and result.stdout + result.stderr == "", (
        result.stdout + result.stderr
    )


# --- calls through what was installed -----------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    """What a fresh root shell (or systemd) gives: none of our variables, no virtualenv."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("PBX_BRIDGE_") and name not in ("VIRTUAL_ENV", "PYTHONPATH")
    }
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "/usr/bin:/bin").split(os.pathsep) if p != venv_bin
    )
    return {**env, **extra}


async def place_consenting_call(service: ServiceHarness) -> dict[str, Any]:
    """Caller presses 1 two seconds into the disclosure and talks to extension 101, which
    always records; returns the settled call."""
    agent = await sipp.start_agent(service.asterisk.agent_ports[EXTENSION], "answer", ring_s=0.5)
    result = await sipp.call(
        service.asterisk.sip_address, DID, CALLER, dtmf=[(2.0, "1")], hangup_after_s=10.0
    )
    await agent.wait(timeout_s=20)
    assert result.answered and result.hangup_by == "caller", result
    (call,) = await service.wait_for_calls(1)
    return call


def assert_taken_with_consent(call: dict[str, Any], manifest: Path, state: Path) -> None:
    assert call["did"] == DID and call["extension"] == EXTENSION
    assert call["disposition"] == "answered"
    consent = call["consent"]
    assert consent["decision"] == "granted" and consent["digit"] == "1"
    # The README's route: consent, the default class (60 days); the call's reference.
    facts = DisclosureFacts(LegalBasis.CONSENT, 60, call["reference"])
    assert_heard(consent, manifest.parent, in_language("tr", disclosure(facts)))
    (evidence,) = recordings_of(call, "evidence")  # the disclosure as the caller heard it
    (conversation,) = recordings_of(call, "conversation")
    assert conversation["duration_s"] > 1.0
    for recording in (evidence, conversation):
        assert recording["status"] == "stored", recording
        assert local_file(recording).is_relative_to(state), recording["location"]
        assert local_file(recording).stat().st_size > 0
        assert local_file(recording).stat().st_mode & 0o007 == 0  # UMask=0027
    assert evidence["id"] == consent["evidence_recording_id"]
    assert 1.0 < evidence["duration_s"] < 6.0


def assert_disclosure_played(asterisk: AsteriskSandbox) -> None:
    log = asterisk.log_path.read_text(encoding="utf-8", errors="replace")
    assert "pbx-bridge/tr/disclosure" in log, asterisk.log_tail()


# What of the unit's hardening a process can put on itself, applied before exec'ing the
# unit's ExecStart: NoNewPrivileges=, UMask= and, where the kernel has PR_SET_MDWE (Linux
# 6.3+; Debian 12's 6.1 has not), MemoryDenyWriteExecute=. A dependency that needs
# writable-executable memory (a JIT, libffi closures without static trampolines) would
# otherwise only fail on the installed host.
HARDENING = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
no_new_privs, mdwe, umask, *command = sys.argv[1:]
if no_new_privs == "yes" and libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
    raise SystemExit("PR_SET_NO_NEW_PRIVS failed")
if mdwe == "yes" and libc.prctl(66, 0, 0, 0, 0) >= 0:  # PR_GET_MDWE: the kernel has it
    if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
        raise SystemExit("PR_SET_MDWE failed")
os.umask(int(umask, 8))
os.execv(command[0], command)
"""


def start_like_systemd(
    service: ServiceHarness, unit: Path, argv: list[str], cwd: Path, env: dict[str, str]
) -> None:
    """The unit's ExecStart, unchanged, in its WorkingDirectory, under the hardening of
    the unit a process can apply to itself (HARDENING)."""
    service.start(command=[*hardening_wrapper(unit), *argv], cwd=cwd, env=env)


def hardening_wrapper(unit: Path) -> list[str]:
    """The command that applies HARDENING as ``unit`` asks, then execs what follows it."""
    settings = unit_service_section(unit)
    (no_new_privs,) = settings.get("NoNewPrivileges", ["no"])
    (mdwe,) = settings.get("MemoryDenyWriteExecute", ["no"])
    (umask,) = settings.get("UMask", ["0022"])
    return ["/usr/bin/python3", "-c", HARDENING, no_new_privs, mdwe, umask]


def stop_like_systemd(service: ServiceHarness) -> None:
    """KillSignal=SIGTERM, TimeoutStopSec=60s: the service must stop cleanly within it."""
    assert service.running(), service.log_tail()
    os.killpg(service.pid, signal.SIGTERM)
    assert service.wait_exit(60) == 0, service.log_tail()


def unit_with_this_checkout(
    asterisk: AsteriskSandbox, built_prompts: Path, tmp_path: Path
) -> tuple[ServiceHarness, list[str], Path]:
    """The unit's ExecStart and working folder under a prefix, where the virtualenv's
    pbx-bridge is this checkout's and the config is the harness's (for the sandbox)."""
    prefix, state = tmp_path / "prefix", tmp_path / "service"
    state.mkdir()
    harness_config = ServiceHarness(asterisk, state, built_prompts).config_path
    argv, cwd = unit_command(UNIT, prefix)
    binary, config = Path(argv[0]), Path(argv[argv.index("--config") + 1])
    binary.parent.mkdir(parents=True)
    binary.symlink_to(CLI[0])
    config.parent.mkdir(parents=True)
    shutil.copy(harness_config, config)
    cwd.mkdir(parents=True)
    service = ServiceHarness(asterisk, state, built_prompts, installed=([str(binary)], config))
    return service, argv, cwd


@pytest.mark.asterisk
async def test_the_units_exec_start_takes_a_call(
    asterisk: AsteriskSandbox, built_prompts: Path, tmp_path: Path
) -> None:
    """The unit's ExecStart line as written, run against the sandbox until it takes a
    call: the virtualenv's pbx-bridge with ``run --config`` the installed config."""
    service, argv, cwd = unit_with_this_checkout(asterisk, built_prompts, tmp_path)
    service.cli("db", "upgrade")
    service.cli("ext", "set", EXTENSION, "--recording", "always")
    service.cli("route", "set", DID, "--target", EXTENSION)
    start_like_systemd(service, UNIT, argv, cwd, clean_env())
    try:
        call = await place_consenting_call(service)
        assert_taken_with_consent(call, built_prompts / "manifest.json", tmp_path / "service")
        assert_disclosure_played(asterisk)
        stop_like_systemd(service)
    finally:
        service.stop()


def test_the_web_units_exec_start_serves_the_sign_in_page(tmp_path: Path) -> None:
    """pbx-bridge-web.service's ExecStart as written (paths under a prefix, the checkout's
    pbx-bridge as the virtualenv's), under the hardening a process can apply to itself,
    serves the sign-in page and stops cleanly on SIGTERM."""
    prefix = tmp_path / "prefix"
    argv, cwd = unit_command(WEB_UNIT, prefix)
    assert argv == [
        f"{prefix}/opt/pbx-bridge/bin/pbx-bridge", "web",
        "--config", f"{prefix}/etc/pbx-bridge/pbx-bridge.toml",
    ]
    binary, config = Path(argv[0]), Path(argv[argv.index("--config") + 1])
    binary.parent.mkdir(parents=True)
    binary.symlink_to(CLI[0])
    cwd.mkdir(parents=True)
    console = WebConsole(cwd)
    config.parent.mkdir(parents=True)
    shutil.copy(console.config_path, config)
    console.cli("--config", str(config), "db", "upgrade")
    console.start([*hardening_wrapper(WEB_UNIT), *argv], cwd=cwd, env=clean_env())
    try:
        page = console.wait_ready("/sign-in")
        assert 'name="csrf_token"' in page.text and 'name="password"' in page.text
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    finally:
        assert console.stop() == 0, console.log_tail()


def copy_clone(clone: Path, prefix: Path) -> None:
    """The admin's clone; the files the commands install name the install roots, so
    those paths are taken under the prefix too (the one remapping, see the module doc)."""
    shutil.copytree(
        REPO, clone,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "var", "*.egg-info", "__pycache__", ".*_cache", "build"
        ),
    )
    example = clone / "pbx-bridge.example.toml"
    example.write_text(under_prefix(example.read_text(encoding="utf-8"), prefix),
                       encoding="utf-8")


def site_asterisk_conf(etc: Path, root: Path) -> None:
    """An Asterisk before pbx-bridge: Debian's stock ari.conf, http.conf, indications.conf
    and extensions.conf, and the site's own trunk, phones and modules (our samples)."""
    etc.mkdir(parents=True)
    for name in ("ari.conf", "http.conf", "indications.conf", "extensions.conf"):
        shutil.copy(root / "etc/asterisk" / name, etc / name)
    for name in ("pjsip.conf", "rtp.conf", "modules.conf", "logger.conf"):
        shutil.copy(SAMPLES_DIR / name, etc / name)


def run_install_script(script: str, clone: Path, **env: str) -> str:
    """Run ``script`` from the clone as a fresh root shell would (stopping at the first
    failing command); returns its output."""
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=clone, env=clean_env(**env),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stdout[-6000:]
    return done.stdout


def install_as_the_readme_says(tmp_path: Path) -> tuple[ServiceHarness, list[str], Path]:
    """Run the README's install script from a clone, start Asterisk on the configuration
    it left; returns the installed service (not started), the unit's ExecStart and folder."""
    prefix, clone = tmp_path / "prefix", tmp_path / "clone"
    copy_clone(clone, prefix)
    name = sandbox_name("install")
    probe = AsteriskSandbox(name=name)
    site_asterisk_conf(prefix / "etc/asterisk", probe.root)
    before, after = (
        under_prefix(script, prefix) for script in install_scripts(README.read_text("utf-8"))
    )
    run_install_script(before, clone)
    etc = prefix / "etc/asterisk"
    (password,) = re.findall(r"^password = (\S+)$", (etc / "ari.conf").read_text(), re.M)
    assert password != "change-me-pbx-bridge"
    assert "#include pbx-bridge.conf" in (etc / "extensions.conf").read_text().splitlines()
    argv, cwd = unit_command(clone / "asterisk-conf/pbx-bridge.service", prefix)
    config = Path(argv[argv.index("--config") + 1])
    assert f'password = "{password}"' in config.read_text(encoding="utf-8")
    sounds = prefix / "usr/share/asterisk/sounds/pbx-bridge"
    asterisk = AsteriskSandbox(
        name=name, ports=probe.ports, ari_password=password, prompts_dir=sounds, conf_dir=etc
    )
    asterisk.start()
    try:
        checked = run_install_script(after, clone, PBX_BRIDGE_ARI__URL=asterisk.ari_url)
    except BaseException:
        asterisk.stop()
        raise
    assert "FAIL" not in checked, checked
    (tmp_path / "harness").mkdir()
    service = ServiceHarness(asterisk, tmp_path / "harness", sounds,
                             installed=([argv[0]], config))
    return service, argv, cwd


@pytest.mark.asterisk
async def test_the_readme_install_steps_take_a_call(tmp_path: Path) -> None:
    """README "Installing beside a real Asterisk", every block but the host-only ones,
    run as one script from a clone; then Asterisk on the configuration it left and the
    unit's ExecStart; a caller hears the disclosure, consents, and is recorded."""
    service, argv, cwd = install_as_the_readme_says(tmp_path)
    unit = tmp_path / "clone/asterisk-conf/pbx-bridge.service"
    state = tmp_path / "prefix/var/lib/pbx-bridge"
    try:
        # The sandbox picks its ports per run, so the service is told where ARI listens,
        # and given a free port for its metrics (test runs at once must not share 9464).
        (metrics_port,) = free_ports(1)
        env = clean_env(
            PBX_BRIDGE_ARI__URL=service.asterisk.ari_url,
            PBX_BRIDGE_METRICS__LISTEN=f"127.0.0.1:{metrics_port}",
        )
        start_like_systemd(service, unit, argv, cwd, env)
        call = await place_consenting_call(service)
        manifest = tmp_path / "prefix/usr/share/asterisk/sounds/pbx-bridge/manifest.json"
        assert_taken_with_consent(call, manifest, state)
        assert_state_kept_in(state)
        assert_disclosure_played(service.asterisk)
        stop_like_systemd(service)
    finally:
        service.stop()
        service.asterisk.stop()


def assert_state_kept_in(state: Path) -> None:
    assert (state / "pbx-bridge.db").is_file()
    assert (state / "subject.key").is_file()
