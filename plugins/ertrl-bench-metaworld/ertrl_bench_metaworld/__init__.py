"""ertrl-bench plugin: Meta-World ML1 task families (``metaworld-reach``, ...).

Importing the package registers the gymnasium ids (cheap: Meta-World itself loads on the first
``gym.make``)::

    import gymnasium as gym
    import ertrl_bench_metaworld  # registers ertrl_bench/MetaWorld<Env>-v0

    env = gym.make("ertrl_bench/MetaWorldReach-v0", task=3)  # grid task 3 of 0..49
"""

from ertrl_bench_metaworld.names import register_gym_envs

__version__ = "0.1.0"

register_gym_envs()
