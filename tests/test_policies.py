"""Behavior policies reloaded from the cache, and the ``analyze wasserstein`` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ertrl_bench.data import get_datasets
from ertrl_bench.data.policies import load_behavior_policies, load_policy_file, shared_states
from ertrl_bench.data.sac import EnsembleActor
from ertrl_bench.envs.point_robot import PointRobot
from ertrl_bench.errors import DatasetError
from ertrl_bench.measures.wasserstein import average_pairwise_distance, policy_distance
from tests.helpers import TINY_DATA


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Point-Robot, tiny tier override, in this module's own cache (built once, ~seconds)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ERTRL_BENCH_DATA", str(tmp_path_factory.mktemp("data")))
        yield get_datasets(PointRobot(), "smoke", overrides=TINY_DATA)


def test_reloaded_policies_match_the_trained_members(tiny):
    train = [t for t in tiny.tasks if t.split == "train"]
    pols = load_behavior_policies(tiny.path, train, "last")
    assert pols.checkpoint == 300 and (pols.obs_dim, pols.act_dim) == (2, 2)
    states = shared_states([tiny.arrays[t.key] for t in train], 16, seed=0)
    got = pols.act(states)  # [T, S, da], deterministic
    assert got.shape == (20, 16, 2)
    for ti in (0, 7, 19):  # each member on its own, straight from its snapshot
        blob = load_policy_file(Path(tiny.path) / f"{train[ti].key}.policy.pt")
        one = EnsembleActor(1, 2, 2, tuple(blob["hidden"]))
        one.load_state_dict({k: v[None] for k, v in blob["checkpoints"][300].items()})
        with torch.no_grad():
            want, _ = one(torch.as_tensor(states)[None], deterministic=True)
        np.testing.assert_allclose(got[ti], want[0].numpy(), rtol=1e-5, atol=1e-6)
    first = load_behavior_policies(tiny.path, train[:2], "first")
    assert first.checkpoint == 150 and not np.allclose(first.act(states), got[:2])
    with pytest.raises(DatasetError, match="no checkpoint at step 200"):
        load_behavior_policies(tiny.path, train[:2], 200)


def test_sampled_actions_are_stochastic_seeded_and_in_range(tiny):
    train = [t for t in tiny.tasks if t.split == "train"]
    pols = load_behavior_policies(tiny.path, train[:3])
    states = shared_states([tiny.arrays[t.key] for t in train], 8, seed=1)
    a = pols.sample_actions(states, 32, seed=3)
    assert a.shape == (3, 8, 32, 2) and np.abs(a).max() <= 1.0
    assert a[0, 0].std(axis=0).min() > 0  # stochastic, not the mean action repeated
    assert np.array_equal(a, pols.sample_actions(states, 32, seed=3))
    assert not np.array_equal(a, pols.sample_actions(states, 32, seed=4))


def test_w2_is_zero_for_a_task_with_itself_and_positive_between_goals(tiny):
    train = [t for t in tiny.tasks if t.split == "train"]
    states = shared_states([tiny.arrays[t.key] for t in train], 16, seed=0)
    pols = load_behavior_policies(tiny.path, [train[0], train[0], train[-1]])
    a = pols.sample_actions(states, 128, seed=0)
    # a task with itself: exactly 0 on the same draws; on independent draws only the finite-sample
    # bias of the empirical W2 (0.18 with K=128 when written; it shrinks like K^-1/2)
    assert policy_distance(a[0], a[0]) == pytest.approx(0.0, abs=1e-9)
    same = policy_distance(a[0], a[1])
    # goals 0.8 rad and 2.3 rad apart: the policies push in different directions (0.55 when
    # written; deterministic actions ~(0.29, 0.35) vs ~(-0.34, 0.41))
    different = policy_distance(a[0], a[2])
    assert same < 0.3 and different > 0.4 and different > 2 * same
    assert average_pairwise_distance(a) > 0


def test_analyze_wasserstein_command(tiny, monkeypatch):
    import ertrl_bench.data as data
    from ertrl_bench import cli

    # the command uses the tier's own values; point it at the tiny data already built
    monkeypatch.setattr(
        data,
        "get_datasets",
        lambda fam, tier, overrides=None, **kw: get_datasets(fam, tier, overrides=TINY_DATA, **kw),
    )
    before = sorted(p.name for p in Path(tiny.path).parent.rglob("*"))
    runner = CliRunner()
    res = runner.invoke(
        cli.app,
        ["analyze", "wasserstein", "point-robot", "--states", "8", "--samples", "16", "--json"],
    )
    assert res.exit_code == 0, res.output
    rec = json.loads(res.output)
    assert rec["tasks"] == 20 and rec["checkpoint"] == "mixture" and rec["w2"] > 0
    assert rec["checkpoints"] == [150, 300] and rec["floor"] > 0  # the same-policy floor
    res = runner.invoke(
        cli.app,
        [
            "analyze",
            "wasserstein",
            "point-robot",
            "--states",
            "8",
            "--samples",
            "16",
            "--checkpoint",
            "150",
        ],
    )
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "point-robot [smoke] checkpoint 150: average pairwise sliced W2 over 20 train" in text
    assert "same-policy floor" in text
    assert before == sorted(p.name for p in Path(tiny.path).parent.rglob("*"))  # wrote nothing
