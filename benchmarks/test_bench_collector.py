"""Collector throughput: the batched HalfCheetah stepper against the simulator's ceiling.

Run: ``pytest benchmarks/test_bench_collector.py -m bench -s``.

The batched Cheetah-Vel stepper (20 envs, actions from a small torch MLP policy, 256 x 2, plus
Gaussian noise, computed in the loop) is timed over full 200-step episodes, reset included, and
compared with ``mujoco.rollout.rollout`` stepping the same model from the same 20 start states
with zero controls for the same number of physics steps (single thread): the ratio of env-steps/s
says how much of the raw simulator speed the collector keeps. Target: >= 0.5.
"""

from __future__ import annotations

import time

import mujoco
import numpy as np
import pytest
import torch
from mujoco import rollout

from ertrl_bench.envs.mujoco import CheetahVel

N_ENVS = 20
STEPS = 200
TARGET = 0.5


def _rollout_seconds(env, repeats: int = 3) -> float:
    model = env.models[0]
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    state = np.zeros((env.num_envs, mujoco.mj_stateSize(model, spec)))
    for i, d in enumerate(env.datas):
        mujoco.mj_getState(model, d, state[i], spec)
    control = np.zeros((env.num_envs, STEPS * env.frame_skip, model.nu))
    data = mujoco.MjData(model)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        rollout.rollout(model, data, state, control)
        best = min(best, time.perf_counter() - t0)
    return best


@pytest.mark.bench
def test_batched_cheetah_vs_rollout(benchmark):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    fam = CheetahVel()
    tasks = fam.tasks("train")[:N_ENVS]
    env = fam.make_batch(tasks)
    policy = torch.nn.Sequential(
        torch.nn.Linear(env.obs_dim, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, env.act_dim),
        torch.nn.Tanh(),
    )

    def episode():
        obs = env.reset(seed=0)
        with torch.inference_mode():
            for _ in range(STEPS):
                mean = policy(torch.from_numpy(obs))
                a = (mean + 0.3 * torch.randn_like(mean)).clamp_(-1.0, 1.0).numpy()
                obs = env.step(a).next_obs

    env.reset(seed=0)
    ceiling_s = _rollout_seconds(env)
    benchmark.pedantic(episode, rounds=3, iterations=1, warmup_rounds=1)
    batched_s = benchmark.stats.stats.min
    env_steps = N_ENVS * STEPS
    ratio = ceiling_s / batched_s  # = (env_steps / batched_s) / (env_steps / ceiling_s)
    benchmark.extra_info.update(
        {
            "batched_env_steps_per_s": env_steps / batched_s,
            "rollout_env_steps_per_s": env_steps / ceiling_s,
            "ratio_to_rollout": ratio,
        }
    )
    print(
        f"\nbatched HalfCheetah x{N_ENVS}: {env_steps / batched_s:,.0f} env-steps/s;"
        f" mujoco.rollout ceiling: {env_steps / ceiling_s:,.0f} env-steps/s;"
        f" ratio {ratio:.3f} (target >= {TARGET})"
    )
    assert ratio >= TARGET
