"""Behavior datasets: train a SAC policy per task (batched), collect checkpoint trajectories.

``get_datasets`` is the one entry point: it returns every task's data, building (and caching)
whatever is missing or fails its checksum. Per PAPER.md, every task of every split gets a
behavior policy and a dataset: offline-context evaluation and normalisation need them.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ertrl_bench.data.collect import flatten_valid, rollout_episodes
from ertrl_bench.data.sac import EnsembleActor, TrainingState, train_behavior_policies
from ertrl_bench.data.store import FORMAT_VERSION, DatasetDir, data_root
from ertrl_bench.data.tiers import DataTier, resolve_tier
from ertrl_bench.envs.base import EnvFamily, Task
from ertrl_bench.errors import ErtrlError
from ertrl_bench.progress import bar, console


@dataclass
class FamilyData:
    """Every task's transitions and normalisation constants, keyed by ``Task.key``."""

    family: EnvFamily
    tier: DataTier
    tasks: list[Task]
    arrays: dict[str, dict[str, np.ndarray]]
    meta: dict[str, dict]
    path: str

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


DEFAULT_SAVE_EVERY_S = 600.0  # how often an unfinished build saves its training state
TRAINING_STATE_FILE = "training-state.pt"


def dataset_key(family: EnvFamily, tier: DataTier, tasks: list[Task]) -> str:
    opts = getattr(family, "options", None)
    payload = {
        "family": family.name,
        "options": opts.model_dump(mode="json") if opts is not None else None,
        "tier": tier.model_dump(mode="json"),
        "tasks": [[t.index, list(t.param)] for t in tasks],
        "format": FORMAT_VERSION,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def dataset_dir(family: EnvFamily, tier_name: str, tier: DataTier) -> DatasetDir:
    tasks = family.all_tasks(tier.task_seed)
    return DatasetDir(data_root() / family.name / f"{tier_name}-{dataset_key(family, tier, tasks)}")


def _policy_bytes(snapshots: dict[int, dict], member: int, meta: dict) -> bytes:
    one = {step: {k: v[member].clone() for k, v in sd.items()} for step, sd in snapshots.items()}
    buf = io.BytesIO()
    torch.save({**meta, "checkpoints": one}, buf)
    return buf.getvalue()


def build_tasks(
    family: EnvFamily,
    tier_name: str,
    tier: DataTier,
    tasks: list[Task],
    ddir: DatasetDir,
    device: torch.device,
    save_every_s: float | None = DEFAULT_SAVE_EVERY_S,
) -> dict:
    """Train the behavior policies of ``tasks`` together and write their datasets.

    With ``save_every_s``, the training state is saved that often (``TrainingState``), so an
    interrupted build resumes mid-training; the file is removed once every task is written.
    """
    obs_dim, act_dim = family.spaces()
    env = family.make_batch(tasks)
    resume = None
    if save_every_s is not None:
        fingerprint = hashlib.sha256(",".join(t.key for t in tasks).encode()).hexdigest()[:12]
        resume = TrainingState(ddir.path / TRAINING_STATE_FILE, fingerprint, save_every_s)
    sac, snapshots, stats = train_behavior_policies(
        env, obs_dim, act_dim, tier, device, label=f"{family.name} [{tier_name}] ", resume=resume
    )
    k = tier.trajectories_per_checkpoint
    rep_tasks = [t for t in tasks for _ in range(k)]  # task-major: rows t*k .. t*k+k-1
    collect_env = family.make_batch(rep_tasks)
    actor = EnsembleActor(len(tasks), obs_dim, act_dim, tier.sac_hidden).to(device)
    per_task: dict[str, list[dict]] = {t.key: [] for t in tasks}
    t0 = time.perf_counter()
    steps = 0
    with bar(f"collect {family.name} checkpoints", len(tier.checkpoints)) as pbar:
        for ci, step in enumerate(tier.checkpoints):
            actor.load_state_dict(snapshots[step])

            @torch.no_grad()
            def policy(obs, _actor=actor):
                x = torch.as_tensor(obs, dtype=torch.float32, device=device).view(len(tasks), k, -1)
                a, _ = _actor(x)  # stochastic, as PAPER.md's data
                return a.reshape(len(tasks) * k, -1).cpu().numpy()

            ep = rollout_episodes(collect_env, policy, family.horizon, seed=tier.seed + 1000 * ci)
            steps += int(ep["valid"].sum())
            for ti, task in enumerate(tasks):
                rows = np.arange(ti * k, ti * k + k)
                flat = flatten_valid(ep, rows)
                flat["checkpoint"] = np.full(len(flat["rewards"]), step, np.int64)
                flat["trajectory"] = flat["trajectory"] + ci * k
                flat["returns"] = ep["returns"][rows]
                per_task[task.key].append(flat)
            pbar.advance()
    stats["collect_env_steps_per_s"] = steps / max(time.perf_counter() - t0, 1e-9)
    policy_meta = {"obs_dim": obs_dim, "act_dim": act_dim, "hidden": list(tier.sac_hidden)}
    for ti, task in enumerate(tasks):
        parts = per_task[task.key]
        arrays = {f: np.concatenate([p[f] for p in parts]) for f in parts[0] if f != "returns"}
        returns = np.concatenate([p["returns"] for p in parts])
        meta = {
            "index": task.index,
            "split": task.split,
            "param": list(task.param),
            "r_min": float(returns.min()),
            "r_max": float(returns.max()),
            "checkpoint_returns": {
                str(s): float(p["returns"].mean())
                for s, p in zip(tier.checkpoints, parts, strict=True)
            },
        }
        ddir.write_task(task.key, arrays, meta, _policy_bytes(snapshots, ti, policy_meta))
    if resume is not None:
        resume.remove()
    return stats


def get_datasets(
    family: EnvFamily,
    tier_name: str,
    overrides: dict | None = None,
    device: torch.device | None = None,
    rebuild: bool = False,
    tasks: Sequence[int] | None = None,
    save_every_s: float | None = DEFAULT_SAVE_EVERY_S,
) -> FamilyData:
    """Every task's dataset, building what is missing, corrupted or truncated.

    ``tasks``: optional task indices (``Task.index``: 0-39 grid, 40+ iid) to build / load instead
    of all of them (e.g. a quick look at a few tasks); ``FamilyData.tasks`` then holds only
    those. They live in the same cache folder as the full build, so a later full call builds only
    the rest. A task's data is one draw from its SAC run, and which tasks train in the same batch
    changes the random stream, so a task built alone differs (in sample, not in distribution)
    from the same task built with all others.

    ``save_every_s``: seconds between saves of an unfinished build's training state (None: never);
    a rerun after an interruption continues from the last save, with identical results.
    """
    tier = resolve_tier(tier_name, family.name, overrides)
    device = device or torch.device("cpu")
    all_tasks = family.all_tasks(tier.task_seed)
    if tasks is None:
        tasks = all_tasks
    else:
        by_index = {t.index: t for t in all_tasks}
        unknown = [i for i in tasks if i not in by_index]
        if unknown:
            raise ErtrlError(
                f"{family.name}: no task with index {unknown}; available:"
                f" {min(by_index)}-{max(by_index)}"
            )
        tasks = [by_index[i] for i in sorted(set(tasks))]
    ddir = dataset_dir(family, tier_name, tier)
    todo = []
    for t in tasks:
        problem = "rebuild requested" if rebuild else ddir.check_task(t.key)
        if problem is not None:
            if problem != "not built":
                console.print(f"[yellow]dataset {ddir.path}/{t.key}: {problem}; regenerating")
            todo.append(t)
    if todo:
        ddir.set_info(
            {
                "family": family.name,
                "tier": tier_name,
                "tier_values": tier.model_dump(mode="json"),
                "format": FORMAT_VERSION,
            }
        )
        if rebuild:
            (ddir.path / TRAINING_STATE_FILE).unlink(missing_ok=True)
        stats = build_tasks(family, tier_name, tier, todo, ddir, device, save_every_s)
        ddir.set_info({"last_build": {**stats, "tasks": len(todo)}})
    arrays, meta = {}, {}
    for t in tasks:
        arrays[t.key], meta[t.key] = ddir.load_task(t.key)
    return FamilyData(family, tier, tasks, arrays, meta, str(ddir.path))
