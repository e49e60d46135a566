"""Calls at a given rate through a sandboxed Asterisk and `pbx-bridge run`; CPU per call.

    bench/run call_load [--calls 150] [--rate 5] [--sipp 1] [--talk-s 10] [--json]
                        [--py-spy FILE] [--sandbox NAME] [--database URL] [--statements]

Each caller presses 1 at ``--key-at`` seconds after answer (consent), is connected to
agent 100 (one sipp agent process taking every call), talks ``--talk-s`` seconds and
hangs up. The run counts what the service made of the calls (through `pbx-bridge calls
list --json`, as an admin sees it): answered, recorded with consent (a stored
conversation recording and a stored evidence clip), and reports for the load window
(first INVITE until every recording is stored):

- CPU seconds of the service process and of Asterisk (utime + stime from /proc, all
  threads), per call; CPU seconds, not wall time, so other work on the machine
  matters less. Asterisk's own cost in the same run is the reference.
- the service's peak RSS (VmHWM) and the most calls live at once.

``--py-spy FILE`` records a speedscope profile of the service during the load (py-spy
must be installed in the venv). ``--statements`` counts the SQL statements (by kind) and
commits the service sent during the load window, per call (``bench/statement_counter``
loaded into the service process). The service logs at INFO, as in production.
It shares its measures and its judgement of a call with bench/capacity.py, which runs
the full side-by-side ladder; this one is the quick loop for profiling one load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import common  # noqa: F401  (puts tests/ on the path)
from capacity import CLOCK_TICKS, process_cpu_s, status_mib, tally
from e2e_harness import ServiceHarness, call_settled

from pbx_bridge.config import PromptSettings
from pbx_bridge.prompt_builder import build_prompts
from pbx_bridge.sandbox import AsteriskSandbox, SandboxPorts, ensure_root, sipp

REPO = Path(__file__).resolve().parent.parent
STATEMENT_COUNTER = Path(__file__).resolve().parent / "statement_counter"
DID = "2125550100"
RTP_PORTS = 1000
CALLER = "05321234567"


# -- processes ----------------------------------------------------------------------------


def main_thread_cpu_s(pid: int) -> float:
    """utime + stime of the process's main thread alone (the event loop, for the service)."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text(encoding="ascii")
    values = fields.rsplit(")", 1)[1].split()
    return (int(values[11]) + int(values[12])) / CLOCK_TICKS


# -- the calls ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadShape:
    calls: int
    rate: float  # new calls a second, over all sipp processes
    sipp_processes: int = 1
    key_at_s: float = 1.5  # the caller presses 1 this long after answer
    talk_s: float = 10.0  # connected to the agent this long

    @property
    def hold_s(self) -> float:
        """Caller's time from answer to BYE: disclosure until the key, the confirmation
        and the ringing (about 3 s), then the conversation."""
        return self.key_at_s + 3.0 + self.talk_s


async def place_load(asterisk: AsteriskSandbox, shape: LoadShape, logs: Path) -> dict[str, int]:
    """Run the calls to their end; sipp's own counts (answered by the service)."""
    agent = await sipp.start_agent(
        asterisk.agent_ports["100"], "answer", max_wait_s=shape.hold_s + 60,
        log_base=logs, calls=shape.calls,
    )
    per_process = _split(shape.calls, shape.sipp_processes)
    callers = [
        await sipp.start_caller(
            asterisk.sip_address, DID, CALLER, dtmf=[(shape.key_at_s, "1")],
            hangup_after_s=shape.hold_s, log_base=logs,
            load=sipp.Load(calls=n, rate=shape.rate / shape.sipp_processes),
        )
        for n in per_process
    ]
    limit = shape.calls / shape.rate + shape.hold_s + 60
    results = [await caller.wait(timeout_s=limit) for caller in callers]
    await agent.stop()
    return {
        "sipp_answered": sum(r.answered_calls for r in results),
        "sipp_failed_processes": sum(not r.ok for r in results),
    }


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (i < total % parts) for i in range(parts)]


async def watch_live(service: ServiceHarness, stop: asyncio.Event, peak: list[int]) -> None:
    """The most calls Asterisk had up at once (channels in our Stasis app / 2)."""
    import httpx

    auth = (service.asterisk.ari_username, service.asterisk.ari_password)
    async with httpx.AsyncClient(base_url=service.asterisk.ari_url, auth=auth) as client:
        while not stop.is_set():
            with contextlib.suppress(httpx.HTTPError, ValueError):
                channels = (await client.get("/ari/channels")).json()
                callers = sum(c.get("dialplan", {}).get("context") == "pbx-bridge-inbound"
                              for c in channels)
                peak[0] = max(peak[0], callers)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


async def wait_settled(service: ServiceHarness, count: int, timeout_s: float) -> None:
    """Until ``count`` calls ended with every recording final, or ``timeout_s`` passed
    (the tally then shows what is missing)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        calls = await asyncio.to_thread(service.calls)
        if len(calls) >= count and all(call_settled(c) for c in calls):
            return
        await asyncio.sleep(1.0)


# -- one run --------------------------------------------------------------------------------


@dataclass
class LoadRun:
    calls: int
    rate: float
    sipp_processes: int
    service_cpu_s: float
    service_loop_cpu_s: float  # of which the main thread (the event loop)
    asterisk_cpu_s: float
    service_peak_rss_mib: float
    peak_live_calls: int
    wall_s: float
    counts: dict[str, int]
    # SQL statements by kind (and COMMIT, ROLLBACK) per call, with --statements.
    statements_per_call: dict[str, float] | None = None

    @property
    def service_ms_per_call(self) -> float:
        return self.service_cpu_s / self.calls * 1000

    @property
    def asterisk_ms_per_call(self) -> float:
        return self.asterisk_cpu_s / self.calls * 1000

    def summary(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "service_ms_per_call": round(self.service_ms_per_call, 1),
            "asterisk_ms_per_call": round(self.asterisk_ms_per_call, 1),
            "service_to_asterisk": round(self.service_cpu_s / max(self.asterisk_cpu_s, 1e-9), 2),
        }


def read_statement_counts(service: ServiceHarness, out: Path) -> dict[str, int]:
    """The service's statement counts so far (SIGUSR1 makes its counter write them)."""
    out.unlink(missing_ok=True)
    os.kill(service.pid, signal.SIGUSR1)
    for _ in range(200):
        if out.exists():
            with contextlib.suppress(ValueError):
                counts: dict[str, int] = json.loads(out.read_text(encoding="utf-8"))
                return counts
        time.sleep(0.05)
    raise RuntimeError("the service's statement counter did not answer SIGUSR1")


async def statement_counts(service: ServiceHarness, out: Path) -> dict[str, int]:
    return await asyncio.to_thread(read_statement_counts, service, out)


async def measure(
    service: ServiceHarness, shape: LoadShape, logs: Path, py_spy: Path | None = None,
    statements: Path | None = None,
) -> LoadRun:
    asterisk_pid = service.asterisk.pid
    assert asterisk_pid is not None
    profiler = _start_py_spy(service.pid, py_spy) if py_spy else None
    before = await statement_counts(service, statements) if statements else {}
    stop = asyncio.Event()
    peak = [0]
    watcher = asyncio.create_task(watch_live(service, stop, peak))
    t0 = time.monotonic()
    cpu0 = (process_cpu_s(service.pid), process_cpu_s(asterisk_pid),
            main_thread_cpu_s(service.pid))
    sipp_counts = await place_load(service.asterisk, shape, logs)
    await wait_settled(service, shape.calls, timeout_s=120)
    cpu1 = (process_cpu_s(service.pid), process_cpu_s(asterisk_pid),
            main_thread_cpu_s(service.pid))
    wall = time.monotonic() - t0
    after = await statement_counts(service, statements) if statements else {}
    stop.set()
    await watcher
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)
        await asyncio.to_thread(profiler.wait, 60)
    calls = await asyncio.to_thread(service.calls)
    return LoadRun(
        calls=shape.calls, rate=shape.rate, sipp_processes=shape.sipp_processes,
        service_cpu_s=round(cpu1[0] - cpu0[0], 2), asterisk_cpu_s=round(cpu1[1] - cpu0[1], 2),
        service_loop_cpu_s=round(cpu1[2] - cpu0[2], 2),
        service_peak_rss_mib=round(status_mib(service.pid, "VmHWM"), 1),
        peak_live_calls=peak[0], wall_s=round(wall, 1),
        counts={**tally(calls)[1], **sipp_counts},
        statements_per_call=(
            {kind: round((after[kind] - before.get(kind, 0)) / shape.calls, 2)
             for kind in sorted(after) if after[kind] != before.get(kind, 0)}
            if statements else None
        ),
    )


def _start_py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    return subprocess.Popen(
        [binary, "record", "--pid", str(pid), "--format", "speedscope", "-o", str(out),
         "--rate", "50", "--nonblocking", "--gil"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


@contextlib.contextmanager
def sandboxed_service(
    name: str, work: Path, database_url: str | None = None, rtp_ports: int = RTP_PORTS,
    env: dict[str, str] | None = None,
) -> Iterator[ServiceHarness]:
    """Built prompts, a sandboxed Asterisk and a migrated `pbx-bridge run` logging at INFO."""
    prompts = work / "prompts"
    asyncio.run(build_prompts(PromptSettings(dir=REPO / "prompts"), prompts))
    # Four RTP ports per connected call: room for 200 live calls.
    ports = SandboxPorts.pick_free(ensure_root(), rtp_ports=rtp_ports, name=name)
    asterisk = AsteriskSandbox(name=name, ports=ports, prompts_dir=prompts)
    asterisk.start()
    for leftover in asterisk.recordings_dir.glob("*"):
        leftover.unlink()
    service = ServiceHarness(
        asterisk, work / "service", prompts, database_url=database_url, log_level="INFO"
    )
    try:
        service.cli("db", "upgrade")
        service.start(env={**os.environ, **(env or {})})
        yield service
    finally:
        service.stop()
        asterisk.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=150)
    parser.add_argument("--rate", type=float, default=5.0, help="new calls a second")
    parser.add_argument("--sipp", type=int, default=1, help="caller sipp processes")
    parser.add_argument("--key-at", type=float, default=1.5)
    parser.add_argument("--talk-s", type=float, default=10.0)
    parser.add_argument("--database", default=None, help="service database URL (SQLite file)")
    parser.add_argument("--sandbox", default=os.environ.get("PBX_BRIDGE_E2E_SANDBOX", "load"))
    parser.add_argument("--rtp-ports", type=int, default=RTP_PORTS,
                        help="Asterisk's RTP block (4 a connected call)")
    parser.add_argument("--py-spy", type=Path, default=None, help="speedscope profile out")
    parser.add_argument("--statements", action="store_true",
                        help="count the service's SQL statements and commits per call")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    shape = LoadShape(args.calls, args.rate, args.sipp, args.key_at, args.talk_s)
    work = Path(tempfile.mkdtemp(prefix="pbxb-load-"))
    (work / "service").mkdir()
    counter = work / "statements.json" if args.statements else None
    env = {}
    if counter is not None:
        path = os.pathsep.join(filter(None, [str(STATEMENT_COUNTER),
                                             os.environ.get("PYTHONPATH")]))
        env = {"PYTHONPATH": path, "PBXB_STATEMENTS": str(counter)}
    try:
        with sandboxed_service(
            args.sandbox, work, args.database, args.rtp_ports, env
        ) as service:
            run = asyncio.run(measure(service, shape, work / "sipp", args.py_spy, counter))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    summary = run.summary()
    if args.json:
        print(json.dumps(summary))
        return
    print(f"{run.calls} calls at {run.rate:g}/s from {run.sipp_processes} sipp process(es), "
          f"wall {run.wall_s:.0f} s, at most {run.peak_live_calls} live")
    print("  " + ", ".join(f"{k} {v}" for k, v in run.counts.items()))
    print(f"  service  {run.service_cpu_s:6.1f} CPU-s {summary['service_ms_per_call']:6.1f} ms/call"
          f"  (event loop {run.service_loop_cpu_s:.1f})"
          f"  peak RSS {run.service_peak_rss_mib:.0f} MiB")
    ast_ms = summary["asterisk_ms_per_call"]
    print(f"  asterisk {run.asterisk_cpu_s:6.1f} CPU-s {ast_ms:6.1f} ms/call"
          f"  service/asterisk {summary['service_to_asterisk']:.2f}")
    if run.statements_per_call is not None:
        per_call = run.statements_per_call
        skip = ("COMMIT", "ROLLBACK", "sqlite thread trips")
        total = sum(v for k, v in per_call.items() if k not in skip)
        print(f"  SQL per call: {total:.1f} statements, {per_call.get('COMMIT', 0):.1f} commits,"
              f" {per_call.get('ROLLBACK', 0):.1f} rollbacks,"
              f" {per_call.get('sqlite thread trips', 0):.1f} trips to aiosqlite's thread")
        for kind, value in per_call.items():
            print(f"    {value:6.2f}  {kind}")
    if args.keep:
        print(f"  work folder kept: {work}")


if __name__ == "__main__":
    main()
