"""ER-TRL's compute overhead: one meta-training step of ER-TRL vs FOCAL on the same batch.

The paper leaves this overhead open. Setting: Cheetah-Vel's dimensions and paper sizes (16 tasks,
context 100, RL batch 256, encoder 3x200, BRAC 3x256, GAN 5 updates per step), CPU.
Target: ER-TRL <= 1.6x FOCAL per step. Run: ``tox -e bench`` or
``pytest benchmarks/test_bench_methods.py -m bench -s -p no:cacheprovider``.
"""

import time

import pytest
import torch

from ertrl_bench.batch import Transitions
from ertrl_bench.config import MethodSpec
from ertrl_bench.methods import METHODS
from ertrl_bench.plugins import get_registry
from ertrl_bench.problem import Problem
from ertrl_bench.step import train_step
from ertrl_bench.training import build_agent, make_encoder_optimizer

M, C, B = 16, 100, 256
OBS, ACT, LATENT = 17, 6, 20


def _batch(n, gen):
    r = lambda *s: torch.randn(*s, generator=gen)  # noqa: E731
    return Transitions(
        r(M, n, OBS),
        torch.rand(M, n, ACT, generator=gen) * 2 - 1,
        r(M, n, 1),
        r(M, n, OBS),
        torch.zeros(M, n, 1),
        torch.arange(M),
    )


def _step_time(method: MethodSpec | dict, reps: int) -> float:
    method = MethodSpec.model_validate(method)
    torch.manual_seed(0)
    entry = get_registry().get("envs", "cheetah-vel")
    family = entry.factory(entry.options() if entry.options else None)
    agent = build_agent(method, Problem(family, OBS, ACT, LATENT, torch.device("cpu")))
    opt = make_encoder_optimizer(agent, 3e-4)
    gen = torch.Generator().manual_seed(0)
    ctx, rl = _batch(C, gen), _batch(B, gen)
    train_step(agent, opt, ctx, rl)  # warm-up
    t0 = time.perf_counter()
    for _ in range(reps):
        train_step(agent, opt, ctx, rl)
    return (time.perf_counter() - t0) / reps


@pytest.mark.bench
def test_ertrl_step_overhead_vs_focal(benchmark):
    methods = {"focal": METHODS["focal"], "ertrl": METHODS["ertrl"]}
    assert methods["ertrl"]["encoder_losses"] == ["dml", "gan_entropy"]
    times = {}

    def measure():
        # interleave to share the machine's noise between the two
        for name in ("focal", "ertrl", "focal", "ertrl"):
            times.setdefault(name, []).append(
                _step_time(methods[name].model_copy(update={"name": name}), 5)
            )

    benchmark.pedantic(measure, rounds=1, iterations=1)
    focal, ertrl = min(times["focal"]), min(times["ertrl"])
    ratio = ertrl / focal
    benchmark.extra_info.update(focal_step_s=focal, ertrl_step_s=ertrl, ratio=ratio)
    print(
        f"\nFOCAL {focal * 1e3:.1f} ms/step, ER-TRL {ertrl * 1e3:.1f} ms/step, ratio {ratio:.2f}x"
    )
    assert ratio <= 1.6
