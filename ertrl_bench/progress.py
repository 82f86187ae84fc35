"""Progress bars for long work (dataset generation, training, evaluation), via rich.

One shared ``rich.progress.Progress`` so nested stages show as stacked bars. When stderr is not
a terminal (a batch job's log file, ``nohup``), rich draws no live bars, so each stage instead
prints a plain line at most every ``PLAIN_EVERY_S`` seconds (and when it completes): done/total,
elapsed, estimated time left (at the rate since the previous line). Set ``ERTRL_BENCH_QUIET=1``
to silence both (the tests do).
"""

from __future__ import annotations

import os
import time
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
_progress: Progress | None = None
_depth = 0


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}"


class _Bar:
    def __init__(self, progress: Progress | None, task_id, description="", total=None, plain=False):
        self._p, self._id, self._plain = progress, task_id, plain
        self._description, self._total, self._done = description, total, 0.0
        self._t0 = self._last = time.monotonic()
        self._done_at_last = 0.0

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
        # ETA from the rate since the previous line: stages change speed (SAC's random-action
        # warm-up is fast, its learning steps are not), so the all-time average misleads
        window, rate_done = now - self._last, self._done - self._done_at_last
        self._last, self._done_at_last = now, self._done
        elapsed = now - self._t0
        line = f"{self._description}: {self._done:g}"
        if self._total:
            line += f"/{self._total:g} ({100 * self._done / self._total:.0f}%)"
        line += f", {_clock(elapsed)} elapsed"
        if self._total and not finished and rate_done > 0:
            line += f", ~{_clock(window * (self._total - self._done) / rate_done)} left"
        console.print(line, markup=False, highlight=False)


@contextmanager
def bar(description: str, total: float | None):
    """A progress bar for one stage; nested calls share one live display."""
    global _progress, _depth
    if os.environ.get("ERTRL_BENCH_QUIET"):
        yield _Bar(None, None)
        return
    if not console.is_terminal:  # a log file: plain lines only (rich would add bar drawings)
        yield _Bar(None, None, description, total, plain=True)
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
        )
        _progress.start()
    _depth += 1
    task_id = _progress.add_task(description, total=total, info="")
    try:
        yield _Bar(_progress, task_id, description, total)
    finally:
        _depth -= 1
        _progress.remove_task(task_id) if _depth > 0 else None
        if _depth == 0:
            _progress.stop()
            _progress = None
