"""Behavior datasets: per-task content, checksums, corruption handling, CLI listing."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ertrl_bench.data import get_datasets
from ertrl_bench.data.store import DatasetDir
from ertrl_bench.envs.point_robot import PointRobot
from ertrl_bench.errors import DatasetError
from tests.conftest import TINY_DATA


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


def test_corrupted_and_truncated_files_are_detected_and_regenerated(own_cache, capsys):
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
    proc = subprocess.run(
        [sys.executable, "-m", "ertrl_bench.cli", "datasets", "verify"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert f"{first}.npz fails its checksum" in proc.stderr and second in proc.stderr
    again = get_datasets(fam, "smoke", TINY_DATA)  # regenerates the two bad tasks
    assert ddir.check_task(first) is None and ddir.check_task(second) is None
    assert np.array_equal(again.arrays[first]["obs"].shape, fd.arrays[first]["obs"].shape)
    listing = subprocess.run(
        [sys.executable, "-m", "ertrl_bench.cli", "datasets", "list"],
        capture_output=True,
        text=True,
    )
    assert listing.returncode == 0 and "point-robot" in listing.stdout and "ok" in listing.stdout


def test_changed_settings_never_reuse_stale_data(own_cache):
    a = get_datasets(PointRobot(), "smoke", TINY_DATA)
    b = get_datasets(PointRobot(), "smoke", {**TINY_DATA, "trajectories_per_checkpoint": 3})
    assert a.path != b.path
    manifest = json.loads((Path(b.path) / "manifest.json").read_text())
    assert manifest["tier_values"]["trajectories_per_checkpoint"] == 3
