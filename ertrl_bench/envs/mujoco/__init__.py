"""The eight MuJoCo task families of docs/paper.md, on gymnasium's v5 models.

Importing this package is cheap (numpy only); ``mujoco`` and gymnasium's MuJoCo envs load on the
first ``make`` / ``make_batch`` (``ertrl_bench.envs.mujoco.sim``). ``import ertrl_bench`` registers ``ertrl_bench/<Id>-v0`` with
gymnasium (``ertrl_bench/gym_ids.py``), e.g.
``gymnasium.make("ertrl_bench/CheetahVel-v0", task=12)`` (``task`` = grid index 0..39).

Absolute returns differ slightly from the paper's, which used the old mujoco-py models.
"""

from __future__ import annotations

from ertrl_bench.envs.mujoco.ant import AntDir, AntGoal
from ertrl_bench.envs.mujoco.cheetah import CheetahVel
from ertrl_bench.envs.mujoco.common import ContactOptions, MujocoFamily, MujocoOptions
from ertrl_bench.envs.mujoco.hopper_walker import (
    HopperFriction,
    HopperMass,
    WalkerFriction,
    WalkerMass,
    WalkerOptions,
)
from ertrl_bench.envs.mujoco.humanoid import HumanoidDir

FAMILIES: dict[str, type[MujocoFamily]] = {
    f.name: f
    for f in (
        CheetahVel,
        AntDir,
        AntGoal,
        HumanoidDir,
        HopperMass,
        HopperFriction,
        WalkerMass,
        WalkerFriction,
    )
}

__all__ = [
    "FAMILIES",
    "AntDir",
    "AntGoal",
    "CheetahVel",
    "ContactOptions",
    "HopperFriction",
    "HopperMass",
    "HumanoidDir",
    "MujocoFamily",
    "MujocoOptions",
    "WalkerFriction",
    "WalkerMass",
    "WalkerOptions",
    "gym_id",
]


def gym_id(family: str) -> str:
    """The family's gymnasium id from its class's ``gym_id`` (``gym_ids.GYM_IDS`` must agree)."""
    return f"ertrl_bench/{FAMILIES[family].gym_id}-v0"
