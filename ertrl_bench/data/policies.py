"""Behavior policies back from the dataset cache, for analyses (e.g. the W2 diversity).

``build_tasks`` stores, next to each task's ``task-XXX.npz``, a ``task-XXX.policy.pt``: a
``torch.save`` dict ``{"obs_dim", "act_dim", "hidden", "checkpoints": {step: state_dict}}``
where each state dict is *one* member of the batched SAC's ``EnsembleActor`` (the ensemble axis
removed). ``load_behavior_policies`` stacks the requested tasks' snapshots of one checkpoint back
into a single ``EnsembleActor`` (task axis = ensemble axis), so sampling every task's policy at a
shared set of states is one batched forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ertrl_bench.data.sac import EnsembleActor
from ertrl_bench.data.store import DatasetDir
from ertrl_bench.envs.base import Task
from ertrl_bench.errors import DatasetError, ErtrlError

__all__ = ["BehaviorPolicies", "load_behavior_policies", "load_policy_file", "shared_states"]


def load_policy_file(path: str | Path) -> dict:
    """The raw dict of one ``task-XXX.policy.pt`` (weights on the CPU)."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no behavior policy file (rebuild the dataset to get one)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DatasetError(f"{path}: unreadable behavior policy file ({exc})") from None
    missing = {"obs_dim", "act_dim", "hidden", "checkpoints"} - set(blob)
    if missing:
        raise DatasetError(f"{path}: behavior policy file lacks {sorted(missing)}")
    return blob


def _pick_checkpoint(steps: list[int], checkpoint: int | str) -> int:
    if checkpoint == "last":
        return steps[-1]
    if checkpoint == "first":
        return steps[0]
    step = int(checkpoint)
    if step not in steps:
        raise DatasetError(
            f"no checkpoint at step {step}; available: {', '.join(map(str, steps))}, first, last"
        )
    return step


@dataclass
class BehaviorPolicies:
    """The behavior policies of ``tasks`` at one checkpoint, as one ``EnsembleActor``."""

    actor: EnsembleActor
    tasks: list[Task]
    checkpoint: int
    obs_dim: int
    act_dim: int

    @torch.no_grad()
    def act(self, states, deterministic: bool = True) -> np.ndarray:
        """Every task's action at every state: ``states [S, ds] -> [T, S, da]``."""
        x = torch.as_tensor(np.asarray(states), dtype=torch.float32)
        x = x[None].expand(len(self.tasks), -1, -1)
        a, _ = self.actor(x, deterministic)
        return a.numpy()

    @torch.no_grad()
    def sample_actions(self, states, k: int, seed: int | None = 0) -> np.ndarray:
        """``k`` draws of each task's *stochastic* policy per state: ``[S, ds] -> [T, S, k, da]``.

        ``seed`` makes the draws repeatable without touching torch's global RNG (None: unseeded).
        """
        x = torch.as_tensor(np.asarray(states), dtype=torch.float32)
        if x.dim() != 2 or x.shape[1] != self.obs_dim:
            raise ValueError(f"expected states [S, {self.obs_dim}], got {tuple(x.shape)}")
        n_tasks, n_states = len(self.tasks), x.shape[0]
        x = x.repeat_interleave(k, dim=0)[None].expand(n_tasks, -1, -1)  # [T, S*k, ds]
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            a, _ = self.actor(x)
        return a.reshape(n_tasks, n_states, k, self.act_dim).numpy()


def load_behavior_policies(
    path: str | Path, tasks: Sequence[Task], checkpoint: int | str = "last"
) -> BehaviorPolicies:
    """Load ``tasks``' behavior policies from a dataset folder (``FamilyData.path``).

    ``checkpoint`` is a SAC step from the tier's checkpoint list, or ``"first"`` / ``"last"``.
    Every task must have been built with the same network shape and checkpoints (one tier).
    """
    tasks = list(tasks)
    if not tasks:
        raise ValueError("no tasks given")
    ddir = DatasetDir(Path(path))
    if ddir.manifest_path.exists():  # checksums (a bare folder of policy files is allowed)
        for t in tasks:
            problem = ddir.check_task(t.key)
            if problem is not None:
                raise DatasetError(f"{path}/{t.key}: {problem}")
    blobs = [load_policy_file(Path(path) / f"{t.key}.policy.pt") for t in tasks]
    first = blobs[0]
    steps = sorted(int(s) for s in first["checkpoints"])
    step = _pick_checkpoint(steps, checkpoint)
    for t, b in zip(tasks, blobs, strict=True):
        same = (b["obs_dim"], b["act_dim"], list(b["hidden"])) == (
            first["obs_dim"],
            first["act_dim"],
            list(first["hidden"]),
        )
        if not same or step not in {int(s) for s in b["checkpoints"]}:
            raise DatasetError(
                f"{path}/{t.key}.policy.pt: does not match the other tasks' policies"
            )
    actor = EnsembleActor(len(tasks), first["obs_dim"], first["act_dim"], tuple(first["hidden"]))
    members = [{int(s): sd for s, sd in b["checkpoints"].items()}[step] for b in blobs]
    stacked = {name: torch.stack([m[name] for m in members]) for name in members[0]}
    actor.load_state_dict(stacked)
    actor.eval()
    return BehaviorPolicies(actor, tasks, step, first["obs_dim"], first["act_dim"])


def shared_states(arrays: Sequence[dict[str, np.ndarray]], n: int, seed: int = 0) -> np.ndarray:
    """``n`` observations drawn without replacement (fixed ``seed``) from the union of datasets."""
    obs = np.concatenate([a["obs"] for a in arrays])
    if n > len(obs):
        raise ValueError(f"asked for {n} states but the datasets hold only {len(obs)}")
    idx = np.random.default_rng(seed).choice(len(obs), size=n, replace=False)
    return obs[np.sort(idx)]


def behavior_diversity(
    family,
    tier: str,
    overrides: dict | None = None,
    states: int = 64,
    samples: int = 32,
    checkpoint: str = "last",
    seed: int = 0,
    build: bool = True,
):
    """Average pairwise W2 between the training tasks' behavior policies (PAPER.md, ours precisely).

    S shared states are drawn from the union of the training tasks' data; K actions are sampled per
    state from each task's stochastic policy. Returns ``(w2, checkpoint, n_tasks)``, or ``None``
    when ``build`` is False and the datasets are not cached.
    """
    from ertrl_bench.analysis.wasserstein import average_pairwise_distance
    from ertrl_bench.data import dataset_dir, get_datasets
    from ertrl_bench.data.tiers import resolve_tier

    if not build:
        ddir = dataset_dir(family, tier, resolve_tier(tier, family, overrides))
        if any(ddir.check_task(t.key) is not None for t in family.tasks("train")):
            return None
    fd = get_datasets(family, tier, overrides=overrides)
    train = [t for t in fd.tasks if t.split == "train"]
    try:
        shared = shared_states([fd.arrays[t.key] for t in train], states, seed=seed)
    except ValueError as exc:
        raise ErtrlError(str(exc)) from None
    pols = load_behavior_policies(fd.path, train, checkpoint)
    w2 = average_pairwise_distance(pols.sample_actions(shared, samples, seed=seed))
    return w2, pols.checkpoint, len(train)
