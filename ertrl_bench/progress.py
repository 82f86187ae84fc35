"""Progress bars for long work (dataset generation, training, evaluation), via rich.

One shared ``rich.progress.Progress`` so nested stages show as stacked bars. When stderr is not
a terminal (a batch job's log file, ``nohup``), rich draws no live bars, so each stage instead
prints a plain line at most every ``PLAIN_EVERY_S`` seconds (and when it completes): done/total,
elapsed, estimated time left. Set ``ERTRL_BENCH_QUIET=1`` to silence both (the tests do).

The time left is at the pace of the last ``PACE_WINDOW_S`` seconds, in both displays: long
enough to take in the periodic evaluations that stop training for minutes (a 30-second window
swung between minutes and hours across one), short enough to forget a fast start (SAC's
random-action warm-up). Work resumed from a checkpoint counts as done, never as pace.
"""

from __future__ import annotations

import os
import time
from collections import deque
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True, soft_wrap=True)  # long paths stay whole in log files
PLAIN_EVERY_S = 30.0
PACE_WINDOW_S = 600.0
_progress: Progress | None = None
_depth = 0


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}"


class _Bar:
    def __init__(
        self, progress: Progress | None, task_id, description="", total=None, plain=False, done=0.0
    ):
        self._p, self._id, self._plain = progress, task_id, plain
        self._description, self._total, self._done = description, total, float(done)
        self._t0 = self._last = time.monotonic()
        # (time, done) at each printed line; the oldest kept one anchors the pace. Resumed work
        # is not pace: the first anchor is (now, what the checkpoint had done)
        self._samples = deque([(self._t0, self._done)])

    def advance(self, n: float = 1) -> None:
        if self._p is not None:
            self._p.advance(self._id, n)
        self._done += n
        if self._plain:
            self._plain_line()

    def update(self, **fields) -> None:
        if self._p is not None:
            self._p.update(self._id, **fields)

    def _plain_line(self) -> None:
        now = time.monotonic()
        finished = self._total is not None and self._done >= self._total
        if now - self._last < PLAIN_EVERY_S and not finished:
            return
        self._last = now
        self._samples.append((now, self._done))
        # keep the newest sample at least PACE_WINDOW_S old as the anchor, drop those before it
        while len(self._samples) > 2 and self._samples[1][0] <= now - PACE_WINDOW_S:
            self._samples.popleft()
        then, done_then = self._samples[0]
        window, rate_done = now - then, self._done - done_then
        elapsed = now - self._t0
        line = f"{self._description}: {self._done:g}"
        if self._total:
            line += f"/{self._total:g} ({100 * self._done / self._total:.0f}%)"
        line += f", {_clock(elapsed)} elapsed"
        if self._total and not finished and rate_done > 0:
            line += f", ~{_clock(window * (self._total - self._done) / rate_done)} left"
        console.print(line, markup=False, highlight=False)


@contextmanager
def bar(description: str, total: float | None, done: float = 0):
    """A progress bar for one stage; nested calls share one live display.

    ``done``: work already finished before this process (a resumed checkpoint). It counts
    towards done/total but not towards the speed, so the time left is not underestimated.
    """
    global _progress, _depth
    if os.environ.get("ERTRL_BENCH_QUIET"):
        yield _Bar(None, None)
        return
    if not console.is_terminal:  # a log file: plain lines only (rich would add bar drawings)
        yield _Bar(None, None, description, total, plain=True, done=done)
        return
    if _progress is None:
        _progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
            transient=False,
            speed_estimate_period=PACE_WINDOW_S,
        )
        _progress.start()
    _depth += 1
    task_id = _progress.add_task(description, total=total, completed=done, info="")
    try:
        yield _Bar(_progress, task_id, description, total, done=done)
    finally:
        _depth -= 1
        _progress.remove_task(task_id) if _depth > 0 else None
        if _depth == 0:
            _progress.stop()
            _progress = None
