"""Result analysis: IQM + agent-bootstrap CIs, tests and power, W2 diversity, the z-probe, plots,
the report (on our normalizer and, via ``paper_scale``, the authors').

The suite report is split by job: ``load`` (read runs through ``ertrl_bench.results_schema``),
``tables`` (numbers), ``figures`` (PNGs), ``markdown`` (report.md), ``report`` (the orchestrator
that writes the files).

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
    "mean_ci": "stats",
    "welch_ttest": "stats",
    "agent_bootstrap_ci": "stats",
    "difference_ci": "stats",
    "probability_of_improvement": "stats",
    "authors_ttest": "stats",
    "min_detectable_effect": "stats",
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
    "Report": "report",
    "load_runs": "load",
    "load_suite": "load",
    "suite_dirs": "load",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
