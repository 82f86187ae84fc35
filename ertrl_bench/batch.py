"""Task-batched transitions: every tensor is ``[tasks, n, ...]``; sampling is index arithmetic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

FIELDS = ("obs", "actions", "rewards", "next_obs", "dones")


@dataclass
class Transitions:
    """A batch of transitions for M tasks: obs ``[M, N, ds]``, rewards/dones ``[M, N, 1]``."""

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    dones: torch.Tensor
    task_ids: torch.Tensor  # [M] row of each task in its TaskDataset
    mask: torch.Tensor | None = None  # [M, N] bool; None = all valid (variable online contexts)

    def features(self, uses_next_obs: bool) -> torch.Tensor:
        """Context features of each transition: (s, a, r[, s']) -> ``[M, N, K]``."""
        parts = [self.obs, self.actions, self.rewards]
        if uses_next_obs:
            parts.append(self.next_obs)
        return torch.cat(parts, dim=-1)

    @property
    def num_tasks(self) -> int:
        return self.obs.shape[0]


def _mark_trajectory_ends(d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``d`` with ``dones`` set on the last transition of each trajectory (ids in ``trajectory``)."""
    if "trajectory" not in d:
        raise ValueError("terminals='trajectory_end' needs the data's per-transition 'trajectory'")
    traj = np.asarray(d["trajectory"]).reshape(-1)
    last = np.append(traj[1:] != traj[:-1], True)
    dones = np.asarray(d["dones"], dtype=np.float32).reshape(len(traj), -1).copy()
    dones[last] = 1.0
    return {**d, "dones": dones}


class TaskDataset:
    """All tasks' offline data as padded tensors on the training device.

    Tasks may hold different numbers of transitions (terminations); ``counts`` records each.
    ``terminals="trajectory_end"`` marks every trajectory's last transition terminal (``dones``
    = 1), time-limit ends included, as the authors' code does (docs/paper.md, "Defects that
    shaped their numbers"); it needs each task's ``trajectory`` ids. ``"env"`` keeps the data's
    own ``dones`` (true terminations only; a time-limit end bootstraps).
    """

    def __init__(
        self,
        per_task: list[dict[str, np.ndarray]],
        device: torch.device,
        terminals: Literal["env", "trajectory_end"] = "env",
    ):
        if terminals == "trajectory_end":
            per_task = [_mark_trajectory_ends(d) for d in per_task]
        self.device = device
        self.counts = torch.tensor([len(d["rewards"]) for d in per_task], device=device)
        n_max = int(self.counts.max())
        self.data: dict[str, torch.Tensor] = {}
        for f in FIELDS:
            first = np.asarray(per_task[0][f])
            tail = first.shape[1:] if first.ndim > 1 else (1,)
            buf = np.zeros((len(per_task), n_max, *tail), dtype=np.float32)
            for i, d in enumerate(per_task):
                arr = np.asarray(d[f], dtype=np.float32).reshape(len(d["rewards"]), *tail)
                buf[i, : len(arr)] = arr
            self.data[f] = torch.from_numpy(buf).to(device)

    @property
    def num_tasks(self) -> int:
        return len(self.counts)

    def sample(
        self, rows: torch.Tensor, n: int, generator: torch.Generator | None = None
    ) -> Transitions:
        """``n`` transitions (with replacement) from each task in ``rows`` ``[M]``."""
        u = torch.rand((len(rows), n), device=self.device, generator=generator)
        idx = (u * self.counts[rows, None]).long()
        r = rows[:, None]
        return Transitions(*(self.data[f][r, idx] for f in FIELDS), task_ids=rows)
