"""Behavior datasets: per-task content, checksums, corruption handling, CLI listing."""

import json
from pathlib import Path

import numpy as np
import pytest

from ertrl_bench.data import get_datasets
from ertrl_bench.data.store import DatasetDir
from ertrl_bench.envs.point_robot import PointRobot
from ertrl_bench.errors import DatasetError
from tests.helpers import TINY_DATA


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ERTRL_BENCH_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


def test_every_task_has_data_and_normalisation(own_cache):
    fd = get_datasets(PointRobot(), "smoke", TINY_DATA)
    assert len(fd.tasks) == 50  # 40 grid tasks + 10 iid
    t = fd.tasks[0]
    a = fd.arrays[t.key]
    n = TINY_DATA["trajectories_per_checkpoint"] * len(TINY_DATA["checkpoints"]) * 20
    assert a["obs"].shape == (n, 2) and a["actions"].shape == (n, 2)
    assert set(np.unique(a["checkpoint"])) == set(TINY_DATA["checkpoints"])
    assert np.abs(a["actions"]).max() <= 1.0
    # rewards really are Point-Robot's: -distance of next_obs to the task's goal
    goal = PointRobot.goal(t)
    assert np.allclose(a["rewards"], -np.linalg.norm(a["next_obs"] - goal, axis=1), atol=1e-5)
    assert fd.r_min(t) < fd.r_max(t)


def test_corrupted_and_truncated_files_are_detected_and_regenerated(cli, own_cache, capsys):
    fam = PointRobot()
    fd = get_datasets(fam, "smoke", TINY_DATA)
    ddir = DatasetDir(Path(fd.path))
    first, second = fd.tasks[0].key, fd.tasks[1].key
    npz = ddir.path / f"{first}.npz"
    raw = bytearray(npz.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    npz.write_bytes(bytes(raw))
    trunc = ddir.path / f"{second}.npz"
    trunc.write_bytes(trunc.read_bytes()[:100])
    with pytest.raises(DatasetError, match="fails its checksum"):
        ddir.load_task(first)
    proc = cli("datasets", "verify")
    assert proc.returncode == 2
    assert f"{first}.npz fails its checksum" in proc.stderr and second in proc.stderr
    again = get_datasets(fam, "smoke", TINY_DATA)  # regenerates the two bad tasks
    assert ddir.check_task(first) is None and ddir.check_task(second) is None
    assert np.array_equal(again.arrays[first]["obs"].shape, fd.arrays[first]["obs"].shape)
    listing = cli("datasets", "list")
    assert listing.returncode == 0 and "point-robot" in listing.stdout and "ok" in listing.stdout


def test_changed_settings_never_reuse_stale_data(own_cache):
    a = get_datasets(PointRobot(), "smoke", TINY_DATA)
    b = get_datasets(PointRobot(), "smoke", {**TINY_DATA, "trajectories_per_checkpoint": 3})
    assert a.path != b.path
    manifest = json.loads((Path(b.path) / "manifest.json").read_text())
    assert manifest["tier_values"]["trajectories_per_checkpoint"] == 3


# --- manifest states, policy checksums, degenerate ranges, CLI options ---------------------------
FAST = {
    **TINY_DATA,
    "sac_steps": 120,
    "random_steps": 60,
    "checkpoints": [60, 120],
    "sac_hidden": (16, 16),
    "sac_batch": 16,
}


def _cli(*args):
    from typer.testing import CliRunner

    from ertrl_bench.cli import app

    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize(
    "content",
    [None, "{}", "[1, 2]", '{"tasks": {"task-000": 3}}', '{"tasks": {}, "expected_tasks": 3}'],
)
def test_missing_or_malformed_manifest_is_incomplete_and_rebuilt(own_cache, content, capsys):
    fam = PointRobot()
    fd = get_datasets(fam, "smoke", FAST, tasks=[0, 1])
    ddir = DatasetDir(Path(fd.path))
    before = {k: v["sha256"] for k, v in ddir.manifest()["tasks"].items()}
    if content is None:
        ddir.manifest_path.unlink()
    else:
        ddir.manifest_path.write_text(content)
    listing = _cli("datasets", "list")
    assert listing.exit_code == 0, listing.output
    assert "incomplete" in listing.output
    assert "rebuild with `ertrl-bench datasets build point-robot --tier smoke`" in listing.output
    verify = _cli("datasets", "verify")
    assert verify.exit_code == 2 and "incomplete" in verify.output
    capsys.readouterr()
    again = get_datasets(fam, "smoke", FAST, tasks=[0, 1])  # rebuilds, no KeyError
    assert "rebuilding the tasks it lacks" in capsys.readouterr().err
    assert {k: v["sha256"] for k, v in ddir.manifest()["tasks"].items()} == before
    assert again.r_min(again.tasks[0]) < again.r_max(again.tasks[0])
    assert _cli("datasets", "verify").exit_code == 0


def test_a_subset_build_expects_only_its_tasks_and_is_ok(own_cache):
    """`get_datasets(..., tasks=[...])` shares the family's folder: it is complete with its
    subset; tests/test_bad_inputs.py shows a full build that fails part-way staying incomplete."""
    fd = get_datasets(PointRobot(), "smoke", FAST, tasks=[3, 0])
    assert DatasetDir(Path(fd.path)).manifest()["expected_tasks"] == ["task-000", "task-003"]
    verify = _cli("datasets", "verify")
    assert verify.exit_code == 0 and "(2 tasks)" in verify.output, verify.output


def test_a_build_stopped_before_its_first_task_is_never_ok(own_cache, capsys):
    """`--max-memory 1KiB` fails before any task: its manifest (no task) is "incomplete"."""
    from ertrl_bench.cli import main

    with pytest.raises(SystemExit) as info:
        main(["datasets", "build", "point-robot", "--max-memory", "1KiB"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "the memory budget is 1.0 KiB" in err, err
    verify = _cli("datasets", "verify")
    assert verify.exit_code == 2, verify.output
    assert "incomplete: no task is built" in " ".join(verify.output.split())
    assert "ok" not in verify.output.split()
    assert "incomplete" in _cli("datasets", "list").output


def test_verify_fails_on_malformed_manifest_through_the_real_cli(cli, own_cache):
    fd = get_datasets(PointRobot(), "smoke", FAST, tasks=[0])
    (Path(fd.path) / "manifest.json").write_text("[1, 2]")
    proc = cli("datasets", "verify")
    assert proc.returncode == 2, proc.stderr
    assert "incomplete: manifest.json is a list" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_policy_files_have_checksums(own_cache):
    fam = PointRobot()
    fd = get_datasets(fam, "smoke", FAST, tasks=[5])
    ddir = DatasetDir(Path(fd.path))
    key = fd.tasks[0].key
    entry = ddir.manifest()["tasks"][key]
    assert entry["policy_file"] == f"{key}.policy.pt" and len(entry["policy_sha256"]) == 64
    pol = ddir.path / entry["policy_file"]
    original = pol.read_bytes()
    raw = bytearray(original)
    raw[len(raw) // 2] ^= 0x01
    pol.write_bytes(bytes(raw))
    assert "policy.pt fails its checksum" in ddir.check_task(key)
    verify = _cli("datasets", "verify")
    assert verify.exit_code == 2 and "policy.pt fails its checksum" in verify.output
    get_datasets(fam, "smoke", FAST, tasks=[5])  # rebuilt, byte-identical
    assert pol.read_bytes() == original


def test_degenerate_range_gives_nan_and_is_listed():
    from ertrl_bench.data import FamilyData, normalized_return
    from ertrl_bench.data.tiers import resolve_tier

    fam = PointRobot()
    tasks = fam.tasks("train")[:3]
    meta = {
        tasks[0].key: {"r_min": -10.0, "r_max": -2.0},
        tasks[1].key: {"r_min": -5.0, "r_max": -5.0},  # every checkpoint scored the same
        tasks[2].key: {"r_min": -5.0, "r_max": -5.0 + 1e-9},
    }
    fd = FamilyData(fam, resolve_tier("smoke", fam), tasks, {}, meta, "")
    assert fd.normalized(tasks[0], -6.0) == pytest.approx(50.0)
    assert np.isnan(fd.normalized(tasks[1], -4.0)) and np.isnan(fd.normalized(tasks[2], 0.0))
    assert fd.degenerate_tasks() == tasks[1:]
    assert np.isnan(normalized_return(1.0, 3.0, 3.0))


def test_family_sets_its_own_tier_budget_and_cli_passes_family_options(own_cache):
    from ertrl_bench.data.tiers import resolve_tier

    class ShortPointRobot(PointRobot):
        data_tiers = {"smoke": {**PointRobot.data_tiers["smoke"], "trajectories_per_checkpoint": 9}}

    assert resolve_tier("smoke", ShortPointRobot()).trajectories_per_checkpoint == 9
    assert resolve_tier("smoke", PointRobot).sac_steps == 1_500  # the class will do
    assert resolve_tier("smoke", PointRobot).trajectories_per_checkpoint == 4
    over = resolve_tier("smoke", ShortPointRobot(), {"trajectories_per_checkpoint": 3})
    assert over.trajectories_per_checkpoint == 3
    with pytest.raises(Exception, match="sac_stepz: unknown field"):

        class Typo(PointRobot):
            data_tiers = {"smoke": {"sac_stepz": 1}}

        resolve_tier("smoke", Typo())

    from ertrl_bench.cli import _family

    assert _family("point-robot", ["horizon=30"]).horizon == 30  # what `--env-opt` builds
    bad = _cli("datasets", "build", "point-robot", "--env-opt", "horizon=abc")
    assert bad.exit_code != 0 and "--env-opt.horizon" in str(bad.exception or bad.output)
    bad = _cli("datasets", "build", "point-robot", "--env-opt", "colour=red")
    assert "unknown field" in str(bad.exception or bad.output)
    bad = _cli("datasets", "build", "point-robot", "--max-memory", "lots")
    assert "memory size 'lots'" in str(bad.exception or bad.output)


def test_build_command_reports_family_tier_and_size(own_cache, monkeypatch):
    # the smoke tier shrunk to FAST so the real command builds in seconds
    monkeypatch.setitem(PointRobot.data_tiers, "smoke", {**PointRobot.data_tiers["smoke"], **FAST})
    res = _cli("datasets", "build", "point-robot", "--tier", "smoke")
    assert res.exit_code == 0, res.output
    n = sum(len(a["rewards"]) for a in get_datasets(PointRobot(), "smoke").arrays.values())
    assert f"point-robot [smoke]: 50 tasks, {n} transitions" in res.output
    assert "last build: 50 tasks" in res.output


def test_behavior_summary_orders_checkpoints_by_step(own_cache):
    fd = get_datasets(PointRobot(), "smoke", TINY_DATA)
    summary = fd.behavior_summary()
    assert list(summary) == ["train", "moderate", "extreme", "iid"]
    train = summary["train"]
    assert train["tasks"] == 20 and train["checkpoints"] == sorted(TINY_DATA["checkpoints"])
    keys = [t.key for t in fd.tasks if t.split == "train"]
    for step, mean in zip(train["checkpoints"], train["mean_return"], strict=True):
        expected = np.mean([fd.meta[k]["checkpoint_returns"][str(step)] for k in keys])
        assert mean == pytest.approx(expected)
    r_min = [fd.meta[k]["r_min"] for k in keys]
    assert train["r_min"] == pytest.approx([min(r_min), np.median(r_min), max(r_min)])
    assert train["r_max"][0] >= min(r_min)


def test_datasets_show_refuses_to_build(own_cache, capsys):
    from ertrl_bench.cli import main

    with pytest.raises(SystemExit) as info:
        main(["datasets", "show", "point-robot", "--tier", "smoke"])
    assert info.value.code == 2
    text = " ".join(capsys.readouterr().err.split())
    assert "is not built" in text and "datasets build point-robot --tier smoke" in text
    assert not any(own_cache.glob("point-robot/*/manifest.json"))
