"""Cheetah-Vel behavior data really spans worse-to-better policies (smoke tier, two tasks).

The smoke tier for MuJoCo (``ertrl_bench.envs.mujoco.common.MUJOCO_SMOKE_TIER``: 8k SAC steps,
128 x 128, 8 checkpoints x 4 trajectories) built for two training tasks only (``get_datasets(tasks=...)``).
Measured when written (1 CPU thread, ~150 s): mean return per checkpoint, steps 1000 .. 8000

    v = 1.6 (task 15): -399 -332 -343 -340 -301 -277 -258 -257   (standing still: -320)
    v = 2.6 (task 25): -571 -521 -526 -517 -464 -337 -288 -322   (standing still: -520)

SAC starts tracking the velocity after ~5k steps: the data goes from an untrained policy to one
clearly better than standing still (not yet expert: that needs the ``small`` / ``paper`` tiers).
"""

from __future__ import annotations

import numpy as np
import pytest

from ertrl_bench.data import get_datasets
from ertrl_bench.envs.mujoco import CheetahVel

pytestmark = pytest.mark.slow  # ~150 s on one core


@pytest.fixture(scope="module")
def cheetah(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ERTRL_BENCH_DATA", str(tmp_path_factory.mktemp("data")))
        yield get_datasets(CheetahVel(), "smoke", tasks=[15, 25])


def test_only_the_requested_tasks_are_built(cheetah):
    assert [t.index for t in cheetah.tasks] == [15, 25]
    assert sorted(cheetah.arrays) == ["task-015", "task-025"]
    a = cheetah.arrays["task-015"]
    assert len(np.unique(a["checkpoint"])) == 8
    assert a["obs"].shape == (8 * 4 * 200, 17) and a["actions"].shape == (8 * 4 * 200, 6)


def test_later_checkpoints_earn_more(cheetah):
    for t in cheetah.tasks:
        meta = cheetah.meta[t.key]
        ret = np.array([meta["checkpoint_returns"][str(s)] for s in cheetah.tier.checkpoints])
        early, late = ret[:2].mean(), ret[-2:].mean()
        assert late > early + 50, (t.key, ret)  # measured: +141 (v=1.6), +237 (v=2.6)
        assert ret.max() > -200 * t.param[0], (t.key, ret)  # beats standing still
        assert meta["r_min"] < early and meta["r_max"] > late  # normalisation spans the data
