"""gymnasium ids of the built-in task families, registered by ``import ertrl_bench``::

    import gymnasium as gym
    import ertrl_bench  # registers ertrl_bench/<Id>-v0

    env = gym.make("ertrl_bench/CheetahVel-v0", task=3)  # grid task 3 of 0..39

Cheap on purpose: this module imports gymnasium's registry only; the family classes, ``mujoco``
and its models load on the first ``gym.make``. ``task`` must be an integer grid index
(``3.7`` or ``"3"`` is an error, never truncated). The ids below must match the families'
``gym_id`` attributes (tests/test_plugins.py checks it).
"""

from __future__ import annotations

import operator

NAMESPACE = "ertrl_bench"

# family name -> (gymnasium id without namespace and version, max_episode_steps)
GYM_IDS: dict[str, tuple[str, int]] = {
    "point-robot": ("PointRobot", 20),
    "cheetah-vel": ("CheetahVel", 200),
    "ant-dir": ("AntDir", 200),
    "ant-goal": ("AntGoal", 200),
    "humanoid-dir": ("HumanoidDir", 200),
    "hopper-mass": ("HopperMass", 200),
    "hopper-friction": ("HopperFriction", 200),
    "walker-mass": ("WalkerMass", 200),
    "walker-friction": ("WalkerFriction", 200),
}


def gym_id(family: str) -> str:
    """``"cheetah-vel"`` -> ``"ertrl_bench/CheetahVel-v0"``."""
    return f"{NAMESPACE}/{GYM_IDS[family][0]}-v0"


def register_gym_envs() -> None:
    """Register every built-in family with gymnasium (idempotent)."""
    from gymnasium.envs.registration import register, registry

    for family, (_, steps) in GYM_IDS.items():
        env_id = gym_id(family)
        if env_id not in registry:
            register(
                id=env_id,
                entry_point="ertrl_bench.gym_ids:make_env",
                max_episode_steps=steps,
                kwargs={"family": family},
            )


def task_index(task, n_grid: int) -> int:
    """``task`` as a grid index: an integer (Python or numpy, not bool) in ``0..n_grid-1``."""
    if isinstance(task, bool):
        raise TypeError(f"task must be an integer grid index 0..{n_grid - 1}, got {task!r}")
    try:
        index = operator.index(task)
    except TypeError:
        raise TypeError(
            f"task must be an integer grid index 0..{n_grid - 1}, got {task!r}"
            f" ({type(task).__name__}); e.g. gym.make(..., task=3)"
        ) from None
    if not 0 <= index < n_grid:
        raise ValueError(f"task must be a grid index in 0..{n_grid - 1}, got {task!r}")
    return index


def make_env(family: str, task: int = 0, **kwargs):
    """gymnasium entry point: grid task ``task`` of ``family`` (gymnasium adds the time limit)."""
    from ertrl_bench.envs.mujoco import FAMILIES
    from ertrl_bench.envs.point_robot import PointRobot

    if family == "point-robot":
        fam = PointRobot()
        index = task_index(task, fam.n_grid)
        if kwargs:
            raise TypeError(f"point-robot takes no env kwargs, got {', '.join(kwargs)}")
        (t,) = [t for t in fam.all_tasks() if t.index == index]
        return fam.make(t)
    fam = FAMILIES[family]()
    index = task_index(task, fam.n_grid)
    from ertrl_bench.envs.mujoco import sim

    return sim.make_env(fam, fam.grid_param(index), **kwargs)
