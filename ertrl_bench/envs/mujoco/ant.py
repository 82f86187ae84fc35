"""Ant-Dir and Ant-Goal (docs/paper.md) on gymnasium's v5 Ant.

Both use the torso's body-frame position ``data.xpos[torso]`` before and after a step, as
gymnasium's v5 Ant and the authors' ``get_body_com("torso")`` do. Contact cost (option
``contact_cost``, ``common.ContactOptions``): ``"authors"`` (default) = 0, as under the authors'
mujoco-py where cfrc_ext was never filled; ``"physical"`` = 0.5e-3 * sum(clip(cfrc_ext, -1, 1)^2)
over all bodies (cfrc_ext from mj_rnePostConstraint, which gymnasium calls after every step).

Observation (**ours**): gymnasium v5's Ant observation *without* the 78 contact-force entries
(``include_cfrc_ext_in_observation=False``): Ant-Dir sees (qpos[2:], qvel), 27-d; Ant-Goal must
know where it is, so it sees (qpos, qvel), 29-d (x, y included). The contact forces still enter
the reward. (The authors' mujoco-py Ant had cfrc_ext identically zero in MuJoCo 2.0, so their
observation carried no contact information either.)

- Ant-Dir: theta = linspace(0, 2 pi, 41)[:-1]; reward = torso xy velocity . (cos, sin)
  - 0.5 sum(a^2) - contact cost + 1; terminates when the state is not finite or torso z (qpos[2])
  leaves [0.2, 1.0].
- Ant-Goal: goal (x, y); reward = -||xy - goal||_1 - 0.1 sum(a^2) - contact cost; no termination.
  Grid (docs/paper.md): index i < 20: radius 0.8 (i < 10) or 1.2, angle linspace(-pi/2, pi/2, 10)[i % 10];
  20..29: radius 1.6, the same 10 angles; 30..39: radius 1.6, angle
  linspace(pi/2, 3 pi/2, 50)[i - 30]. That last line reproduces a defect of the authors' code
  (docs/paper.md): their extreme goals take only the first 10 of 50 angles spread over
  [pi/2, 3 pi/2], so they cover only [pi/2, pi/2 + 9 pi/49] (about 90-123 degrees), not the
  whole back half-plane. We keep their indices for comparability. The task parameter is the
  goal (x, y).
"""

from __future__ import annotations

import numpy as np

from ertrl_bench.envs.base import TRAIN_TASK_COUNTS, FamilyHParams
from ertrl_bench.envs.mujoco.common import ContactOptions, Kernel, MujocoFamily, direction_grid

TORSO = 1  # body id of "torso" in gymnasium's ant.xml (v5's main_body)

ANT_HPARAMS = FamilyHParams(
    latent_dim=20,
    context_size=512,
    meta_batch=16,  # the Ant configs say 10, but the authors' code reads meta_batch = 16
    steps_per_iteration=2000,
    eval_transitions=800,
)
ANT_COMPONENT_DEFAULTS = {
    "brac": {"alpha_init": 500.0, "alpha_max": 2000.0},
    "csro": {"weight": 50.0},
    "gan_entropy": {"weight": 5.0},
    "unicorn": {"weight": 1.5},
}


def contact_cost(cfrc_ext: np.ndarray) -> np.ndarray:
    return 0.5e-3 * np.sum(np.clip(cfrc_ext, -1.0, 1.0) ** 2, axis=(1, 2))


def physical_contact(options) -> bool:
    """True when the family's ``contact_cost`` option is ``"physical"`` (ContactOptions)."""
    return getattr(options, "contact_cost", "authors") == "physical"


class AntDirKernel(Kernel):
    env_class = "AntTaskEnv"
    env_kwargs = {"include_cfrc_ext_in_observation": False}
    fields = ("qpos", "qvel", "xpos", "cfrc_ext")
    needs_rne = True
    qvel_noise = "normal"

    def position(self, S):
        return S["xpos"][:, TORSO, :].copy()

    def observe(self, S):
        return np.concatenate([S["qpos"][:, 2:], S["qvel"]], axis=1)

    def __init__(self, params, models, frame_skip, options=None):
        super().__init__(params, models, frame_skip, options)
        self.physical = physical_contact(options)

    def contact(self, S):
        return contact_cost(S["cfrc_ext"]) if self.physical else 0.0

    def reward(self, before, S, action, ctrl):
        velocity = (self.position(S) - before) / self.dt[:, None]
        theta = self.params[:, 0]
        forward = velocity[:, 0] * np.cos(theta) + velocity[:, 1] * np.sin(theta)
        ctrl_cost = 0.5 * np.sum(action**2, axis=1)
        reward = forward - ctrl_cost - self.contact(S) + 1.0
        z = S["qpos"][:, 2]
        finite = np.isfinite(S["qpos"]).all(1) & np.isfinite(S["qvel"]).all(1)
        healthy = finite & (z >= 0.2) & (z <= 1.0)
        return reward, ~healthy


class AntGoalKernel(AntDirKernel):
    env_kwargs = {
        "include_cfrc_ext_in_observation": False,
        "exclude_current_positions_from_observation": False,
    }

    def observe(self, S):
        return np.concatenate([S["qpos"], S["qvel"]], axis=1)

    def reward(self, before, S, action, ctrl):
        xy = self.position(S)[:, :2]
        goal_reward = -np.sum(np.abs(xy - self.params[:, :2]), axis=1)
        ctrl_cost = 0.1 * np.sum(action**2, axis=1)
        reward = goal_reward - ctrl_cost - self.contact(S)
        return reward, np.zeros(len(reward), dtype=bool)


class AntDir(MujocoFamily):
    name = "ant-dir"
    gym_id = "AntDir"
    train_task_counts = TRAIN_TASK_COUNTS
    kernel = AntDirKernel
    hparams = ANT_HPARAMS
    component_defaults = ANT_COMPONENT_DEFAULTS
    options_model = ContactOptions

    def grid_param(self, index):
        return (float(direction_grid()[index]),)

    def sample_iid_param(self, rng):
        theta = self.train_params()[:, 0]
        return (float(rng.uniform(theta.min(), theta.max())),)


TRAIN_ANGLES = np.linspace(-np.pi / 2, np.pi / 2, 10)
EXTREME_ANGLES = np.linspace(np.pi / 2, 3 * np.pi / 2, 50)[:10]  # the authors' 10 of 50


class AntGoal(MujocoFamily):
    name = "ant-goal"
    gym_id = "AntGoal"
    kernel = AntGoalKernel
    hparams = ANT_HPARAMS
    component_defaults = ANT_COMPONENT_DEFAULTS
    options_model = ContactOptions
    split_indices = {
        "train": tuple(range(0, 20)),
        "moderate": tuple(range(20, 30)),
        "extreme": tuple(range(30, 40)),
    }

    @staticmethod
    def polar(index: int) -> tuple[float, float]:
        """(radius, angle) of grid goal ``index``."""
        if index < 20:
            return (0.8 if index < 10 else 1.2), float(TRAIN_ANGLES[index % 10])
        if index < 30:
            return 1.6, float(TRAIN_ANGLES[index - 20])
        return 1.6, float(EXTREME_ANGLES[index - 30])

    def grid_param(self, index):
        if not 0 <= index < self.n_grid:
            raise IndexError(index)
        r, a = self.polar(index)
        return (float(r * np.cos(a)), float(r * np.sin(a)))

    def sample_iid_param(self, rng):
        r = rng.uniform(0.8, 1.2)
        a = rng.uniform(-np.pi / 2, np.pi / 2)
        return (float(r * np.cos(a)), float(r * np.sin(a)))
