"""Helpers shared by test modules: tiny settings, suite files, the CLI as a user runs it.

Plain functions and constants, imported as ``from tests.helpers import ...``; fixtures (which
use them) live in ``tests/conftest.py``. Where each kind of test goes: ``tests/README.md``.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

# A tiny Point-Robot dataset: builds in seconds; tests that need learning use the smoke tier.
TINY_DATA = {
    "sac_steps": 300,
    "random_steps": 100,
    "checkpoints": [150, 300],
    "trajectories_per_checkpoint": 2,
    "diversity_samples": 64,  # the W2 diversity recorded with the data: a fraction of a second
}
TINY_NETS = {"mlp": {"hidden": [16]}, "brac": {"hidden": [16]}}
# The end-of-run probe, shrunk (the paper's: 1000 transitions per task, 200 test, 5 resamples,
# an SVR on 24k rows: ~7.5 min per run on CPU).
TINY_PROBE = {"transitions": 20, "test": 5, "resamples": 2}


#: The user's own data root (``$ERTRL_BENCH_DATA`` as the session started, else the default
#: cache), for slow tests that run on data built with ``ertrl-bench datasets build``.
USER_DATA_ROOT = os.environ.get("ERTRL_BENCH_DATA") or str(
    Path.home() / ".cache" / "ertrl-bench" / "datasets"
)


def tiny_suite(name: str = "tiny", methods=("focal",), seeds=(0,), **extra) -> dict:
    """A suite dict that runs in seconds: Point-Robot, tiny data, tiny networks. A fresh copy
    each call: a test may edit it without changing the shared settings other tests use."""
    suite = {
        "name": name,
        "tier": "smoke",
        "device": "cpu",
        "data": TINY_DATA,
        "train": {
            "iterations": 2,
            "steps_per_iteration": 10,
            "meta_batch": 4,
            "rl_batch": 16,
            "context_size": 8,
            "final_evals": 1,
        },
        "eval": {"runs_per_task": 1, "splits": ["train", "moderate"], "probe": TINY_PROBE},
        "component_params": TINY_NETS,
        "grid": {"envs": ["point-robot"], "methods": list(methods), "seeds": list(seeds)},
    }
    suite.update(extra)
    return copy.deepcopy(suite)


def write_suite(path, suite: dict):
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def entry_point() -> list[str]:
    """The installed ``ertrl-bench`` script, as a user runs it (else ``python -m``)."""
    script = shutil.which("ertrl-bench")
    return [script] if script else [sys.executable, "-m", "ertrl_bench.cli"]


def run_cli(
    *args, cwd=None, timeout: float = 300, env: dict | None = None
) -> subprocess.CompletedProcess:
    """``ertrl-bench ARGS`` in a subprocess: exit code, stdout and stderr as text.

    Runs this checkout (``PYTHONPATH`` starts with the repository root) with wide, unwrapped
    output (``COLUMNS=400``) so messages can be matched whole.
    """
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    full_env = {**os.environ, "PYTHONPATH": path, "COLUMNS": "400", **(env or {})}
    return subprocess.run(
        [*entry_point(), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=full_env,
    )


def build_datasets(suite_path) -> None:
    """Build the datasets a suite file's runs need, in this process (the session's cache), so a
    ``ertrl-bench run`` started next begins training at once instead of building them."""
    from ertrl_bench.runner import prepare_datasets
    from ertrl_bench.suite_loader import load_suite

    prepare_datasets(load_suite(suite_path)[1], Path(suite_path).parent / "warm")


def wait_for(condition: Callable[[], object], what: str, timeout: float = 120, every=0.2):
    """Poll ``condition()`` until it is true; fail the test naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(every)
    return result
