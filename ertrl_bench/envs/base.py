"""Task families: the 40-task grid, its splits, and batched stepping of many tasks at once.

A family is a 40-point task grid split by index into train / moderate / extreme (docs/paper.md), plus
an ``iid`` split (**ours**): tasks drawn from a seed *inside* the training parameter range but
off the grid, so "IID test" means unseen tasks from the training distribution. A family may also
lay out a denser or sparser training split over the same range (the ``train_tasks`` option,
**ours**, docs/data.md "Number of training tasks"); the test splits never change. Every family's
action space is [-1, 1]^d (wrappers rescale), so policies and datasets share one convention.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from ertrl_bench.errors import ErtrlError

SPLITS = ("train", "iid", "moderate", "extreme")
DEFAULT_TRAIN = tuple(range(10, 30))
DEFAULT_MODERATE = tuple(range(5, 10)) + tuple(range(30, 35))
DEFAULT_EXTREME = tuple(range(0, 5)) + tuple(range(35, 40))
# training-task counts the built-in one-parameter families lay out (the grid's own is 20)
TRAIN_TASK_COUNTS = (5, 10, 20, 40)
# ``Task.index`` of task k of a training layout other than the grid's own: 100 + k (grid points
# are 0-39, iid draws 40-49), so its tasks never share a key or a random stream with the grid's
LAYOUT_INDEX_BASE = 100
TRAIN_TASKS_OPTION = "train_tasks"  # the family option's name (docs/data.md)


@dataclass(frozen=True)
class Task:
    """One task of a family. ``index`` < 40 is a grid point; 40-99 an iid draw; from 100 a
    training task of a layout other than the grid's (``EnvFamily.train_tasks``)."""

    family: str
    split: str
    index: int
    param: tuple[float, ...]

    @property
    def key(self) -> str:
        return f"task-{self.index:03d}"


@dataclass(frozen=True)
class ScriptedBehavior:
    """Hand-written expert policies that replace SAC as a family's behavior policies.

    A task's dataset is then ``trajectories_per_checkpoint`` episodes (the tier's value) at each
    level of ``noise``: the expert's action plus Gaussian noise of that standard deviation,
    clipped to [-1, 1]. The levels take the place of SAC's checkpoints (the dataset's
    ``checkpoint`` column holds the level's index), so small noise gives expert data and large
    noise mediocre data, and the mixture spans both like the paper's checkpoint mixture.
    """

    noise: tuple[float, ...]
    # (tasks, obs [E, ds]) -> the expert's actions [E, da] in [-1, 1]; row i acts in tasks[i]
    act: Callable[[list[Task], np.ndarray], np.ndarray]


@dataclass(frozen=True)
class FamilyHParams:
    """Per-family schedule values (docs/paper.md): the table a family declares as ``hparams``.

    A suite that leaves one of these out gets the family's value, written into the run's spec
    at expansion (``EnvFamily.schedule_defaults``). Per-family *component* options (loss
    weights, BRAC's alpha) are ``EnvFamily.component_defaults``."""

    latent_dim: int = 20
    context_size: int = 100
    meta_batch: int = 16
    steps_per_iteration: int = 2000
    # budget of one evaluation run in transitions (docs/paper.md): 600, 800 for Ant families
    eval_transitions: int = 600


class EnvFamily(ABC):
    """A task family. Subclasses define the grid, the env, and the per-family paper values."""

    name: str = ""
    horizon: int = 200
    context_uses_next_obs: bool = False
    hparams: FamilyHParams = FamilyHParams()
    # Per-family options of components, keyed by component name like a suite's
    # ``component_params`` (e.g. ``{"csro": {"weight": 25}}``); a plugin component can have them
    # too. Precedence when a suite is expanded: the option's default < these < the suite's
    # component_params < the method's own params; the resolved values go into the run's spec.
    component_defaults: dict[str, dict[str, Any]] = {}
    n_grid: int = 40
    n_iid: int = 10
    split_indices: dict[str, tuple[int, ...]] = {
        "train": DEFAULT_TRAIN,
        "moderate": DEFAULT_MODERATE,
        "extreme": DEFAULT_EXTREME,
    }
    # Training-task counts this family can lay out evenly over its training range besides the
    # grid's own (the ``train_tasks`` option); empty: only the grid's. A family listing counts
    # needs a contiguous training split and a grid_param_at that interpolates its grid
    train_task_counts: tuple[int, ...] = ()
    # Per-tier dataset values of this family, e.g. {"smoke": {"sac_steps": 1500, ...}}: fields of
    # ertrl_bench.data.tiers.DataTier overriding the generic tier (a suite's data: overrides both)
    data_tiers: dict[str, dict[str, Any]] = {}
    # the plugin that registered the family, set by ``registry.create``; named in messages
    plugin: str = ""

    @property
    def described(self) -> str:
        """``env family 'name' (plugin ...)``: how messages name the family."""
        return f"env family {self.name!r}" + (f" (plugin {self.plugin})" if self.plugin else "")

    # --- what a family defines -----------------------------------------------------------------
    @abstractmethod
    def grid_param(self, index: int) -> tuple[float, ...]:
        """The task parameter of grid point ``index`` (0..39)."""

    @abstractmethod
    def sample_iid_param(self, rng: np.random.Generator) -> tuple[float, ...]:
        """A parameter drawn inside the training range (not necessarily on the grid)."""

    @abstractmethod
    def make(self, task: Task) -> gym.Env:
        """A gymnasium env for one task (time limit ``horizon`` included)."""

    def grid_param_at(self, position: float) -> tuple[float, ...]:
        """The task parameter at a fractional grid position (a training layout's tasks):
        linear between the two neighbouring grid points. Override where the grid is not linear
        in its index (Hopper / Walker's scales are geometric)."""
        lo = int(np.floor(position))
        frac = position - lo
        if frac == 0.0:
            return self.grid_param(lo)
        a, b = np.asarray(self.grid_param(lo)), np.asarray(self.grid_param(lo + 1))
        return tuple(float(x) for x in (1.0 - frac) * a + frac * b)

    # --- shared behaviour --------------------------------------------------------------------
    @property
    def default_train_tasks(self) -> int:
        """How many training tasks the grid's own training split has (20 in every built-in)."""
        return len(self.split_indices["train"])

    @property
    def train_tasks(self) -> int:
        """How many training tasks this family lays out: its ``train_tasks`` option, else the
        grid's own count."""
        n = getattr(getattr(self, "options", None), TRAIN_TASKS_OPTION, None)
        return self.default_train_tasks if n is None else n

    def allowed_train_tasks(self) -> tuple[int, ...]:
        return tuple(sorted({self.default_train_tasks, *self.train_task_counts}))

    def check_train_tasks(self) -> None:
        """One error naming the family, the option and the allowed counts when this family
        cannot lay out ``train_tasks`` training tasks."""
        n, allowed = self.train_tasks, self.allowed_train_tasks()
        if n in allowed:
            return
        why = (
            "its training tasks are a fixed layout"
            if len(allowed) == 1
            else "training tasks are laid out evenly over the training range"
        )
        raise ErtrlError(
            f"{self.described}: params.{TRAIN_TASKS_OPTION}: cannot lay out {n} training"
            f" tasks ({why}); allowed: {', '.join(map(str, allowed))}"
        )

    def _train_layout(self) -> list[Task]:
        """The training split: the grid's own, or ``train_tasks`` points evenly spaced in grid
        position from its first to its last training point (same range, ends included)."""
        grid = self.split_indices["train"]
        n = self.train_tasks
        if n == len(grid):
            return [Task(self.name, "train", i, self.grid_param(i)) for i in grid]
        self.check_train_tasks()
        positions = np.linspace(min(grid), max(grid), n)
        return [
            Task(self.name, "train", LAYOUT_INDEX_BASE + k, self.grid_param_at(float(p)))
            for k, p in enumerate(positions)
        ]

    def schedule_defaults(self) -> dict[str, dict[str, int]]:
        """This family's value of every train / eval number a suite may leave out.

        ``hparams`` gives the training schedule and the budget; the evaluation thresholds
        follow the horizon as the authors' (``num_exp_traj_eval x max_path_length``): z = 0
        until 2 x horizon transitions (online, non-prior), a horizon of exploration before each
        non-prior evaluation episode. ``ertrl_bench.config.resolve_schedule`` fills a suite's
        gaps with these when it is expanded; nothing reads them at run time.
        """
        hp, h = self.hparams, self.horizon
        return {
            "train": {
                "steps_per_iteration": hp.steps_per_iteration,
                "meta_batch": hp.meta_batch,
                "context_size": hp.context_size,
                "latent_dim": hp.latent_dim,
            },
            "eval": {
                "transitions": hp.eval_transitions,
                "online_min_transitions": 2 * h,
                "non_prior_min_transitions": 2 * h,
                "non_prior_exploration_transitions": h,
            },
        }

    def tasks(self, split: str, seed: int = 0) -> list[Task]:
        """The tasks of a split; deterministic in ``seed`` (only ``iid`` depends on it)."""
        if split == "iid":
            rng = np.random.default_rng([seed, 7919])
            return [
                Task(
                    self.name,
                    "iid",
                    self.n_grid + k,
                    tuple(float(x) for x in self.sample_iid_param(rng)),
                )
                for k in range(self.n_iid)
            ]
        if split not in self.split_indices:
            raise ValueError(f"unknown split {split!r}; available: {', '.join(SPLITS)}")
        if split == "train":
            return self._train_layout()
        return [Task(self.name, split, i, self.grid_param(i)) for i in self.split_indices[split]]

    def all_tasks(self, seed: int = 0) -> list[Task]:
        out: list[Task] = []
        for split in SPLITS:
            out.extend(self.tasks(split, seed))
        return sorted(out, key=lambda t: t.index)

    def task_param(self, task: Task) -> np.ndarray:
        """What the RMSE probe predicts from z."""
        return np.asarray(task.param, dtype=np.float64)

    def make_batch(self, tasks: list[Task]) -> BatchEnv:
        """Many tasks stepped together. Override with a vectorised simulator where it pays."""
        envs = [self.make(t) for t in tasks]
        check_same_spaces(self, tasks, envs)
        return ListBatchEnv(envs)

    def scripted_behavior(self) -> ScriptedBehavior | None:
        """Scripted experts for the behavior data instead of SAC (``None``: SAC, the paper's
        recipe). A family with hand-written policies (Meta-World) returns them here."""
        return None

    def spaces(self) -> tuple[int, int]:
        env = self.make(self.tasks("train")[0])
        obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
        env.close()
        return obs_dim, act_dim


@dataclass
class StepResult:
    """What ``BatchEnv.step`` returns for its E envs.

    ``success``: the step's success flag per env (Meta-World's ``info["success"]``), for
    families that have a notion of success; ``None`` (absent, not all False) for those that do
    not, e.g. the MuJoCo families and Point-Robot. An episode succeeds if the flag is true at
    any of its steps (Meta-World's convention): the datasets and ``metrics.json`` record that.
    """

    next_obs: np.ndarray  # [E, obs_dim] the true next observation (before any reset)
    reward: np.ndarray  # [E]
    terminated: np.ndarray  # [E] bool
    truncated: np.ndarray  # [E] bool (time limit)
    success: np.ndarray | None = None  # [E] bool, or None: the family has no success


class BatchEnv(ABC):
    """E environments stepped in lock-step. The caller resets finished ones explicitly."""

    num_envs: int
    obs_dim: int
    act_dim: int

    @abstractmethod
    def reset(self, seed: int | None = None, mask: np.ndarray | None = None) -> np.ndarray:
        """Reset all envs (or those where ``mask``); returns the current obs of *all* envs."""

    @abstractmethod
    def step(self, actions: np.ndarray) -> StepResult:
        """Step every env with actions in [-1, 1]."""

    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue stepping bit for bit (physics, episode clocks, reset
        RNGs): lets an interrupted behavior-policy build resume. Optional: an env family that
        cannot provide it raises ``NotImplementedError`` and its builds restart instead."""
        raise NotImplementedError(f"{type(self).__name__} cannot save its state")

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what ``get_state`` returned (on an env built for the same tasks)."""
        raise NotImplementedError(f"{type(self).__name__} cannot restore its state")


@dataclass
class ListBatchEnv(BatchEnv):
    """A list of gymnasium envs behind the BatchEnv interface (the generic fallback)."""

    envs: list[gym.Env]
    _obs: np.ndarray = field(init=False)

    def __post_init__(self):
        self.num_envs = len(self.envs)
        self.obs_dim = self.envs[0].observation_space.shape[0]
        self.act_dim = self.envs[0].action_space.shape[0]
        self._obs = np.zeros((self.num_envs, self.obs_dim), dtype=np.float32)

    def reset(self, seed=None, mask=None):
        for i, env in enumerate(self.envs):
            if mask is None or mask[i]:
                obs, _ = env.reset(seed=None if seed is None else seed + i)
                self._obs[i] = obs
        return self._obs.copy()

    def step(self, actions):
        """Step every env; ``success`` from the envs' ``info["success"]`` when they report it
        (None when none does)."""
        n = self.num_envs
        next_obs = np.zeros((n, self.obs_dim), dtype=np.float32)
        reward = np.zeros(n, dtype=np.float32)
        term = np.zeros(n, dtype=bool)
        trunc = np.zeros(n, dtype=bool)
        success = np.zeros(n, dtype=bool)
        reported = False
        for i, env in enumerate(self.envs):
            o, r, te, tr, info = env.step(actions[i])
            next_obs[i], reward[i], term[i], trunc[i] = o, r, te, tr
            if "success" in info:
                success[i], reported = bool(info["success"]), True
        self._obs = next_obs.copy()
        return StepResult(next_obs, reward, term, trunc, success if reported else None)

    def close(self):
        for env in self.envs:
            env.close()


# ---------------------------------------------------------------------------------------------
# A family's mistakes as one message naming it (and its plugin), not a numpy or simulator
# traceback from deep inside a dataset build or an evaluation


def check_same_spaces(family: EnvFamily, tasks: list[Task], envs: list[gym.Env]) -> None:
    """Every task of a family has the same observation and action sizes: their data are
    stacked into one batch, so a task that differs would end in a numpy broadcast error."""
    for space in ("observation", "action"):
        shapes = {
            t.key: getattr(env, f"{space}_space").shape for t, env in zip(tasks, envs, strict=True)
        }
        if len(set(shapes.values())) > 1:
            sizes = ", ".join(f"{k}: {v}" for k, v in shapes.items())
            raise ErtrlError(
                f"{family.described}: its tasks differ in {space} size ({sizes}); every task of"
                f" a family must have the same {space} space (the tasks' data are stacked into"
                " one batch). Make make(task) return the same shape for every task, e.g. pad"
                " the smaller ones, or make the size an option of the family"
            )


class SimulatorError(ErtrlError):
    """A family's env raised while being made, reset or stepped."""


def _simulator_error(family: EnvFamily, what: str, tasks: list[Task], exc: Exception):
    keys = ", ".join(t.key for t in tasks[:4]) + (", ..." if len(tasks) > 4 else "")
    return SimulatorError(
        f"{family.described}: its simulator raised {type(exc).__name__}: {exc} ({what}, tasks"
        f" {keys}). Fix the family's make(task) / reset / step; ertrl_bench.testing."
        "check_env_family(family) runs them on a few tasks"
    )


class CheckedBatchEnv(BatchEnv):
    """A family's ``BatchEnv`` whose simulator errors become one :class:`SimulatorError`."""

    def __init__(self, family: EnvFamily, tasks: list[Task], env: BatchEnv):
        self.family, self.tasks, self.env = family, tasks, env
        self.num_envs, self.obs_dim, self.act_dim = env.num_envs, env.obs_dim, env.act_dim

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ErtrlError, NotImplementedError):  # get/set_state may be missing: a choice
            raise
        except Exception as exc:
            raise _simulator_error(self.family, what, self.tasks, exc) from exc

    def reset(self, seed=None, mask=None):
        return self._call("reset", self.env.reset, seed=seed, mask=mask)

    def step(self, actions):
        return self._call("step", self.env.step, actions)

    def get_state(self):
        return self._call("get_state", self.env.get_state)

    def set_state(self, state):
        return self._call("set_state", self.env.set_state, state)

    def close(self):
        if hasattr(self.env, "close"):
            self._call("close", self.env.close)


def checked_spaces(family: EnvFamily) -> tuple[int, int]:
    """``family.spaces()`` (it makes one env), its simulator errors one :class:`SimulatorError`."""
    try:
        return family.spaces()
    except ErtrlError:
        raise
    except Exception as exc:
        raise _simulator_error(family, "spaces", family.tasks("train")[:1], exc) from exc


def make_checked_batch(family: EnvFamily, tasks: list[Task]) -> BatchEnv:
    """``family.make_batch(tasks)``, its errors (and those of every later reset and step) one
    :class:`SimulatorError` naming the family and its plugin."""
    try:
        env = family.make_batch(tasks)
    except ErtrlError:
        raise
    except Exception as exc:
        raise _simulator_error(family, "make_batch", tasks, exc) from exc
    return CheckedBatchEnv(family, tasks, env)
