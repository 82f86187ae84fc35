"""Building some splits ahead (``datasets build --splits``) and seeing how expert the data is
beside the ER-TRL authors' (``datasets show``).

A build of some splits is the same cache folder and the same bytes as a full build's tasks, so
either reuses the other; ``show`` lists the built tasks only and builds nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ertrl_bench.cli import main
from ertrl_bench.data import get_datasets
from ertrl_bench.envs.point_robot import PointRobot
from tests.helpers import TINY_DATA

# tiny nets, short training: a full 50-task build in a couple of seconds
DATA = {
    **TINY_DATA,
    "sac_steps": 120,
    "random_steps": 60,
    "checkpoints": [60, 120],
    "sac_hidden": (16, 16),
    "sac_batch": 16,
    "buffer_size": 120,
}


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ERTRL_BENCH_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


def _manifest(path: str) -> dict:
    return json.loads((Path(path) / "manifest.json").read_text())


def _cli(*args) -> int:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    return info.value.code


def test_build_splits_is_the_full_builds_tasks_in_its_folder(own_cache, monkeypatch, capsys):
    monkeypatch.setitem(PointRobot.data_tiers, "smoke", DATA)  # seconds
    fam = PointRobot()
    assert _cli("datasets", "build", "point-robot", "--splits", "moderate, train") == 0
    assert "point-robot [smoke]: 30 tasks" in capsys.readouterr().out
    (folder,) = own_cache.glob("point-robot/*")
    sub = _manifest(str(folder))
    wanted = fam.tasks("train") + fam.tasks("moderate")
    assert sorted(sub["tasks"]) == sorted(t.key for t in wanted)

    full = get_datasets(fam, "smoke")  # builds only the 20 tasks the first build left out
    assert Path(full.path) == folder
    manifest = _manifest(full.path)
    assert manifest["last_build"]["tasks"] == 20 and len(full.tasks) == 50
    for key, entry in sub["tasks"].items():  # the first build's files, nothing rebuilt
        assert manifest["tasks"][key]["sha256"] == entry["sha256"]
    # what the bits depend on beyond the key is recorded per task (docs/data.md)
    built_with = {k: e["built_with"] for k, e in manifest["tasks"].items()}
    assert {b["torch_threads"] for b in built_with.values()} == {1}  # BUILD_THREADS, any machine
    assert {b["device"] for b in built_with.values()} == {"cpu"}
    assert {built_with[k]["tasks_trained_together"] for k in sub["tasks"]} == {30}
    assert {built_with[t.key]["tasks_trained_together"] for t in fam.tasks("iid")} == {20}


def test_build_threads_are_recorded_and_the_count_restored(own_cache, monkeypatch):
    """``datasets build --threads 2`` builds with two torch threads (other bytes than one
    thread's on CPU), records it per task and leaves the process's count as it was."""
    import torch

    monkeypatch.setitem(PointRobot.data_tiers, "smoke", DATA)
    before = torch.get_num_threads()
    assert _cli("datasets", "build", "point-robot", "--splits", "moderate", "--threads", "2") == 0
    assert torch.get_num_threads() == before
    (folder,) = own_cache.glob("point-robot/*")
    entries = _manifest(str(folder))["tasks"].values()
    assert {e["built_with"]["torch_threads"] for e in entries} == {2}
    assert _cli("datasets", "build", "point-robot", "--threads", "0") == 2


def test_build_names_an_unknown_split(own_cache, capsys):
    assert _cli("datasets", "build", "point-robot", "--splits", "train,ood") == 2
    text = " ".join(capsys.readouterr().err.split())
    assert "--splits: unknown split(s) ['ood']; available: train, iid, moderate, extreme" in text
    assert not any(own_cache.glob("point-robot/*/*.npz"))


def test_show_lists_built_tasks_beside_the_authors(own_cache, monkeypatch, capsys):
    """For a family of the authors, each built task's R_max beside theirs and on their scale."""
    from ertrl_bench.analysis.paper_scale import authors_normalized, authors_range
    from ertrl_bench.envs.mujoco.cheetah import CheetahVel

    monkeypatch.setitem(CheetahVel.data_tiers, "smoke", DATA)  # seconds, not an hour
    assert _cli("datasets", "build", "cheetah-vel", "--splits", "train") == 0
    capsys.readouterr()
    assert _cli("datasets", "show", "cheetah-vel", "--tier", "smoke") == 0
    text = capsys.readouterr().out
    assert "behavior diversity (sliced W2, 64 actions per state): " in text  # the build's record
    rows = [line.split("\t") for line in text.splitlines()]
    header = next(r for r in rows if r[0] == "task")
    assert header[-3:] == ["authors' R_min", "authors' R_max", "R_max on the authors' scale"]
    data = get_datasets(CheetahVel(), "smoke", tasks=[t.index for t in CheetahVel().tasks("train")])
    per_task = {r[0]: r for r in rows if r[0].startswith("task-")}
    assert sorted(per_task) == sorted(t.key for t in data.tasks)  # the built tasks only
    for t in data.tasks:
        key, split, _param, _r_min, r_max, a_min, a_max, ours = per_task[t.key]
        assert split == "train" and float(r_max) == pytest.approx(data.r_max(t), abs=0.01)
        authors = authors_range("cheetah-vel", key)
        assert (float(a_min), float(a_max)) == pytest.approx(authors, abs=0.01)
        on_theirs = authors_normalized("cheetah-vel", key, data.r_max(t))
        assert float(ours) == pytest.approx(on_theirs, abs=0.1)
    (folder,) = own_cache.glob("cheetah-vel/*")
    assert len(_manifest(str(folder))["tasks"]) == 20  # show built nothing


def test_large_tier_is_small_trained_longer_and_validates(tmp_path):
    """The ``large`` tier: small's SAC (networks, batch, learning rate, data protocol) for 100k
    steps, checkpoints evenly spaced to the end; a suite may name it."""
    from ertrl_bench.data.tiers import resolve_tier
    from ertrl_bench.envs.mujoco.cheetah import CheetahVel
    from ertrl_bench.suite_loader import load_suite
    from tests.helpers import tiny_suite, write_suite

    large, small = resolve_tier("large", CheetahVel()), resolve_tier("small", CheetahVel())
    same = ("sac_hidden", "sac_batch", "sac_lr", "trajectories_per_checkpoint", "random_steps")
    assert all(getattr(large, f) == getattr(small, f) for f in same)
    assert large.sac_steps == large.buffer_size == 100_000
    assert large.checkpoints == list(range(10_000, 100_001, 10_000))
    (spec,) = load_suite(write_suite(tmp_path / "l.yaml", {**tiny_suite(), "tier": "large"}))[1]
    assert spec.tier == "large"
