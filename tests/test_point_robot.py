"""Point-Robot dynamics, reward and splits against hand-computed values."""

import math

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from ertrl_bench.envs.point_robot import PointRobot


def test_transition_matches_hand_computation():
    fam = PointRobot()
    task = fam.tasks("train")[0]  # grid index 10: angle = 10 * pi / 39
    angle = 10 * math.pi / 39
    assert task.param == pytest.approx((angle,))
    env = fam.make(task)
    obs, _ = env.reset(seed=0)
    assert obs.tolist() == [0.0, 0.0]
    obs, reward, terminated, truncated, _ = env.step(np.array([1.0, 0.5], np.float32))
    # moves by 0.1 * a; reward = -distance to the goal (cos, sin) after the move
    assert obs == pytest.approx([0.1, 0.05])
    expected = -math.hypot(0.1 - math.cos(angle), 0.05 - math.sin(angle))
    assert reward == pytest.approx(expected, abs=1e-6)
    assert not terminated and not truncated
    # actions are clipped to [-1, 1]
    obs, *_ = env.step(np.array([5.0, -5.0], np.float32))
    assert obs == pytest.approx([0.2, -0.05])


def test_time_limit_and_env_checker():
    fam = PointRobot()
    env = fam.make(fam.tasks("train")[3])
    check_env(env, skip_render_check=True)
    env.reset()
    truncs = [env.step(env.action_space.sample())[3] for _ in range(fam.horizon)]
    assert truncs[-1] and not any(truncs[:-1])


def test_batch_env_equals_single_envs():
    fam = PointRobot()
    tasks = fam.tasks("moderate")
    batch = fam.make_batch(tasks)
    singles = [fam.make(t) for t in tasks]
    batch.reset()
    for e in singles:
        e.reset()
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = rng.uniform(-1, 1, (len(tasks), 2)).astype(np.float32)
        res = batch.step(a)
        for i, e in enumerate(singles):
            o, r, *_ = e.step(a[i])
            assert res.next_obs[i] == pytest.approx(o)
            assert res.reward[i] == pytest.approx(r, abs=1e-6)


def test_splits_follow_the_paper_and_iid_is_seeded():
    fam = PointRobot()
    idx = {s: [t.index for t in fam.tasks(s)] for s in ("train", "moderate", "extreme")}
    assert idx["train"] == list(range(10, 30))
    assert idx["moderate"] == [*range(5, 10), *range(30, 35)]
    assert idx["extreme"] == [*range(0, 5), *range(35, 40)]
    iid_a, iid_b = fam.tasks("iid", seed=0), fam.tasks("iid", seed=0)
    assert iid_a == iid_b
    assert fam.tasks("iid", seed=1) != iid_a
    lo, hi = fam.tasks("train")[0].param[0], fam.tasks("train")[-1].param[0]
    assert all(lo <= t.param[0] <= hi for t in iid_a)
    assert {t.index for t in iid_a}.isdisjoint(idx["train"])
