"""Behavior-policy diversity measures the policies, not the sampler (docs/paper.md).

Actions come from the checkpoint mixture that produced each task's data; two independent draws
of the same task's mixture give the same-policy floor, reported beside the family's value.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import ot
import pytest

from ertrl_bench.data import get_datasets
from ertrl_bench.data.diversity import measure_diversity
from ertrl_bench.data.policies import (
    load_behavior_policies,
    sample_mixture_actions,
    shared_states,
)
from ertrl_bench.data.store import DatasetDir
from ertrl_bench.envs.point_robot import PointRobot
from ertrl_bench.measures.wasserstein import (
    diversity_with_floor,
    random_directions,
    sliced_w2_sorted,
    sorted_projections,
)
from tests.helpers import TINY_DATA


@pytest.fixture(scope="module")
def tiny():
    return get_datasets(PointRobot(), "smoke", overrides=TINY_DATA)


def test_sliced_w2_equals_pots_on_the_same_directions():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(3, 200, 4)), rng.normal(0.3, 1.0, size=(3, 200, 4))
    dirs = random_directions(4, 50, seed=1)
    ours = sliced_w2_sorted(sorted_projections(x, dirs), sorted_projections(y, dirs))
    for s in range(3):
        pot = ot.sliced.sliced_wasserstein_distance(x[s], y[s], projections=dirs, p=2)
        assert ours[s] == pytest.approx(float(pot), rel=1e-9)


def test_floor_falls_with_samples_where_exact_w2_stays_high():
    """6-D, two draws of one distribution: the sliced floor shrinks ~K^-1/2, exact W2's hardly."""
    rng = np.random.default_rng(0)

    def draws(k):
        a, b = (np.tanh(0.5 * rng.normal(size=(2, 4, k, 6))) for _ in range(2))
        return a, b

    sliced = {k: diversity_with_floor(*draws(k))[1] for k in (64, 1024)}
    assert sliced[1024] < 0.4 * sliced[64]  # ~ (64/1024)^0.5 = 0.25
    exact = {k: diversity_with_floor(*draws(k), method="exact")[1] for k in (64, 512)}
    assert exact[512] > 0.6 * exact[64]  # K^(-1/6): 8x the samples, ~0.7x the floor


def test_mixture_draws_every_checkpoint(tiny):
    train = [t for t in tiny.tasks if t.split == "train"][:3]
    states = shared_states([tiny.arrays[t.key] for t in train], 4, seed=0)
    (acts, again), steps = sample_mixture_actions(tiny.path, train, states, 15, seeds=(2, 5))
    assert steps == [150, 300] and acts.shape == (3, 4, 16, 2)  # 8 per checkpoint
    assert not np.array_equal(acts, again)  # independent draws
    for ti in (0, 2):  # stratified: 8 actions of checkpoint 150, then 8 of checkpoint 300
        for ci, step in enumerate(steps):
            pol = load_behavior_policies(tiny.path, [train[ti]], step)
            want = pol.sample_actions(states, 8, seed=2 + 7919 * ci + 100003 * ti)[0]
            np.testing.assert_array_equal(acts[ti, :, 8 * ci : 8 * ci + 8], want)


def test_family_value_dominates_its_same_policy_floor(tiny):
    kw = {"states": 4, "n_projections": 32}
    rec = measure_diversity(tiny, samples=8192, **kw)
    assert rec["checkpoint"] == "mixture" and rec["checkpoints"] == [150, 300]
    assert rec["tasks"] == 20 and rec["samples"] == 8192 and rec["method"] == "sliced"
    # goals spread over a half circle: distinct policies (though barely trained, so broad:
    # value 0.13 when written); two draws of one policy score under 10% of it (0.07 written)
    assert rec["w2"] > 0.05
    assert 0 < rec["floor"] < 0.1 * rec["w2"], rec
    assert rec["floor_ratio"] == pytest.approx(rec["floor"] / rec["w2"])
    # the old sampler-sized K (32 actions) scores a floor of the order of the value itself
    small = measure_diversity(tiny, samples=32, **kw)
    assert small["floor_ratio"] > 0.5 and small["floor_ratio"] > 5 * rec["floor_ratio"]


def test_the_build_records_the_diversity_in_its_manifest(tiny):
    """Measured once with the tier's ``diversity_samples`` (TINY_DATA: 64), kept in
    manifest.json and read back from there; another sample count is measured anew under the
    same dataset key; 0 records nothing."""
    assert tiny.diversity == measure_diversity(tiny, samples=64)
    assert tiny.diversity["samples"] == 64 and tiny.diversity["tasks"] == 20
    ddir = DatasetDir(Path(tiny.path))
    assert ddir.manifest()["diversity"] == tiny.diversity
    ddir.set_info({"diversity": {**tiny.diversity, "w2": 123.0}})  # read, not measured again
    assert get_datasets(PointRobot(), "smoke", overrides=TINY_DATA).diversity["w2"] == 123.0
    more = get_datasets(PointRobot(), "smoke", overrides={**TINY_DATA, "diversity_samples": 128})
    assert more.path == tiny.path and more.diversity["samples"] == 128
    assert more.diversity["w2"] == measure_diversity(tiny, samples=128)["w2"]
    off = get_datasets(PointRobot(), "smoke", overrides={**TINY_DATA, "diversity_samples": 0})
    assert off.path == tiny.path and off.diversity is None
