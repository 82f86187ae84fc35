"""The same run id always means the same data: a task's bytes never depend on the tasks trained
beside it (per-task RNG streams), so subsets, memory-bound groups and partial rebuilds all give
the bytes of one full build."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ertrl_bench.data import get_datasets
from ertrl_bench.data.memory import plan_groups, task_bytes
from ertrl_bench.data.store import DatasetDir, data_root
from ertrl_bench.data.tiers import resolve_tier
from ertrl_bench.envs.point_robot import PointRobot
from tests.helpers import TINY_DATA

# tiny nets, short training: a full 50-task build takes a couple of seconds
DATA = {
    **TINY_DATA,
    "sac_steps": 120,
    "random_steps": 60,
    "checkpoints": [60, 120],
    "sac_hidden": (16, 16),
    "sac_batch": 16,
}
PROBE = [3, 17, 45]  # grid tasks of different splits and an iid task


def _sums(path: str) -> dict[str, tuple[str, str]]:
    m = json.loads((Path(path) / "manifest.json").read_text())
    return {k: (v["sha256"], v["policy_sha256"]) for k, v in m["tasks"].items()}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    def use(name: str) -> Path:
        monkeypatch.setenv("ERTRL_BENCH_DATA", str(tmp_path / name))
        return tmp_path / name

    return use


def test_subset_groups_and_rebuild_give_the_bytes_of_one_full_build(cache, capsys):
    fam = PointRobot()
    cache("full")
    full = get_datasets(fam, "smoke", DATA, max_memory=None)  # one group of 50
    ref = _sums(full.path)
    assert len(ref) == 50

    cache("subset")
    sub = get_datasets(fam, "smoke", DATA, tasks=PROBE, max_memory=None)
    assert _sums(sub.path) == {k: ref[k] for k in _sums(sub.path)}
    assert len(_sums(sub.path)) == len(PROBE)

    # a budget of ~17 tasks: 3 groups, trained one after the other
    cache("grouped")
    tier = resolve_tier("smoke", fam, DATA)
    per_task = task_bytes(tier, 2, 2, fam.horizon)
    grouped = get_datasets(fam, "smoke", DATA, max_memory=17 * per_task)
    manifest = json.loads((Path(grouped.path) / "manifest.json").read_text())
    assert manifest["last_build"]["groups"] == 3
    assert _sums(grouped.path) == ref

    # corrupt one task: the checksum catches it and the rebuild is byte-identical
    cache("full")
    ddir = DatasetDir(Path(full.path))
    npz = ddir.path / f"{fam.tasks('train')[4].key}.npz"
    raw = bytearray(npz.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    npz.write_bytes(bytes(raw))
    assert "fails its checksum" in ddir.check_task(npz.stem)
    capsys.readouterr()
    again = get_datasets(fam, "smoke", DATA, max_memory=None)
    assert "regenerating" in capsys.readouterr().err
    assert ddir.check_task(npz.stem) is None
    assert _sums(again.path) == ref
    assert data_root() == ddir.path.parent.parent


def test_plan_groups_fit_the_budget_and_keep_order():
    items = list(range(50))
    groups = plan_groups(items, per_task=10, budget=170)
    assert [len(g) for g in groups] == [17, 17, 16]
    assert sum(groups, []) == items
    assert plan_groups(items, 10, None) == [items]
    with pytest.raises(Exception, match="raise --max-memory"):
        plan_groups(items, 10, 9)


def test_humanoid_paper_tier_plans_groups_that_fit_24_gib():
    """Humanoid-Dir's paper tier: ~3 GB of replay per task, 150+ GB for one group of 50."""
    from ertrl_bench.envs.mujoco import HumanoidDir

    fam = HumanoidDir()
    tier = resolve_tier("paper", fam)
    obs_dim, act_dim = fam.spaces()
    per_task = task_bytes(tier, obs_dim, act_dim, fam.horizon)
    replay = tier.buffer_size * (2 * obs_dim + act_dim + 2) * 4
    assert replay <= per_task < 1.5 * replay  # dominated by the replay buffer
    budget = 24 * 2**30
    tasks = fam.all_tasks(tier.task_seed)
    groups = plan_groups(tasks, per_task, budget)
    assert sum(groups, []) == tasks
    assert all(len(g) * per_task <= budget for g in groups)
    assert len(groups) >= 50 * per_task / budget  # not more tasks per group than fit
    assert 50 * per_task > 100 * 10**9  # one group would need over 100 GB
