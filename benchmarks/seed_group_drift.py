"""How far a seed group's numbers drift from the runs alone over a longer training.

For each built-in method on each built-in backbone: two seeds trained alone and as one K=2 group
(``tests/test_seed_batch.py``'s tiny setting, every step logged), and the largest relative
difference of any logged number, ``|alone - group| / (|alone| + 1e-3)``, at steps 10, 20, 50,
100, ... Run: ``python benchmarks/seed_group_drift.py [STEPS] [BACKBONE]`` (default 200 steps,
both backbones).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ertrl_bench.seed_batch as seed_batch  # noqa: E402
import ertrl_bench.training as training  # noqa: E402
import tests.test_seed_batch as T  # noqa: E402

CHECKPOINTS = (10, 20, 50, 100, 200, 500, 1000)


def drift(name: str, steps: int, backbone: str = "brac") -> dict[int, float]:
    cfg = T.ResolvedTrainConfig(
        iterations=1,
        steps_per_iteration=steps,
        meta_batch=3,
        rl_batch=8,
        context_size=6,
        latent_dim=4,
    )
    method, data, rows = T._method(name, backbone), T._data(), torch.tensor([0, 1, 2, 3])
    alone = []
    for seed in (0, 1):
        agent, gen = T._setup(method, seed)
        records: list = []
        training.meta_train(agent, data, rows, cfg, records.append, lambda *a: None, gen)
        alone.append(records)
    agents, gens, states, group = [], [], [], [[], []]
    for seed in (0, 1):
        agent, gen = T._setup(method, seed)
        agents.append(agent)
        gens.append(gen)
        states.append(T.capture_rng())
    seed_batch.meta_train_group(
        agents, data, rows, cfg, [g.append for g in group], [lambda *a: None] * 2, gens, states
    )
    worst: dict[int, float] = {}
    for k in range(2):
        for a, b in zip(alone[k], group[k], strict=True):
            d = max(abs(a[x] - b[x]) / (abs(a[x]) + 1e-3) for x in a if isinstance(a[x], float))
            for c in CHECKPOINTS:
                if a["step"] <= c:
                    worst[c] = max(worst.get(c, 0.0), d)
    return {c: v for c, v in worst.items() if c <= steps}


if __name__ == "__main__":
    import os

    os.environ.setdefault("ERTRL_BENCH_QUIET", "1")
    training.LOG_EVERY = seed_batch.LOG_EVERY = 1
    torch.set_num_threads(1)
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    backbones = sys.argv[2:] or ["brac", "iql"]
    for backbone in backbones:
        for method in sorted(T.METHODS):
            worst = drift(method, n, backbone)
            print(
                f"{method} on {backbone}",
                "  ".join(f"step<={c}: {v:.1e}" for c, v in worst.items()),
                flush=True,
            )
