"""Call capacity: the consent flow in pure dialplan against pbx-bridge, side by side.

One sandboxed Asterisk, one `pbx-bridge run`, the same sipp caller and agent scenarios.
For each rate of the ladder, first the **baseline** (the same consent flow written in
dialplan: Answer, Read with barge-in on the same disclosure, Playback of the same
confirmation, MixMonitor, Dial) and then **pbx-bridge** take ``rate x duration`` calls.
Each caller presses 1 at ``--key-at`` s after answer, hears the confirmation, is
connected to an agent, talks ``--talk-s`` s and hangs up; agents answer at once.

    bench/run capacity [--rates 4,6,8,10,12] [--duration 20] [--quick] [--per-sipp 2]
                       [--database URL] [--json FILE] [--keep]

The load is spread over several sipp processes (``--per-sipp`` calls/s each, at least one
per agent), each with its own ports, so sipp itself is not what fails. Judged per phase:
attempted (calls sipp placed), completed (sipp's scenario ran to its BYE), handled
correctly (baseline: a MixMonitor recording of the conversation; pbx-bridge: through
`pbx-bridge calls list --json`, answered with consent granted and both the conversation
and the evidence clip stored), CPU seconds of Asterisk and of the service (utime+stime,
/proc) from the first INVITE until every recording is stored, the service's peak RSS,
the most calls live at once, keypress-to-action latency (bench/call_observer.py), and
the ARI refusals Asterisk logged (``HTTP session count exceeded``). A rate is clean for a
flow when every attempted call was handled correctly. Goals are reported, not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from call_observer import CallObserver
from common import REPO, bench_database, children_cpu_seconds
from e2e_harness import ServiceHarness
from service_histograms import scrape, summary

from pbx_bridge.config import LegalBasis, PromptSettings
from pbx_bridge.disclosure import DisclosureFacts, disclosure
from pbx_bridge.prompt_builder import build_prompts
from pbx_bridge.sandbox import AsteriskSandbox, SandboxPorts, ensure_root, free_port, sipp
from pbx_bridge.sandbox.instance import AGENTS

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
LANGUAGE = "tr"
PROMPT_TIMEOUT_S = 3
RING_TIMEOUT_S = 8
BASELINE_CONTEXT = "bench-dialplan-consent"
BASELINE_FOLDER = "bench-baseline"  # under Asterisk's spool/monitor
SERVICE_DIDS = {ext: f"21255501{ext[1:]}" for ext in AGENTS}  # 2125550100 -> 100 ...
BASELINE_DIDS = {ext: f"21255591{ext[1:]}" for ext in AGENTS}
CALLER = "05321234567"
REFUSAL = "HTTP session count exceeded"
# Each call holds two channels with an RTP and an RTCP port each; room for ~500 calls.
RTP_PORTS = 2000
SLIN_BYTES_PER_S = 16000  # MixMonitor's .wav: 8 kHz, 16-bit mono

GOAL_CLEAN_RATE_RATIO = 0.95
GOAL_CPU_RATIO = 0.5
GOAL_RSS_MIB = 150.0
GOAL_RSS_LIVE = 200
GOAL_KEY_P95_MS = 150.0
DONE_RATE = 12.0
DONE_RATIO = 0.95


def baseline_dialplan() -> str:
    """The consent flow in dialplan, reached by its own DIDs from the same trunk context.

    Exact DIDs in ``[pbx-bridge-inbound]`` win over the shipped ``_X.`` that goes to
    Stasis, so both flows share the trunk, its endpoint and the prompts.
    """
    prompts = f"pbx-bridge/{LANGUAGE}"
    # The same composed disclosure (consent, 60 days), with a reference of the same length.
    spoken = "&".join(f"{prompts}/{name}" for name in disclosure(
        DisclosureFacts(LegalBasis.CONSENT, 60, "0" * 9)))
    lines = ["[pbx-bridge-inbound]"]
    lines += [f"exten => {did},1,Goto({BASELINE_CONTEXT},{ext},1)"
              for ext, did in BASELINE_DIDS.items()]
    lines += [
        "",
        f"[{BASELINE_CONTEXT}]",
        "exten => _1XX,1,Answer()",
        # One digit ends Read at once; a key during the prompt stops it (barge-in).
        f" same => n,Read(CHOICE,{spoken},1,,1,{PROMPT_TIMEOUT_S})",
        ' same => n,GotoIf($["${CHOICE}" = "1"]?consent)',
        # 2 or silence: connected, not recorded (as pbx-bridge does under consent).
        f" same => n,Dial(PJSIP/${{EXTEN}},{RING_TIMEOUT_S})",
        " same => n,Hangup()",
        f" same => n(consent),Playback({prompts}/confirm-granted)",
        f" same => n,MixMonitor({BASELINE_FOLDER}/${{UNIQUEID}}.wav)",
        f" same => n,Dial(PJSIP/${{EXTEN}},{RING_TIMEOUT_S})",
        " same => n,Hangup()",
        "",
    ]
    return "\n".join(lines)


# -- processes ------------------------------------------------------------------------------


def process_cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads, also those that ended), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def status_mib(pid: int, name: str) -> float:
    """``VmRSS`` / ``VmHWM`` of ``pid`` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


# -- one phase ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    rate: float
    duration_s: float
    per_sipp: float
    key_at_s: float
    talk_s: float
    confirm_s: float  # the confirmation prompt's length, from the prompt build

    @property
    def hold_s(self) -> float:
        """The caller's time from answer to BYE: disclosure until the key, the
        confirmation, a second to ring the agent, then the conversation."""
        return self.key_at_s + self.confirm_s + 1.0 + self.talk_s

    @property
    def processes(self) -> int:
        return max(len(AGENTS), math.ceil(self.rate / self.per_sipp))

    def calls_per_process(self) -> list[int]:
        total = round(self.rate * self.duration_s)
        n = self.processes
        return [total // n + (i < total % n) for i in range(n)]


@dataclass
class PhaseResult:
    flow: str
    rate: float
    attempted: int
    completed: int
    correct: int
    asterisk_cpu_s: float
    service_cpu_s: float
    service_peak_rss_mib: float
    wall_s: float
    refusals: int
    sipp_processes: int
    agent_answered: int
    sipp_cpu_s: float  # all sipp processes of the phase: the load's own cost
    load_avg: float  # the machine's 1-minute load average as the phase began
    seen: dict[str, Any] = field(default_factory=dict)
    detail: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return self.attempted - self.correct

    @property
    def clean(self) -> bool:
        return self.attempted > 0 and self.failed == 0

    def per_call_ms(self, cpu_s: float) -> float:
        return cpu_s / max(self.attempted, 1) * 1000

    def as_dict(self) -> dict[str, Any]:
        return {
            **{k: v for k, v in self.__dict__.items()},
            "failed": self.failed,
            "clean": self.clean,
            "asterisk_ms_per_call": round(self.per_call_ms(self.asterisk_cpu_s), 1),
            "service_ms_per_call": round(self.per_call_ms(self.service_cpu_s), 1),
        }


class Bench:
    """The sandbox, the service and the observer, shared by every phase of one run."""

    def __init__(
        self, asterisk: AsteriskSandbox, service: ServiceHarness, observer: CallObserver,
        logs: Path, metrics_url: str | None,
    ) -> None:
        self.metrics_url = metrics_url
        self.asterisk = asterisk
        self.service = service
        self.observer = observer
        self.logs = logs
        self._live_sipp: list[sipp.SippProcess] = []

    @property
    def baseline_dir(self) -> Path:
        return self.asterisk.instance_dir / "spool" / "monitor" / BASELINE_FOLDER

    async def run(self, flow: str, shape: Shape) -> PhaseResult:
        dids = BASELINE_DIDS if flow == "baseline" else SERVICE_DIDS
        shutil.rmtree(self.baseline_dir, ignore_errors=True)
        log_offset = self.asterisk.log_path.stat().st_size
        since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        asterisk_pid, service_pid = self.asterisk.pid, self.service.pid
        assert asterisk_pid is not None
        self.observer.reset()
        logs = self.logs / f"{flow}-{shape.rate:g}"
        per_process = shape.calls_per_process()
        agents = [
            await sipp.start_agent(
                self.asterisk.agent_ports[ext], "answer", max_wait_s=shape.hold_s + 60,
                log_base=logs, calls=sum(per_process),
            )
            for ext in AGENTS
        ]
        self._live_sipp += agents
        peak_rss = [status_mib(service_pid, "VmRSS")]
        sampling = asyncio.create_task(_sample_rss(service_pid, peak_rss))
        load_avg = os.getloadavg()[0]
        histograms0 = await scrape(self.metrics_url)
        t0 = time.monotonic()
        cpu0 = process_cpu_s(asterisk_pid), process_cpu_s(service_pid)
        children0 = children_cpu_seconds()
        callers = []
        for index, calls in enumerate(per_process):
            ext = AGENTS[index % len(AGENTS)]
            callers.append(await sipp.start_caller(
                self.asterisk.sip_address, dids[ext], CALLER,
                dtmf=[(shape.key_at_s, "1")], hangup_after_s=shape.hold_s, log_base=logs,
                load=sipp.Load(calls=calls, rate=shape.rate / shape.processes),
            ))
            self._live_sipp.append(callers[-1])
            await asyncio.sleep(1.0 / shape.rate)  # interleave the processes' calls
        limit = shape.duration_s + shape.hold_s + 90
        results = [await caller.wait(timeout_s=limit) for caller in callers]
        await self._drained(60.0)
        answered = 0
        for agent in agents:
            answered += (await agent.stop()).answered_calls
        self._live_sipp.clear()
        # Every sipp of the phase has exited and been reaped, and nothing else ran yet.
        sipp_cpu = children_cpu_seconds() - children0
        if flow == "baseline":
            correct, detail = await self._judge_baseline(shape)
        else:
            correct, detail = await self._judge_service(since, sum(per_process))
            unseen = sum(per_process) - detail["calls_seen"]
            if unseen > 0:
                detail["not: never reached the service"] = unseen
        cpu1 = process_cpu_s(asterisk_pid), process_cpu_s(service_pid)
        wall = time.monotonic() - t0
        seen = self.observer.phase.summary()
        if flow == "pbx-bridge":
            seen.update(summary((await scrape(self.metrics_url)).minus(histograms0)))
        sampling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampling
        return PhaseResult(
            flow=flow, rate=shape.rate, attempted=sum(per_process),
            completed=sum(_completed(r.log_dir) for r in results),
            correct=correct,
            asterisk_cpu_s=round(cpu1[0] - cpu0[0], 2),
            service_cpu_s=round(cpu1[1] - cpu0[1], 2),
            service_peak_rss_mib=round(max(peak_rss), 1),
            wall_s=round(wall, 1),
            refusals=_count_in_log(self.asterisk.log_path, log_offset, REFUSAL),
            sipp_processes=len(callers), agent_answered=answered,
            sipp_cpu_s=round(sipp_cpu, 2), load_avg=round(load_avg, 1),
            seen=seen, detail=detail,
        )

    async def stop_sipp(self) -> None:
        for process in self._live_sipp:
            with contextlib.suppress(ProcessLookupError, OSError):
                await process.stop()
        self._live_sipp.clear()

    async def _drained(self, timeout_s: float) -> None:
        """Until Asterisk has no caller channel left (or ``timeout_s``)."""
        await self.observer.wait_idle(timeout_s)

    async def _judge_baseline(self, shape: Shape) -> tuple[int, dict[str, int]]:
        """Recordings of a conversation: MixMonitor ran from the consent to the hang-up
        (at least half the talk time is in the file)."""
        await asyncio.sleep(1.0)  # MixMonitor closes its file just after the hang-up
        least = 44 + SLIN_BYTES_PER_S * shape.talk_s / 2
        files = await asyncio.to_thread(lambda: list(self.baseline_dir.glob("*.wav")))
        correct = sum(f.stat().st_size >= least for f in files)
        return correct, {"recordings": len(files), "not: recording too short": len(files) - correct}

    async def _judge_service(self, since: str, expected: int) -> tuple[int, dict[str, int]]:
        """What an admin sees in `calls list --json`, once every recording is settled."""
        deadline = time.monotonic() + max(120.0, expected * 0.5)
        calls: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            calls = await asyncio.to_thread(self._calls_since, since)
            if all(_settled(c) for c in calls) and len(calls) >= expected:
                break
            if calls and all(_settled(c) for c in calls):
                await asyncio.sleep(2.0)  # a call that never reached the service stays away
                again = await asyncio.to_thread(self._calls_since, since)
                if len(again) == len(calls) and all(_settled(c) for c in again):
                    break
            await asyncio.sleep(1.0)
        return tally(calls)

    def _calls_since(self, since: str) -> list[dict[str, Any]]:
        """Every call since ``since``, a page (at most 1,000) at a time, as an admin pages."""
        calls: list[dict[str, Any]] = []
        cursor: list[str] = []
        while True:
            done = self.service.cli(
                "calls", "list", "--json", "--since", since, "--limit", "1000", *cursor
            )
            calls.extend(json.loads(done.stdout))
            more = re.search(r"next page: --cursor (\S+)", done.stderr)
            if more is None:
                return calls
            cursor = ["--cursor", more.group(1)]


def _settled(call: dict[str, Any]) -> bool:
    return call["ended_at"] is not None and all(
        r["status"] in ("stored", "failed") for r in call["recordings"]
    )


def tally(calls: list[dict[str, Any]]) -> tuple[int, dict[str, int]]:
    """Calls handled correctly: answered, consent granted, conversation and evidence stored;
    for the others, the first thing that went wrong (``not: ...``), counted."""
    detail = {"calls_seen": len(calls), "answered": 0, "consented": 0}
    correct = 0
    for call in calls:
        decision = (call["consent"] or {}).get("decision")
        detail["answered"] += call["disposition"] == "answered"
        detail["consented"] += decision == "granted"
        why = _what_went_wrong(call, decision)
        if why is None:
            correct += 1
        else:
            detail[f"not: {why}"] = detail.get(f"not: {why}", 0) + 1
    detail["recorded_with_consent"] = correct
    return correct, detail


def _what_went_wrong(call: dict[str, Any], decision: str | None) -> str | None:
    if decision != "granted":
        return f"consent {decision or 'none'}"
    if call["disposition"] != "answered":
        return f"disposition {call['disposition']}"
    for kind in ("conversation", "evidence"):
        statuses = [r["status"] for r in call["recordings"] if r["kind"] == kind]
        if "stored" not in statuses:
            return f"{kind} {'/'.join(statuses) or 'missing'}"
    return None


def _completed(log_dir: Path) -> int:
    """Calls whose scenario reached its end (our BYE answered, or the far end's BYE)."""
    log = log_dir / "actions.log"
    if not log.exists():
        return 0
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    return sum(line.startswith("HANGUP_BY=") for line in lines)


def _count_in_log(path: Path, offset: int, needle: str) -> int:
    with path.open("rb") as log:
        log.seek(offset)
        return log.read().decode("utf-8", "replace").count(needle)


async def _sample_rss(pid: int, peak: list[float]) -> None:
    while True:
        with contextlib.suppress(OSError):
            peak.append(status_mib(pid, "VmRSS"))
        await asyncio.sleep(0.5)


# -- set-up ---------------------------------------------------------------------------------


@contextlib.contextmanager
def sandboxed(
    name: str, work: Path, database_url: str, metrics_port: int
) -> Iterator[tuple[AsteriskSandbox, ServiceHarness]]:
    """Built prompts, an Asterisk with the baseline dialplan and room for many calls, and
    a migrated `pbx-bridge run` (INFO log and /metrics, as in production) with one route
    per agent."""
    prompts = work / "prompts"
    asyncio.run(build_prompts(PromptSettings(dir=REPO / "prompts"), prompts))
    root = ensure_root()
    asterisk = AsteriskSandbox(
        name=name, ports=SandboxPorts.pick_free(root, rtp_ports=RTP_PORTS, name=name),
        prompts_dir=prompts, root=root, extra_dialplan=baseline_dialplan(),
    )
    (work / "service").mkdir()
    service = ServiceHarness(
        asterisk, work / "service", prompts, database_url=database_url, log_level="INFO",
        extra_config=f'[metrics]\nlisten = "127.0.0.1:{metrics_port}"\n',
    )
    try:
        asterisk.start()
        # Verbose dialplan tracing would cost the baseline more than pbx-bridge; warnings
        # (and the session refusals counted here) are still logged.
        asterisk.cli("core set verbose 0")
        service.cli("db", "upgrade")
        for ext, did in SERVICE_DIDS.items():
            service.cli("ext", "set", ext, "--recording", "always")
            service.cli("route", "set", did, "--target", ext, "--legal-basis", "consent",
                        "--language", LANGUAGE, "--prompt-timeout", str(PROMPT_TIMEOUT_S))
        service.start()
        yield asterisk, service
    finally:
        service.stop()
        asterisk.stop()


def confirm_seconds(prompts: Path) -> float:
    manifest = json.loads((prompts / "manifest.json").read_text(encoding="utf-8"))
    return float(manifest["prompts"][f"{LANGUAGE}/confirm-granted"]["duration_s"])


async def ladder(
    asterisk: AsteriskSandbox, service: ServiceHarness, args: argparse.Namespace,
    confirm_s: float, logs: Path, metrics_url: str,
) -> list[PhaseResult]:
    results: list[PhaseResult] = []
    async with CallObserver(asterisk.ari_url, asterisk.ari_username,
                            asterisk.ari_password, enabled=args.observer) as observer:
        bench = Bench(asterisk, service, observer, logs, metrics_url)
        try:
            for rate in args.rates:
                shape = Shape(rate, args.duration, args.per_sipp, args.key_at, args.talk_s,
                              confirm_s)
                for flow in ("baseline", "pbx-bridge"):
                    print(f"  {flow:<10} {rate:g} calls/s for {args.duration:g} s "
                          f"({shape.processes} sipp callers) ...", flush=True)
                    result = await bench.run(flow, shape)
                    results.append(result)
                    print("    " + _line(result), flush=True)
                    if not service.running():
                        raise RuntimeError(f"the service exited:\n{service.log_tail()}")
        finally:
            await bench.stop_sipp()
    return results


# -- report ---------------------------------------------------------------------------------


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:g}{unit}" if math.isfinite(value) else "beyond the last bucket"


def _line(r: PhaseResult) -> str:
    return (f"{r.correct}/{r.attempted} correct, {r.completed} completed, "
            f"Asterisk {r.asterisk_cpu_s:.1f} CPU-s, service {r.service_cpu_s:.1f} CPU-s, "
            f"RSS {r.service_peak_rss_mib:.0f} MiB, live {r.seen['peak_live_calls']}, "
            f"key p50/p95 {_fmt(r.seen['key_to_action_p50_ms'])}/"
            f"{_fmt(r.seen['key_to_action_p95_ms'])} ms, refusals {r.refusals}, "
            f"sipp {r.sipp_cpu_s:.1f} CPU-s, load avg {r.load_avg:g}"
            + "".join(f"; {k} {v}" for k, v in r.detail.items() if k.startswith("not:") and v)
            + (f"; keys before prompt {r.seen['keys_before_prompt']}"
               if r.seen["keys_before_prompt"] else "")
            + f"; answer→prompt p50/p95 {_disclosure(r)} ms"
            + (f"; key{_service_keys(r)} ms" if r.seen.get("service_keypress_count") else ""))


def table(results: list[PhaseResult]) -> str:
    head = ("| rate/s | flow | attempted | completed | correct | Asterisk CPU-s (ms/call) | "
            "service CPU-s (ms/call) | svc/Ast | peak RSS MiB | peak live | key→action "
            "p50/p95 ms | answer→prompt p50/p95 ms | refusals | sipp CPU-s | load avg |")
    rows = [head, "|" + " --- |" * 15]
    for r in results:
        ratio = (f"{r.service_cpu_s / r.asterisk_cpu_s:.2f}"
                 if r.flow == "pbx-bridge" and r.asterisk_cpu_s else "")
        service = (f"{r.service_cpu_s:.1f} ({r.per_call_ms(r.service_cpu_s):.0f})"
                   if r.flow == "pbx-bridge" else f"({r.service_cpu_s:.1f} idle)")
        rss = f"{r.service_peak_rss_mib:.0f}" if r.flow == "pbx-bridge" else ""
        rows.append(
            f"| {r.rate:g} | {r.flow} | {r.attempted} | {r.completed} | {r.correct} | "
            f"{r.asterisk_cpu_s:.1f} ({r.per_call_ms(r.asterisk_cpu_s):.0f}) | {service} | "
            f"{ratio} | {rss} | {r.seen['peak_live_calls']} | "
            f"{_fmt(r.seen['key_to_action_p50_ms'])}/{_fmt(r.seen['key_to_action_p95_ms'])}"
            f"{_service_keys(r)} | {_disclosure(r)} | "
            f"{r.refusals} | {r.sipp_cpu_s:.1f} | {r.load_avg:g} |"
        )
    return "\n".join(rows)


def _service_keys(r: PhaseResult) -> str:
    p95 = r.seen.get("service_keypress_p95_le_ms")
    if p95 is None:
        return ""
    return f" (service: p95 {'≤ ' + _fmt(p95) if math.isfinite(p95) else '> 2500'})"


def _disclosure(r: PhaseResult) -> str:
    """Asterisk's view (observer), then the service's histogram where it has one."""
    p50, p95 = r.seen.get("answer_to_prompt_p50_ms"), r.seen.get("answer_to_prompt_p95_ms")
    text = f"{_fmt(p50)}/{_fmt(p95)}"
    s50, s95 = (r.seen.get(f"answer_to_disclosure_p{q}_le_ms") for q in (50, 95))
    return text if s50 is None else f"{text} (service: ≤ {_fmt(s50)}/≤ {_fmt(s95)})"


def verdict(results: list[PhaseResult]) -> dict[str, Any]:
    """Highest clean rates, their ratio, the goals and the done-when line, with numbers."""
    def of(flow: str) -> list[PhaseResult]:
        return [r for r in results if r.flow == flow]

    def highest_clean(flow: str) -> float | None:
        clean = [r.rate for r in of(flow) if r.clean]
        return max(clean) if clean else None

    base, ours = highest_clean("baseline"), highest_clean("pbx-bridge")
    out: dict[str, Any] = {"baseline_highest_clean": base, "pbx_bridge_highest_clean": ours}
    lines = [f"highest clean rate: baseline {_fmt(base, '/s')}, pbx-bridge {_fmt(ours, '/s')}"]
    ratio = ours / base if base and ours else None
    out["clean_rate_ratio"] = ratio
    top = max((r.rate for r in results), default=None)
    ceiling = (" (the baseline was clean at the ladder's top: its limit is higher)"
               if base == top else "")
    lines.append(_goal(f"clean-rate ratio ≥ {GOAL_CLEAN_RATE_RATIO}",
                       ratio is not None and ratio >= GOAL_CLEAN_RATE_RATIO,
                       f"{_fmt(None if ratio is None else round(ratio, 2))}{ceiling}"))
    at = next((r for r in of("pbx-bridge") if r.rate == ours), None) or (
        of("pbx-bridge")[-1] if of("pbx-bridge") else None)
    if at is not None:
        cpu = at.service_cpu_s / at.asterisk_cpu_s if at.asterisk_cpu_s else None
        lines.append(_goal(
            f"service CPU per call ≤ {GOAL_CPU_RATIO} x Asterisk's",
            cpu is not None and cpu <= GOAL_CPU_RATIO,
            f"{at.per_call_ms(at.service_cpu_s):.0f} ms vs {at.per_call_ms(at.asterisk_cpu_s):.0f}"
            f" ms = {_fmt(None if cpu is None else round(cpu, 2))}x at {at.rate:g}/s"))
        p95 = at.seen["key_to_action_p95_ms"]
        lines.append(_goal(f"keypress-to-action p95 < {GOAL_KEY_P95_MS:g} ms",
                           p95 is not None and p95 < GOAL_KEY_P95_MS,
                           f"{_fmt(p95, ' ms')} at {at.rate:g}/s"))
    busiest = max(of("pbx-bridge"), key=lambda r: r.seen["peak_live_calls"], default=None)
    if busiest is not None:
        live = busiest.seen["peak_live_calls"]
        rss_ok = busiest.service_peak_rss_mib < GOAL_RSS_MIB
        note = "" if live >= GOAL_RSS_LIVE else f" (only {live} live: not reached)"
        lines.append(_goal(f"RSS < {GOAL_RSS_MIB:g} MiB at {GOAL_RSS_LIVE} live calls",
                           rss_ok and live >= GOAL_RSS_LIVE,
                           f"{busiest.service_peak_rss_mib:.0f} MiB at {live} live{note}"))
    done_base = next((r for r in of("baseline") if r.rate == DONE_RATE), None)
    done_ours = next((r for r in of("pbx-bridge") if r.rate == DONE_RATE), None)
    if done_base and done_ours:
        share = done_ours.correct / done_base.correct if done_base.correct else None
        out["done_when"] = {"refusals": done_ours.refusals, "recorded_share": share}
        lines.append(_goal(
            f"at {DONE_RATE:g}/s: no ARI refusal and ≥ {DONE_RATIO:.0%} as many recorded "
            "with consent as the dialplan",
            done_ours.refusals == 0 and share is not None and share >= DONE_RATIO,
            f"{done_ours.refusals} refusals, {done_ours.correct} vs {done_base.correct} "
            f"recorded = {_fmt(None if share is None else round(share, 3))}"))
    else:
        lines.append(f"done-when at {DONE_RATE:g}/s: not in this ladder")
    out["lines"] = lines
    return out


def _goal(what: str, met: bool, measured: str) -> str:
    return f"{'MET    ' if met else 'NOT MET'} {what}: {measured}"


# -- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="4,6,8,10,12",
                        help="calls per second, comma-separated (default 4,6,8,10,12)")
    parser.add_argument("--duration", type=float, default=20.0,
                        help="seconds of new calls per rate and flow (default 20)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 4 and 12 calls/s for 6 s each (about 3 minutes)")
    parser.add_argument("--per-sipp", type=float, default=2.0,
                        help="calls per second per sipp caller process (default 2)")
    parser.add_argument("--key-at", type=float, default=1.5)
    parser.add_argument("--talk-s", type=float, default=10.0)
    parser.add_argument("--database", default="sqlite",
                        help="a postgresql+asyncpg:// server URL (a throw-away database), "
                             "else SQLite in the work folder")
    parser.add_argument("--sandbox",
                        default=os.environ.get("PBX_BRIDGE_E2E_SANDBOX", "bench") + "-capacity")
    parser.add_argument("--no-observer", dest="observer", action="store_false",
                        help="no passive ARI subscriber (what it costs Asterisk): no "
                             "latencies and no live-call count")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rates, args.duration = "4,12", 6.0
    try:
        args.rates = [float(r) for r in args.rates.split(",") if r.strip()]
    except ValueError:
        parser.error(f"--rates must be numbers separated by commas, got {args.rates!r}")
    if not args.rates or min(args.rates) <= 0 or args.duration <= 0 or args.per_sipp <= 0:
        parser.error("--rates, --duration and --per-sipp must be positive")
    return args


def runtime_bound_s(args: argparse.Namespace, confirm_s: float) -> float:
    """Every phase's calls, their drain and settling, with room; then the run is stopped."""
    hold = args.key_at + confirm_s + 1.0 + args.talk_s
    per_phase = args.duration + hold + 90 + 60 + max(120.0, max(args.rates) * args.duration)
    return 2 * len(args.rates) * per_phase + 120


async def _bounded(coro: Any, seconds: float) -> Any:
    async with asyncio.timeout(seconds):
        return await coro


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="pbxb-capacity-"))
    started = datetime.now(UTC)
    metrics_port = free_port(socket.SOCK_STREAM)
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    try:
        with bench_database(args.database, work) as (url, kind), \
                sandboxed(args.sandbox, work, url, metrics_port) as (asterisk, service):
            confirm_s = confirm_seconds(work / "prompts")
            print(f"capacity: rates {', '.join(f'{r:g}' for r in args.rates)} calls/s, "
                  f"{args.duration:g} s each, database {kind}, "
                  f"{os.cpu_count()} CPUs, started {started:%Y-%m-%d %H:%M} UTC", flush=True)
            results = asyncio.run(_bounded(
                ladder(asterisk, service, args, confirm_s, work / "sipp", metrics_url),
                runtime_bound_s(args, confirm_s),
            ))
    finally:
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(table(results))
    summary = verdict(results)
    print()
    for line in summary["lines"]:
        print(line)
    if args.json is not None:
        args.json.write_text(json.dumps({
            "started": started.isoformat(), "rates": args.rates, "duration_s": args.duration,
            "results": [r.as_dict() for r in results], "verdict": summary,
        }, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
