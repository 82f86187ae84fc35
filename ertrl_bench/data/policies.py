"""Behavior policies back from the dataset cache, for measures (e.g. the W2 diversity).

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
from ertrl_bench.errors import DatasetError

__all__ = [
    "BehaviorPolicies",
    "load_behavior_policies",
    "load_policy_file",
    "sample_mixture_actions",
    "shared_states",
]


def load_policy_file(path: str | Path) -> dict:
    """The raw dict of one ``task-XXX.policy.pt`` (weights on the CPU)."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no behavior policy file (rebuild the dataset to get one)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DatasetError(f"{path}: unreadable behavior policy file ({exc})") from None
    if "scripted" in blob:
        raise DatasetError(
            f"{path}: the behavior data of {blob['scripted']} came from scripted experts (noise"
            f" levels {blob.get('noise_levels')}), not SAC: there are no policy weights to load"
        )
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


def _single_policy(blob: dict, task: Task, step: int) -> BehaviorPolicies:
    """One task's policy at checkpoint ``step`` from its already loaded policy file."""
    actor = EnsembleActor(1, blob["obs_dim"], blob["act_dim"], tuple(blob["hidden"]))
    sd = {int(k): v for k, v in blob["checkpoints"].items()}[step]
    actor.load_state_dict({name: v[None] for name, v in sd.items()})
    actor.eval()
    return BehaviorPolicies(actor, [task], step, blob["obs_dim"], blob["act_dim"])


def sample_mixture_actions(
    path: str | Path,
    tasks: Sequence[Task],
    states,
    samples: int,
    seeds: Sequence[int] = (0,),
) -> tuple[list[np.ndarray], list[int]]:
    """Actions of each task's *checkpoint mixture* -- the policy that produced its data.

    A task's dataset holds the same number of trajectories from each SAC checkpoint, so its
    behavior policy is the equal-weight mixture over checkpoints. Stratified draw: ceil(samples
    / C) actions per checkpoint and state (C checkpoints), so K = C * ceil(samples / C).
    One independent draw ``[T, S, K, da]`` per seed in ``seeds`` (task t, checkpoint i of draw
    ``seed`` uses torch seed ``seed + 7919 * i + 100003 * t``). Each task's policy file is
    read once, one task at a time (paper-size files hold 18 checkpoints of a 2 x 1024 actor).
    Returns ``(draws, steps)``.
    """
    tasks = list(tasks)
    steps: list[int] | None = None
    out = [[] for _ in seeds]
    for ti, task in enumerate(tasks):
        blob = load_policy_file(Path(path) / f"{task.key}.policy.pt")
        mine = sorted(int(s) for s in blob["checkpoints"])
        if steps is None:
            steps = mine
        elif mine != steps:
            raise DatasetError(f"{path}/{task.key}.policy.pt: checkpoints differ from the others")
        per = -(-int(samples) // len(steps))
        pols = [_single_policy(blob, task, step) for step in steps]
        for d, seed in enumerate(seeds):
            parts = [
                p.sample_actions(states, per, seed=seed + 7919 * i + 100003 * ti)[0]
                for i, p in enumerate(pols)
            ]
            out[d].append(np.concatenate(parts, axis=1))  # [S, K, da]
    return [np.stack(d) for d in out], steps or []
