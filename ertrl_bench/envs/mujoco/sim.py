"""The simulator side of the MuJoCo families: gymnasium envs and a batched stepper.

Imported lazily (on the first ``make`` / ``make_batch``): it loads ``mujoco`` and gymnasium's v5
MuJoCo envs.

- ``make_env(family, param)``: a gymnasium v5 env (HalfCheetah, Ant, Humanoid, Hopper, Walker2d)
  whose ``step`` maps the action in [-1, 1]^d onto the ctrlrange, steps the physics exactly as
  gymnasium does (``do_simulation``), and takes reward, termination and observation from the
  family's kernel (``common.Kernel``). For mass / friction families the env's *own* MjModel is
  scaled at construction.
- ``MujocoBatchEnv``: E envs as one MjModel per task and one MjData per env, stepped with
  ``mujoco.mj_step(model, data, nstep=frame_skip)`` in a tight loop; reward, observation and
  termination are computed once per step by the kernel on stacked arrays. It reproduces the
  gymnasium env's transitions bit for bit (tests/test_mujoco_envs.py), including its reset noise
  (env i reseeded with ``seed + i``, like ``ListBatchEnv``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import utils
from gymnasium.envs.mujoco.ant_v5 import AntEnv
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
from gymnasium.envs.mujoco.hopper_v5 import HopperEnv
from gymnasium.envs.mujoco.humanoid_v5 import HumanoidEnv
from gymnasium.envs.mujoco.walker2d_v5 import Walker2dEnv
from gymnasium.utils import seeding

from ertrl_bench.envs.base import BatchEnv, StepResult, Task

if TYPE_CHECKING:  # annotations only: common imports this module lazily, not the reverse
    from ertrl_bench.envs.mujoco.common import Kernel, MujocoFamily


def scale_physics(model, data, physics: str | None, s: float) -> None:
    """Scale ``model`` in place: body masses and inertias, or geom frictions, by ``s``."""
    if physics is None:
        return
    if physics == "mass":
        model.body_mass[:] = model.body_mass * s
        model.body_inertia[:] = model.body_inertia * s
        # **ours**: recompute the mass-derived constants (invweight0, meanmass, ...) that the
        # constraint solver uses; the authors' mujoco-py code only overwrote body_mass/inertia.
        mujoco.mj_setConst(model, data)
    elif physics == "friction":
        # all geoms (floor included) and all three coefficients, as rand_param_envs does
        model.geom_friction[:] = model.geom_friction * s
    else:
        raise ValueError(f"unknown physics change {physics!r}")


_TOTALMASS = re.compile(r'\s+settotalmass="([^"]+)"')


def load_model(xml_path: str, width: int, height: int) -> tuple[mujoco.MjModel, mujoco.MjData]:
    """Compile a gymnasium asset as ``MujocoEnv._initialize_simulation`` does.

    One difference: MuJoCo 4 deprecates the compiler's ``settotalmass`` (half_cheetah.xml uses
    it) and prints a warning per compile, i.e. once per task env. We drop the attribute and
    apply the same scaling with ``mj_setTotalmass`` + ``mj_setConst``, as the warning suggests;
    the compiled model is identical array for array (tests/test_mujoco_envs.py).
    """
    with open(xml_path) as f:
        xml = f.read()
    total = _TOTALMASS.search(xml)
    if total is None:
        model = mujoco.MjModel.from_xml_path(xml_path)
    else:
        model = mujoco.MjModel.from_xml_string(_TOTALMASS.sub("", xml, count=1))
        mujoco.mj_setTotalmass(model, float(total.group(1)))
        mujoco.mj_setConst(model, mujoco.MjData(model))
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
    model.vis.global_.offheight = max(model.vis.global_.offheight, height)
    return model, mujoco.MjData(model)


class TaskEnvMixin:
    """Turns a gymnasium v5 MuJoCo env into one task of a family (see module docstring)."""

    def __init__(
        self, kernel_cls: type[Kernel], param, physics: str | None = None, options=None, **kwargs
    ):
        super().__init__(**{**kernel_cls.env_kwargs, **kwargs})  # the gymnasium v5 env
        utils.EzPickle.__init__(self, kernel_cls, param, physics, options, **kwargs)
        self.task_param = tuple(float(p) for p in param)
        if physics is not None:
            scale_physics(self.model, self.data, physics, self.task_param[0])
        self.kernel = kernel_cls(
            np.asarray([self.task_param]), [self.model], self.frame_skip, options
        )
        low, high = self.model.actuator_ctrlrange.T.astype(np.float64)
        self._ctrl_mid, self._ctrl_half = (high + low) / 2.0, (high - low) / 2.0
        nu = self.model.nu
        self.action_space = gym.spaces.Box(-1.0, 1.0, (nu,), np.float32)
        obs_dim = self._get_obs().shape[0]
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float64)

    def _initialize_simulation(self):
        return load_model(self.fullpath, self.width, self.height)

    def _stacked(self) -> dict[str, np.ndarray]:
        return {f: getattr(self.data, f)[None].copy() for f in self.kernel.fields}

    def _get_obs(self):
        return self.kernel.observe(self._stacked())[0]

    def action_to_ctrl(self, action) -> tuple[np.ndarray, np.ndarray]:
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(-1), -1.0, 1.0)
        return a, self._ctrl_mid + self._ctrl_half * a

    def step(self, action):
        a, ctrl = self.action_to_ctrl(action)
        before = self.kernel.position(self._stacked())
        self.do_simulation(ctrl, self.frame_skip)  # gymnasium's: ctrl, mj_step, rnePostConstraint
        S = self._stacked()
        reward, terminated = self.kernel.reward(before, S, a[None], ctrl[None])
        obs = self.kernel.observe(S)[0]
        info = {"task_param": self.task_param}
        if self.render_mode == "human":
            self.render()
        return obs, float(reward[0]), bool(terminated[0]), False, info


class HalfCheetahTaskEnv(TaskEnvMixin, HalfCheetahEnv):
    pass


class AntTaskEnv(TaskEnvMixin, AntEnv):
    pass


class HumanoidTaskEnv(TaskEnvMixin, HumanoidEnv):
    pass


class HopperTaskEnv(TaskEnvMixin, HopperEnv):
    pass


class WalkerTaskEnv(TaskEnvMixin, Walker2dEnv):
    pass


ENV_CLASSES = {
    c.__name__: c
    for c in (HalfCheetahTaskEnv, AntTaskEnv, HumanoidTaskEnv, HopperTaskEnv, WalkerTaskEnv)
}


def make_env(family: MujocoFamily, param, **kwargs) -> gym.Env:
    """The raw (no time limit) gymnasium env of one task parameter of ``family``."""
    cls = ENV_CLASSES[family.kernel.env_class]
    kwargs = {**family.env_kwargs(), **kwargs}
    return cls(family.kernel, param, family.physics, family.options, **kwargs)


class MujocoBatchEnv(BatchEnv):
    """E MuJoCo envs of one family: one MjModel per distinct task, one MjData per env."""

    def __init__(self, family: MujocoFamily, tasks: list[Task]):
        self.family, self.tasks = family, list(tasks)
        self.num_envs = len(tasks)
        self.horizon = family.horizon
        templates: dict[tuple, TaskEnvMixin] = {}
        for t in tasks:  # the gymnasium env builds (and scales) each task's model once
            if t.param not in templates:
                templates[t.param] = make_env(family, t.param)
        self._templates = templates
        envs = [templates[t.param] for t in tasks]
        tpl = envs[0]
        self.models = [e.model for e in envs]
        self.datas = [mujoco.MjData(m) for m in self.models]
        self.frame_skip = tpl.frame_skip  # the family's (Walker: 5), as the gymnasium env's
        self.kernel: Kernel = family.kernel(
            np.array([t.param for t in tasks], dtype=np.float64),
            self.models,
            self.frame_skip,
            family.options,
        )
        self.init_qpos = [e.init_qpos for e in envs]
        self.init_qvel = [e.init_qvel for e in envs]
        self.noise = tpl._reset_noise_scale
        self.ctrl_mid, self.ctrl_half = tpl._ctrl_mid, tpl._ctrl_half
        self.obs_dim = tpl.observation_space.shape[0]
        self.act_dim = tpl.action_space.shape[0]
        # persistent numpy views into each MjData (no per-step attribute lookups)
        self._ctrl = [d.ctrl for d in self.datas]
        self._views = {f: [getattr(d, f) for d in self.datas] for f in self.kernel.fields}
        self.S = {f: np.zeros((self.num_envs, *v[0].shape)) for f, v in self._views.items()}
        self._rngs: list[np.random.Generator | None] = [None] * self.num_envs
        self.t = np.zeros(self.num_envs, dtype=np.int64)
        for i in range(self.num_envs):
            self._gather(i)

    def _gather(self, i: int) -> None:
        for f, views in self._views.items():
            self.S[f][i] = views[i]

    def reset(self, seed=None, mask=None):
        for i in range(self.num_envs):
            if mask is not None and not mask[i]:
                continue
            if seed is not None or self._rngs[i] is None:  # as gymnasium's Env.reset(seed=...)
                self._rngs[i], _ = seeding.np_random(None if seed is None else seed + i)
            rng, m, d, n = self._rngs[i], self.models[i], self.datas[i], self.noise
            mujoco.mj_resetData(m, d)
            qpos = self.init_qpos[i] + rng.uniform(low=-n, high=n, size=m.nq)
            if self.kernel.qvel_noise == "normal":
                qvel = self.init_qvel[i] + n * rng.standard_normal(m.nv)
            else:
                qvel = self.init_qvel[i] + rng.uniform(low=-n, high=n, size=m.nv)
            d.qpos[:] = qpos
            d.qvel[:] = qvel
            mujoco.mj_forward(m, d)
            self._gather(i)
            self.t[i] = 0
        return self.kernel.observe(self.S).astype(np.float32)

    def step(self, actions):
        a = np.clip(np.asarray(actions, dtype=np.float64), -1.0, 1.0)
        ctrl = self.ctrl_mid + self.ctrl_half * a
        before = self.kernel.position(self.S)
        step, rne, fs = mujoco.mj_step, mujoco.mj_rnePostConstraint, self.frame_skip
        models, datas, cviews = self.models, self.datas, self._ctrl
        for i in range(self.num_envs):
            cviews[i][:] = ctrl[i]
            step(models[i], datas[i], fs)
            if self.kernel.needs_rne:
                rne(models[i], datas[i])
        for f, views in self._views.items():
            buf = self.S[f]
            for i, v in enumerate(views):
                buf[i] = v
        reward, terminated = self.kernel.reward(before, self.S, a, ctrl)
        self.t += 1
        return StepResult(
            self.kernel.observe(self.S).astype(np.float32),
            reward.astype(np.float32),
            np.asarray(terminated, dtype=bool),
            self.t >= self.horizon,
        )

    _STATE_SPEC = mujoco.mjtState.mjSTATE_INTEGRATION  # everything mj_step reads, warm start too

    def get_state(self):
        physics = []
        for m, d in zip(self.models, self.datas, strict=True):
            buf = np.empty(mujoco.mj_stateSize(m, self._STATE_SPEC))
            mujoco.mj_getState(m, d, buf, self._STATE_SPEC)
            physics.append(buf)
        return {
            "physics": physics,
            "stacked": {f: v.copy() for f, v in self.S.items()},
            "t": self.t.copy(),
            "rngs": [None if r is None else r.bit_generator.state for r in self._rngs],
        }

    def set_state(self, state):
        for m, d, buf in zip(self.models, self.datas, state["physics"], strict=True):
            mujoco.mj_setState(m, d, buf, self._STATE_SPEC)
        for f, v in state["stacked"].items():
            self.S[f][:] = v
        self.t = state["t"].copy()
        for i, rng_state in enumerate(state["rngs"]):
            if rng_state is None:
                self._rngs[i] = None
            else:
                self._rngs[i], _ = seeding.np_random(0)
                self._rngs[i].bit_generator.state = rng_state

    def close(self):
        for env in self._templates.values():
            env.close()
