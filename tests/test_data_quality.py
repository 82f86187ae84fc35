"""Data quality (``data: {quality: ...}``, ``ertrl_bench/data/quality.py``).

Each quality keeps exactly its third of the behavior checkpoints' trajectories -- the same rows
as the full collection, nothing rebuilt -- and changes nothing else: same tasks, same R_min /
R_max and meta, same cache folder. ``mixed`` is today's data and today's run id. The built-in
``data-quality`` suite runs every quality.
"""

from __future__ import annotations

import numpy as np
import pytest

from ertrl_bench.data import get_datasets
from ertrl_bench.data.family_data import FamilyData
from ertrl_bench.data.quality import QUALITIES, levels_worst_to_best, quality_levels
from ertrl_bench.data.tiers import resolve_tier
from ertrl_bench.envs.point_robot import PointRobot
from ertrl_bench.errors import ConfigError, ErtrlError
from ertrl_bench.suite_loader import load_suite
from tests.helpers import TINY_DATA, tiny_suite, write_suite

# the tiny data with three checkpoints: one per third
TINY3 = {**TINY_DATA, "checkpoints": [100, 200, 300]}
KEPT = {"mixed": [100, 200, 300], "expert": [300], "medium": [200], "random-heavy": [100]}


@pytest.fixture(scope="module")
def full() -> FamilyData:
    return get_datasets(PointRobot(), "smoke", TINY3)


@pytest.mark.parametrize("quality", QUALITIES)
def test_a_quality_keeps_its_checkpoints_rows_and_nothing_else(full, quality):
    data = get_datasets(PointRobot(), "smoke", {**TINY3, "quality": quality})
    assert data.quality == quality
    assert data.path == full.path  # the same cache folder: selected, not rebuilt
    assert [t.key for t in data.tasks] == [t.key for t in full.tasks]
    assert data.meta == full.meta  # R_min / R_max of the full collection: comparable scores
    for t in full.tasks:
        assert (data.r_min(t), data.r_max(t)) == (full.r_min(t), full.r_max(t))
        got, every = data.arrays[t.key], full.arrays[t.key]
        assert sorted(np.unique(got["checkpoint"]).tolist()) == KEPT[quality]
        rows = np.isin(every["checkpoint"], KEPT[quality])
        assert got.keys() == every.keys()
        for column, values in every.items():  # exactly the full collection's rows, in order
            np.testing.assert_array_equal(got[column], values[rows])


def test_qualities_are_thirds_from_the_best_end():
    ten = list(range(10))  # worst to best
    assert quality_levels(ten, "expert") == [6, 7, 8, 9]
    assert quality_levels(ten, "medium") == [3, 4, 5]
    assert quality_levels(ten, "random-heavy") == [0, 1, 2]
    assert quality_levels(ten, "mixed") == ten
    eighteen = list(range(18))  # the paper tier's 18 checkpoints: 6 each
    assert quality_levels(eighteen, "expert") == list(range(12, 18))
    with pytest.raises(ErtrlError, match="at least 3 needed"):
        quality_levels([0, 1], "expert")


def test_scripted_noise_levels_rank_by_noise_largest_first():
    fam = PointRobot()
    tier = resolve_tier("smoke", fam)
    meta = {"t": {"noise_levels": [0.1, 1.0, 0.5]}}
    data = FamilyData(fam, tier, [], {}, meta, "")
    assert levels_worst_to_best(data) == [1, 2, 0]  # noise 1.0, 0.5, 0.1
    assert quality_levels(levels_worst_to_best(data), "expert") == [0]  # the least noisy
    sac = FamilyData(fam, tier, [], {}, {"t": {}}, "")
    assert levels_worst_to_best(sac) == tier.checkpoints  # SAC: by training step


def _spec(tmp_path, data: dict, name: str = "q"):
    (spec,) = load_suite(write_suite(tmp_path / f"{name}.yaml", tiny_suite(data=data)))[1]
    return spec


def test_mixed_is_todays_run_and_a_quality_is_its_own(tmp_path):
    plain = _spec(tmp_path, TINY3, "plain")
    mixed = _spec(tmp_path, {**TINY3, "quality": "mixed"}, "mixed")
    expert = _spec(tmp_path, {**TINY3, "quality": "expert"}, "expert")
    assert mixed.data == plain.data == TINY3
    assert mixed.run_id() == plain.run_id()
    assert expert.data == {**TINY3, "quality": "expert"}
    assert expert.run_id() != plain.run_id()


def test_a_run_can_set_its_own_quality(tmp_path):
    suite = tiny_suite(data=TINY3)
    del suite["grid"]
    suite["runs"] = [
        {"env": "point-robot", "method": "focal", "data": {"quality": q}}
        for q in ("mixed", "expert")
    ]
    mixed, expert = load_suite(write_suite(tmp_path / "runs.yaml", suite))[1]
    assert (mixed.data, expert.data) == (TINY3, {**TINY3, "quality": "expert"})


def test_bad_qualities_are_named_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"data: quality: unknown data quality 'best'.*mixed"):
        _spec(tmp_path, {**TINY3, "quality": "best"})
    with pytest.raises(ConfigError, match=r"data: .*'expert'.*has 2 \(at least 3 needed\)"):
        _spec(tmp_path, {**TINY_DATA, "quality": "expert"})


def test_a_run_with_a_quality_finishes(tmp_path):
    from ertrl_bench.runner import execute

    spec = _spec(tmp_path, {**TINY3, "quality": "random-heavy"})
    out = execute(spec, tmp_path / "results")
    assert out.status == "done", out.message


def test_the_data_quality_suite_runs_each_quality_for_each_method_and_seed():
    from collections import Counter

    _, specs = load_suite("data-quality")
    cells = Counter((s.method.name, s.data.get("quality", "mixed")) for s in specs)
    # each quality's runs under their own method name, so the report keeps them apart
    named = {(m if q == "mixed" else f"{m}-{q}", q) for m in ("focal", "ertrl") for q in QUALITIES}
    assert cells == dict.fromkeys(named, 5)
