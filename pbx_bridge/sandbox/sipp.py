"""sipp as a caller (from the carrier trunk) and as agent phones, driven from asyncio.

Each run writes its scenario, pcap and logs to one folder, so a failing
end-to-end test leaves everything needed to see what was on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pbx_bridge.sandbox import scenarios
from pbx_bridge.sandbox.audio import AGENT_TONE_HZ, CALLER_TONE_HZ
from pbx_bridge.sandbox.errors import SippError
from pbx_bridge.sandbox.ports import free_port, free_port_range
from pbx_bridge.sandbox.rtp_pcap import validate_digits, write_rtp_pcap

AgentBehaviour = Literal["answer", "busy", "no-answer"]
Dtmf = Sequence[tuple[float, str]]
# sipp binds the media port and the next ones (RTCP, video); keep clear of
# Asterisk's RTP ranges, which start at 21000.
MEDIA_PORTS = (40000, 44990)
_counter = itertools.count(1)


@dataclass(frozen=True)
class SippResult:
    """How one sipp call ended."""

    ok: bool  # the scenario ran to its end (sipp exit code 0)
    exit_code: int
    hangup_by: str | None  # "caller", "agent", "remote", "caller-cancel", "agent-busy", ...
    answered: bool
    log_dir: Path
    answered_calls: int = 0  # of a load: how many calls got their 200 OK

    @property
    def log_path(self) -> Path:
        return self.log_dir / "sipp.out"


def _sipp_binary() -> str:
    found = shutil.which("sipp")
    if found is None:
        raise SippError("sipp is not installed (apt-get install sip-tester)")
    return found


def _work_dir(base: Path | None, kind: str) -> Path:
    parent = base or Path(tempfile.gettempdir()) / "pbx-bridge-sipp"
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{kind}-{os.getpid()}-{next(_counter)}-", dir=parent))


def _media_port() -> int:
    start, _ = free_port_range(4, *MEDIA_PORTS, randomize=True)
    return start


class SippProcess:
    """A running sipp; ``wait()`` gives its :class:`SippResult`."""

    def __init__(self, process: asyncio.subprocess.Process, work_dir: Path) -> None:
        self._process = process
        self.work_dir = work_dir
        self._result: SippResult | None = None

    @property
    def pid(self) -> int:
        return self._process.pid

    async def wait(self, timeout_s: float | None = None) -> SippResult:
        if self._result is None:
            try:
                code = await asyncio.wait_for(self._process.wait(), timeout_s)
            except TimeoutError:
                await self.stop()
                code = self._process.returncode if self._process.returncode is not None else -1
            self._result = self._read_result(code)
        return self._result

    async def stop(self) -> SippResult:
        """End sipp now (SIGTERM, then SIGKILL) and report what it got done."""
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self._process.wait(), 3.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self._process.kill()
                await self._process.wait()
        if self._result is None:
            self._result = self._read_result(self._process.returncode or 0)
        return self._result

    def _read_result(self, code: int) -> SippResult:
        log = self.work_dir / "actions.log"
        text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
        hangup_by = None
        for line in text.splitlines():
            if line.startswith("HANGUP_BY="):
                hangup_by = line.split("=", 1)[1].strip()
        return SippResult(
            ok=code == 0,
            exit_code=code,
            hangup_by=hangup_by,
            answered="ANSWERED" in text,
            log_dir=self.work_dir,
            answered_calls=sum(line.strip() == "ANSWERED" for line in text.splitlines()),
        )

    async def __aenter__(self) -> SippProcess:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


@dataclass(frozen=True)
class Load:
    """Many calls from one sipp process: ``calls`` in all, ``rate`` new calls a second.

    Message traces are off: at load they cost sipp more CPU than the calls do.
    """

    calls: int
    rate: float

    def args(self) -> list[str]:
        if self.calls < 1 or self.rate <= 0:
            raise ValueError(f"a load needs calls >= 1 and a positive rate: {self}")
        # sipp's rate is calls per period (ms); a tenth of a call a second is fine enough.
        per_10s = max(1, round(self.rate * 10))
        return ["-r", str(per_10s), "-rp", "10000", "-l", str(self.calls)]


def _sipp_options(
    work_dir: Path, calls: int, trace_messages: bool, local_ip: str = "127.0.0.1"
) -> list[str]:
    options = ["-i", local_ip, "-m", str(calls), "-nostdin", "-trace_logs",
               "-log_file", str(work_dir / "actions.log")]
    if trace_messages:
        options += ["-trace_msg", "-message_file", str(work_dir / "messages.log")]
    return [*options, "-trace_err", "-error_file", str(work_dir / "errors.log")]


async def _spawn(
    work_dir: Path,
    scenario_xml: str,
    args: list[str],
    calls: int = 1,
    trace_messages: bool = True,
    local_ip: str = "127.0.0.1",
) -> SippProcess:
    scenario = work_dir / "scenario.xml"
    await asyncio.to_thread(scenario.write_text, scenario_xml, "utf-8")
    command = [
        _sipp_binary(),
        *args,
        "-sf",
        str(scenario),
        *_sipp_options(work_dir, calls, trace_messages, local_ip),
    ]
    out = await asyncio.to_thread((work_dir / "sipp.out").open, "wb")
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            cwd=work_dir,
        )
    except OSError as exc:
        raise SippError(f"could not start sipp: {exc}") from exc
    finally:
        out.close()
    return SippProcess(process, work_dir)


async def start_caller(
    sip_address: str,
    did: str,
    from_number: str,
    dtmf: Dtmf = (),
    hangup_after_s: float | None = None,
    max_wait_s: float = 60.0,
    answer_timeout_s: float = 30.0,
    cancel_after_s: float | None = None,
    tone_hz: float = CALLER_TONE_HZ,
    log_base: Path | None = None,
    load: Load | None = None,
    local_ip: str = "127.0.0.1",
) -> SippProcess:
    """Place one call from the trunk (127.0.0.1, or ``local_ip``) to ``did`` at
    ``sip_address`` (or ``load.calls`` of them at ``load.rate``, all alike).

    After 200 OK the caller sends ``tone_hz`` continuously and each DTMF digit at
    its offset (seconds after answer, RFC 4733). It hangs up after
    ``hangup_after_s`` or, when that is None, waits up to ``max_wait_s`` for
    the far end's BYE (timing out counts as a failed call). ``cancel_after_s``
    instead gives up while ringing (CANCEL) that long after the INVITE.
    """
    validate_digits(dtmf)
    work_dir = _work_dir(log_base, "caller")
    audio_s = (hangup_after_s if hangup_after_s is not None else max_wait_s) + 2.0
    pcap = work_dir / "caller.pcap"
    await asyncio.to_thread(write_rtp_pcap, pcap, tone_hz, audio_s, list(dtmf))
    xml = scenarios.caller(
        from_number, str(pcap), hangup_after_s, max_wait_s, answer_timeout_s, cancel_after_s
    )
    args = [sip_address, "-s", did, "-p", str(free_port()), "-mp", str(_media_port())]
    if load is None:
        return await _spawn(work_dir, xml, args, local_ip=local_ip)
    return await _spawn(work_dir, xml, args + load.args(), load.calls, trace_messages=False,
                        local_ip=local_ip)


async def start_agent_call(
    sip_address: str,
    number: str,
    agent: str,
    local_ip: str,
    dtmf: Dtmf = (),
    hangup_after_s: float | None = None,
    max_wait_s: float = 60.0,
    answer_timeout_s: float = 60.0,
    tone_hz: float = AGENT_TONE_HZ,
    log_base: Path | None = None,
) -> SippProcess:
    """An agent phone (extension ``agent``, placing calls from ``local_ip``: the sandbox's
    ``AGENT_ADDRESSES``) dials ``number``; otherwise as :func:`start_caller`, sending the
    agent's tone after the far end answers."""
    return await start_caller(
        sip_address, number, agent, dtmf, hangup_after_s, max_wait_s, answer_timeout_s,
        tone_hz=tone_hz, log_base=log_base, local_ip=local_ip,
    )


async def call(
    sip_address: str,
    did: str,
    from_number: str,
    dtmf: Dtmf = (),
    hangup_after_s: float | None = None,
    max_wait_s: float = 60.0,
    answer_timeout_s: float = 30.0,
    cancel_after_s: float | None = None,
    log_base: Path | None = None,
) -> SippResult:
    """:func:`start_caller` and wait for the call to end."""
    caller = await start_caller(
        sip_address,
        did,
        from_number,
        dtmf,
        hangup_after_s,
        max_wait_s,
        answer_timeout_s,
        cancel_after_s,
        log_base=log_base,
    )
    limit = answer_timeout_s + (hangup_after_s or max_wait_s) + 15.0
    return await caller.wait(timeout_s=limit)


async def start_agent(
    port: int,
    behaviour: AgentBehaviour = "answer",
    ring_s: float = 0.0,
    dtmf: Dtmf = (),
    hangup_after_s: float | None = None,
    max_wait_s: float = 120.0,
    tone_hz: float = AGENT_TONE_HZ,
    log_base: Path | None = None,
    calls: int = 1,
) -> SippProcess:
    """An agent phone listening on ``port`` (the sandbox's ``agent_ports[ext]``) for one call
    (or for ``calls`` calls, as many at once as arrive; message traces are then off).

    ``answer``: 180, ``ring_s`` later 200 OK, then ``tone_hz`` and the DTMF
    digits (e.g. ``[(2.0, "*"), (2.3, "1")]``) at offsets after answer; waits
    for BYE or hangs up after ``hangup_after_s``. ``busy``: 486.
    ``no-answer``: rings until the caller side CANCELs (up to ``max_wait_s``).
    Start it before the call is placed; it is listening once this returns.
    """
    validate_digits(dtmf)
    work_dir = _work_dir(log_base, f"agent-{port}")
    pcap: Path | None = None
    if behaviour == "answer":
        pcap = work_dir / "agent.pcap"
        audio_s = (hangup_after_s if hangup_after_s is not None else max_wait_s) + 2.0
        await asyncio.to_thread(write_rtp_pcap, pcap, tone_hz, audio_s, list(dtmf), 0x5EED0002)
    xml = scenarios.agent(
        behaviour, str(pcap) if pcap else None, ring_s, hangup_after_s, max_wait_s
    )
    args = ["-p", str(port), "-mp", str(_media_port())]
    process = await _spawn(work_dir, xml, args, calls, trace_messages=calls == 1)
    await _wait_listening(process, port)
    return process


async def _wait_listening(process: SippProcess, port: int, timeout_s: float = 5.0) -> None:
    """sipp binds its SIP port at start-up; wait until it does so no INVITE is lost."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    needle = f":{port:04X} "
    while loop.time() < deadline:
        if process._process.returncode is not None:
            raise SippError(f"sipp agent exited at once; see {process.work_dir / 'sipp.out'}")
        table = await asyncio.to_thread(Path("/proc/net/udp").read_text, "ascii")
        if any(needle in line.split()[1] + " " for line in table.splitlines()[1:]):
            return
        await asyncio.sleep(0.05)
    raise SippError(f"sipp agent did not bind UDP port {port}")
