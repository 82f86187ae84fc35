"""Cheetah-Vel (docs/paper.md): HalfCheetah running at a target velocity.

Target v = linspace(0.1, 4.0, 40); reward = -|forward_vel - v| - 0.05 * sum(a^2) with
forward_vel = (x_after - x_before) / dt (root x position, dt = 5 x 0.01 s); no termination.
Observation: gymnasium v5's (qpos[1:], qvel), 17-d (**ours**: the authors' mujoco-py env also
appended the torso's centre-of-mass position, 20-d).
"""

from __future__ import annotations

import numpy as np

from ertrl_bench.envs.base import TRAIN_TASK_COUNTS, FamilyHParams
from ertrl_bench.envs.mujoco.common import N_GRID, Kernel, MujocoFamily


class CheetahVelKernel(Kernel):
    env_class = "HalfCheetahTaskEnv"
    fields = ("qpos", "qvel")
    qvel_noise = "normal"

    def observe(self, S):
        return np.concatenate([S["qpos"][:, 1:], S["qvel"]], axis=1)

    def reward(self, before, S, action, ctrl):
        forward_vel = (S["qpos"][:, 0] - before[:, 0]) / self.dt
        reward = -np.abs(forward_vel - self.params[:, 0]) - 0.05 * np.sum(action**2, axis=1)
        return reward, np.zeros(len(reward), dtype=bool)


class CheetahVel(MujocoFamily):
    name = "cheetah-vel"
    gym_id = "CheetahVel"
    train_task_counts = TRAIN_TASK_COUNTS
    kernel = CheetahVelKernel
    hparams = FamilyHParams(
        latent_dim=20,
        context_size=100,
        meta_batch=16,
        steps_per_iteration=1000,
        eval_transitions=600,
    )
    component_defaults = {
        "brac": {"alpha_init": 50.0, "alpha_max": 2000.0},
        "csro": {"weight": 10.0},
        "gan_entropy": {"weight": 2.5},
        "unicorn": {"weight": 1.5},
    }

    def grid_param(self, index):
        return (float(np.linspace(0.1, 4.0, N_GRID)[index]),)

    def sample_iid_param(self, rng):
        v = self.train_params()[:, 0]
        return (float(rng.uniform(v.min(), v.max())),)
