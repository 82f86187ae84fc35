"""Behavior datasets: train a SAC policy per task (batched), collect checkpoint trajectories.

``get_datasets`` is the one entry point: it returns every task's data, building (and caching)
whatever is missing or fails its checksum. Per docs/paper.md, every task of every split gets a
behavior policy and a dataset: offline-context evaluation and normalisation need them.

Modules: ``build`` (get_datasets, grouped builds), ``sac`` (batched SAC, resumable training),
``rng`` (per-task random streams), ``collect`` (rollouts), ``store`` (files, manifest,
checksums), ``memory`` (memory estimate, group planning), ``tiers`` (dataset budgets),
``family_data`` (FamilyData, normalised return), ``policies`` (behavior policies back).
"""

from __future__ import annotations

from ertrl_bench.data.build import (
    DEFAULT_SAVE_EVERY_S,
    TRAINING_STATE_FILE,
    build_tasks,
    dataset_dir,
    dataset_key,
    get_datasets,
)
from ertrl_bench.data.family_data import FamilyData, is_degenerate_range, normalized_return

__all__ = [
    "DEFAULT_SAVE_EVERY_S",
    "TRAINING_STATE_FILE",
    "FamilyData",
    "build_tasks",
    "dataset_dir",
    "dataset_key",
    "get_datasets",
    "is_degenerate_range",
    "normalized_return",
]
