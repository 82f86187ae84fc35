"""The Meta-World ML1 environments we register, and their names here; imports no Meta-World.

``ML1_ENVS`` is Meta-World 3.1's list of v3 environments (``metaworld.env_dict``), copied so that
loading the plugin (every ``ertrl-bench`` command) does not import Meta-World and MuJoCo;
tests/test_metaworld.py checks it against the installed Meta-World.
"""

from __future__ import annotations

ML1_ENVS = (
    "assembly", "basketball", "bin-picking", "box-close", "button-press-topdown",
    "button-press-topdown-wall", "button-press", "button-press-wall", "coffee-button",
    "coffee-pull", "coffee-push", "dial-turn", "disassemble", "door-close", "door-lock",
    "door-open", "door-unlock", "hand-insert", "drawer-close", "drawer-open", "faucet-open",
    "faucet-close", "hammer", "handle-press-side", "handle-press", "handle-pull-side",
    "handle-pull", "lever-pull", "pick-place-wall", "pick-out-of-hole", "pick-place",
    "plate-slide", "plate-slide-side", "plate-slide-back", "plate-slide-back-side",
    "peg-insert-side", "peg-unplug-side", "soccer", "stick-push", "stick-pull", "push",
    "push-wall", "push-back", "reach", "reach-wall", "shelf-place", "sweep-into", "sweep",
    "window-open", "window-close",
)  # fmt: skip

NAMESPACE = "ertrl_bench"


def family_name(env: str) -> str:
    """``"pick-place"`` -> ``"metaworld-pick-place"`` (the family's registered name)."""
    return f"metaworld-{env}"


def camel(env: str) -> str:
    """``"pick-place"`` -> ``"MetaWorldPickPlace"`` (class name and gymnasium id)."""
    return "MetaWorld" + "".join(part.capitalize() for part in env.split("-"))


def gym_id(env: str) -> str:
    """``"pick-place"`` -> ``"ertrl_bench/MetaWorldPickPlace-v0"``."""
    return f"{NAMESPACE}/{camel(env)}-v0"


def register_gym_envs() -> None:
    """Register every ML1 family with gymnasium (idempotent)."""
    from gymnasium.envs.registration import register, registry

    for env in ML1_ENVS:
        if gym_id(env) not in registry:
            # no max_episode_steps: the env truncates at the family's ``horizon`` itself
            register(
                id=gym_id(env),
                entry_point="ertrl_bench_metaworld.plugin:make_env",
                kwargs={"env": env},
            )
