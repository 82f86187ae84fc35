"""Progress bars for long work (dataset generation, training, evaluation), via rich.

One shared ``rich.progress.Progress`` so nested stages show as stacked bars. Set
``ERTRL_BENCH_QUIET=1`` to silence them (the tests do).
"""

from __future__ import annotations

import os
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

console = Console(stderr=True)
_progress: Progress | None = None
_depth = 0


class _Bar:
    def __init__(self, progress: Progress | None, task_id):
        self._p, self._id = progress, task_id

    def advance(self, n: float = 1) -> None:
        if self._p is not None:
            self._p.advance(self._id, n)

    def update(self, **fields) -> None:
        if self._p is not None:
            self._p.update(self._id, **fields)


@contextmanager
def bar(description: str, total: float | None):
    """A progress bar for one stage; nested calls share one live display."""
    global _progress, _depth
    if os.environ.get("ERTRL_BENCH_QUIET"):
        yield _Bar(None, None)
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
        yield _Bar(_progress, task_id)
    finally:
        _depth -= 1
        _progress.remove_task(task_id) if _depth > 0 else None
        if _depth == 0:
            _progress.stop()
            _progress = None
