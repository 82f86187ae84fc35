"""Shared, cheap parts of the MuJoCo families: the family base class, grids, and the kernel API.

A family's *kernel* holds its reward, termination and observation as numpy code on **stacked**
MjData arrays (``S[name]`` is ``[E, ...]``, one row per env). The single gymnasium env (E = 1,
``ertrl_bench.envs.mujoco.sim``) and the batched stepper (``MujocoBatchEnv``) both call the same
kernel, so a family's reward lives in exactly one place. This module imports neither ``mujoco``
nor gymnasium's MuJoCo envs: the family modules stay cheap to import, the simulator is loaded on
the first ``make``.

Conventions shared by every MuJoCo family (docs/paper.md, "Task families"):
- gymnasium's **v5** models and reset noise; 200-step episodes (``TimeLimit``).
- the public action space is [-1, 1]^d; the env maps it affinely onto the actuators' ctrlrange
  (the identity except for Humanoid, whose ctrlrange is +-0.4). Actions are clipped to [-1, 1]
  first (**ours**: gymnasium's v5 envs do not clip; our control costs use the clipped action).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, PositiveInt

from ertrl_bench.envs.base import TRAIN_TASK_COUNTS, EnvFamily, Task
from ertrl_bench.options import Strict

N_GRID = 40


class MujocoOptions(Strict):
    horizon: PositiveInt = 200
    train_tasks: PositiveInt | None = Field(
        None,
        description="Training tasks laid out evenly over the training range: 5, 10, 20 or 40"
        " (None: the grid's 20; Ant-Goal: 20 only); the test tasks do not change (docs/data.md)",
    )


class ContactOptions(MujocoOptions):
    """Ant / Humanoid options. ``contact_cost``: ``"authors"`` (default) or ``"physical"``.

    The reward formulas of docs/paper.md subtract a contact cost computed from ``cfrc_ext``.
    Under the authors' mujoco-py / MuJoCo 2.x, ``cfrc_ext`` was never filled (mujoco-py does not
    call ``mj_rnePostConstraint``; the known gym Ant-v2/v3 "contact forces are always 0" issue),
    so the cost they trained and scored with was effectively **0**: ``"authors"`` reproduces
    that regime (the cost term is 0). ``"physical"`` evaluates the formula on the real contact
    forces (``mj_rnePostConstraint`` after each step, as gymnasium does).
    Default ``"authors"``: the paper suites reproduce the regime the paper's numbers (and their
    R_min / R_max normalisation) came from; the physical cost changes the behavior data and the
    returns (Humanoid's is capped at 10 per step, about the size of its alive bonus).
    The option enters the dataset key, so the two never share a cache.
    """

    contact_cost: Literal["authors", "physical"] = "authors"


def scale_grid() -> np.ndarray:
    """Mass / friction scales of the Hopper and Walker families: s = 1.5^linspace(-2, 2, 40)."""
    return 1.5 ** np.linspace(-2.0, 2.0, N_GRID)


def direction_grid() -> np.ndarray:
    """Ant-Dir / Humanoid-Dir directions: theta = linspace(0, 2 pi, 41)[:-1]."""
    return np.linspace(0.0, 2.0 * np.pi, N_GRID + 1)[:-1]


class Kernel(ABC):
    """Reward, termination and observation of one family, vectorised over E envs.

    ``params`` is ``[E, p]`` (the tasks' parameters); ``models`` the E MjModels (read for
    per-env constants such as body masses); ``frame_skip`` the env's (gymnasium's default, or the
    family's option, e.g. Walker's 5); ``options`` the family's options (a kernel reads the
    ones it needs, e.g. ``contact_cost``).
    """

    env_class: ClassVar[str] = ""  # class name in ertrl_bench.envs.mujoco.sim
    env_kwargs: ClassVar[dict] = {}  # kwargs of the gymnasium v5 env
    fields: ClassVar[tuple[str, ...]] = ("qpos", "qvel")  # MjData arrays the kernel reads
    needs_rne: ClassVar[bool] = False  # cfrc_ext needed: call mj_rnePostConstraint after a step
    qvel_noise: ClassVar[str] = "normal"  # v5 reset: qvel noise "normal" (scaled) or "uniform"

    def __init__(self, params: np.ndarray, models: list, frame_skip: int, options=None):
        self.options = options
        self.params = np.asarray(params, dtype=np.float64).reshape(len(models), -1)
        self.timestep = np.array([m.opt.timestep for m in models], dtype=np.float64)
        self.dt = self.timestep * frame_skip

    def position(self, S: dict[str, np.ndarray]) -> np.ndarray:
        """What the reward differentiates across a step (read before and after it)."""
        return S["qpos"][:, :1].copy()

    @abstractmethod
    def observe(self, S: dict[str, np.ndarray]) -> np.ndarray:
        """Observations ``[E, obs_dim]`` of state ``S``."""

    @abstractmethod
    def reward(
        self, before: np.ndarray, S: dict[str, np.ndarray], action: np.ndarray, ctrl: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(reward [E], terminated [E]) of the step that led to state ``S``."""


# MuJoCo smoke tier (ours): the generic smoke values (3k steps, 64 x 64) do not learn Cheetah-Vel
# at all (measured: mean checkpoint returns -448, -415, -420 over 50 tasks, worse than standing
# still). With 8k steps, 128 x 128, batch 256, SAC starts to track the target velocity after ~5k
# steps (tasks v=1.6 / 2.6: -399 / -571 at step 1000 -> -257 / -322 at 8000; standing still is
# -320 / -520), so the checkpoints span untrained to mediocre. Cost: ~10 ms per task-update on
# one CPU thread, i.e. about an hour for all 50 tasks of a family on 2 cores; build a few tasks
# with ``get_datasets(..., tasks=[...])`` for a quick look (tests/test_datasets_mujoco.py).
MUJOCO_SMOKE_TIER = dict(
    sac_steps=8_000,
    random_steps=1_000,
    checkpoints=[1_000, 2_000, 3_000, 4_000, 5_000, 6_000, 7_000, 8_000],
    trajectories_per_checkpoint=4,
    sac_hidden=(128, 128),
    sac_batch=256,
    sac_lr=1e-3,
    buffer_size=8_000,
)


class MujocoFamily(EnvFamily):
    """A MuJoCo family: the grid comes from ``grid_param``; the env from ``kernel``."""

    data_tiers = {"smoke": MUJOCO_SMOKE_TIER}

    kernel: ClassVar[type[Kernel]]
    physics: ClassVar[str | None] = None  # None, "mass" or "friction": what the parameter scales
    gym_id: ClassVar[str] = ""  # registered as f"ertrl_bench/{gym_id}-v0"
    options_model: ClassVar[type[MujocoOptions]] = MujocoOptions  # the family's own options

    def __init__(self, options: MujocoOptions | None = None):
        if options is None:
            options = self.options_model()
        elif not isinstance(options, self.options_model):  # e.g. plain MujocoOptions(horizon=50)
            options = self.options_model.model_validate(options.model_dump(exclude_unset=True))
        self.options = options
        self.horizon = self.options.horizon
        self.check_train_tasks()

    def env_kwargs(self) -> dict:
        """Extra keyword arguments of the gymnasium v5 env (e.g. Walker's ``frame_skip``)."""
        return {}

    def train_params(self) -> np.ndarray:
        return np.array([self.grid_param(i) for i in self.split_indices["train"]])

    def make_raw(self, task: Task):
        """The env of ``task`` without the time limit (what gymnasium.make wraps)."""
        from ertrl_bench.envs.mujoco import sim

        return sim.make_env(self, task.param)

    def make(self, task: Task):
        from gymnasium.wrappers import TimeLimit

        return TimeLimit(self.make_raw(task), max_episode_steps=self.horizon)

    def make_batch(self, tasks: list[Task]):
        from ertrl_bench.envs.mujoco import sim

        return sim.MujocoBatchEnv(self, tasks)


class ScaledPhysicsFamily(MujocoFamily):
    """Hopper / Walker with body masses or geom frictions scaled by s (docs/paper.md)."""

    context_uses_next_obs = True

    train_task_counts = TRAIN_TASK_COUNTS

    def grid_param(self, index):
        return (float(scale_grid()[index]),)

    def grid_param_at(self, position):
        """Geometric between neighbours, as the grid: s = 1.5^(-2 + 4 position / 39)."""
        lo = int(np.floor(position))
        frac = position - lo
        if frac == 0.0:
            return self.grid_param(lo)
        a, b = self.grid_param(lo)[0], self.grid_param(lo + 1)[0]
        return (float(a ** (1.0 - frac) * b**frac),)

    def sample_iid_param(self, rng):
        # log-uniform inside the training range of s
        lo, hi = np.log(self.train_params()[:, 0].min()), np.log(self.train_params()[:, 0].max())
        return (float(np.exp(rng.uniform(lo, hi))),)
