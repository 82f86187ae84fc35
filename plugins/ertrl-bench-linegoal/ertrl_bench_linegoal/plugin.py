"""The plugin module named by the ``ertrl_bench`` entry point in ``pyproject.toml``.

``line-goal``: a point on a line starts at 0 and must reach a goal g; the task is g. Observation
x (1-D), action a in [-1, 1], x <- x + 0.1 a, reward -|x - g|, 20 steps, no termination. The 40
grid tasks are g = linspace(-1, 1, 40), split by index like every family (train 10..29,
moderate 5..9 and 30..34, extreme 0..4 and 35..39; ``iid``: g drawn inside the training range).
A task is identifiable from (s, a, r) alone, so the context needs no s'.

Copy this file to write your own family (docs/plugins.md, "Env family"): a subclass of
``ertrl_bench.envs.base.EnvFamily`` whose class attribute ``name`` is the registered name (it
keys the dataset cache), ``grid_param`` / ``sample_iid_param`` / ``make``, optionally a
vectorised ``make_batch``, and the per-family values ``hparams`` / ``component_defaults``.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from pydantic import Field, PositiveInt

from ertrl_bench.envs.base import BatchEnv, EnvFamily, FamilyHParams, StepResult, Task
from ertrl_bench.options import Strict
from ertrl_bench.plugins import hookimpl

STEP = 0.1


class LineGoalOptions(Strict):
    """Options of ``envs: [{type: line-goal, params: {...}}]`` in a suite."""

    horizon: PositiveInt = Field(20, description="Steps per episode (the goal is <= 10 away).")


class LineGoalEnv(gym.Env):
    """One task as a gymnasium env (what ``check_env`` and evaluation by hand use)."""

    metadata = {"render_modes": []}

    def __init__(self, goal: float, horizon: int):
        self.goal, self.horizon = float(goal), horizon
        bound = STEP * horizon + 1.0  # farther than the point can get
        self.observation_space = gym.spaces.Box(-bound, bound, (1,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)  # always [-1, 1]^d
        self._x, self._t = np.zeros(1, np.float32), 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._x, self._t = np.zeros(1, np.float32), 0
        return self._x.copy(), {}

    def step(self, action):
        a = np.clip(np.asarray(action, np.float32), -1.0, 1.0)
        self._x = (self._x + STEP * a).astype(np.float32)
        self._t += 1
        reward = -float(abs(self._x[0] - self.goal))
        return self._x.copy(), reward, False, self._t >= self.horizon, {}


class LineGoalBatch(BatchEnv):
    """Every task in one numpy array: dataset builds and evaluation step all tasks at once."""

    def __init__(self, goals: np.ndarray, horizon: int):
        self.goals = goals.astype(np.float32)
        self.num_envs, self.obs_dim, self.act_dim = len(goals), 1, 1
        self.horizon = horizon
        self.x = np.zeros((self.num_envs, 1), np.float32)
        self.t = np.zeros(self.num_envs, np.int64)

    def reset(self, seed=None, mask=None):
        m = np.ones(self.num_envs, bool) if mask is None else mask
        self.x[m], self.t[m] = 0.0, 0
        return self.x.copy()

    def step(self, actions):
        self.x = (self.x + STEP * np.clip(actions, -1.0, 1.0)).astype(np.float32)
        self.t += 1
        reward = -np.abs(self.x[:, 0] - self.goals).astype(np.float32)
        return StepResult(
            self.x.copy(), reward, np.zeros(self.num_envs, bool), self.t >= self.horizon
        )

    def get_state(self):  # lets an interrupted dataset build resume bit for bit
        return {"x": self.x.copy(), "t": self.t.copy()}

    def set_state(self, state):
        self.x, self.t = state["x"].copy(), state["t"].copy()


class LineGoal(EnvFamily):
    name = "line-goal"  # MUST equal the registered name: it keys the dataset cache
    context_uses_next_obs = False
    # per-family training values (a suite's train option left unset takes them)
    hparams = FamilyHParams(latent_dim=4, context_size=32, meta_batch=8, steps_per_iteration=200)
    # per-family component options, keyed by component name like a suite's component_params
    component_defaults = {"brac": {"alpha_init": 50.0}}

    def __init__(self, options: LineGoalOptions | None = None):
        self.options = options or LineGoalOptions()
        self.horizon = self.options.horizon

    def grid_param(self, index: int) -> tuple[float, ...]:
        return (float(np.linspace(-1.0, 1.0, self.n_grid)[index]),)

    def sample_iid_param(self, rng: np.random.Generator) -> tuple[float, ...]:
        train = [self.grid_param(i)[0] for i in self.split_indices["train"]]
        return (float(rng.uniform(min(train), max(train))),)

    def make(self, task: Task) -> gym.Env:
        return LineGoalEnv(task.param[0], self.horizon)

    def make_batch(self, tasks: list[Task]) -> BatchEnv:
        return LineGoalBatch(np.array([t.param[0] for t in tasks]), self.horizon)


@hookimpl
def register_envs(register):
    register("line-goal", LineGoal, LineGoalOptions)
