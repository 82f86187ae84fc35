"""Dataset scale tiers: ``paper`` is docs/paper.md's values; ``large``, ``small`` and ``smoke`` are ours.

The tiers shrink steps, checkpoints and trajectories — never the algorithm (same SAC, same
stochastic-checkpoint mixture). ``small`` builds a MuJoCo family in about an hour on 2 CPU cores;
``smoke`` at seconds to minutes (CI).

A family sets its own values per tier with ``EnvFamily.data_tiers`` (``{"smoke": {...}}``,
fields of ``DataTier``): they override the generic tier, and a suite's ``data:`` overrides both.
This module imports nothing of ours but ``errors`` (``config`` imports it, not the reverse).
"""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    model_validator,
)

from ertrl_bench.errors import ErtrlError
from ertrl_bench.options import Strict, format_validation_error


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
    # actions per state of the W2 diversity recorded with the data (ertrl_bench.data.diversity;
    # 0: not measured). How the data are measured, not what they are: not part of the key
    diversity_samples: int = Field(4096, ge=0, exclude=True)
    # the SAC update's matmuls under torch.autocast: "bf16" on a GPU is the fast choice
    # (docs/data.md "Building on a GPU"); it changes the data, so it is part of the dataset key
    sac_autocast: Literal["off", "bf16"] = "off"

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
# collection: 50 tasks x 10 checkpoints x 10 trajectories) is minutes. Measured builds of
# every family: benchmarks/measured/cpu-2core-2026-11-25/NOTES.md.
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
    diversity_samples=512,  # seconds, not a minute; floor about 3x the 4096-sample one
)

# large (ours): small's networks and learning rate, trained longer, so that Cheetah-Vel's behavior
# data gets about as expert as the ER-TRL authors' (their per-task best return, R_max). Measured
# on 4 hard tasks (v = 0.6, 1.1, 2.9, 3.5), the best trajectory of a checkpoint on the authors'
# scale (100 = their R_max): at 30k steps (small) 52 / 67 / 81 / 50; at 60k 90 / 92 / 92 / 82; at
# 70k 91 / 94 / 94 / 85; at 100k (this tier) 91 / 96 / 95 / 91: every one within 10% of the
# authors'. The 30-task train + moderate build (2026-12-06, one thread): 1 h 40 min, every task's
# best trajectory at 89.3-97.0 on the authors' scale (median 95.2; 29 of 30 at >= 90).
# benchmarks/measured/cpu-2core-2026-12-06/NOTES.md.
_LARGE = dict(
    sac_steps=100_000,
    random_steps=2_000,
    checkpoints=list(range(10_000, 100_001, 10_000)),  # 10 checkpoints
    trajectories_per_checkpoint=10,
    sac_hidden=(128, 128),
    sac_batch=128,
    sac_lr=1e-3,
    buffer_size=100_000,
)

TIERS: dict[str, dict] = {"paper": {}, "large": _LARGE, "small": _SMALL, "smoke": _SMOKE}

# fields added after datasets were first published, with the value they had implicitly: a
# tier at that value leaves them out of its dataset key, so existing keys (and caches) stand
KEY_FIELDS_SINCE = {"sac_autocast": "off"}


def key_values(tier: DataTier) -> dict:
    """The tier's values as its dataset key hashes them (``KEY_FIELDS_SINCE``)."""
    values = tier.model_dump(mode="json")
    for field, old in KEY_FIELDS_SINCE.items():
        if values[field] == old:
            del values[field]
    return values


def family_tier_values(family, tier: str) -> dict:
    """``family``'s own values for ``tier`` (``EnvFamily.data_tiers``); ``family`` is a family
    object or class (a registry entry's factory; a factory function has none: generic values)."""
    if isinstance(family, str):
        raise TypeError(
            f"resolve_tier needs the family (object or class), not its name {family!r}: its"
            " data_tiers decide its tier values"
        )
    tiers = getattr(family, "data_tiers", None) or {}
    if not isinstance(tiers, dict) or not isinstance(tiers.get(tier, {}), dict):
        raise ErtrlError(f"{getattr(family, 'name', family)}: data_tiers must map tier -> dict")
    return dict(tiers.get(tier, {}))


def resolve_tier(tier: str, family, overrides: dict | None = None) -> DataTier:
    """The DataTier of ``tier`` for ``family`` (object or class): the generic
    tier, then the family's ``data_tiers[tier]``, then a suite's ``data:`` overrides."""
    if tier not in TIERS:
        raise ErtrlError(f"unknown tier {tier!r}; available: {', '.join(TIERS)}")
    fields = {**TIERS[tier], **family_tier_values(family, tier), **(overrides or {})}
    try:
        return DataTier.model_validate(fields)
    except ValidationError as exc:
        raise ErtrlError("; ".join(format_validation_error(exc, model=DataTier))) from None
