"""Stopping long loops (meta-training, behavior-SAC builds) at a step boundary, saved first.

Ctrl-C or SIGTERM raised at an arbitrary point would lose everything since the loop's last
timed save; inside ``StopAtStepBoundary`` they only ask for a stop, which the loop honours after
the step in progress by saving its state and raising ``KeyboardInterrupt`` (so the callers'
handling of Ctrl-C is unchanged).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


def _in_main_thread() -> bool:
    """Signal handlers can only be set (and signals only caught) in the main thread."""
    return threading.current_thread() is threading.main_thread()


def _replace_handlers(signums, handler, replaceable) -> dict:
    """Install ``handler`` for each signal whose current handler passes ``replaceable``; the
    replaced handlers by signal, for ``_restore_handlers``. On an interrupt part-way, the ones
    already replaced are restored before it propagates (no handler of ours leaks)."""
    previous: dict = {}
    try:
        for sig in signums:
            before = signal.getsignal(sig)
            if replaceable(before):
                previous[sig] = before
                signal.signal(sig, handler)
    except BaseException:
        _restore_handlers(previous)
        raise
    return previous


def _restore_handlers(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


class StopAtStepBoundary:
    """Within a loop, Ctrl-C and SIGTERM ask for a stop instead of raising at once.

    The loop checks ``requested`` after each step, saves its state at that step and raises
    ``KeyboardInterrupt``, so a rerun resumes where it stopped instead of at the last timed
    save (a run's checkpoint, a build's training state). A second Ctrl-C gets the handler that was there before (a stop at once);
    further SIGTERMs change nothing (a pool worker gets two when its parent stops: the pool's
    and the parent-death signal's), kill -9 still stops at once.
    A signal the process ignores (a pool worker's SIGINT) stays ignored. Outside the main thread
    signals cannot be caught: there it changes nothing.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict = {}

    def __enter__(self) -> StopAtStepBoundary:
        if _in_main_thread():
            self._previous = _replace_handlers(
                self.SIGNALS, self._ask, lambda h: h is not signal.SIG_IGN and h is not None
            )
        return self

    def _ask(self, signum, frame) -> None:
        self.requested = True
        if signum == signal.SIGINT:  # Ctrl-C twice: stop at once
            signal.signal(signum, self._previous[signum])

    def __exit__(self, exc_type, exc, tb) -> None:
        _restore_handlers(self._previous)
        self._previous = {}
        if exc_type is None and self.requested:  # asked after the last step's check
            raise KeyboardInterrupt


HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGALRM)


@contextmanager
def signals_held(signums: tuple = HELD_SIGNALS):
    """Hold these signals' Python handlers for the duration of a file write, then run them.

    A handler that raises (Ctrl-C's KeyboardInterrupt) while ``torch.save`` is calling back into
    Python comes out of torch as a ``RuntimeError`` ("unexpected pos"), so the run would be
    recorded as failed instead of interrupted. Held, the write completes and the handler runs
    right after it. Signals with no Python handler (SIGTERM's default: exit) are left alone, and
    outside the main thread (where handlers cannot be set) this changes nothing.
    """
    if not _in_main_thread():
        yield
        return
    caught: list = []
    previous = _replace_handlers(
        signums, lambda signum, frame: caught.append((signum, frame)), callable
    )
    try:
        yield
    finally:
        _restore_handlers(previous)
        for signum, frame in caught:
            previous[signum](signum, frame)
