"""Shared test settings and fixtures: quiet progress, no entry-point plugins, a per-session data
cache, ``cli``. Shared helper functions and constants: ``tests/helpers.py``."""

from __future__ import annotations

import os
import signal

import pytest

os.environ.setdefault("ERTRL_BENCH_QUIET", "1")
os.environ["ERTRL_BENCH_LOAD_PLUGINS"] = ""  # only built-ins (and what a test registers)

# The tests' networks are tiny: one intra-op thread is faster than two (no OpenMP hand-offs),
# and it keeps parallel workers from oversubscribing the cores.
import torch  # noqa: E402

from tests.helpers import run_cli  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def _data_cache(tmp_path_factory):
    """One dataset cache per test session (datasets are keyed by content, so tests share)."""
    if "ERTRL_BENCH_DATA" not in os.environ:
        os.environ["ERTRL_BENCH_DATA"] = str(tmp_path_factory.mktemp("datasets"))
    yield


@pytest.fixture
def cli():
    """``cli("run", path, ...)``: the real ``ertrl-bench`` in a subprocess (``helpers.run_cli``)."""
    return run_cli


@pytest.fixture
def ctrl_c_delivered():
    """Python's own SIGINT handler for a test that sends itself Ctrl-C: a test run started in
    the background (``nohup``, ``cmd &`` in a script) inherits SIGINT ignored, and a signal the
    process ignores stays ignored (``ertrl_bench.stopping``), so the run would never stop."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)
