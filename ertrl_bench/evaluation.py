"""Evaluation protocols (PAPER.md): offline and online context, normalised return.

Per task and run, ``episodes`` episodes with deterministic actions; the score is the **last**
episode's return. All tasks x runs are stepped together in one ``BatchEnv``.
- offline: before each episode, ``offline_context_per_episode`` random transitions of the
  task's dataset join the context, and z is inferred from the whole context;
- online: z = 0 for the first ``online_exploration_episodes`` episodes; afterwards z is
  inferred from every transition the agent collected itself in that task so far.
Normalised return = 100 * (R - R_min) / (R_max - R_min), with the task's lowest and highest
behavior-policy returns seen in data collection (``FamilyData.r_min/r_max``).
"""

from __future__ import annotations

import numpy as np
import torch

from ertrl_bench.batch import TaskDataset, Transitions
from ertrl_bench.config import EvalConfig
from ertrl_bench.data import FamilyData
from ertrl_bench.data.collect import rollout_episodes
from ertrl_bench.envs.base import Task
from ertrl_bench.training import Agent


def _episode(agent: Agent, env, z: torch.Tensor, horizon: int) -> dict[str, np.ndarray]:
    dev = agent.problem.device

    def policy(obs):
        o = torch.as_tensor(obs, dtype=torch.float32, device=dev)
        return agent.backbone.act(o, z, deterministic=True).cpu().numpy()

    return rollout_episodes(env, policy, horizon)


def _own_context(episodes: list[dict[str, np.ndarray]], device) -> Transitions:
    """The agent's own transitions of several episodes as a masked context ``[E, n, ...]``."""

    def cat(key):
        return np.concatenate([ep[key] for ep in episodes], axis=1)

    t = lambda x: torch.as_tensor(x, dtype=torch.float32, device=device)  # noqa: E731
    valid = cat("valid")
    return Transitions(
        obs=t(cat("obs")),
        actions=t(cat("actions")),
        rewards=t(cat("rewards"))[..., None],
        next_obs=t(cat("next_obs")),
        dones=t(cat("terminals"))[..., None],
        task_ids=torch.zeros(valid.shape[0], dtype=torch.long, device=device),
        mask=torch.as_tensor(valid, device=device),
    )


@torch.no_grad()
def evaluate_tasks(
    agent: Agent,
    data: FamilyData,
    task_data: TaskDataset,
    rows: dict[str, int],
    tasks: list[Task],
    cfg: EvalConfig,
) -> tuple[dict, dict[str, np.ndarray]]:
    """Scores ``{protocol: {task_key: {"return", "normalized"}}}`` and the final z per task/run."""
    family, dev = data.family, agent.problem.device
    episodes = cfg.episodes or family.hparams.eval_episodes
    runs = cfg.runs_per_task
    rep = [t for t in tasks for _ in range(runs)]  # task-major
    env = family.make_batch(rep)
    task_rows = torch.tensor([rows[t.key] for t in rep], device=dev)
    latent = agent.problem.latent_dim
    scores: dict[str, dict] = {}
    final_z: dict[str, np.ndarray] = {}
    for protocol in cfg.protocols:
        if protocol == "offline":
            ctx = None
            for _ in range(episodes):
                new = task_data.sample(task_rows, cfg.offline_context_per_episode)
                ctx = (
                    new
                    if ctx is None
                    else Transitions(
                        *(
                            torch.cat([getattr(ctx, f), getattr(new, f)], 1)
                            for f in ("obs", "actions", "rewards", "next_obs", "dones")
                        ),
                        task_ids=task_rows,
                    )
                )
                _, z = agent.infer(ctx)
                ep = _episode(agent, env, z, family.horizon)
        else:
            own: list[dict] = []
            z = torch.zeros(len(rep), latent, device=dev)
            for e in range(episodes):
                if e >= cfg.online_exploration_episodes and own:
                    _, z = agent.infer(_own_context(own, dev))
                ep = _episode(agent, env, z, family.horizon)
                own.append(ep)
        returns = ep["returns"].reshape(len(tasks), runs)
        final_z[protocol] = z.reshape(len(tasks), runs, latent).cpu().numpy()
        per_task = {}
        for i, t in enumerate(tasks):
            r = float(returns[i].mean())
            per_task[t.key] = {"return": r, "normalized": data.normalized(t, r)}  # NaN: R_min=R_max
        scores[protocol] = per_task
    if hasattr(env, "close"):
        env.close()
    return scores, final_z


@torch.no_grad()
def transition_encodings(
    agent: Agent, task_data: TaskDataset, task_rows: torch.Tensor, n: int
) -> np.ndarray:
    """Per-transition encodings z_i ``[T, n, L]`` of ``n`` dataset transitions per task (the probe's input)."""
    ctx = task_data.sample(task_rows, n)
    z_i, _ = agent.infer(ctx)
    return z_i.cpu().numpy()
