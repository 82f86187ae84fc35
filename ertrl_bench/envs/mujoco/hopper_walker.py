"""Hopper-Mass, Hopper-Friction, Walker-Mass, Walker-Friction (docs/paper.md).

s = 1.5^linspace(-2, 2, 40) scales, on the env's own MjModel, every body's mass and inertia
(``*-mass``) or every geom's friction, floor included (``*-friction``).
Reward = (x_after - x_before) / dt + 1 - 1e-3 * sum(a^2); the +1 alive bonus is paid on every
step, the terminating one included, as in the authors' code (gymnasium v5 pays it only while
healthy). Observation = (qpos[1:], clip(qvel, -10, 10)) as gymnasium v5 and docs/paper.md.
Termination: Hopper when |state[2:]| >= 100 anywhere, height qpos[1] <= 0.7 or |angle| >= 0.2;
Walker when height leaves (0.8, 2.0) or angle leaves (-1, 1).
Models: gymnasium's ``hopper.xml`` and ``walker2d_v5.xml`` (**ours**: v5's walker has friction
1.9 on both feet; the authors' mujoco-py ``walker2d.xml`` had 0.9 on the right foot, 1.9 on the
left).
The context includes s' (``context_uses_next_obs``).
Frame skip: Hopper keeps gymnasium v5's 4 (dt 0.008 s, as the authors'); Walker uses the
authors' **5** (dt 0.010 s; gymnasium v5's Walker2d uses 4, dt 0.008 s) -- docs/paper.md. It is
the Walker option ``frame_skip`` (``WalkerOptions``), so it enters the dataset key: data built
with another frame skip is never reused.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from pydantic import Field

from ertrl_bench.envs.base import FamilyHParams
from ertrl_bench.envs.mujoco.common import Kernel, MujocoOptions, ScaledPhysicsFamily

#: the authors' Walker frame skip (docs/paper.md); gymnasium v5's Walker2d default is 4
WALKER_FRAME_SKIP = 5


class WalkerOptions(MujocoOptions):
    """Walker-Mass / Walker-Friction options: ``frame_skip`` 5 = the authors' env (dt 0.010 s)."""

    frame_skip: int = Field(WALKER_FRAME_SKIP, ge=1)


class HopperKernel(Kernel):
    env_class = "HopperTaskEnv"
    fields = ("qpos", "qvel")
    qvel_noise = "uniform"

    def observe(self, S):
        return np.concatenate([S["qpos"][:, 1:], np.clip(S["qvel"], -10.0, 10.0)], axis=1)

    def reward(self, before, S, action, ctrl):
        forward = (S["qpos"][:, 0] - before[:, 0]) / self.dt
        reward = forward + 1.0 - 1e-3 * np.sum(action**2, axis=1)
        return reward, ~self.healthy(S)

    def healthy(self, S):
        state = np.concatenate([S["qpos"], S["qvel"]], axis=1)[:, 2:]
        z, angle = S["qpos"][:, 1], S["qpos"][:, 2]
        ok_state = np.all(np.abs(state) < 100.0, axis=1)
        return ok_state & (z > 0.7) & (np.abs(angle) < 0.2)


class WalkerKernel(HopperKernel):
    env_class = "WalkerTaskEnv"

    def healthy(self, S):
        z, angle = S["qpos"][:, 1], S["qpos"][:, 2]
        return (z > 0.8) & (z < 2.0) & (angle > -1.0) & (angle < 1.0)


HOPPER_HPARAMS = FamilyHParams(
    latent_dim=20,
    context_size=256,
    meta_batch=16,
    steps_per_iteration=2000,
    eval_transitions=600,
)
HOPPER_COMPONENT_DEFAULTS = {
    "brac": {"alpha_init": 50.0, "alpha_max": 10000.0},
    "csro": {"weight": 25.0},
    "gan_entropy": {"weight": 5.0},
    "unicorn": {"weight": 15.0},
}
# Walker differs from Hopper only in latent size and UNICORN weight (docs/paper.md).
WALKER_HPARAMS = dataclasses.replace(HOPPER_HPARAMS, latent_dim=40)
WALKER_COMPONENT_DEFAULTS = {**HOPPER_COMPONENT_DEFAULTS, "unicorn": {"weight": 7.0}}


class HopperMass(ScaledPhysicsFamily):
    name = "hopper-mass"
    gym_id = "HopperMass"
    kernel = HopperKernel
    physics = "mass"
    hparams = HOPPER_HPARAMS
    component_defaults = HOPPER_COMPONENT_DEFAULTS


class HopperFriction(ScaledPhysicsFamily):
    name = "hopper-friction"
    gym_id = "HopperFriction"
    kernel = HopperKernel
    physics = "friction"
    hparams = HOPPER_HPARAMS
    component_defaults = HOPPER_COMPONENT_DEFAULTS


class WalkerFamily(ScaledPhysicsFamily):
    kernel = WalkerKernel
    hparams = WALKER_HPARAMS
    component_defaults = WALKER_COMPONENT_DEFAULTS
    options_model = WalkerOptions

    def env_kwargs(self) -> dict:
        return {"frame_skip": self.options.frame_skip}


class WalkerMass(WalkerFamily):
    name = "walker-mass"
    gym_id = "WalkerMass"
    physics = "mass"


class WalkerFriction(WalkerFamily):
    name = "walker-friction"
    gym_id = "WalkerFriction"
    physics = "friction"
