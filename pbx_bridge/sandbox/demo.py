"""`make demo`: the product in two minutes, on this machine, with nothing to configure.

Builds the prompts, starts a sandboxed Asterisk 22 and the service on its embedded default
(SQLite and local storage under ./var), places three calls at once with sipp (one
consents, one declines, one never answers the question), and prints what an admin and a
DPO would see: calls, consents and recordings, numbers masked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from pbx_bridge.cli.progress import progress_for
from pbx_bridge.sandbox import AsteriskSandbox, ensure_root, sipp
from pbx_bridge.sandbox.ports import free_ports

VAR = Path("var")
DEMO_DIR = VAR / "demo"
PROMPTS_DIR = VAR / "prompts"
CLI = [str(Path(sys.executable).parent / "pbx-bridge")]

# (DID, extension, caller number, caller's keys, what it shows)
CALLS = [
    ("2125550100", "100", "05321234567", [(2.0, "1")], "presses 1: consents, recorded"),
    ("2125550101", "101", "+905441112233", [(2.0, "2")], "presses 2: declines, not recorded"),
    ("2125550102", "102", "905059998877", [], "presses nothing: timeout, not recorded"),
]


def step(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def pbx_bridge(*args: str, env: dict[str, str], progress: bool = False) -> str:
    """Run the CLI; with ``progress`` its stderr (progress, errors) goes straight to ours."""
    stderr = None if progress else subprocess.PIPE
    result = subprocess.run(
        [*CLI, *args], env=env, stdout=subprocess.PIPE, stderr=stderr, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"pbx-bridge {' '.join(args)} failed:\n{result.stderr or ''}")
    return result.stdout


def wait_settled(env: dict[str, str], since: str, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        calls = json.loads(pbx_bridge("calls", "list", "--json", "--since", since, env=env))
        if len(calls) >= count and all(
            c["ended_at"] and all(r["status"] in ("stored", "failed") for r in c["recordings"])
            for c in calls
        ):
            return
        time.sleep(1.0)
    raise SystemExit("the calls did not finish in time; see var/demo/service.log")


def wait_registered(asterisk: AsteriskSandbox, service: subprocess.Popen[bytes]) -> None:
    """Calls reach the service only once its Stasis app is registered with Asterisk."""
    url = f"{asterisk.ari_url}/ari/applications/pbx-bridge"
    auth = (asterisk.ari_username, asterisk.ari_password)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if service.poll() is not None:
            raise SystemExit("the service stopped; see var/demo/service.log")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, auth=auth, timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise SystemExit("the service did not connect to Asterisk; see var/demo/service.log")


def console_listen() -> str:
    """The console's default address when it is free, else any free port."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", 8090))
        except OSError:
            return f"127.0.0.1:{free_ports(1)[0]}"
    return "127.0.0.1:8090"


def start_console(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """`pbx-bridge web` beside the service, with a throw-away secret key (the demo is the
    one place the console starts without one in the config)."""
    listen = console_listen()
    url = f"http://{listen}"
    env.update(
        PBX_BRIDGE_WEB__LISTEN=listen,
        PBX_BRIDGE_WEB__BASE_URL=url,
        PBX_BRIDGE_WEB__SECRET_KEY=secrets.token_hex(32),
    )
    with (DEMO_DIR / "web.log").open("ab") as log:
        console = subprocess.Popen([*CLI, "web"], env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if console.poll() is not None:
            raise SystemExit("the web console stopped; see var/demo/web.log")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return console, url
        time.sleep(0.3)
    raise SystemExit("the web console did not answer; see var/demo/web.log")


DEMO_USER = "demo"


def demo_login(env: dict[str, str]) -> str:
    """A dpo named demo with a fresh password (each run: a new one), for the console."""
    password = secrets.token_urlsafe(12)
    added = subprocess.run(
        [*CLI, "users", "add", DEMO_USER, "--role", "dpo", "--language", "en",
         "--password-stdin"],
        env=env, input=password + "\n", capture_output=True, text=True, check=False,
    )
    if added.returncode != 0:  # there from an earlier run
        pbx_bridge_with_input(["users", "reset-password", DEMO_USER, "--password-stdin"],
                              password, env)
        pbx_bridge("users", "enable", DEMO_USER, env=env)
    return password


def pbx_bridge_with_input(args: list[str], text: str, env: dict[str, str]) -> None:
    result = subprocess.run([*CLI, *args], env=env, input=text + "\n", capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"pbx-bridge {' '.join(args)} failed:\n{result.stderr}")


def keep_console_open(url: str) -> None:
    """On a terminal the console stays up until Enter (or Ctrl-C); elsewhere the demo ends."""
    if not sys.stdin.isatty():
        return
    with contextlib.suppress(KeyboardInterrupt, EOFError):
        input(f"\nThe web console stays up at {url} until you press Enter. ")


async def place_calls(asterisk: AsteriskSandbox) -> None:
    agents = [
        await sipp.start_agent(asterisk.agent_ports[ext], "answer", ring_s=1.0, max_wait_s=150)
        for _, ext, _, _, _ in CALLS
    ]
    for did, ext, number, _, what in CALLS:
        print(f"    caller {number[:4]}*** -> DID {did} (extension {ext}): {what}")
    print("    (the no-answer call listens to the whole disclosure first: about 80 s)")
    await asyncio.gather(
        *(
            sipp.call(asterisk.sip_address, did, number, dtmf=keys, hangup_after_s=95.0)
            for did, _, number, keys, _ in CALLS
        )
    )
    await asyncio.gather(*(agent.wait(timeout_s=60) for agent in agents))


def main() -> None:
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    env = {**os.environ}
    env.pop("PBX_BRIDGE_CONFIG", None)

    step("building the disclosure prompts (espeak-ng, 8 kHz) into var/prompts")
    print(pbx_bridge("prompts", "build", env=env, progress=True).strip().splitlines()[-1])

    step("starting a sandboxed Asterisk 22 (Debian sid root, cached after the first run)")
    with progress_for("sandbox root") as progress:  # a minute of mmdebstrap the first time
        ensure_root(on_phase=progress.phase)
    asterisk = AsteriskSandbox(name="demo", prompts_dir=PROMPTS_DIR.resolve())
    asterisk.start()
    service: subprocess.Popen[bytes] | None = None
    console: subprocess.Popen[bytes] | None = None
    try:
        print(f"    SIP {asterisk.sip_address}, ARI {asterisk.ari_url}, agents "
              f"{', '.join(f'{e}@{p}' for e, p in asterisk.agent_ports.items())}")
        env.update(
            PBX_BRIDGE_ARI__URL=asterisk.ari_url,
            PBX_BRIDGE_ARI__USERNAME=asterisk.ari_username,
            PBX_BRIDGE_ARI__PASSWORD=asterisk.ari_password,
            PBX_BRIDGE_DEFAULT_ROUTE__PROMPT_TIMEOUT_S="4",
        )

        step("database (SQLite, var/pbx-bridge.db), routes and extensions")
        pbx_bridge("db", "upgrade", env=env)
        for did, ext, _, _, _ in CALLS:
            pbx_bridge("ext", "set", ext, "--recording", "always", env=env)
            pbx_bridge("route", "set", did, "--target", ext, env=env)
        print(pbx_bridge("route", "list", env=env).rstrip())

        step("starting the web console (log: var/demo/web.log)")
        password = demo_login(env)
        console, console_url = start_console(env)
        login = f"user {DEMO_USER}, password {password}"
        print(f"    {console_url}/ ({login}; a dpo: sees every call unmasked)")

        step("starting the service (log: var/demo/service.log)")
        since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        with (DEMO_DIR / "service.log").open("ab") as log:
            service = subprocess.Popen([*CLI, "run"], env=env, stdout=log, stderr=log)
        wait_registered(asterisk, service)

        step("placing three calls at once with sipp")
        asyncio.run(place_calls(asterisk))
        wait_settled(env, since, len(CALLS), timeout_s=60)

        step("calls (what the admin sees; numbers masked)")
        print(pbx_bridge("calls", "list", "--since", since, env=env).rstrip())
        step("proof of consent (decision, digit, prompt version and its audio sha256)")
        print(pbx_bridge("consents", "list", "--since", since, env=env).rstrip())
        step("recordings kept, with retention (conversation: 60 days; evidence: 730 days)")
        print(pbx_bridge("recordings", "list", "--since", since, env=env).rstrip())
        print(f"\nRecordings are under {VAR / 'recordings'}; the full JSON: "
              "pbx-bridge calls list --json")
        print(f"The web console: {console_url}/ ({login})")
        keep_console_open(console_url)
    finally:
        if console is not None and console.poll() is None:
            console.terminate()
            console.wait(15)
        if service is not None and service.poll() is None:
            service.terminate()
            service.wait(15)
        asterisk.stop()


if __name__ == "__main__":
    main()
