"""Built-in task families, registered through the same hook a third-party package uses.

(Their gymnasium ids are registered by ``import ertrl_bench``: ``ertrl_bench/gym_ids.py``.)
"""

from ertrl_bench.envs.base import EnvFamily, Task
from ertrl_bench.envs.mujoco import FAMILIES as MUJOCO_FAMILIES
from ertrl_bench.envs.point_robot import PointRobot, PointRobotOptions
from ertrl_bench.plugins import hookimpl

__all__ = ["EnvFamily", "Task"]


@hookimpl
def register_envs(register):
    register("point-robot", PointRobot, PointRobotOptions)
    for name, family in MUJOCO_FAMILIES.items():
        register(name, family, family.options_model)
