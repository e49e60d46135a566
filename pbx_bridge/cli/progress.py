"""Progress of long CLI work: a bar on a terminal, plain periodic lines everywhere else.

An admin watching ``pbx-bridge purge`` at a terminal wants to see it move and how long it
has left; cron, systemd and CI keep logs, where a redrawn bar is noise and a line every
few seconds is what helps. Both go to stderr, so ``--json`` on stdout stays exactly what
scripts parse. Work that ends within ``SHOW_AFTER_S`` shows nothing at all: a bar that
flashes for a handful of rows, or a line in every cron mail, helps nobody.

``PBX_BRIDGE_PROGRESS`` chooses: ``auto`` (default: a bar when stderr is a terminal that
can redraw, else lines), ``plain`` (lines even on a terminal) or ``off``.
``PBX_BRIDGE_PROGRESS_INTERVAL_S`` sets the seconds between plain lines (default 10). The
first and the last line are always printed; rich honours ``NO_COLOR``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Protocol, TextIO

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from pbx_bridge.cli.errors import EXIT_USAGE, fail

MODE_ENV = "PBX_BRIDGE_PROGRESS"
INTERVAL_ENV = "PBX_BRIDGE_PROGRESS_INTERVAL_S"
MODES = ("auto", "plain", "off")
DEFAULT_INTERVAL_S = 10.0
SHOW_AFTER_S = 1.0

Clock = Callable[[], float]
# Looked up at each call, so tests can put a fake clock in for a whole CLI run.
monotonic: Clock = time.monotonic


def _clock(given: Clock | None) -> Clock:
    return given if given is not None else monotonic


class Reporter(Protocol):
    """What long work reports to (``storage.progress.Progress``, plus a phase name)."""

    def start(self, total: int | None) -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def phase(self, text: str) -> None: ...
    def finish(self, completed: bool) -> None: ...


# -- the words of a plain line (pure) ----------------------------------------------------


def duration(seconds: float) -> str:
    """``45s``, ``1m50s``, ``2h05m``: short enough for a log line, exact enough to plan."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def rate(done: int, elapsed: float) -> str | None:
    """Items a second, or seconds an item when each takes longer (a prompt, a download)."""
    if done <= 0 or elapsed <= 0:
        return None
    per_s = done / elapsed
    if per_s >= 10:
        return f"{per_s:.0f}/s"
    if per_s >= 1:
        return f"{per_s:.1f}/s"
    return f"{elapsed / done:.1f}s each"


def progress_line(
    label: str,
    done: int,
    total: int | None,
    elapsed: float,
    *,
    phase: str | None = None,
    final: bool = False,
    completed: bool = True,
) -> str:
    """``purge: 1200/5000 (24%), 35/s, about 1m50s left`` and its variants."""
    if total is not None:
        percent = 100 * done // total if total else 100
        count = f"{done}/{total} ({percent}%)"
    elif done:
        count = f"{done}" if final else f"{done} so far"
    else:
        count = ""
    parts = [count] if count else []
    if phase:
        parts.insert(0, phase)
    speed = rate(done, elapsed)
    if final:
        head = ", ".join(parts)
        if not completed:
            return f"{label}: stopped{' at ' + head if head else ''} after {duration(elapsed)}"
        tail = f"done in {duration(elapsed)}" + (f", {speed}" if speed else "")
        return f"{label}: {head + ', ' if head else ''}{tail}"
    if speed:
        parts.append(speed)
    if total is not None and done and done < total:
        left = (total - done) * elapsed / done
        parts.append(f"about {duration(left)} left" if left >= 1 else "almost done")
    elif total is None:
        parts.append(duration(elapsed))
    return f"{label}: {', '.join(parts)}"


# -- reporters ---------------------------------------------------------------------------


class SilentReporter:
    """``PBX_BRIDGE_PROGRESS=off``."""

    def start(self, total: int | None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def phase(self, text: str) -> None:
        pass

    def finish(self, completed: bool) -> None:
        pass


class PlainReporter:
    """A line at most every ``interval_s`` (a new phase always gets one), once the work
    has run ``show_after_s``; and a last line if any was due."""

    def __init__(
        self,
        label: str,
        stream: TextIO,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        show_after_s: float = SHOW_AFTER_S,
        clock: Clock | None = None,
    ) -> None:
        self._label = label
        self._stream = stream
        self._interval_s = interval_s
        self._show_after_s = show_after_s
        self._clock = _clock(clock)
        self._started = self._clock()
        self._total: int | None = None
        self._done = 0
        self._phase: str | None = None
        self._last_line: float | None = None
        self._phase_changed = False

    def start(self, total: int | None) -> None:
        self._total = total
        self._tick()

    def advance(self, n: int = 1) -> None:
        self._done += n
        self._tick()

    def phase(self, text: str) -> None:
        if text != self._phase:
            self._phase = text
            self._phase_changed = True
        self._tick()

    def finish(self, completed: bool) -> None:
        elapsed = self._clock() - self._started
        if self._last_line is None and elapsed < self._show_after_s:
            return
        phase = None if completed else self._phase
        self._write(
            progress_line(
                self._label, self._done, self._total, elapsed,
                phase=phase, final=True, completed=completed,
            )
        )

    def _tick(self) -> None:
        now = self._clock()
        elapsed = now - self._started
        if elapsed < self._show_after_s:
            return
        due = self._last_line is None or now - self._last_line >= self._interval_s
        if not (due or self._phase_changed):
            return
        if self._total is not None and self._done >= self._total and not self._phase_changed:
            return  # all done: the last line says so, once
        self._phase_changed = False
        self._last_line = now
        self._write(progress_line(self._label, self._done, self._total, elapsed, phase=self._phase))

    def _write(self, line: str) -> None:
        self._stream.write(line + "\n")
        self._stream.flush()


class _CountColumn(ProgressColumn):
    """``M/N``; just ``M`` while the total is unknown; nothing for work without counts."""

    def render(self, task: Task) -> Text:
        if not task.fields.get("counted"):
            return Text("")
        done = int(task.completed)
        shown = f"{done}/{int(task.total)}" if task.total is not None else f"{done}"
        return Text(shown, style="progress.download")


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if not speed:
            return Text("")
        shown = f"{speed:.0f}/s" if speed >= 10 else (
            f"{speed:.1f}/s" if speed >= 1 else f"{1 / speed:.1f}s each"
        )
        return Text(shown, style="progress.data.speed")


class _DelayedProgress(Progress):
    """Draws nothing until the work has run ``show_after_s``: short work never flashes."""

    def __init__(self, *columns: ProgressColumn, show_after_s: float, clock: Clock,
                 console: Console) -> None:
        self._clock = clock
        self._started = clock()
        self._show_after_s = show_after_s
        super().__init__(
            *columns, console=console, get_time=clock, redirect_stdout=False, transient=False
        )

    def get_renderables(self) -> Iterable[RenderableType]:
        if self._clock() - self._started < self._show_after_s:
            return
        yield from super().get_renderables()


class RichReporter:
    """rich's live bar: description, bar, M/N, rate, time left (elapsed when unknown)."""

    def __init__(
        self,
        label: str,
        console: Console,
        *,
        show_after_s: float = SHOW_AFTER_S,
        clock: Clock | None = None,
    ) -> None:
        self._label = label
        self._progress = _DelayedProgress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            _CountColumn(),
            _RateColumn(),
            TimeRemainingColumn(),
            TimeElapsedColumn(),
            console=console,
            show_after_s=show_after_s,
            clock=_clock(clock),
        )
        self._task: TaskID = self._progress.add_task(label, total=None, counted=False)
        self._progress.start()

    def start(self, total: int | None) -> None:
        self._progress.update(self._task, total=total, counted=total is not None)

    def advance(self, n: int = 1) -> None:
        self._progress.update(self._task, advance=n, counted=True)

    def phase(self, text: str) -> None:
        self._progress.update(self._task, description=f"{self._label}: {text}")

    def finish(self, completed: bool) -> None:
        if completed:
            task = self._progress.tasks[0]
            if task.total is None:  # an indeterminate bar ends full, not still pulsing
                self._progress.update(self._task, total=task.completed or 1,
                                      completed=task.completed or 1)
            self._progress.update(self._task, description=self._label)
        self._progress.stop()


# -- choosing one ------------------------------------------------------------------------


def _mode() -> str:
    value = os.environ.get(MODE_ENV, "auto").strip().lower() or "auto"
    if value not in MODES:
        fail(f"{MODE_ENV}={value!r}: use one of {', '.join(MODES)}", EXIT_USAGE)
    return value


def _interval_s() -> float:
    raw = os.environ.get(INTERVAL_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_INTERVAL_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0:
        fail(f"{INTERVAL_ENV}={raw!r}: give the seconds between progress lines (>= 0)",
             EXIT_USAGE)
    return value


def _reporter(
    label: str,
    console: Console | None,
    stream: TextIO | None,
    show_after_s: float,
    clock: Clock | None,
) -> Reporter:
    mode = _mode()
    if mode == "off":
        return SilentReporter()
    console = console if console is not None else Console(stderr=True)
    if mode == "auto" and console.is_terminal and not console.is_dumb_terminal:
        return RichReporter(label, console, show_after_s=show_after_s, clock=clock)
    return PlainReporter(
        label,
        stream if stream is not None else sys.stderr,
        interval_s=_interval_s(),
        show_after_s=show_after_s,
        clock=clock,
    )


@contextmanager
def progress_for(
    label: str,
    *,
    console: Console | None = None,
    stream: TextIO | None = None,
    show_after_s: float = SHOW_AFTER_S,
    clock: Clock | None = None,
) -> Iterator[Reporter]:
    """Report the block's work under ``label`` as this process's stderr calls for (see the
    module docstring); the last line says whether it finished."""
    reporter = _reporter(label, console, stream, show_after_s, clock)
    completed = False
    try:
        yield reporter
        completed = True
    finally:
        reporter.finish(completed)
