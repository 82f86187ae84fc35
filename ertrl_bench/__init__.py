"""ertrl-bench: a pluggable benchmark suite for offline meta-RL context regularizers.

Importing the package registers the built-in task families with gymnasium (cheap: no MuJoCo
model is loaded until ``gym.make``)::

    import gymnasium as gym
    import ertrl_bench

    env = gym.make("ertrl_bench/CheetahVel-v0", task=3)
"""

__version__ = "0.1.0"

from ertrl_bench.gym_ids import register_gym_envs as _register_gym_envs  # noqa: E402

_register_gym_envs()
