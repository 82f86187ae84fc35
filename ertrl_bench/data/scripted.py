"""Behavior data from a family's scripted experts (``EnvFamily.scripted_behavior``) instead of SAC.

Same files, manifest, checksums and cache key as a SAC build: each task gets
``tier.trajectories_per_checkpoint`` episodes at every noise level of the family's
``ScriptedBehavior``; the ``checkpoint`` column holds the level's index (0 = the first, usually
least noisy level) and ``checkpoint_returns`` the mean return per level (and, for a family that
reports success, ``episode_success`` / ``checkpoint_success``). No network is trained,
so the tier's SAC fields are unused. Every random number a task draws (action noise, reset
seeds) comes from ``(tier seed, task index, level, episode)``, so a task's bytes do not depend
on the tasks collected beside it.
"""

from __future__ import annotations

import io
import time

import numpy as np
import torch

from ertrl_bench.data.collect import flatten_valid, rollout_episodes, success_meta, task_meta
from ertrl_bench.data.rng import env_seed
from ertrl_bench.data.store import DatasetDir
from ertrl_bench.data.tiers import DataTier
from ertrl_bench.envs.base import EnvFamily, ScriptedBehavior, Task
from ertrl_bench.progress import bar

# tasks stepped together; each group is written before the next starts, so an interrupted
# build keeps the finished groups
GROUP = 10
_NOISE_PURPOSE = 17  # a purpose number no SAC stream uses


def _policy_bytes(family: EnvFamily, behavior: ScriptedBehavior) -> bytes:
    """What stands in for the SAC weights in ``task-XXX.policy.pt``: the recipe, no weights."""
    buf = io.BytesIO()
    torch.save({"scripted": family.name, "noise_levels": list(behavior.noise)}, buf)
    return buf.getvalue()


def scripted_provenance(family: EnvFamily) -> dict:
    """What a scripted task's data depend on beyond the dataset key: no torch runs, so the
    simulator's and numpy's versions and the version of the package that ships the family
    (its experts live there), in the manifest's ``built_with`` as for a SAC build."""
    from importlib import metadata

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    top = type(family).__module__.split(".")[0]
    dists = metadata.packages_distributions().get(top, [])
    return {
        "device": "cpu",
        "mujoco": version("mujoco"),
        "numpy": np.__version__,
        "family_package": {d: version(d) for d in dists},
    }


def collect_scripted(
    family: EnvFamily,
    tier_name: str,
    tier: DataTier,
    tasks: list[Task],
    ddir: DatasetDir,
    behavior: ScriptedBehavior,
) -> dict:
    """Roll out ``behavior`` at each noise level in ``tasks`` and write their datasets."""
    k = tier.trajectories_per_checkpoint
    levels = list(behavior.noise)
    t0 = time.perf_counter()
    steps = 0
    policy_bytes = _policy_bytes(family, behavior)
    built_with = scripted_provenance(family)
    groups = [tasks[i : i + GROUP] for i in range(0, len(tasks), GROUP)]
    with bar(f"{family.name} [{tier_name}] scripted experts", len(tasks)) as pbar:
        for group in groups:
            env = family.make_batch(group)
            parts: dict[str, list[dict]] = {t.key: [] for t in group}
            returns: dict[str, list[np.ndarray]] = {t.key: [] for t in group}
            success: dict[str, list[np.ndarray]] = {t.key: [] for t in group}
            for li, sigma in enumerate(levels):
                for r in range(k):
                    rngs = [
                        np.random.default_rng([tier.seed, t.index, _NOISE_PURPOSE, li, r])
                        for t in group
                    ]

                    def policy(obs, _rngs=rngs, _sigma=sigma, _group=group):
                        a = np.asarray(behavior.act(_group, obs), np.float32)
                        noise = np.stack([g.standard_normal(a.shape[1]) for g in _rngs])
                        return np.clip(a + _sigma * noise, -1.0, 1.0).astype(np.float32)

                    seeds = [env_seed(tier.seed, t.index, _NOISE_PURPOSE, li, r) for t in group]
                    ep = rollout_episodes(env, policy, family.horizon, seeds=seeds)
                    steps += int(ep["valid"].sum())
                    for i, task in enumerate(group):
                        flat = flatten_valid(ep, np.array([i]))
                        flat["checkpoint"] = np.full(len(flat["rewards"]), li, np.int64)
                        flat["trajectory"] = flat["trajectory"] + li * k + r
                        parts[task.key].append(flat)
                        returns[task.key].append(ep["returns"][i : i + 1])
                        if "success" in ep:
                            success[task.key].append(ep["success"][i : i + 1])
            if hasattr(env, "close"):
                env.close()
            for task in group:
                p = parts.pop(task.key)
                arrays = {f: np.concatenate([x[f] for x in p]) for f in p[0]}
                rets = np.concatenate(returns.pop(task.key))
                flags = success.pop(task.key)
                meta = {
                    **task_meta(task, rets),
                    "behavior": "scripted",
                    "noise_levels": levels,
                    "built_with": built_with,
                    "checkpoint_returns": {
                        str(li): float(rets[li * k : (li + 1) * k].mean())
                        for li in range(len(levels))
                    },
                }
                if flags:  # the family reports success (StepResult.success)
                    meta.update(success_meta(np.concatenate(flags), range(len(levels)), k))
                ddir.write_task(task.key, arrays, meta, policy_bytes)
                pbar.advance()
    wall = time.perf_counter() - t0
    return {
        "behavior": "scripted",
        "groups": len(groups),
        "scripted_wall_s": wall,
        "collect_env_steps_per_s": steps / max(wall, 1e-9),
        "env_steps": steps,
    }
