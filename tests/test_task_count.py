"""Number of training tasks (the family option ``train_tasks``, ``ertrl_bench/envs/base.py``).

A count lays out that many training tasks evenly over the grid's training range, and changes
nothing else: the moderate / extreme / iid tasks are the default layout's, the default count is
today's tasks, dataset folder and run ids; another count is its own dataset and run; a count a
family cannot lay out is one error naming the family, the option and the allowed counts; a run
builds data only for the tasks it reads.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ertrl_bench.config import Component
from ertrl_bench.data import dataset_dir
from ertrl_bench.data.tiers import resolve_tier
from ertrl_bench.envs.base import DEFAULT_TRAIN, LAYOUT_INDEX_BASE, TRAIN_TASK_COUNTS
from ertrl_bench.envs.mujoco import FAMILIES
from ertrl_bench.envs.point_robot import PointRobot, PointRobotOptions
from ertrl_bench.errors import ConfigError, ErtrlError
from ertrl_bench.problem import reference_task_index
from ertrl_bench.registry import create
from ertrl_bench.suite_loader import load_suite
from tests.helpers import tiny_suite, write_suite

REPO = Path(__file__).resolve().parents[1]
LAID_OUT = ["point-robot", *(n for n in FAMILIES if n != "ant-goal")]
TEST_SPLITS = ("moderate", "extreme", "iid")


def _family(name: str, train_tasks: int | None = None):
    params = {} if train_tasks is None else {"train_tasks": train_tasks}
    return create("envs", Component(type=name, params=params))


@pytest.mark.parametrize("name", ["point-robot", *FAMILIES])
def test_the_default_count_is_todays_grid_and_dataset(name):
    plain, twenty = _family(name), _family(name, 20)
    assert plain.train_tasks == twenty.train_tasks == 20
    assert twenty.all_tasks() == plain.all_tasks()
    if name != "ant-goal":
        assert [t.index for t in plain.tasks("train")] == list(DEFAULT_TRAIN)
    tier = resolve_tier("smoke", plain)
    assert dataset_dir(twenty, "smoke", tier).path == dataset_dir(plain, "smoke", tier).path


@pytest.mark.parametrize("name", LAID_OUT)
@pytest.mark.parametrize("n", [c for c in TRAIN_TASK_COUNTS if c != 20])
def test_a_count_changes_the_training_tasks_and_nothing_else(name, n):
    default, fam = _family(name), _family(name, n)
    train, grid = fam.tasks("train"), default.tasks("train")
    assert len(train) == n
    assert [t.index for t in train] == list(range(LAYOUT_INDEX_BASE, LAYOUT_INDEX_BASE + n))
    params = np.array([t.param[0] for t in train])
    lo, hi = grid[0].param[0], grid[-1].param[0]
    np.testing.assert_allclose([params[0], params[-1]], [lo, hi], rtol=1e-12)  # same range
    assert np.all(np.diff(params) > 0)  # every task inside it, none twice
    # evenly spaced as the grid is: linearly, or geometrically (Hopper / Walker scales)
    spacing = np.diff(np.log(params)) if name.startswith(("hopper", "walker")) else np.diff(params)
    np.testing.assert_allclose(spacing, spacing[0], rtol=1e-9)
    for split in TEST_SPLITS:
        assert fam.tasks(split) == default.tasks(split), split
    tier = resolve_tier("smoke", default)
    assert dataset_dir(fam, "smoke", tier).path != dataset_dir(default, "smoke", tier).path


def test_grid_points_keep_their_parameters_in_a_denser_layout():
    """40 tasks over positions 10..29: every other one sits on the grid's own point."""
    dense, grid = PointRobot(PointRobotOptions(train_tasks=40)), PointRobot().tasks("train")
    positions = np.linspace(10, 29, 40)
    on_grid = [t for t, p in zip(dense.tasks("train"), positions, strict=True) if p == int(p)]
    assert [t.param for t in on_grid] == [grid[0].param, grid[-1].param]
    np.testing.assert_allclose(
        [t.param[0] for t in dense.tasks("train")], np.pi * positions / 39, rtol=1e-12
    )


def test_unicorns_reference_task_is_a_training_task_of_every_layout():
    assert reference_task_index(PointRobot()) == 19
    for n in TRAIN_TASK_COUNTS:
        fam = PointRobot(PointRobotOptions(train_tasks=n))
        assert reference_task_index(fam) in {t.index for t in fam.tasks("train")}


def test_a_count_a_family_cannot_lay_out_is_one_error_naming_it():
    with pytest.raises(ErtrlError, match=r"'point-robot'.*train_tasks.*7.*allowed: 5, 10, 20, 40"):
        _family("point-robot", 7)
    with pytest.raises(ErtrlError, match=r"'ant-goal'.*train_tasks.*fixed layout.*allowed: 20"):
        _family("ant-goal", 10)


def _specs(tmp_path, envs: list, file: str = "tc", **extra):
    suite = tiny_suite("tc", grid={"envs": envs, "methods": ["focal"], "seeds": [0]}, **extra)
    return load_suite(write_suite(tmp_path / f"{file}.yaml", suite))[1]


def test_the_count_is_in_the_run_id_and_the_default_is_todays(tmp_path):
    envs = ["point-robot"] + [
        {"type": "point-robot", "params": {"train_tasks": n}} for n in [5, 10]
    ]
    plain, five, ten = _specs(tmp_path, envs)
    (twenty,) = _specs(tmp_path, [{"type": "point-robot", "params": {"train_tasks": 20}}], "t20")
    assert twenty.env == plain.env == Component(type="point-robot")
    assert twenty.run_id() == plain.run_id()
    assert five.env.params == {"train_tasks": 5}
    assert len({plain.run_id(), five.run_id(), ten.run_id()}) == 3


def test_a_suite_with_an_impossible_count_names_the_family_option_and_counts(tmp_path, cli):
    bad = tiny_suite(
        grid={"envs": [{"type": "point-robot", "params": {"train_tasks": 3}}], "methods": ["focal"]}
    )
    with pytest.raises(ConfigError, match=r"point-robot.*train_tasks.*allowed: 5, 10, 20, 40"):
        load_suite(write_suite(tmp_path / "bad.yaml", bad))
    proc = cli("validate", str(tmp_path / "bad.yaml"))
    assert proc.returncode == 2, proc.stderr
    assert "allowed: 5, 10, 20, 40" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_the_published_point_robot_run_ids_are_unchanged():
    """The committed results' folders are named by run id: today's expansion of the current
    study finds each (repro-point-robot's ids predate later spec changes)."""
    suite = "converge-point-robot"
    published = {p.name for p in (REPO / "results" / suite).iterdir() if p.is_dir()}
    ids = {s.run_id() for s in load_suite(suite)[1]}
    assert published and published <= ids


def test_a_run_builds_only_the_tasks_it_reads(tmp_path, monkeypatch):
    """Training on 5 tasks, evaluating on train + moderate (probe: the same splits): neither
    the grid's own training tasks nor the extreme / iid tasks are built."""
    from ertrl_bench.runner import execute

    monkeypatch.setenv("ERTRL_BENCH_DATA", str(tmp_path / "data"))
    (spec,) = _specs(tmp_path, [{"type": "point-robot", "params": {"train_tasks": 5}}])
    assert spec.eval.splits == ["train", "moderate"]
    out = execute(spec, tmp_path / "results")
    assert out.status == "done", out.message
    (manifest,) = (tmp_path / "data" / "point-robot").glob("*/manifest.json")
    built = set(json.loads(manifest.read_text())["tasks"])
    fam = PointRobot(PointRobotOptions(train_tasks=5))
    expected = {t.key for s in ("train", "moderate") for t in fam.tasks(s)}
    assert built == expected  # the reference task (nearest grid point 19) is a training task
    scored = out.metrics["per_task"]["train"]["offline"]
    assert sorted(scored) == [t.key for t in fam.tasks("train")]  # trained and scored on the 5


def test_the_task_count_suite_runs_each_count_for_each_method_and_seed():
    from collections import Counter

    _, specs = load_suite("task-count")
    cells = Counter((s.method.name, s.env.params.get("train_tasks", 20)) for s in specs)
    # each count's runs under their own method name, so the report keeps them apart
    named = {
        (m if n == 20 else f"{m}-t{n}", n) for m in ("focal", "ertrl") for n in TRAIN_TASK_COUNTS
    }
    assert cells == dict.fromkeys(named, 5)
    # extreme only at 20 tasks: those runs are repro-point-robot's (test_reuse.py)
    splits = {(s.env.params.get("train_tasks", 20), tuple(s.eval.splits)) for s in specs}
    assert splits == {(n, ("train", "iid", "moderate")) for n in (5, 10, 40)} | {
        (20, ("train", "iid", "moderate", "extreme"))
    }
