"""Tests of the template task family; copy them along with ``plugin.py``."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from ertrl_bench_linegoal import plugin
from ertrl_bench_linegoal.plugin import LineGoal, LineGoalOptions
from gymnasium.utils.env_checker import check_env
from pydantic import ValidationError

from ertrl_bench.plugins import get_registry
from ertrl_bench.suite_loader import load_suite


def test_splits_are_disjoint_and_iid_is_inside_the_training_range():
    fam = LineGoal()
    goals = {s: [t.param[0] for t in fam.tasks(s)] for s in ("train", "moderate", "extreme", "iid")}
    assert len(goals["train"]) == 20 and len(goals["moderate"]) == len(goals["extreme"]) == 10
    assert not set(goals["train"]) & (set(goals["moderate"]) | set(goals["extreme"]))
    assert min(goals["train"]) <= min(goals["iid"]) and max(goals["iid"]) <= max(goals["train"])
    assert max(abs(g) for g in goals["extreme"]) > max(abs(g) for g in goals["moderate"])


def test_env_passes_gymnasium_check_and_rewards_reaching_the_goal():
    fam = LineGoal()
    task = fam.tasks("train")[0]
    check_env(fam.make(task), skip_render_check=True)
    env = fam.make(task)
    env.reset(seed=0)
    toward = np.sign([task.param[0]]).astype(np.float32)
    rewards = [env.step(toward)[1] for _ in range(3)]
    assert rewards[0] < rewards[1] < rewards[2] <= 0


def test_batch_env_matches_the_single_envs():
    fam = LineGoal(LineGoalOptions(horizon=5))
    tasks = fam.tasks("moderate")
    batch, singles = fam.make_batch(tasks), [fam.make(t) for t in tasks]
    batch.reset(seed=0)
    for env in singles:
        env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(5):
        actions = rng.uniform(-1, 1, (len(tasks), 1)).astype(np.float32)
        step = batch.step(actions)
        for i, env in enumerate(singles):
            obs, reward, term, trunc, _ = env.step(actions[i])
            assert np.allclose(step.next_obs[i], obs) and step.reward[i] == pytest.approx(reward)
            assert step.truncated[i] == trunc and step.terminated[i] == term
    assert step.truncated.all()


def test_options_are_strict():
    with pytest.raises(ValidationError):
        LineGoalOptions(horizn=10)


def test_registered_under_its_own_name(tmp_path, register_test_plugin):
    register_test_plugin(plugin, "linegoal")
    entry = get_registry().get("envs", "line-goal")
    assert entry.factory(entry.options()).name == "line-goal"  # the dataset cache key
    suite = {"name": "line", "grid": {"envs": ["line-goal"], "methods": ["focal"]}}
    path = tmp_path / "line.yaml"
    path.write_text(yaml.safe_dump(suite))
    (spec,) = load_suite(path)[1]
    assert spec.env.type == "line-goal"
