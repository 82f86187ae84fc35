"""Anatomy and speed of one paper-size meta-training step.

Setting: Cheetah-Vel's dimensions and paper sizes (16 tasks, context 100, RL batch 256, encoder
3 x 200, BRAC 3 x 256, 3 c-steps; ER-TRL's GAN 5 updates), data sampled on the device from a
``TaskDataset`` every step (the context, the RL batch and the c-steps' fresh batches).

* ``test_step_anatomy``: where the step's time goes -- encoder, regularizer update, encoder loss
  (DML + regularizer), dual critic, Q, V + actor, and the rest (encoder backward and optimizer,
  sampling) -- for FOCAL and ER-TRL, on CPU and, when present, on CUDA (timed with
  ``torch.cuda.synchronize`` around each part).
* ``test_fused_step_speedup``: the fused step (``ertrl_bench/backbones/brac.py``) against the
  unfused computation of the same numbers (``tests/brac_reference.py``) and against today's step
  before #10.7/#14.2 (``_today_brac.py``: another algorithm -- log-alpha Adam, BRAC's gradient
  penalty, one batch for the c-steps -- shown for reference). All three in one process, stepped
  in turn so they share the machine's noise; median CPU time (``time.process_time``) per step, as
  wall time on a shared machine swung +-30% between consecutive steps. The allocator setting
  (``ertrl_bench.nn.tune_allocator``) is process-wide, so all three run with it; the script
  mode with ``ERTRL_BENCH_DEFAULT_ALLOCATOR=1`` times a baseline without it.

The target once set, fused >= 1.5x the unfused step on CPU with the same numbers, is not reached
and cannot be by fusion alone: the CPU step is matmul-bound (~80% of its time in GEMMs), and the
same numbers need the same GEMMs except the critics' weight gradients the actor's loss used to
compute and throw away (~10% of the FLOPs). On a GPU a paper-size step is bound by kernel
launches: there fusion is worth 1.2-1.3x, ``train.compile`` nothing, and capturing the whole step
as one CUDA graph ~5x (``test_graphed_step_speedup``, CUDA only; benchmarks/measured/h200-2026-11-26/NOTES.md has the H200
figures, measured with ``benchmarks/gpu_figures.py``).

Run: ``tox -e bench`` or ``pytest benchmarks/test_bench_step.py -m bench -s -p no:cacheprovider``.
One variant by hand: ``python benchmarks/test_bench_step.py focal fused 5`` (``today``,
``reference`` or ``fused``; seconds per step as JSON).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch

M, C, B, N_DATA = 16, 100, 256, 4000
OBS, ACT, LATENT = 17, 6, 20
VARIANTS = ("today", "reference", "fused")
PARTS = ("encoder", "regularizer update", "encoder loss", "dual critic", "Q", "V + actor")


def _setup(method_name: str, device: torch.device, variant: str = "fused"):
    """Agent, encoder optimizer and a random on-device dataset at paper sizes."""
    import ertrl_bench.backbones.brac as brac_mod
    import ertrl_bench.nn as nn_mod
    from ertrl_bench.batch import TaskDataset
    from ertrl_bench.methods import METHODS
    from ertrl_bench.plugins import get_registry
    from ertrl_bench.problem import Problem
    from ertrl_bench.training import build_agent, make_encoder_optimizer

    if variant != "fused" and os.environ.get("ERTRL_BENCH_DEFAULT_ALLOCATOR"):
        brac_mod.tune_allocator = nn_mod.tune_allocator = lambda *a, **k: False
    torch.manual_seed(0)
    entry = get_registry().get("envs", "cheetah-vel")
    family = entry.factory(entry.options() if entry.options else None)
    problem = Problem(family, OBS, ACT, LATENT, device)
    from ertrl_bench.config import MethodSpec

    method = MethodSpec.model_validate({**METHODS[method_name], "name": method_name})
    agent = build_agent(method, problem)
    if variant == "reference":
        from tests.brac_reference import ReferenceBRAC

        agent.backbone = ReferenceBRAC(agent.backbone)
    elif variant == "today":
        sys.path.insert(0, str(Path(__file__).parent))
        from _today_brac import BRAC as TodayBRAC
        from _today_brac import BRACOptions as TodayOptions

        today = TodayBRAC(TodayOptions(), problem)
        agent.backbone = _IgnoreSampleRL(today)
    opt = make_encoder_optimizer(agent, 3e-4)
    rng = np.random.default_rng(0)
    per_task = [
        {
            "obs": rng.standard_normal((N_DATA, OBS)),
            "actions": rng.uniform(-1, 1, (N_DATA, ACT)),
            "rewards": rng.standard_normal(N_DATA),
            "next_obs": rng.standard_normal((N_DATA, OBS)),
            "dones": np.zeros(N_DATA),
        }
        for _ in range(M)
    ]
    return agent, opt, TaskDataset(per_task, device)


class _IgnoreSampleRL:
    """Today's backbone took no ``sample_rl``: its c-steps reuse the RL batch."""

    def __init__(self, inner):
        self.inner = inner

    def update(self, batch, z_q, z, sample_rl=None):
        return self.inner.update(batch, z_q, z)


def _step(agent, opt, data):
    from ertrl_bench.step import train_step

    rows = torch.randperm(M, device=data.device)
    ctx, rl = data.sample(rows, C), data.sample(rows, B)
    return train_step(agent, opt, ctx, rl, lambda: data.sample(rows, B))


def _sync(device: torch.device):
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def step_time(method_name: str, variant: str, reps: int, device: str = "cpu") -> float:
    """Seconds per train step (mean of ``reps`` after one warm-up step)."""
    dev = torch.device(device)
    agent, opt, data = _setup(method_name, dev, variant)
    sync = _sync(dev)
    _step(agent, opt, data)
    sync()
    t0 = time.perf_counter()
    for _ in range(reps):
        _step(agent, opt, data)
    sync()
    return (time.perf_counter() - t0) / reps


def graphed_step_time(method_name: str, reps: int) -> float:
    """Seconds per step of the step captured as one CUDA graph (``train.cuda_graph``)."""
    from ertrl_bench.cuda_graph import GraphedTrainStep

    dev = torch.device("cuda")
    agent, opt, data = _setup(method_name, dev)
    step = GraphedTrainStep(agent, opt, data, M, C, B)
    for k in range(5):  # 3 eager warm-up steps, the capture, a replay
        step(torch.randperm(M, device=dev), k)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for k in range(reps):
        step(torch.randperm(M, device=dev), k)
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / reps


def anatomy(method_name: str, device: torch.device, reps: int) -> dict[str, float]:
    """Mean seconds per step of each part (timers wrapped around the real ``train_step``)."""
    agent, opt, data = _setup(method_name, device)
    sync = _sync(device)
    times: dict[str, float] = defaultdict(float)

    def timed(fn, key):
        def wrapper(*args, **kwargs):
            sync()
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            sync()
            times[key] += time.perf_counter() - t0
            return out

        return wrapper

    agent.encoder.forward = timed(agent.encoder.forward, "encoder")
    for reg in agent.losses.values():  # every encoder loss (dml included) of the method
        reg.update = timed(reg.update, "regularizer update")
        reg.encoder_loss = timed(reg.encoder_loss, "encoder loss")
    bb = agent.backbone
    bb._update_c = timed(bb._update_c, "dual critic")
    bb._update_q = timed(bb._update_q, "Q")
    bb._update_actor = timed(bb._update_actor, "V + actor")
    _step(agent, opt, data)  # warm-up
    sync()
    times.clear()
    t0 = time.perf_counter()
    for _ in range(reps):
        _step(agent, opt, data)
    sync()
    total = time.perf_counter() - t0
    out = {k: times[k] / reps for k in PARTS}
    out["rest"] = total / reps - sum(out.values())
    out["total"] = total / reps
    return out


def _devices() -> list[torch.device]:
    return [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])


@pytest.mark.bench
@pytest.mark.parametrize("method", ["focal", "ertrl"])
def test_step_anatomy(benchmark, method):
    results = {}

    def measure():
        for dev in _devices():
            results[dev.type] = anatomy(method, dev, reps=3 if dev.type == "cpu" else 20)

    benchmark.pedantic(measure, rounds=1, iterations=1)
    for dev, parts in results.items():
        name = torch.cuda.get_device_name() if dev == "cuda" else f"{os.cpu_count()}-core CPU"
        print(f"\n{method} step anatomy on {dev} ({name}, {torch.get_num_threads()} threads):")
        for k, v in parts.items():
            print(f"  {k:20s} {v * 1e3:8.2f} ms  ({100 * v / parts['total']:5.1f}%)")
        benchmark.extra_info[dev] = {k: round(v * 1e3, 3) for k, v in parts.items()}
        assert all(
            parts[k] > 0 for k in PARTS if not (k == "regularizer update" and method == "focal")
        )


@pytest.mark.bench
@pytest.mark.parametrize("method", ["focal", "ertrl"])
def test_fused_step_speedup(benchmark, method):
    cpu = torch.device("cpu")
    runs = {v: _setup(method, cpu, v) for v in VARIANTS}
    times: dict[str, list[float]] = defaultdict(list)

    def measure():
        for run in runs.values():
            _step(*run)  # warm-up
        for _ in range(6):  # step by step, interleaved: the variants share the machine's noise
            for v, run in runs.items():
                t0 = time.process_time()  # CPU time: less sensitive than wall time to other jobs
                _step(*run)
                times[v].append(time.process_time() - t0)

    benchmark.pedantic(measure, rounds=1, iterations=1)
    best = {v: float(np.median(t)) for v, t in times.items()}
    ratio = best["reference"] / best["fused"]
    benchmark.extra_info.update({f"{v}_step_s": t for v, t in best.items()}, ratio=ratio)
    print(
        f"\n{method} CPU step ({torch.get_num_threads()} threads): today {best['today'] * 1e3:.0f}"
        f" ms, unfused reference {best['reference'] * 1e3:.0f} ms, fused"
        f" {best['fused'] * 1e3:.0f} ms; fused vs reference {ratio:.2f}x, vs today"
        f" {best['today'] / best['fused']:.2f}x"
    )
    assert ratio > 1.0


@pytest.mark.bench
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
@pytest.mark.parametrize("method", ["focal", "ertrl"])
def test_graphed_step_speedup(benchmark, method):
    """``train.cuda_graph`` against the eager (fused) step on the GPU: the ratio of step times."""
    times = {}

    def measure():
        times["eager"] = step_time(method, "fused", 50, "cuda")
        times["graph"] = graphed_step_time(method, 50)

    benchmark.pedantic(measure, rounds=1, iterations=1)
    ratio = times["eager"] / times["graph"]
    benchmark.extra_info.update({f"{k}_step_s": v for k, v in times.items()}, ratio=ratio)
    print(
        f"\n{method} step on {torch.cuda.get_device_name()}: eager {times['eager'] * 1e3:.2f} ms,"
        f" CUDA graph {times['graph'] * 1e3:.2f} ms ({ratio:.1f}x)"
    )
    assert ratio > 1.0


if __name__ == "__main__":  # one variant in a fresh process: METHOD VARIANT REPS
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    m, v, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print(json.dumps({"method": m, "variant": v, "step_s": step_time(m, v, n)}))


def kseed_step_time(method: str, k: int, reps: int) -> float:
    """Seconds per train step of K seeds trained as one computation (``seed_batch``), at paper
    size on CUDA (``benchmarks/test_bench_seeds.py``'s ``seed_rate``; ``gpu_figures.py``'s
    ``kseed`` stage); without CUDA, the CPU at that file's small size (a check, not a figure)."""
    from test_bench_seeds import PAPER, SMALL, seed_rate

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    size = PAPER if device.type == "cuda" else SMALL
    return seed_rate(method, k, reps, size, device)["s_per_step"]
