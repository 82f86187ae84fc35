"""Behavior data from a family's scripted experts (``EnvFamily.scripted_behavior``), not SAC."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ertrl_bench.data import get_datasets
from ertrl_bench.data.policies import load_policy_file
from ertrl_bench.envs.base import ScriptedBehavior
from ertrl_bench.envs.point_robot import PointRobot
from ertrl_bench.errors import DatasetError


class ScriptedPointRobot(PointRobot):
    """Point-Robot whose expert steps straight at the goal (it knows the goal; SAC does not)."""

    name = "scripted-point-robot"

    def scripted_behavior(self):
        def act(tasks, obs):
            to_goal = np.stack([self.goal(t) for t in tasks]) - obs
            return np.clip(to_goal / 0.1, -1.0, 1.0)

        return ScriptedBehavior(noise=(0.0, 1.0), act=act)


def test_scripted_experts_replace_sac_with_noise_levels_as_checkpoints(tmp_path, monkeypatch):
    monkeypatch.setenv("ERTRL_BENCH_DATA", str(tmp_path))
    fd = get_datasets(ScriptedPointRobot(), "smoke", tasks=[3, 20])
    k = fd.tier.trajectories_per_checkpoint
    for task in fd.tasks:
        a, meta = fd.arrays[task.key], fd.meta[task.key]
        assert len(a["rewards"]) == 2 * k * 20  # 2 levels x k episodes x horizon 20
        assert list(np.unique(a["checkpoint"])) == [0, 1]
        assert list(np.unique(a["trajectory"])) == list(range(2 * k))
        expert = a["rewards"][a["checkpoint"] == 0].reshape(k, 20)
        assert np.allclose(expert[:, 10:], 0.0, atol=1e-5)  # noise 0: at the goal in 10 steps
        assert meta["checkpoint_returns"]["0"] > meta["checkpoint_returns"]["1"]
        assert meta["r_max"] == pytest.approx(meta["checkpoint_returns"]["0"], rel=1e-5)
    with pytest.raises(DatasetError, match="scripted experts"):
        load_policy_file(Path(fd.path) / "task-003.policy.pt")
    # a task's bytes do not depend on the tasks collected beside it
    alone = get_datasets(ScriptedPointRobot(), "smoke", tasks=[20], rebuild=True)
    assert np.array_equal(alone.arrays["task-020"]["actions"], fd.arrays["task-020"]["actions"])


def test_scripted_builds_record_what_their_bytes_depend_on(tmp_path, monkeypatch):
    """No torch runs in a scripted build: the manifest records the simulator's, numpy's and the
    family package's versions instead (``built_with``, as a SAC build's)."""
    import mujoco

    from ertrl_bench.data.scripted import scripted_provenance
    from ertrl_bench.envs.point_robot import PointRobot

    monkeypatch.setenv("ERTRL_BENCH_DATA", str(tmp_path))
    fd = get_datasets(ScriptedPointRobot(), "smoke", tasks=[3])
    built_with = fd.meta["task-003"]["built_with"]
    assert built_with["mujoco"] == mujoco.__version__ and built_with["numpy"] == np.__version__
    assert built_with["family_package"] == {}  # a family defined in a test module: no package
    shipped = scripted_provenance(PointRobot())["family_package"]
    assert list(shipped) == ["ertrl-bench"] and shipped["ertrl-bench"]
