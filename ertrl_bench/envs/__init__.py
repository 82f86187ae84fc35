"""Built-in task families, registered through the same hook a third-party package uses."""

from ertrl_bench.envs.base import EnvFamily, Task
from ertrl_bench.envs.mujoco import FAMILIES as MUJOCO_FAMILIES
from ertrl_bench.envs.mujoco import register_gym_envs
from ertrl_bench.envs.point_robot import PointRobot, PointRobotOptions
from ertrl_bench.plugins import hookimpl

__all__ = ["EnvFamily", "Task"]

register_gym_envs()  # gymnasium.make("ertrl_bench/CheetahVel-v0", task=12) etc.


@hookimpl
def register_envs(register):
    register("point-robot", PointRobot, PointRobotOptions)
    for name, family in MUJOCO_FAMILIES.items():
        register(name, family, family.options_model)
