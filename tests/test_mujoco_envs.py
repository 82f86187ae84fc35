"""The eight MuJoCo families: rewards by hand, physics changes, splits, env checks, batching."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import ertrl_bench.envs  # noqa: F401  (registers the gymnasium ids)
from ertrl_bench.envs.base import ListBatchEnv
from ertrl_bench.envs.mujoco import FAMILIES, MujocoOptions, gym_id

NAMES = sorted(FAMILIES)
DEFAULT_SPLITS = {
    "train": list(range(10, 30)),
    "moderate": [5, 6, 7, 8, 9, 30, 31, 32, 33, 34],
    "extreme": [0, 1, 2, 3, 4, 35, 36, 37, 38, 39],
}
ANT_GOAL_SPLITS = {
    "train": list(range(0, 20)),
    "moderate": list(range(20, 30)),
    "extreme": list(range(30, 40)),
}


def family(name, **opts):
    return FAMILIES[name](FAMILIES[name].options_model(**opts))


def grid_task(fam, index):
    return next(t for t in fam.all_tasks() if t.index == index)


# --- (1) the reward of real transitions, recomputed by hand from the MuJoCo state ---------------
def hand_quantity(name, m, d):
    """What PAPER.md's reward differentiates, read straight from MjData."""
    if name in ("ant-dir", "ant-goal"):
        return d.body("torso").xpos.copy()
    if name == "humanoid-dir":
        return (m.body_mass[:, None] * d.xipos).sum(0)[:2] / m.body_mass.sum()
    return np.array([d.qpos[0]])


def hand_reward(name, param, before, after, m, d, a, frame_skip, physical=False):
    """PAPER.md's reward; ``physical``: Ant/Humanoid contact cost on the real cfrc_ext, else 0."""
    dt = m.opt.timestep * frame_skip
    qpos, qvel, cfrc = d.qpos, d.qvel, d.cfrc_ext
    ant_contact = 0.5e-3 * np.sum(np.clip(cfrc, -1, 1) ** 2) if physical else 0.0
    humanoid_contact = min(0.5e-6 * np.sum(cfrc**2), 10.0) if physical else 0.0
    if name == "cheetah-vel":
        vel = (after[0] - before[0]) / dt
        return -abs(vel - param[0]) - 0.05 * np.sum(a**2), False
    if name == "ant-dir":
        vel = (after - before) / dt
        r = vel[0] * np.cos(param[0]) + vel[1] * np.sin(param[0])
        r += -0.5 * np.sum(a**2) - ant_contact + 1.0
        return r, not (0.2 <= qpos[2] <= 1.0)
    if name == "ant-goal":
        r = -np.abs(after[0] - param[0]) - np.abs(after[1] - param[1])
        return r - 0.1 * np.sum(a**2) - ant_contact, False
    if name == "humanoid-dir":
        ctrl = d.ctrl
        np.testing.assert_allclose(ctrl, 0.4 * a)  # [-1, 1] rescaled to the +-0.4 ctrlrange
        vel = (after - before) / m.opt.timestep  # per *model* timestep (PAPER.md)
        r = 0.25 * (vel[0] * np.cos(param[0]) + vel[1] * np.sin(param[0]))
        r += -0.1 * np.sum(ctrl**2) - humanoid_contact + 5.0
        return r, not (1.0 <= qpos[2] <= 2.0)
    r = (after[0] - before[0]) / dt + 1.0 - 1e-3 * np.sum(a**2)
    z, ang = qpos[1], qpos[2]
    if name.startswith("hopper"):
        state = np.concatenate([qpos, qvel])[2:]
        return r, not (np.all(np.abs(state) < 100) and z > 0.7 and abs(ang) < 0.2)
    return r, not (0.8 < z < 2.0 and -1.0 < ang < 1.0)


CONTACT_CASES = [(n, None) for n in NAMES if not n.startswith(("ant", "humanoid"))] + [
    (n, mode)
    for n in NAMES
    if n.startswith(("ant", "humanoid"))
    for mode in ("authors", "physical")
]


@pytest.mark.parametrize("name,contact", CONTACT_CASES)
def test_reward_by_hand(name, contact):
    fam = family(name) if contact is None else family(name, contact_cost=contact)
    task = grid_task(fam, 33)
    env = fam.make(task)
    raw = env.unwrapped
    m, d = raw.model, raw.data
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    saw_contact = False
    for _ in range(15):  # Ant touches the floor after ~4 steps, Humanoid after ~10
        a = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        before = hand_quantity(name, m, d)
        obs, r, term, trunc, _ = env.step(a)
        after = hand_quantity(name, m, d)
        want_r, want_term = hand_reward(
            name,
            task.param,
            before,
            after,
            m,
            d,
            a.astype(np.float64),
            raw.frame_skip,
            physical=contact == "physical",
        )
        assert r == pytest.approx(want_r, rel=1e-12, abs=1e-12)
        assert term == want_term
        assert not trunc
        saw_contact |= bool(np.any(d.cfrc_ext != 0))
        v5 = type(raw).__mro__[2]  # gymnasium's v5 env class: our obs is its own observation
        np.testing.assert_array_equal(obs, v5._get_obs(raw))
        if name in ("hopper-mass", "hopper-friction", "walker-mass", "walker-friction"):
            np.testing.assert_array_equal(
                obs, np.concatenate([d.qpos[1:], np.clip(d.qvel, -10, 10)])
            )
    if name.startswith(("ant", "humanoid")):
        assert saw_contact  # real contact forces: "authors" (0) and "physical" really differ


# --- (1b) frame skip and dt: the authors' values (docs/paper.md) ---------------------------------
# family -> (frame_skip, dt in s) of the authors' envs. Cheetah, Ant, Humanoid and Hopper equal
# gymnasium v5's defaults; Walker uses 5 (dt 0.010 s) where gymnasium v5's Walker2d uses 4.
AUTHORS_FRAME_SKIP_DT = {
    "cheetah-vel": (5, 0.05),
    "ant-dir": (5, 0.05),
    "ant-goal": (5, 0.05),
    "humanoid-dir": (5, 0.015),
    "hopper-mass": (4, 0.008),
    "hopper-friction": (4, 0.008),
    "walker-mass": (5, 0.010),
    "walker-friction": (5, 0.010),
}


def gymnasium_default_frame_skip(env_cls) -> int:
    """The installed gymnasium v5 env's own ``frame_skip`` default (its ``__init__`` signature)."""
    import inspect

    v5 = next(c for c in env_cls.__mro__ if c.__module__.startswith("gymnasium.envs.mujoco"))
    return inspect.signature(v5.__init__).parameters["frame_skip"].default


def test_authors_frame_skip_and_dt_table():
    assert sorted(AUTHORS_FRAME_SKIP_DT) == NAMES  # every family is pinned
    for name, (frame_skip, dt) in AUTHORS_FRAME_SKIP_DT.items():
        fam = family(name)
        raw = fam.make(grid_task(fam, 12)).unwrapped
        assert raw.frame_skip == frame_skip, name
        assert raw.dt == pytest.approx(dt, rel=1e-12), name
        np.testing.assert_allclose(raw.kernel.dt, [dt], rtol=1e-12)  # what the reward divides by
        batch = fam.make_batch([grid_task(fam, 3), grid_task(fam, 30)])
        assert batch.frame_skip == frame_skip, name  # the batched stepper steps the same physics
        np.testing.assert_allclose(batch.kernel.dt, [dt, dt], rtol=1e-12)
        gym_default = gymnasium_default_frame_skip(type(raw))
        if name.startswith("walker"):
            assert gym_default == 4  # the departure of the authors' env from gymnasium v5
        else:
            assert frame_skip == gym_default, name  # "keeps gymnasium's frame_skip"


def test_walker_batch_steps_frame_skip_5():
    """One batched Walker step advances the clock by 5 model steps (not gymnasium's 4)."""
    fam = family("walker-mass", horizon=10)
    batch = fam.make_batch([grid_task(fam, 20)])
    batch.reset(seed=0)
    t0 = batch.datas[0].time
    batch.step(np.zeros((1, batch.act_dim), np.float32))
    assert batch.datas[0].time - t0 == pytest.approx(0.010, rel=1e-9)
    four = family("walker-mass", horizon=10, frame_skip=4).make_batch([grid_task(fam, 20)])
    four.reset(seed=0)
    four.step(np.zeros((1, four.act_dim), np.float32))
    assert four.datas[0].time == pytest.approx(0.008, rel=1e-9)


def test_env_options_enter_the_dataset_key():
    """Contact cost and Walker frame skip change the dataset key; other families' keys do not."""
    from ertrl_bench.data import dataset_key
    from ertrl_bench.data.tiers import resolve_tier

    tier = resolve_tier("smoke", family("ant-dir"), None)

    def key(name, **opts):
        fam = family(name, **opts)
        return dataset_key(fam, tier, fam.all_tasks(tier.task_seed))

    for name in ("ant-dir", "ant-goal", "humanoid-dir"):
        assert family(name).options.contact_cost == "authors"  # the default of every suite
        assert key(name) == key(name, contact_cost="authors")
        assert key(name) != key(name, contact_cost="physical")
    assert family("walker-friction").options.frame_skip == 5
    assert key("walker-friction") != key("walker-friction", frame_skip=4)
    # families without these options keep their old keys: their one other option, train_tasks,
    # is left out of the key (the task list holds the layout it picks: tests/test_task_count.py)
    assert set(family("cheetah-vel").options.model_dump()) == {"horizon", "train_tasks"}


# --- (2) the task parameter changes the physics or the reward ------------------------------------
def run(env, seed, actions):
    env.reset(seed=seed)
    out = [env.step(a) for a in actions]
    return np.array([o[0] for o in out]), np.array([o[1] for o in out])


@pytest.mark.parametrize(
    "name", ["hopper-mass", "hopper-friction", "walker-mass", "walker-friction"]
)
def test_scale_changes_physics(name):
    fam = family(name)
    lo, hi = grid_task(fam, 0), grid_task(fam, 39)
    assert lo.param[0] == pytest.approx(1.5**-2) and hi.param[0] == pytest.approx(1.5**2)
    e_lo, e_hi, e_ref = (
        fam.make(lo),
        fam.make(hi),
        gym.make("Hopper-v5" if name.startswith("hopper") else "Walker2d-v5"),
    )
    field = "body_mass" if name.endswith("mass") else "geom_friction"
    ref = getattr(e_ref.unwrapped.model, field)
    np.testing.assert_allclose(getattr(e_lo.unwrapped.model, field), ref * lo.param[0])
    np.testing.assert_allclose(getattr(e_hi.unwrapped.model, field), ref * hi.param[0])
    if name.endswith("mass"):
        np.testing.assert_allclose(
            e_hi.unwrapped.model.body_inertia, e_ref.unwrapped.model.body_inertia * hi.param[0]
        )
    actions = np.random.default_rng(1).uniform(-1, 1, (40, e_lo.action_space.shape[0]))
    o0, _ = e_lo.reset(seed=5)
    o1, _ = e_hi.reset(seed=5)
    np.testing.assert_array_equal(o0, o1)  # the same start state ...
    obs_lo, _ = run(e_lo, 5, actions)
    obs_hi, _ = run(e_hi, 5, actions)
    assert np.abs(obs_lo[-1] - obs_hi[-1]).max() > 1e-2  # ... and the trajectories diverge


@pytest.mark.parametrize("name", ["cheetah-vel", "ant-dir", "ant-goal", "humanoid-dir"])
def test_param_changes_reward(name):
    fam = family(name)
    e_a, e_b = fam.make(grid_task(fam, 12)), fam.make(grid_task(fam, 37))
    actions = np.random.default_rng(2).uniform(-1, 1, (3, e_a.action_space.shape[0]))
    obs_a, r_a = run(e_a, 9, actions)
    obs_b, r_b = run(e_b, 9, actions)
    np.testing.assert_array_equal(obs_a, obs_b)  # same physics, ...
    assert np.abs(r_a - r_b).min() > 1e-3  # ... different reward


# --- (3) grids and splits --------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_splits_and_grid(name):
    fam = family(name)
    want = ANT_GOAL_SPLITS if name == "ant-goal" else DEFAULT_SPLITS
    for split, idx in want.items():
        assert [t.index for t in fam.tasks(split)] == idx
        assert all(t.split == split for t in fam.tasks(split))
    assert sorted(i for idx in want.values() for i in idx) == list(range(40))
    grid = np.array([fam.grid_param(i) for i in range(40)])
    if name == "cheetah-vel":
        np.testing.assert_allclose(grid[:, 0], np.linspace(0.1, 4.0, 40))
    elif name in ("ant-dir", "humanoid-dir"):
        np.testing.assert_allclose(grid[:, 0], np.linspace(0, 2 * np.pi, 41)[:-1])
    elif name == "ant-goal":
        radius, angle = np.hypot(grid[:, 0], grid[:, 1]), np.arctan2(grid[:, 1], grid[:, 0])
        np.testing.assert_allclose(radius, [0.8] * 10 + [1.2] * 10 + [1.6] * 20)
        half = np.linspace(-np.pi / 2, np.pi / 2, 10)
        np.testing.assert_allclose(angle[:30], np.tile(half, 3), atol=1e-12)
        ext = np.mod(angle[30:], 2 * np.pi)
        np.testing.assert_allclose(ext, np.linspace(np.pi / 2, 3 * np.pi / 2, 50)[:10])
    else:
        np.testing.assert_allclose(grid[:, 0], 1.5 ** np.linspace(-2, 2, 40))
    # iid tasks: inside the training range, off the grid, deterministic in the seed
    iid = fam.tasks("iid", seed=4)
    assert [t.param for t in iid] == [t.param for t in fam.tasks("iid", seed=4)]
    p = np.array([t.param for t in iid])
    train = np.array([t.param for t in fam.tasks("train")])
    if name == "ant-goal":
        r, a = np.hypot(p[:, 0], p[:, 1]), np.arctan2(p[:, 1], p[:, 0])
        assert np.all((r >= 0.8) & (r <= 1.2) & (np.abs(a) <= np.pi / 2))
    else:
        assert np.all((p >= train.min(0)) & (p <= train.max(0)))


def test_hparams_and_flags():
    hp = {n: FAMILIES[n].hparams for n in NAMES}
    assert [hp[n].latent_dim for n in NAMES] == [
        40 if n.startswith("walker") else 20 for n in NAMES
    ]
    assert hp["cheetah-vel"].context_size == 100 and hp["ant-dir"].context_size == 512
    assert hp["hopper-mass"].context_size == hp["humanoid-dir"].context_size == 256
    assert hp["ant-goal"].meta_batch == 16 and hp["walker-friction"].meta_batch == 16
    assert (
        hp["cheetah-vel"].steps_per_iteration == 1000 and hp["ant-dir"].steps_per_iteration == 2000
    )
    cd = {n: FAMILIES[n].component_defaults for n in NAMES}  # per-family component options
    assert (
        cd["ant-dir"]["brac"]["alpha_init"] == 500 and cd["hopper-mass"]["brac"]["alpha_init"] == 50
    )
    assert cd["walker-mass"]["brac"]["alpha_max"] == 10000
    assert cd["humanoid-dir"]["brac"]["alpha_max"] == 2000
    assert [
        cd[n]["csro"]["weight"] for n in ("cheetah-vel", "hopper-mass", "ant-goal", "humanoid-dir")
    ] == [10, 25, 50, 50]
    assert cd["humanoid-dir"]["gan_entropy"]["weight"] == 2.5
    assert cd["walker-mass"]["gan_entropy"]["weight"] == 5
    assert [
        cd[n]["unicorn"]["weight"] for n in ("ant-dir", "hopper-friction", "walker-friction")
    ] == [1.5, 15, 7]
    assert hp["ant-goal"].eval_transitions == 800 and hp["cheetah-vel"].eval_transitions == 600
    for n in NAMES:
        assert FAMILIES[n].context_uses_next_obs == n.startswith(("hopper", "walker"))


# --- (4) gymnasium's env checker, (5) the registered ids ----------------------------------------
@pytest.mark.filterwarnings("ignore:.*Box observation space m")  # unbounded obs, as v5
@pytest.mark.parametrize("name", NAMES)
def test_check_env(name):
    fam = family(name)
    env = fam.make(grid_task(fam, 20)).unwrapped
    check_env(env, skip_render_check=True)
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, env.action_space.shape, np.float32)


@pytest.mark.parametrize("name", NAMES)
def test_gym_make(name):
    env = gym.make(gym_id(name), task=12)
    assert env.spec.max_episode_steps == 200
    assert env.unwrapped.task_param == FAMILIES[name]().grid_param(12)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    env.step(env.action_space.sample())
    env.close()
    with pytest.raises(ValueError):
        gym.make(gym_id(name), task=40)


def test_registered_with_plugin_registry():
    from ertrl_bench.plugins import get_registry

    reg = get_registry()
    for n in NAMES:
        fam = reg.get("envs", n).factory(MujocoOptions(horizon=50))
        assert fam.name == n and fam.horizon == 50
        assert reg.get("envs", n).options is FAMILIES[n].options_model  # suite-validated options
    assert "point-robot" in reg.names("envs")


def test_family_modules_import_cheaply():
    code = "import sys, ertrl_bench.envs; assert 'mujoco' not in sys.modules, 'mujoco imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_time_limit():
    fam = family("cheetah-vel")
    env = fam.make(grid_task(fam, 0))
    env.reset(seed=0)
    for t in range(200):
        *_, term, trunc, _ = env.step(env.action_space.sample())
        assert trunc == (t == 199) and not term


# --- the batched stepper reproduces the gymnasium envs bit for bit -------------------------------
@pytest.mark.parametrize("name,contact", CONTACT_CASES)
def test_batch_matches_gym(name, contact):
    opts = {} if contact is None else {"contact_cost": contact}
    fam = family(name, horizon=40, **opts)
    tasks = [grid_task(fam, i) for i in (3, 17, 17, 36)]
    fast, slow = fam.make_batch(tasks), ListBatchEnv([fam.make(t) for t in tasks])
    assert (fast.num_envs, fast.obs_dim, fast.act_dim) == (
        slow.num_envs,
        slow.obs_dim,
        slow.act_dim,
    )
    rng = np.random.default_rng(7)
    o_fast, o_slow = fast.reset(seed=11), slow.reset(seed=11)
    np.testing.assert_array_equal(o_fast, o_slow)
    any_term = False
    for t in range(45):
        a = rng.uniform(-1.3, 1.3, (len(tasks), fast.act_dim)).astype(np.float32)  # some clipped
        rf, rs = fast.step(a), slow.step(a)
        for field in ("next_obs", "reward", "terminated", "truncated"):
            np.testing.assert_array_equal(
                getattr(rf, field), getattr(rs, field), err_msg=f"{field} t={t}"
            )
        done = rf.terminated | rf.truncated
        any_term |= bool(rf.terminated.any())
        if done.any():  # partial resets continue each env's own random stream
            np.testing.assert_array_equal(fast.reset(mask=done), slow.reset(mask=done))
    assert rf.truncated.dtype == bool and rf.reward.dtype == np.float32
    if name.startswith(("humanoid", "hopper", "walker")):
        assert any_term  # random actions topple these: resets after termination are exercised


@pytest.mark.parametrize("asset", ["half_cheetah.xml", "ant.xml"])
def test_load_model_matches_mujoco_compile(asset, capfd):
    """Our compile (settotalmass applied after compiling) equals MuJoCo's, silently."""
    import os

    import mujoco

    from ertrl_bench.envs.mujoco.sim import load_model

    path = os.path.join(os.path.dirname(gym.__file__), "envs", "mujoco", "assets", asset)
    capfd.readouterr()
    ours, _ = load_model(path, 480, 480)
    assert "deprecated" not in capfd.readouterr().err
    if not hasattr(mujoco, "MjLogConfig"):  # MuJoCo 3 (Meta-World's 3.3.0): nothing to silence
        reference = mujoco.MjModel.from_xml_path(path)
    else:
        log = mujoco.MjLogConfig.get()
        # MuJoCo 4's compile warns about settotalmass, by default also into ./MUJOCO_LOG.TXT
        to_file, log.logto_file = log.logto_file, False
        log.set()
        try:
            reference = mujoco.MjModel.from_xml_path(path)
        finally:
            log.logto_file = to_file
            log.set()
    compared = 0
    for name in dir(reference):
        value = getattr(reference, name, None)
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(getattr(ours, name), value, err_msg=name)
            compared += 1
    assert compared > 50
    if asset == "half_cheetah.xml":
        assert ours.body_mass.sum() == pytest.approx(14.0)
