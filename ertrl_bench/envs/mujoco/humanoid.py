"""Humanoid-Dir (docs/paper.md) on gymnasium's v5 Humanoid.

theta = linspace(0, 2 pi, 41)[:-1]. Reward, as the authors' code:
  0.25 * (com_xy_after - com_xy_before) . (cos, sin) / model.opt.timestep
  - 0.1 * sum(ctrl^2) - contact cost + 5,
where com is the mass-weighted mean of the bodies' ``xipos`` (gymnasium's ``mass_center``) and
the displacement is divided by the *model* timestep (0.003 s), not by dt = 5 x 0.003 s, as
docs/paper.md states. The +5 alive bonus is paid on every step (also the terminating one), as in the
authors' code. Terminates when torso z (qpos[2]) leaves [1.0, 2.0].
Contact cost (option ``contact_cost``, ``common.ContactOptions``): ``"authors"`` (default) = 0,
as under the authors' mujoco-py where cfrc_ext was never filled; ``"physical"`` =
min(0.5e-6 * sum(cfrc_ext^2), 10).

Actions: the public action space is [-1, 1]^17; the env rescales to the actuators' ctrlrange
(+-0.4): ctrl = 0.4 * a. The control cost is on ctrl (data.ctrl), as docs/paper.md says.
Observation: gymnasium v5's default, 348-d (qpos[2:], qvel, cinert, cvel, qfrc_actuator[6:],
cfrc_ext of all bodies but the world). **Ours**: the observation keeps the real cfrc_ext under
both contact options (the authors' mujoco-py observation had zeros there).
"""

from __future__ import annotations

import numpy as np

from ertrl_bench.envs.base import TRAIN_TASK_COUNTS, FamilyHParams
from ertrl_bench.envs.mujoco.ant import physical_contact
from ertrl_bench.envs.mujoco.common import ContactOptions, Kernel, MujocoFamily, direction_grid


class HumanoidDirKernel(Kernel):
    env_class = "HumanoidTaskEnv"
    fields = ("qpos", "qvel", "xipos", "cinert", "cvel", "qfrc_actuator", "cfrc_ext")
    needs_rne = True
    qvel_noise = "uniform"

    def __init__(self, params, models, frame_skip, options=None):
        super().__init__(params, models, frame_skip, options)
        self.physical = physical_contact(options)
        self.body_mass = np.stack([np.array(m.body_mass) for m in models])

    def position(self, S):
        num = np.einsum("eb,ebj->ej", self.body_mass, S["xipos"])
        return (num / self.body_mass.sum(1, keepdims=True))[:, :2]

    def observe(self, S):
        n = len(S["qpos"])
        return np.concatenate(
            [
                S["qpos"][:, 2:],
                S["qvel"],
                S["cinert"][:, 1:].reshape(n, -1),
                S["cvel"][:, 1:].reshape(n, -1),
                S["qfrc_actuator"][:, 6:],
                S["cfrc_ext"][:, 1:].reshape(n, -1),
            ],
            axis=1,
        )

    def reward(self, before, S, action, ctrl):
        theta = self.params[:, 0]
        disp = self.position(S) - before
        along = disp[:, 0] * np.cos(theta) + disp[:, 1] * np.sin(theta)
        lin_vel = 0.25 * along / self.timestep
        ctrl_cost = 0.1 * np.sum(ctrl**2, axis=1)
        impact = 0.0
        if self.physical:
            impact = np.minimum(0.5e-6 * np.sum(S["cfrc_ext"] ** 2, axis=(1, 2)), 10.0)
        reward = lin_vel - ctrl_cost - impact + 5.0
        z = S["qpos"][:, 2]
        return reward, (z < 1.0) | (z > 2.0)


class HumanoidDir(MujocoFamily):
    name = "humanoid-dir"
    gym_id = "HumanoidDir"
    train_task_counts = TRAIN_TASK_COUNTS
    kernel = HumanoidDirKernel
    options_model = ContactOptions
    hparams = FamilyHParams(
        latent_dim=20,
        context_size=256,
        meta_batch=16,
        steps_per_iteration=2000,
        eval_transitions=600,
    )
    component_defaults = {
        "brac": {"alpha_init": 500.0, "alpha_max": 2000.0},
        "csro": {"weight": 50.0},
        "gan_entropy": {"weight": 2.5},
        "unicorn": {"weight": 1.5},
    }

    def grid_param(self, index):
        return (float(direction_grid()[index]),)

    def sample_iid_param(self, rng):
        theta = self.train_params()[:, 0]
        return (float(rng.uniform(theta.min(), theta.max())),)
