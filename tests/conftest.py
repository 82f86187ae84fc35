"""Shared test settings: quiet progress, no entry-point plugins, a per-session data cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("ERTRL_BENCH_QUIET", "1")
os.environ["ERTRL_BENCH_LOAD_PLUGINS"] = ""  # only built-ins (and what a test registers)

# The tests' networks are tiny: one intra-op thread is faster than two (no OpenMP hand-offs),
# and it keeps parallel workers from oversubscribing the cores.
import torch  # noqa: E402

torch.set_num_threads(1)

# A tiny Point-Robot dataset: builds in seconds; tests that need learning use the smoke tier.
TINY_DATA = {
    "sac_steps": 300,
    "random_steps": 100,
    "checkpoints": [150, 300],
    "trajectories_per_checkpoint": 2,
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


@pytest.fixture(scope="session", autouse=True)
def _data_cache(tmp_path_factory):
    """One dataset cache per test session (datasets are keyed by content, so tests share)."""
    if "ERTRL_BENCH_DATA" not in os.environ:
        os.environ["ERTRL_BENCH_DATA"] = str(tmp_path_factory.mktemp("datasets"))
    yield


def tiny_suite(name: str = "tiny", methods=("focal",), seeds=(0,), **extra) -> dict:
    """A suite dict that runs in seconds: Point-Robot, tiny data, tiny networks."""
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
    return suite


def write_suite(path, suite: dict):
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path
