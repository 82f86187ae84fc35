"""Dataset scale tiers: ``paper`` is PAPER.md's values; ``small`` and ``smoke`` are ours.

The tiers shrink steps, checkpoints and trajectories — never the algorithm (same SAC, same
stochastic-checkpoint mixture). ``small`` builds a MuJoCo family in about an hour on 2 CPU cores;
``smoke`` at seconds to minutes (CI).
"""

from __future__ import annotations

from pydantic import Field, PositiveFloat, PositiveInt, ValidationError, model_validator

from ertrl_bench.config import Strict
from ertrl_bench.errors import ErtrlError


class DataTier(Strict):
    """Everything that determines a family's behavior datasets (besides the family itself)."""

    sac_steps: PositiveInt = 1_000_000  # env steps per task (all tasks train together)
    random_steps: int = Field(50_000, ge=0)  # uniform-random seed steps before learning
    checkpoints: list[PositiveInt] = Field(
        default_factory=lambda: list(range(100_000, 951_000, 50_000))  # 18 checkpoints
    )
    trajectories_per_checkpoint: PositiveInt = 50
    sac_hidden: tuple[PositiveInt, ...] = (1024, 1024)
    sac_batch: PositiveInt = 1024
    sac_lr: PositiveFloat = 1e-4
    discount: float = Field(0.99, gt=0, le=1)
    tau: PositiveFloat = 0.005
    init_temperature: PositiveFloat = 0.1
    buffer_size: PositiveInt = 1_000_000
    seed: int = 0  # SAC seed; datasets are shared by every run seed, as in the paper
    task_seed: int = 0  # seed of the iid split's task draw

    @model_validator(mode="after")
    def _checkpoints_in_range(self):
        bad = [c for c in self.checkpoints if c > self.sac_steps]
        if bad:
            raise ValueError(f"checkpoints {bad} exceed sac_steps ({self.sac_steps})")
        if not self.checkpoints:
            raise ValueError("at least one checkpoint is needed")
        if sorted(self.checkpoints) != self.checkpoints:
            raise ValueError("checkpoints must be increasing")
        return self


# small (ours): sized so one family (50 tasks) builds in about an hour on 2 CPU cores. At 128 x 128
# and batch 128 one batched update of 50 tasks takes ~95 ms on 2 threads (256 x 256 / batch 256:
# ~4x that), so 30k SAC steps per task cost ~45 min; the rest (env steps, checkpoint
# collection: 50 tasks x 10 checkpoints x 10 trajectories) is minutes. Measured wall-clock of
# `ertrl-bench datasets build cheetah-vel --tier small`: 44 min (README, "Data").
_SMALL = dict(
    sac_steps=30_000,
    random_steps=2_000,
    checkpoints=list(range(3_000, 30_001, 3_000)),  # 10 checkpoints
    trajectories_per_checkpoint=10,
    sac_hidden=(128, 128),
    sac_batch=128,
    sac_lr=1e-3,
    buffer_size=30_000,
)
_SMOKE = dict(
    sac_steps=3_000,
    random_steps=1_000,
    checkpoints=[1_000, 2_000, 3_000],
    trajectories_per_checkpoint=2,
    sac_hidden=(64, 64),
    sac_batch=128,
    sac_lr=1e-3,
    buffer_size=3_000,
)

# MuJoCo smoke (ours): the generic smoke values (3k steps, 64 x 64) do not learn Cheetah-Vel at
# all (measured: mean checkpoint returns -448, -415, -420 over 50 tasks, worse than standing
# still). With 8k steps, 128 x 128, batch 256, SAC starts to track the target velocity after ~5k
# steps (tasks v=1.6 / 2.6: -399 / -571 at step 1000 -> -257 / -322 at 8000; standing still is
# -320 / -520), so the checkpoints span untrained to mediocre. Cost: ~10 ms per task-update on
# one CPU thread, i.e. about an hour for all 50 tasks of a family on 2 cores; build a few tasks
# with ``get_datasets(..., tasks=[...])`` for a quick look (tests/test_datasets_mujoco.py).
_SMOKE_MUJOCO = dict(
    sac_steps=8_000,
    random_steps=1_000,
    checkpoints=[1_000, 2_000, 3_000, 4_000, 5_000, 6_000, 7_000, 8_000],
    trajectories_per_checkpoint=4,
    sac_hidden=(128, 128),
    sac_batch=256,
    sac_lr=1e-3,
    buffer_size=8_000,
)
MUJOCO_FAMILIES = (
    "cheetah-vel",
    "ant-dir",
    "ant-goal",
    "humanoid-dir",
    "hopper-mass",
    "hopper-friction",
    "walker-mass",
    "walker-friction",
)

TIERS: dict[str, dict] = {"paper": {}, "small": _SMALL, "smoke": _SMOKE}

# Per-family adjustments of our tiers (episodes of Point-Robot are 20 steps, so it needs fewer).
FAMILY_TIERS: dict[tuple[str, str], dict] = {
    ("point-robot", "smoke"): dict(
        sac_steps=1_500,
        random_steps=200,
        checkpoints=[300, 600, 900, 1_200, 1_500],
        trajectories_per_checkpoint=4,
        sac_hidden=(64, 64),
        sac_batch=128,
        sac_lr=1e-3,
        buffer_size=1_500,
    ),
    ("point-robot", "small"): dict(
        sac_steps=10_000,
        random_steps=1_000,
        checkpoints=[2_000, 4_000, 6_000, 8_000, 10_000],
        trajectories_per_checkpoint=20,
        sac_hidden=(128, 128),
        sac_batch=256,
        sac_lr=1e-3,
        buffer_size=10_000,
    ),
}
FAMILY_TIERS.update({(f, "smoke"): _SMOKE_MUJOCO for f in MUJOCO_FAMILIES})


def resolve_tier(tier: str, family: str, overrides: dict | None = None) -> DataTier:
    """The DataTier of ``tier`` for ``family``, with a suite's ``data:`` overrides applied."""
    if tier not in TIERS:
        raise ErtrlError(f"unknown tier {tier!r}; available: {', '.join(TIERS)}")
    fields = {**TIERS[tier], **FAMILY_TIERS.get((family, tier), {}), **(overrides or {})}
    try:
        return DataTier.model_validate(fields)
    except ValidationError as exc:
        from ertrl_bench.config import format_validation_error

        raise ErtrlError("; ".join(format_validation_error(exc))) from None
