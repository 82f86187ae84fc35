"""Result analysis: IQM + bootstrap CIs, W2 diversity, the z-probe, plots and the suite report.

Submodules are imported lazily so ``import ertrl_bench.analysis`` stays cheap (no matplotlib or
scikit-learn until a function that needs them is used).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "iqm": "stats",
    "mean_std": "stats",
    "stratified_bootstrap": "stats",
    "stratified_bootstrap_ci": "stats",
    "interval_estimates": "stats",
    "Interval": "stats",
    "w2_between_samples": "wasserstein",
    "policy_distance": "wasserstein",
    "pairwise_distance_matrix": "wasserstein",
    "average_pairwise_distance": "wasserstein",
    "probe_rmse": "probe",
    "probe_heldout_tasks": "probe",
    "ProbeResult": "probe",
    "plot_learning_curves": "plots",
    "plot_z_map": "plots",
    "plot_gain_vs_diversity": "plots",
    "write_report": "report",
    "load_runs": "report",
    "Report": "report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
