"""Seeds as a batch dimension: runs per hour of a K-seed group vs one seed at a time.

``seed_rate(method, k, ...)`` times ``seed_batch.meta_train_group`` (K seeds, one computation)
and ``training.meta_train`` (K = 1) on the same synthetic data, training steps only (no
evaluation, no probe), and returns runs per hour = K x 3600 / (seconds per step x the paper's
200k steps). The CPU benchmark below compares K = 4 with K = 1 at a small size (Cheetah-Vel's
dimensions, 8 tasks, context 32, RL batch 64, networks 2 x 64) as a ratio; the paper-size GPU
figures (K = 1, 5, 10) are ``benchmarks/gpu_figures.py``'s ``kseed`` stage
(``kseed_step_time`` in ``test_bench_step.py``).
Run: ``tox -e bench`` or ``pytest benchmarks/test_bench_seeds.py -m bench -s -p no:cacheprovider``.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from ertrl_bench.batch import TaskDataset
from ertrl_bench.checkpoint import capture_rng
from ertrl_bench.config import Component, MethodSpec, ResolvedTrainConfig
from ertrl_bench.methods import METHODS
from ertrl_bench.plugins import get_registry
from ertrl_bench.problem import Problem
from ertrl_bench.runner import set_seed
from ertrl_bench.seed_batch import meta_train_group
from ertrl_bench.training import build_agent, meta_train

OBS, ACT, LATENT = 20, 6, 20  # Cheetah-Vel
PAPER_STEPS = 200_000
STEPS = 20  # timed steps of the CPU benchmark (after 4 warm-up steps)
SMALL = {"tasks": 8, "context": 32, "rl_batch": 64, "hidden": [64, 64], "encoder": [64, 64]}
PAPER = {"tasks": 16, "context": 100, "rl_batch": 256, "hidden": [256] * 3, "encoder": [200] * 3}


def _method(name: str, size: dict) -> MethodSpec:
    spec = METHODS[name]
    nets = {"hidden": size["hidden"]}
    params = {"unicorn": nets, "csro": {"hidden": size["encoder"]}}
    return MethodSpec(
        name=name,
        encoder=Component(type="mlp", params={"hidden": size["encoder"]}),
        encoder_losses=[
            Component(type=t, params=params.get(t, {})) for t in spec["encoder_losses"]
        ],
        backbone=Component(type="brac", params=nets),
        encoder_through_q=spec.get("encoder_through_q", False),
    )


def _data(tasks: int, device: torch.device, n: int = 2000) -> TaskDataset:
    rng = np.random.default_rng(0)
    per = [
        {
            "obs": rng.normal(size=(n, OBS)),
            "actions": rng.uniform(-1, 1, (n, ACT)),
            "rewards": rng.normal(size=n),
            "next_obs": rng.normal(size=(n, OBS)),
            "dones": np.zeros(n),
        }
        for _ in range(tasks)
    ]
    return TaskDataset(per, device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seed_rate(name: str, k: int, steps: int, size: dict, device: torch.device) -> dict:
    """Seconds per step and runs per hour (200k-step runs) of K seeds trained together
    (K = 1: one run, ``training.meta_train``), after ``steps // 5`` warm-up steps."""
    entry = get_registry().get("envs", "cheetah-vel")
    family = entry.factory(entry.options() if entry.options else None)
    method = _method(name, size)
    data = _data(size["tasks"], device)
    rows = torch.arange(size["tasks"], device=device)

    def cfg(n: int) -> ResolvedTrainConfig:
        return ResolvedTrainConfig(
            iterations=1,
            steps_per_iteration=n,
            meta_batch=size["tasks"],
            rl_batch=size["rl_batch"],
            context_size=size["context"],
            latent_dim=LATENT,
        )

    def train(n: int) -> float:
        agents, gens, states = [], [], []
        for seed in range(k):
            set_seed(seed)
            agents.append(build_agent(method, Problem(family, OBS, ACT, LATENT, device)))
            gens.append(torch.Generator().manual_seed(seed))
            states.append(capture_rng())
        _sync(device)
        t0 = time.perf_counter()
        if k == 1:
            meta_train(agents[0], data, rows, cfg(n), lambda r: None, lambda *a: None, gens[0])
        else:
            meta_train_group(
                agents,
                data,
                rows,
                cfg(n),
                [lambda r: None] * k,
                [lambda *a: None] * k,
                gens,
                states,
            )
        _sync(device)
        return time.perf_counter() - t0

    train(max(2, steps // 5))  # warm-up (allocations, kernels)
    per_step = train(steps) / steps
    return {
        "method": name,
        "k": k,
        "s_per_step": per_step,
        "runs_per_hour": k * 3600 / (per_step * PAPER_STEPS),
    }


@pytest.mark.bench
@pytest.mark.parametrize("name", ["focal", "ertrl"])
def test_k4_seed_group_runs_per_hour_vs_one_seed(name):
    """One torch thread: on a shared machine two OpenMP threads wait on each other's
    descheduled partner and the timings become noise."""
    cpu = torch.device("cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    one = seed_rate(name, 1, STEPS, SMALL, cpu)
    four = seed_rate(name, 4, STEPS, SMALL, cpu)
    torch.set_num_threads(threads)
    ratio = four["runs_per_hour"] / one["runs_per_hour"]
    print(
        f"\n{name}, small size on CPU (1 thread): K=1"
        f" {1e3 * one['s_per_step']:.1f} ms/step ({one['runs_per_hour']:.3f} runs/h of 200k"
        f" steps), K=4 {1e3 * four['s_per_step']:.1f} ms/step"
        f" ({four['runs_per_hour']:.3f} runs/h): {ratio:.2f}x runs per hour"
    )
    assert ratio > 0
