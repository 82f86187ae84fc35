"""Per-task random streams: a task's data never depends on which tasks trained beside it.

Every random number the behavior-policy build draws for a task (network init, warm-up actions,
minibatch indices, policy noise, env reset noise, collection noise) comes from generators seeded
by ``(tier seed, task index, purpose)`` only. So a task built alone, in a group of a memory-bound
build (``datasets build --max-memory``), or rebuilt after its file was corrupted, has the same
bytes as the same task built with all others (tests/test_data_identity.py). The SAC itself is
already per task (ensemble axis, per-task losses, element-wise Adam), so the streams are what was
left shared. Drawing is a short loop over tasks of small ``torch`` calls (docs/data.md,
"Same run id, same data": about 1 ms per SAC step for 50 tasks on a CPU, ~1% of the step).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

# purposes: one independent stream per (task, purpose)
_TORCH, _NUMPY, _ENV, _COLLECT = 0, 1, 2, 3


def _seed(seed: int, index: int, *purpose: int) -> int:
    return int(np.random.SeedSequence([seed, index, *purpose]).generate_state(1, np.uint64)[0] >> 1)


def env_seed(seed: int, index: int, *purpose: int) -> int:
    """A reset seed for a task's env (31 bits: ``gymnasium`` and ``BatchEnv`` take any int)."""
    return _seed(seed, index, _ENV, *purpose) % (2**31 - 2**20) + 2**20


def reset_with_seeds(env, seeds: Sequence[int]) -> np.ndarray:
    """Reset env ``i`` of a ``BatchEnv`` with ``seeds[i]`` (one env at a time).

    Relies on the ``BatchEnv`` convention that a reset with ``seed=s`` seeds env ``i`` with
    ``s + i`` (``ListBatchEnv``, the MuJoCo batch); envs without reset noise ignore seeds.
    Seeds are >= 2**20, so ``seeds[i] - i`` stays a valid seed for any batch up to 2**20 envs.
    """
    obs = None
    mask = np.zeros(env.num_envs, bool)
    for i, s in enumerate(seeds):
        mask[:] = False
        mask[i] = True
        obs = env.reset(seed=int(s) - i, mask=mask)
    return obs


class TaskStreams:
    """One torch generator (on ``device``) and one numpy generator per task."""

    def __init__(self, seed: int, indices: Sequence[int], device, purpose: int = 0):
        self.device = torch.device(device)
        self.indices = list(indices)
        self.torch = [
            torch.Generator(self.device).manual_seed(_seed(seed, i, _TORCH, purpose))
            for i in self.indices
        ]
        self.numpy = [np.random.default_rng(_seed(seed, i, _NUMPY, purpose)) for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def normal(self, *shape: int) -> torch.Tensor:
        """``[tasks, *shape]`` standard normals, row t from task t's stream."""
        return torch.stack(
            [torch.randn(shape, generator=g, device=self.device) for g in self.torch]
        )

    def randint(self, high: int, *shape: int) -> torch.Tensor:
        return torch.stack(
            [torch.randint(0, high, shape, generator=g, device=self.device) for g in self.torch]
        )

    def uniform_np(self, low: float, high: float, size: int) -> np.ndarray:
        """``[tasks, size]`` float32 uniform draws (warm-up actions)."""
        return np.stack([g.uniform(low, high, size) for g in self.numpy]).astype(np.float32)

    @torch.no_grad()
    def init_ensemble(self, module: torch.nn.Module) -> None:
        """Re-draw every ``EnsembleLinear`` member from its own task's stream, as the authors'
        behavior SAC starts (``ertrl_bench.nn.orthogonal_init_``)."""
        from ertrl_bench.nn import orthogonal_init_

        for t, g in enumerate(self.torch):
            orthogonal_init_(module, member=t, generator=g)

    def state(self) -> dict:
        return {
            "torch": [g.get_state() for g in self.torch],
            "numpy": [g.bit_generator.state for g in self.numpy],
        }

    def set_state(self, state: dict) -> None:
        for g, s in zip(self.torch, state["torch"], strict=True):
            g.set_state(s)
        for g, s in zip(self.numpy, state["numpy"], strict=True):
            g.bit_generator.state = s

    def select(self, rows: Sequence[int]) -> dict:
        """The saved state of a subset of tasks (positions ``rows``)."""
        st = self.state()
        return {k: [v[r] for r in rows] for k, v in st.items()}
