"""Roll out policies in many envs at once and cut the result into per-task trajectories."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ertrl_bench.data.family_data import is_degenerate_range
from ertrl_bench.data.rng import reset_with_seeds
from ertrl_bench.envs.base import BatchEnv, Task


def rollout_episodes(
    env: BatchEnv,
    policy: Callable[[np.ndarray], np.ndarray],
    horizon: int,
    seed: int | None = None,
    seeds: Sequence[int] | None = None,
) -> dict[str, np.ndarray]:
    """One episode in every env of ``env``, stepped together.

    ``seeds``: one reset seed per env (per-task streams), else ``seed`` for the batch.
    Returns arrays ``[E, horizon, ...]`` plus ``valid [E, horizon]`` (False after an episode
    ended by termination) and ``returns [E]``; and ``success [E]`` (the episode's success flag
    was true at some step, Meta-World's convention) when the env reports success
    (``StepResult.success``), absent when it does not.
    """
    n = env.num_envs
    obs = reset_with_seeds(env, seeds) if seeds is not None else env.reset(seed=seed)
    out = {
        "obs": np.zeros((n, horizon, env.obs_dim), np.float32),
        "actions": np.zeros((n, horizon, env.act_dim), np.float32),
        "rewards": np.zeros((n, horizon), np.float32),
        "next_obs": np.zeros((n, horizon, env.obs_dim), np.float32),
        "terminals": np.zeros((n, horizon), bool),
        "timeouts": np.zeros((n, horizon), bool),
        "valid": np.zeros((n, horizon), bool),
    }
    alive = np.ones(n, bool)
    success = None
    for t in range(horizon):
        action = policy(obs)
        res = env.step(action)
        if res.success is not None:
            success = np.zeros(n, bool) if success is None else success
            success |= alive & np.asarray(res.success, bool)
        out["obs"][:, t], out["actions"][:, t] = obs, action
        out["rewards"][:, t], out["next_obs"][:, t] = res.reward, res.next_obs
        out["terminals"][:, t] = res.terminated
        out["timeouts"][:, t] = res.truncated | (t == horizon - 1)
        out["valid"][:, t] = alive
        alive = alive & ~res.terminated
        if not alive.any():
            break
        # A terminated env is reset so its physics stays sane; its data is masked out.
        obs = env.reset(mask=res.terminated) if res.terminated.any() else res.next_obs
    out["returns"] = (out["rewards"] * out["valid"]).sum(1)
    if success is not None:
        out["success"] = success
    return out


def flatten_valid(ep: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    """The valid transitions of the episodes in ``rows``, concatenated in order."""
    mask = ep["valid"][rows]
    flat = {
        k: ep[k][rows][mask]
        for k in ("obs", "actions", "rewards", "next_obs", "terminals", "timeouts")
    }
    traj = np.repeat(np.arange(len(rows)), mask.sum(1))
    flat["trajectory"] = traj.astype(np.int32)
    return flat


def task_meta(task: Task, returns: np.ndarray) -> dict:
    """A task's manifest fields every build writes: which task, and its data's return range
    (``r_min`` / ``r_max``, the normalisation's; ``degenerate_range`` when too narrow)."""
    r_min, r_max = float(returns.min()), float(returns.max())
    return {
        "index": task.index,
        "split": task.split,
        "param": list(task.param),
        "r_min": r_min,
        "r_max": r_max,
        "degenerate_range": is_degenerate_range(r_min, r_max),
    }


def success_meta(success: Sequence[bool], checkpoints: Sequence, k: int) -> dict:
    """A task's manifest fields for behavior episodes' success (families that report it):
    ``episode_success`` per trajectory id (``success[j]`` is trajectory ``j``'s), and
    ``checkpoint_success``, the success rate of each checkpoint's (or noise level's) ``k``
    episodes, keyed like ``checkpoint_returns``."""
    flags = np.asarray(success, bool)
    return {
        "episode_success": [bool(x) for x in flags],
        "checkpoint_success": {
            str(c): float(flags[i * k : (i + 1) * k].mean()) for i, c in enumerate(checkpoints)
        },
    }
