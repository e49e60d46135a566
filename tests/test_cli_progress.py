"""Progress of long CLI work: what a terminal shows, what cron's log gets, and that stdout
(``--json`` included) stays exactly what scripts parse."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import os
import pty
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from cli_support import clean_pbx_env, cli  # noqa: F401  (clean_pbx_env: autouse fixture)
from rich.console import Console

from pbx_bridge.calls.models import Call
from pbx_bridge.cli import progress as progress_module
from pbx_bridge.cli.progress import (
    INTERVAL_ENV,
    MODE_ENV,
    PlainReporter,
    duration,
    progress_for,
)
from storage.database import make_engine, make_session_factory
from storage.models import CopyStatus, Recording, RecordingCopy

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
COLOUR = re.compile(r"\x1b\[[0-9;]*(3[0-7]|9[0-7]|38;[0-9;]+)m")


class FakeClock:
    """Seconds that move only when the test says (``now``) or by ``step`` per reading."""

    def __init__(self, step: float = 0.0) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def plain(label: str, clock: FakeClock, interval_s: float = 10.0) -> tuple[PlainReporter,
                                                                          io.StringIO]:
    out = io.StringIO()
    return PlainReporter(label, out, interval_s=interval_s, clock=clock), out


def lines(out: io.StringIO) -> list[str]:
    return out.getvalue().splitlines()


def advance_at(reporter: PlainReporter, clock: FakeClock, steps: list[tuple[float, int]]) -> None:
    """At each second given, ``n`` more items done."""
    for at, n in steps:
        clock.now = at
        reporter.advance(n)


# --- plain lines (off a terminal) -----------------------------------------------------------


def test_plain_lines_give_count_rate_and_estimate_at_most_every_interval() -> None:
    clock = FakeClock()
    reporter, out = plain("purge", clock)
    reporter.start(5000)
    advance_at(reporter, clock, [(0.5, 35)])
    assert lines(out) == []  # nothing in the first second
    # At 8 s and 40 s the last line is less than 10 s old: nothing.
    advance_at(reporter, clock, [(2.0, 35), (8.0, 210), (34.3, 920), (40.0, 100), (142.9, 3700)])
    reporter.finish(True)
    assert lines(out) == [
        "purge: 70/5000 (1%), 35/s, about 2m21s left",  # the first line, as soon as it is due
        "purge: 1200/5000 (24%), 35/s, about 1m49s left",
        "purge: 5000/5000 (100%), done in 2m23s, 35/s",  # the last line, whatever the interval
    ]


def test_short_work_prints_nothing() -> None:
    clock = FakeClock()
    reporter, out = plain("storage verify", clock)
    reporter.start(3)
    advance_at(reporter, clock, [(0.9, 3)])
    reporter.finish(True)
    assert out.getvalue() == ""


def test_a_long_single_step_still_gets_its_last_line() -> None:
    clock = FakeClock()
    reporter, out = plain("dsar run DSAR-2026-0001", clock)
    clock.now = 75.0
    reporter.finish(True)
    assert lines(out) == ["dsar run DSAR-2026-0001: done in 1m15s"]


def test_unknown_total_counts_and_times_without_an_estimate() -> None:
    clock = FakeClock()
    reporter, out = plain("dsar reindex", clock, interval_s=5.0)
    reporter.start(None)
    advance_at(reporter, clock, [(float(second), 150) for second in range(1, 21)])
    reporter.finish(True)
    assert lines(out) == [
        "dsar reindex: 150 so far, 150/s, 1s",
        "dsar reindex: 900 so far, 150/s, 6s",
        "dsar reindex: 1650 so far, 150/s, 11s",
        "dsar reindex: 2400 so far, 150/s, 16s",
        "dsar reindex: 3000, done in 20s, 150/s",
    ]


def test_slow_items_are_timed_each_and_phases_always_get_a_line() -> None:
    clock = FakeClock()
    reporter, out = plain("prompts build", clock)
    reporter.start(10)
    advance_at(reporter, clock, [(6.0, 3)])
    assert lines(out) == ["prompts build: 3/10 (30%), 2.0s each, about 14s left"]

    clock = FakeClock()
    reporter, out = plain("sandbox root", clock)
    reporter.start(None)
    reporter.phase("running apt-get update")  # at 0 s: held until the work proves long
    for at, phase in ((3.0, "downloading packages with apt"),
                      (3.5, "downloading packages with apt"),
                      (4.0, "extracting archives"), (9.0, "installing essential packages")):
        clock.now = at
        reporter.phase(phase)
    reporter.finish(False)
    assert lines(out) == [
        "sandbox root: downloading packages with apt, 3s",
        "sandbox root: extracting archives, 4s",
        "sandbox root: installing essential packages, 9s",
        "sandbox root: stopped at installing essential packages after 9s",
    ]


def test_durations_read_like_a_person_writes_them() -> None:
    assert [duration(s) for s in (0, 45.4, 110, 3599, 7500)] == [
        "0s", "45s", "1m50s", "59m59s", "2h05m"
    ]


# --- choosing: a terminal gets rich, everything else plain lines ---------------------------


def run_three(console: Console, stream: io.StringIO) -> None:
    with progress_for("purge", console=console, stream=stream, show_after_s=0) as progress:
        progress.start(300)
        for _ in range(3):
            progress.advance(100)


def test_a_terminal_gets_a_rich_bar_with_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODE_ENV, "auto")
    screen, stream = io.StringIO(), io.StringIO()
    run_three(Console(file=screen, force_terminal=True, width=100, _environ={}), stream)
    shown = screen.getvalue()
    assert "purge" in shown and "300/300" in shown and "━" in shown
    assert COLOUR.search(shown) is not None
    assert stream.getvalue() == ""


def test_no_color_keeps_the_bar_without_colours(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODE_ENV, "auto")
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100, _environ={"NO_COLOR": "1"})
    run_three(console, io.StringIO())
    assert "300/300" in screen.getvalue() and COLOUR.search(screen.getvalue()) is None


@pytest.mark.parametrize(
    ("mode", "console_env", "terminal"),
    [
        ("auto", {}, False),  # a pipe, a file, cron's mail
        ("auto", {"TERM": "dumb"}, True),  # a terminal that cannot redraw a line
        ("plain", {}, True),  # asked for
    ],
)
def test_everything_else_gets_plain_lines(
    monkeypatch: pytest.MonkeyPatch, mode: str, console_env: dict[str, str], terminal: bool
) -> None:
    monkeypatch.setenv(MODE_ENV, mode)
    screen, stream = io.StringIO(), io.StringIO()
    console = Console(file=screen, force_terminal=terminal, width=100, _environ=console_env)
    run_three(console, stream)
    assert screen.getvalue() == ""
    assert stream.getvalue().splitlines()[-1].startswith("purge: 300/300 (100%), done in")


def test_off_shows_nothing_and_bad_settings_are_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(MODE_ENV, "off")
    screen, stream = io.StringIO(), io.StringIO()
    run_three(Console(file=screen, force_terminal=True, _environ={}), stream)
    assert screen.getvalue() == stream.getvalue() == ""

    for env, value, named in ((MODE_ENV, "bars", "auto, plain, off"),
                              (INTERVAL_ENV, "soon", "seconds")):
        monkeypatch.setenv(MODE_ENV, "plain")
        monkeypatch.setenv(env, value)
        with pytest.raises(typer.Exit) as exit_info:
            run_three(Console(file=io.StringIO()), io.StringIO())
        assert exit_info.value.exit_code == 2
        error = capsys.readouterr().err
        assert error.startswith(f"error: {env}={value!r}") and named in error
        monkeypatch.delenv(env)


def test_a_real_terminal_on_stderr_gets_the_bar_and_stdout_stays_clean() -> None:
    """Through a pty, as an admin's shell runs it: rich decides by stderr's isatty."""
    script = (
        "from pbx_bridge.cli.progress import progress_for\n"
        "with progress_for('storage verify', show_after_s=0) as p:\n"
        "    p.start(40)\n"
        "    for _ in range(4):\n"
        "        p.advance(10)\n"
        "print('40 copies checked')\n"
    )
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
    env.update(TERM="xterm-256color", COLUMNS="100")
    env.pop("NO_COLOR", None)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                               stderr=follower, env=env)
    os.close(follower)
    stdout, _ = process.communicate(timeout=60)
    screen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        screen += chunk
    os.close(leader)
    assert process.returncode == 0
    assert stdout == b"40 copies checked\n"
    text = screen.decode("utf-8", "replace")
    assert "storage verify" in text and "40/40" in text and "━" in text
    assert "\x1b[" in text  # drawn, not printed as lines


# --- the commands ----------------------------------------------------------------------------


@pytest.fixture
def progress_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain lines on every tick, on a clock that moves half a second per reading."""
    monkeypatch.setenv(MODE_ENV, "auto")
    monkeypatch.setenv(INTERVAL_ENV, "0")
    monkeypatch.setattr(progress_module, "monotonic", FakeClock(step=0.5))


def db_url(config: Path) -> str:
    return f"sqlite+aiosqlite:///{config.parent}/var/pbx-bridge.db"


def in_db(config: Path, rows: list[object]) -> None:
    async def run() -> None:
        engine = make_engine(db_url(config))
        try:
            async with make_session_factory(engine)() as session:
                session.add_all(rows)
                await session.commit()
        finally:
            await engine.dispose()

    asyncio.run(run())


@pytest.fixture
def config(tmp_path: Path) -> Path:
    key = tmp_path / "subject.key"
    key.write_text(base64.b64encode(bytes(range(32))).decode() + "\n")
    key.chmod(0o600)
    path = tmp_path / "pbx-bridge.toml"
    path.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/var/pbx-bridge.db"\n'
        f'[storage]\nspool_dir = "{tmp_path}/spool"\n'
        f'[storage.local]\npath = "{tmp_path}/recordings"\n'
        f'[privacy]\nsubject_key_file = "{key}"\n'
    )
    assert cli(path, "db", "upgrade").exit_code == 0
    return path


def call(n: int, caller: str = "+905321234567") -> Call:
    return Call(
        id=f"00000000-0000-0000-0000-{n:012d}", linkedid=str(n), channel_id=f"c{n}",
        direction="inbound", caller=caller, did="2125550100", extension="100",
        announcement="before-connect", legal_basis="consent", retention_class="default",
        language="tr", started_at=T0, ended_at=T0 + timedelta(minutes=2),
    )


def seed_expired_recordings(config: Path, count: int) -> None:
    """``count`` stored recordings long past retention, each with its file on ``local``."""
    audio = b"RIFF" + bytes(60)
    digest = hashlib.sha256(audio).hexdigest()
    rows: list[object] = [call(0)]
    for n in range(count):
        rid = f"aaaaaaaa-0000-0000-0000-{n:012d}"
        key = f"2026/03/01/{rid}.wav"
        path = config.parent / "recordings" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(audio)
        rows.append(Recording(
            id=rid, call_id=call(0).id, kind="conversation", status="stored",
            asterisk_name=f"pbxb-{rid}", legal_basis="consent", retention_class="default",
            retention_days=1, retain_until=T0 + timedelta(days=1), sha256=digest,
            size_bytes=len(audio), duration_s=1.0, location=f"local:{key}", started_at=T0,
        ))
        rows.append(RecordingCopy(
            recording_id=rid, backend="local", key=key, status=CopyStatus.VERIFIED.value,
            sha256=digest, size_bytes=len(audio), location=path.as_uri(), verified_at=T0,
        ))
    in_db(config, rows)


def assert_progress(stderr: str, label: str, total: int) -> None:
    shown = stderr.splitlines()
    assert len(shown) >= 2, stderr
    counted = re.compile(rf"^{re.escape(label)}: (\d+)/{total} \(\d+%\), ")
    steps = [int(m.group(1)) for m in map(counted.match, shown) if m]
    assert len(steps) == len(shown), stderr
    assert steps == sorted(steps) and steps[-1] == total
    assert shown[-1].startswith(f"{label}: {total}/{total} (100%), done in "), stderr
    estimates = [line for line in shown[:-1] if line.endswith((" left", "almost done"))]
    assert estimates, stderr  # an estimate on the way


def test_storage_verify_and_purge_show_progress_off_a_terminal_with_stdout_unchanged(
    config: Path, progress_lines: None
) -> None:
    seed_expired_recordings(config, 520)

    verify = cli(config, "storage", "verify", "--all", "--json")
    assert verify.exit_code == 0, verify.output
    report = json.loads(verify.stdout)  # stdout is the JSON and nothing else
    assert (report["checked"], report["intact"], report["clean"]) == (520, 520, True)
    assert_progress(verify.stderr, "storage verify", 520)

    purge = cli(config, "purge")
    assert purge.exit_code == 0, purge.output
    assert re.fullmatch(
        r"as of [0-9-]+ [0-9:]+ UTC: 520 deleted, 0 pending, 0 kept on legal hold\n", purge.stdout
    ), purge.stdout
    assert_progress(purge.stderr, "purge", 520)
    assert not list((config.parent / "recordings").rglob("*.wav"))


def test_dsar_reindex_shows_progress_over_both_tables(config: Path, progress_lines: None) -> None:
    in_db(config, [call(n, caller=f"0532{n:07d}") for n in range(1200)])
    result = cli(config, "dsar", "reindex", "--batch", "500")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "calls: 1200 keyed, 0 without a public number",
        "consents: 0 keyed, 0 without a public number",
    ]
    assert_progress(result.stderr, "dsar reindex", 1200)


# --- the sandbox root: mmdebstrap's phases as they happen ----------------------------------

FAKE_MMDEBSTRAP = """#!/bin/sh
for target; do :; done
echo "I: chroot architecture amd64 is equal to the host's architecture" >&2
echo "I: running apt-get update..." >&2
echo "Get:1 http://deb.example sid InRelease" >&2
echo "I: downloading packages with apt..." >&2
if [ -n "$FAIL" ]; then echo "E: apt-get download failed" >&2; exit 3; fi
mkdir -p "$target/usr/sbin" "$target/usr/share/asterisk" && touch "$target/usr/sbin/asterisk"
echo "I: success in 42.0 seconds" >&2
"""


def test_the_sandbox_root_build_reports_each_mmdebstrap_phase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pbx_bridge.sandbox.errors import SandboxRootError
    from pbx_bridge.sandbox.root import ensure_root

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mmdebstrap").write_text(FAKE_MMDEBSTRAP)
    (bin_dir / "mmdebstrap").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")

    phases: list[str] = []
    root = ensure_root(tmp_path / "cache" / "root", on_phase=phases.append)
    assert (root / "usr/sbin/asterisk").exists()
    assert phases == [
        "chroot architecture amd64 is equal to the host's architecture",
        "running apt-get update",
        "downloading packages with apt",
        "success in 42.0 seconds",
    ]

    monkeypatch.setenv("FAIL", "1")
    with pytest.raises(SandboxRootError) as failed:
        ensure_root(tmp_path / "cache" / "other", on_phase=phases.append)
    assert "exit 3" in str(failed.value) and "E: apt-get download failed" in str(failed.value)
    assert not (tmp_path / "cache" / "other").exists()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["root"]  # no half-built root
