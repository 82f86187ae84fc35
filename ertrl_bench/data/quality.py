"""Data quality: which behavior checkpoints' trajectories a run's datasets keep (docs/data.md).

A dataset holds every task's trajectories from each behavior checkpoint (SAC snapshots; for a
family with scripted experts, noise levels). ``data: {quality: Q}`` in a suite keeps a part of
them, selected from the full collection (nothing is retrained or rebuilt, the dataset's cache
key is unchanged). The levels are ranked from worst to best -- SAC checkpoints by training step,
scripted noise levels by noise, largest first -- and cut into thirds (``numpy.array_split`` from
the best end, so the better thirds get the extra level when the count is not a multiple of 3):

* ``mixed`` (default): every level, the paper's data;
* ``expert``: the best third (the last SAC checkpoints; the least noisy scripted levels);
* ``medium``: the middle third;
* ``random-heavy``: the worst third (the first SAC checkpoints, trained least after the
  uniform-random warm-up steps; the noisiest scripted levels).

Every task keeps its R_min / R_max of the full collection, so normalised scores stay comparable
across qualities. ``quality`` is a run option (in the run's spec and id), not a dataset field.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal, get_args

import numpy as np

from ertrl_bench.data.family_data import FamilyData
from ertrl_bench.errors import ErtrlError

Quality = Literal["mixed", "expert", "medium", "random-heavy"]
QUALITIES: tuple[str, ...] = get_args(Quality)
DEFAULT_QUALITY = "mixed"
QUALITY_KEY = "quality"  # its key in a suite's (or a run's) ``data:``


def split_data_options(data: dict | None) -> tuple[dict, str]:
    """A suite's ``data:`` as (the tier's field overrides, the quality); an unknown quality is
    one error naming the choices."""
    overrides = dict(data or {})
    quality = overrides.pop(QUALITY_KEY, DEFAULT_QUALITY)
    if quality not in QUALITIES:
        raise ErtrlError(
            f"quality: unknown data quality {quality!r}; available: {', '.join(QUALITIES)}"
        )
    return overrides, quality


def canonical_data(data: dict | None) -> dict:
    """``data:`` as a run's spec holds it: ``quality: mixed`` (the default) left out, so a run
    that names it is the same run (same id) as one that does not."""
    out = dict(data or {})
    if out.get(QUALITY_KEY) == DEFAULT_QUALITY:
        del out[QUALITY_KEY]
    return out


def levels_worst_to_best(data: FamilyData) -> list[int]:
    """The values of the ``checkpoint`` column, worst behavior first: SAC checkpoints by step;
    scripted noise levels (their index in the column) by noise, largest first."""
    noise = next(iter(data.meta.values()), {}).get("noise_levels")
    if noise is not None:
        return sorted(range(len(noise)), key=lambda i: (-noise[i], i))
    return sorted(data.tier.checkpoints)


def quality_levels(levels: list[int], quality: str) -> list[int]:
    """The levels ``quality`` keeps, from ``levels`` ranked worst to best."""
    if quality == "mixed":
        return list(levels)
    if len(levels) < 3:
        raise ErtrlError(
            f"data quality {quality!r} keeps a third of the behavior checkpoints; this dataset"
            f" has {len(levels)} (at least 3 needed): use a tier with more `checkpoints` or"
            " quality 'mixed'"
        )
    best, middle, worst = np.array_split(np.asarray(levels[::-1]), 3)
    part = {"expert": best, "medium": middle, "random-heavy": worst}[quality]
    return sorted(int(v) for v in part)


def select_quality(data: FamilyData, quality: str) -> FamilyData:
    """``data`` keeping only the trajectories of ``quality``'s checkpoints (whole trajectories:
    a checkpoint's are whole), every task's R_min / R_max and meta unchanged."""
    if quality == "mixed":
        return data
    keep = np.asarray(quality_levels(levels_worst_to_best(data), quality))
    arrays = {}
    for key, a in data.arrays.items():
        rows = np.isin(a["checkpoint"], keep)
        arrays[key] = {name: column[rows] for name, column in a.items()}
    return replace(data, arrays=arrays, quality=quality)
