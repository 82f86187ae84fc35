"""Behavior datasets: train a SAC policy per task (batched), collect checkpoint trajectories.

``get_datasets`` is the one entry point: it returns every task's data, building (and caching)
whatever is missing or fails its checksum. Per docs/paper.md, every task of every split gets a
behavior policy and a dataset: offline-context evaluation and normalisation need them.

Modules: ``build`` (get_datasets, grouped builds), ``sac`` (batched SAC, resumable training),
``rng`` (per-task random streams), ``collect`` (rollouts), ``store`` (files, manifest,
checksums), ``memory`` (memory estimate, group planning), ``tiers`` (dataset budgets),
``family_data`` (FamilyData, normalised return), ``policies`` (behavior policies back),
``diversity`` (their W2 diversity, recorded in the manifest).

The names below load their module on first use (as in ``ertrl_bench.analysis``), so importing
``ertrl_bench.data.tiers`` -- which validating a suite does -- loads no torch.
"""

from __future__ import annotations

from ertrl_bench.lazy import lazy_exports

_EXPORTS = {
    "DEFAULT_SAVE_EVERY_S": "build",
    "TRAINING_STATE_FILE": "build",
    "build_tasks": "build",
    "dataset_dir": "build",
    "dataset_key": "build",
    "get_datasets": "build",
    "FamilyData": "family_data",
    "is_degenerate_range": "family_data",
    "normalized_return": "family_data",
}

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
