"""Meta-World ML1 as ertrl-bench task families, with scripted-expert behavior data.

One family class, ``MetaWorldML1``, serves every ML1 environment; it is registered once per
environment as ``metaworld-<env>`` (``metaworld-reach``, ``metaworld-push``,
``metaworld-pick-place``, ... all 50 of ``names.ML1_ENVS``).

Tasks. A task is one of Meta-World's "goal variations": the vector Meta-World draws at reset
(``rand_vec``: initial object position and goal position, for reach/push/pick-place 6 numbers),
held fixed. Our 50 grid tasks are drawn by Meta-World's own reset (so its rejection rules, e.g.
reach's object at least 15 cm from the goal, hold) from a fixed seed (``GRID_SEED``), then
ordered by the goal's distance from the centre of Meta-World's goal box; grid index = rank.
Splits: ``train`` 0-29 (the 30 most central goals), ``moderate`` 30-39 and ``extreme`` 40-49
(goals farther out than any training goal: the OOD splits), ``iid`` 10 fresh draws whose goal
lies no farther out than the farthest training goal (Meta-World's own ML1 test set is of this
kind: same distribution, other draws). The goal is hidden from the observation (ML1's
convention); we drop the three always-zero goal entries, so an observation has 36 numbers.

Behavior data: Meta-World's scripted expert of the environment (given the goal, which the
agent never sees), plus Gaussian action noise at the levels of the ``noise`` option (see
``ertrl_bench.envs.base.ScriptedBehavior``). No SAC is trained.

Command: ``ertrl-bench metaworld-published [RESULTS]``, the ML1 numbers papers report for FOCAL
and CSRO beside our success rates where the definitions match (``published.py``).
"""

from __future__ import annotations

import warnings
from functools import cached_property
from pathlib import Path

import gymnasium as gym
import numpy as np
from pydantic import Field, NonNegativeFloat

from ertrl_bench.envs.base import EnvFamily, FamilyHParams, ScriptedBehavior, Task
from ertrl_bench.gym_ids import task_index
from ertrl_bench.options import Strict
from ertrl_bench.plugins import hookimpl
from ertrl_bench_metaworld.names import ML1_ENVS, camel, family_name, gym_id

GRID_SEED = 2412  # seed of the 50-task draw: the grid is part of the benchmark, never an option
OBS_DIM = 36  # Meta-World's 39 minus the goal, always zero under ML1's partial observability
MAX_HORIZON = 500  # Meta-World's max_path_length: its envs refuse to step past it


class MetaWorldOptions(Strict):
    """Options of ``envs: [{type: metaworld-reach, params: {...}}]`` in a suite."""

    horizon: int = Field(
        200,
        ge=1,
        le=MAX_HORIZON,
        description="Steps per episode (Meta-World's own limit is 500; its experts solve"
        " reach, push and pick-place within about 100).",
    )
    noise: tuple[NonNegativeFloat, ...] = Field(
        (0.1, 0.5, 1.0, 3.0),
        min_length=1,
        description="Behavior data: std of the Gaussian noise added to the scripted expert's"
        " actions, one level per entry (small = expert, large = mediocre).",
    )


def _sawyer(env: str):
    """A Meta-World env ready for ``rand_vec``s we choose (what ``ML1.set_task`` does)."""
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    sawyer = ALL_V3_ENVIRONMENTS[f"{env}-v3"]()
    sawyer._partially_observable = True  # ML1: the goal is not observed
    sawyer._set_task_called = True
    sawyer._set_task_inner()
    return sawyer


def _freeze(sawyer, rand_vec) -> None:
    sawyer._freeze_rand_vec = True
    sawyer._last_rand_vec = np.asarray(rand_vec, np.float64)


class MetaWorldTaskEnv(gym.Env):
    """One ML1 task as a gymnasium env: obs float32 [36], actions [-1, 1]^4, time limit
    ``horizon``, ``info["success"]`` Meta-World's success flag of the step."""

    metadata = {"render_modes": []}

    def __init__(self, env: str, rand_vec, horizon: int):
        self.sawyer = _sawyer(env)
        _freeze(self.sawyer, rand_vec)
        self.horizon = horizon
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
        self._t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)  # a task's reset is deterministic: the seed changes nothing
        obs, _ = self.sawyer.reset()
        self._t = 0
        return obs[:OBS_DIM].astype(np.float32), {}

    def step(self, action):
        a = np.clip(np.asarray(action, np.float32), -1.0, 1.0)
        obs, reward, _, _, info = self.sawyer.step(a)
        self._t += 1
        out = {"success": bool(info["success"])}
        return obs[:OBS_DIM].astype(np.float32), float(reward), False, self._t >= self.horizon, out

    def close(self):
        self.sawyer.close()


class MetaWorldML1(EnvFamily):
    """The ML1 family of one Meta-World environment (``env``, set by each registered subclass)."""

    env: str = ""
    n_grid = 50
    n_iid = 10
    split_indices = {
        "train": tuple(range(0, 30)),
        "moderate": tuple(range(30, 40)),
        "extreme": tuple(range(40, 50)),
    }
    context_uses_next_obs = False  # the dense reward depends on the goal: (s, a, r) identifies it
    hparams = FamilyHParams()  # the paper's MuJoCo values (600-transition evaluation = 3 episodes)
    # trajectories per noise level (the tier's sac_* values are unused: nothing is trained)
    data_tiers = {
        "smoke": {"trajectories_per_checkpoint": 1},
        "small": {"trajectories_per_checkpoint": 5},
        "paper": {"trajectories_per_checkpoint": 50},
    }

    def __init__(self, options: MetaWorldOptions | None = None):
        self.options = options or MetaWorldOptions()
        self.horizon = self.options.horizon
        self.hparams = FamilyHParams(eval_transitions=3 * self.horizon)
        self._tasks: dict[tuple[str, int], list[Task]] = {}
        self._goals: dict[tuple[float, ...], np.ndarray] = {}

    # --- the task grid ---------------------------------------------------------------------
    @cached_property
    def _sampler(self):
        """A Meta-World env that draws ``rand_vec``s with the generator we give it."""
        sawyer = _sawyer(self.env)
        sawyer._freeze_rand_vec, sawyer.seeded_rand_vec = False, True
        return sawyer

    def _draw(self, rng: np.random.Generator) -> tuple[tuple[float, ...], float]:
        """One goal variation by Meta-World's own reset, and its goal's distance from the
        centre of the goal box."""
        self._sampler.np_random = rng
        self._sampler.reset()
        param = tuple(float(x) for x in self._sampler._last_rand_vec)
        goal = np.asarray(self._sampler._get_pos_goal(), np.float64).copy()
        self._goals[param] = goal
        box = self._sampler.goal_space
        return param, float(np.linalg.norm(goal - (box.low + box.high) / 2))

    @cached_property
    def _grid(self) -> list[tuple[tuple[float, ...], float]]:
        rng = np.random.default_rng(GRID_SEED)
        draws = [self._draw(rng) for _ in range(self.n_grid)]
        return sorted(draws, key=lambda d: d[1])

    def grid_param(self, index: int) -> tuple[float, ...]:
        return self._grid[index][0]

    def sample_iid_param(self, rng: np.random.Generator) -> tuple[float, ...]:
        limit = max(self._grid[i][1] for i in self.split_indices["train"])
        while True:
            param, radius = self._draw(rng)
            if radius <= limit:
                return param

    def tasks(self, split: str, seed: int = 0) -> list[Task]:
        # cached: every draw is a Meta-World reset (tens of ms)
        if (split, seed) not in self._tasks:
            self._tasks[split, seed] = super().tasks(split, seed)
        return list(self._tasks[split, seed])

    def goal(self, task: Task) -> np.ndarray:
        """The task's goal position (what the expert reaches for; hidden from the agent)."""
        if task.param not in self._goals:
            sawyer = _sawyer(self.env)
            _freeze(sawyer, task.param)
            sawyer.reset()
            self._goals[task.param] = np.asarray(sawyer._get_pos_goal(), np.float64).copy()
            sawyer.close()
        return self._goals[task.param]

    def task_param(self, task: Task) -> np.ndarray:
        return self.goal(task)  # what the probe regresses z on: the goal, not the object

    def make(self, task: Task) -> gym.Env:
        return MetaWorldTaskEnv(self.env, task.param, self.horizon)

    # --- behavior data -----------------------------------------------------------------------
    @cached_property
    def _expert(self):
        from metaworld.policies import ENV_POLICY_MAP

        return ENV_POLICY_MAP[f"{self.env}-v3"]()

    def expert_actions(self, tasks: list[Task], obs: np.ndarray) -> np.ndarray:
        """Meta-World's scripted expert in ``tasks[i]`` at ``obs[i]`` (the goal filled in)."""
        full = np.concatenate([obs, np.stack([self.goal(t) for t in tasks])], axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Constant(s) may be too high": it clips anyway
            actions = [self._expert.get_action(o.astype(np.float64)) for o in full]
        return np.clip(np.asarray(actions, np.float32), -1.0, 1.0)

    def scripted_behavior(self) -> ScriptedBehavior:
        return ScriptedBehavior(noise=tuple(self.options.noise), act=self.expert_actions)


def _family_class(env: str) -> type[MetaWorldML1]:
    doc = f"Meta-World ML1 ``{env}``: 50 goal variations (see the module docstring)."
    attrs = {"name": family_name(env), "env": env, "gym_id": camel(env), "__doc__": doc}
    return type(camel(env), (MetaWorldML1,), {**attrs, "__module__": __name__})


FAMILIES: dict[str, type[MetaWorldML1]] = {family_name(e): _family_class(e) for e in ML1_ENVS}
globals().update({cls.__name__: cls for cls in FAMILIES.values()})  # importable, picklable


def make_env(env: str, task: int = 0, **options) -> gym.Env:
    """gymnasium entry point of ``gym.make(gym_id(env), task=i, horizon=..., noise=...)``."""
    fam = FAMILIES[family_name(env)](MetaWorldOptions(**options))
    index = task_index(task, fam.n_grid)
    split = next(s for s, indices in fam.split_indices.items() if index in indices)
    return fam.make(Task(fam.name, split, index, fam.grid_param(index)))


@hookimpl
def register_envs(register):
    for name, cls in FAMILIES.items():
        register(name, cls, MetaWorldOptions)


@hookimpl
def register_suites(register):
    """This package's studies by name: ``ertrl-bench run metaworld-ml1`` in any install."""
    for path in sorted((Path(__file__).parent / "suites").glob("*.yaml")):
        register(path.stem, path)


__all__ = ["FAMILIES", "MetaWorldML1", "MetaWorldOptions", "MetaWorldTaskEnv", "gym_id"]


@hookimpl
def register_commands(cli):
    import typer

    @cli.command("metaworld-published")
    def metaworld_published(
        results: Path | None = typer.Argument(
            None,
            help="A suite's results folder (or its success.csv) after `ertrl-bench report`: our"
            " success rates go beside the comparable published ones.",
        ),
        out: Path | None = typer.Option(None, "--out", help="Also write the markdown here."),
    ):
        """Published ML1 numbers for FOCAL / CSRO (and UNICORN / ER-TRL) beside ours."""
        from ertrl_bench_metaworld.published import load_published, markdown, read_success_csv

        ours = read_success_csv(results) if results is not None else None
        text = markdown(load_published(), ours)
        if out is not None:
            out.write_text(text)
        typer.echo(text, nl=False)
