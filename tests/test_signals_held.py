"""Ctrl-C during a file write (``stopping.signals_held`` in ``atomic_write_bytes``): the write
completes and the interrupt comes after it, as KeyboardInterrupt."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from ertrl_bench.data.store import atomic_write_bytes


class _SignalOnFirstWrite:
    """A file whose first ``write`` (called back from torch.save's C++ writer) sends ``sig``."""

    def __init__(self, f, sig):
        self.f, self.sig, self.sent = f, sig, False

    def write(self, data):
        if not self.sent:
            self.sent = True
            os.kill(os.getpid(), self.sig)
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGALRM])
def test_an_interrupt_inside_torch_save_comes_after_the_checkpoint_is_written(tmp_path, sig):
    """Unheld, the KeyboardInterrupt raised inside torch.save's write callback came out as
    RuntimeError("unexpected pos"), so the run was recorded failed (CI on 801924c)."""
    state = {"w": torch.arange(100_000, dtype=torch.float32)}
    path = tmp_path / "checkpoint.pt"

    def raise_interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(sig, raise_interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            atomic_write_bytes(path, lambda f: torch.save(state, _SignalOnFirstWrite(f, sig)))
        assert signal.getsignal(sig) is raise_interrupt  # the handler is back
    finally:
        signal.signal(sig, previous)
    assert torch.equal(torch.load(path, weights_only=True)["w"], state["w"])
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temp file left


def test_a_signal_without_a_python_handler_is_not_held(tmp_path):
    """SIGTERM's default (exit) stays as it is: only Python handlers are held."""
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    atomic_write_bytes(tmp_path / "x", lambda f: f.write(b"x"))
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    assert (tmp_path / "x").read_bytes() == b"x"


def test_an_interrupt_while_handlers_are_being_installed_leaves_none_of_ours():
    """A KeyboardInterrupt part-way through installing (the random-moment test raises at any
    bytecode) restores the handlers already replaced, so no stale handler outlives the block."""
    from ertrl_bench.stopping import _replace_handlers

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGALRM)}
    seen = []

    def interrupted_at_the_second(handler):
        seen.append(handler)
        if len(seen) == 2:
            raise KeyboardInterrupt
        return True

    with pytest.raises(KeyboardInterrupt):
        _replace_handlers(
            (signal.SIGINT, signal.SIGALRM), lambda *a: None, interrupted_at_the_second
        )
    assert {sig: signal.getsignal(sig) for sig in before} == before
