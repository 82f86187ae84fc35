"""``FamilyData``: every task's transitions and normalisation constants, as returned by a build."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ertrl_bench.data.tiers import DataTier
from ertrl_bench.envs.base import EnvFamily, Task

# A task whose behavior returns span less than this has no range to normalise by
DEGENERATE_RANGE = 1e-6


def is_degenerate_range(r_min: float, r_max: float) -> bool:
    return not (math.isfinite(r_min) and math.isfinite(r_max)) or r_max - r_min < DEGENERATE_RANGE


def normalized_return(r: float, r_min: float, r_max: float) -> float:
    """``100 (r - R_min) / (R_max - R_min)`` (docs/paper.md's normalised return); NaN when the
    task's range is degenerate (R_min = R_max: every behavior checkpoint scored the same), never
    the huge number a tiny denominator would give."""
    if is_degenerate_range(r_min, r_max):
        return float("nan")
    return 100.0 * (r - r_min) / (r_max - r_min)


@dataclass
class FamilyData:
    """Every task's transitions and normalisation constants, keyed by ``Task.key``."""

    family: EnvFamily
    tier: DataTier
    tasks: list[Task]
    arrays: dict[str, dict[str, np.ndarray]]
    meta: dict[str, dict]
    path: str
    # which checkpoints' trajectories ``arrays`` keep (ertrl_bench.data.quality); meta and
    # R_min / R_max are always the full collection's
    quality: str = "mixed"
    # the behavior policies' W2 diversity (ertrl_bench.data.diversity), as its manifest
    # records it; None while not every training task is built, or without policy weights
    diversity: dict | None = None

    def task_arrays(self, task: Task) -> dict[str, np.ndarray]:
        a = self.arrays[task.key]
        return {
            "obs": a["obs"],
            "actions": a["actions"],
            "rewards": a["rewards"],
            "next_obs": a["next_obs"],
            "dones": a["terminals"].astype(np.float32),
            "trajectory": a["trajectory"],  # for TaskDataset(terminals="trajectory_end")
        }

    def r_min(self, task: Task) -> float:
        return float(self.meta[task.key]["r_min"])

    def r_max(self, task: Task) -> float:
        return float(self.meta[task.key]["r_max"])

    def is_degenerate(self, task: Task) -> bool:
        """True when ``task``'s R_min = R_max: its normalised return is undefined (NaN)."""
        return is_degenerate_range(self.r_min(task), self.r_max(task))

    def degenerate_tasks(self) -> list[Task]:
        """The tasks whose normalised return is undefined (R_min = R_max), for the report."""
        return [t for t in self.tasks if self.is_degenerate(t)]

    def normalized(self, task: Task, r: float) -> float:
        """``task``'s normalised return of ``r``; NaN for a degenerate task (see above)."""
        return normalized_return(r, self.r_min(task), self.r_max(task))

    def behavior_summary(self) -> dict:
        """How expert the behavior data is, per split: R_min / R_max over the split's tasks
        (min, median, max) and the mean return over its tasks at each SAC checkpoint; for a
        family that reports success, also the success rate over its tasks' episodes at each
        checkpoint (``success_rate``; absent when the data has no success flags)."""
        out: dict = {}
        for split in ("train", "moderate", "extreme", "iid"):
            keys = [t.key for t in self.tasks if t.split == split]
            if not keys:
                continue
            steps = sorted({int(c) for k in keys for c in self.meta[k]["checkpoint_returns"]})
            per_ckpt = [
                float(np.mean([self.meta[k]["checkpoint_returns"][str(c)] for k in keys]))
                for c in steps
            ]

            def spread(field: str, keys=keys) -> list[float]:
                v = np.array([float(self.meta[k][field]) for k in keys])
                return [float(v.min()), float(np.median(v)), float(v.max())]

            out[split] = {
                "tasks": len(keys),
                "r_min": spread("r_min"),
                "r_max": spread("r_max"),
                "checkpoints": steps,
                "mean_return": per_ckpt,
            }
            if all("checkpoint_success" in self.meta[k] for k in keys):
                out[split]["success_rate"] = [
                    float(np.mean([self.meta[k]["checkpoint_success"][str(c)] for k in keys]))
                    for c in steps
                ]
        return out
