"""What a component is built for: the task family, the dimensions, the device, the data scale.

Encoders, encoder losses and backbones are built by ``factory(options,
problem)`` (``ertrl_bench.components``); the options already hold the resolved per-family values
(``EnvFamily.component_defaults``), so a component reads only sizes, the device and, where it
normalises, ``problem.stats`` from here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ertrl_bench.envs.base import EnvFamily


@dataclass(frozen=True)
class DataStats:
    """Scale of one training task's offline data (UNICORN normalises its targets with it).

    As the authors: the task with grid index ``n_grid // 2 - 1`` (19 of 40) in every family
    (``reference_task_index``; docs/paper.md, UNICORN). Per-dimension ``obs_std [ds]``; scalars for the reward.
    """

    obs_mean: torch.Tensor
    obs_std: torch.Tensor
    reward_mean: torch.Tensor
    reward_std: torch.Tensor

    @classmethod
    def of(cls, obs: torch.Tensor, rewards: torch.Tensor) -> DataStats:
        """Statistics of ``obs [N, ds]`` and ``rewards [N] or [N, 1]`` (population std)."""
        r = rewards.reshape(-1)
        return cls(obs.mean(0), obs.std(0, unbiased=False), r.mean(), r.std(unbiased=False))


@dataclass(frozen=True)
class Problem:
    family: EnvFamily
    obs_dim: int
    act_dim: int
    latent_dim: int
    device: torch.device
    stats: DataStats | None = None  # None: no dataset yet (checkers); UNICORN then uses a batch
    # how networks start (TrainConfig.init): "rlkit" (the authors') or "torch"; built-in
    # components pass it to ertrl_bench.nn.mlp, a plugin's networks may too
    init: str = "rlkit"

    @property
    def uses_next_obs(self) -> bool:
        return self.family.context_uses_next_obs

    @property
    def context_dim(self) -> int:
        """Features of one context transition: (s, a, r[, s'])."""
        return self.obs_dim + self.act_dim + 1 + (self.obs_dim if self.uses_next_obs else 0)


def reference_task_index(family: EnvFamily) -> int:
    """The task whose data scales UNICORN's targets: grid index ``n_grid // 2 - 1``, i.e. 19 of
    40 in every family, as the authors (their task id 19). A training task in every built-in
    family: Ant-Goal's training tasks are 0-19, the others' 10-29. With another training layout
    (``train_tasks``, **ours**) it is the training task nearest grid point 19's parameter."""
    index = family.n_grid // 2 - 1
    train = family.tasks("train")
    if any(t.index == index for t in train):
        return index
    target = np.asarray(family.grid_param(index))
    return min(train, key=lambda t: float(np.linalg.norm(np.asarray(t.param) - target))).index


def reference_stats(data, row: int) -> DataStats:
    """``DataStats`` of dataset row ``row`` of ``data`` (a ``TaskDataset``): the row of
    ``reference_task_index``'s task in a run."""
    n = int(data.counts[row])
    return DataStats.of(data.data["obs"][row, :n], data.data["rewards"][row, :n])


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
