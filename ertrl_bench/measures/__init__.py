"""The measures layer: numbers that runs and data builds compute, and the report aggregates.

* ``stats``: IQM, agent-bootstrap CIs, t-tests, effect sizes, power (the report's statistics).
* ``wasserstein``: behavior-policy diversity (sliced / exact W2 with its same-policy floor),
  measured on a dataset's behavior policies (``ertrl_bench.data.diversity.measure_diversity``).
* ``probe``: the z probe every run fits at its end (``ertrl_bench.runner``).
* ``settling``: window scores over a run's evaluations and the budget rule: where runs settle
  (``ertrl-bench settle``, ``ertrl_bench.analysis.settling``).

This package never imports ``ertrl_bench.analysis`` (the report layer, which only reads
results); ``tests/test_imports.py`` checks it. Submodules are imported on first use, so
``import ertrl_bench.measures`` stays cheap (no scipy, POT or scikit-learn until needed).
"""

from __future__ import annotations

from ertrl_bench.lazy import lazy_exports

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
    "seeds_for_effect": "stats",
    "w2_between_samples": "wasserstein",
    "policy_distance": "wasserstein",
    "pairwise_distance_matrix": "wasserstein",
    "average_pairwise_distance": "wasserstein",
    "diversity_with_floor": "wasserstein",
    "probe_agent": "probe",
    "probe_rmse": "probe",
    "probe_heldout_tasks": "probe",
    "ProbeResult": "probe",
    "BudgetCell": "settling",
    "budget_cell": "settling",
    "window_scores": "settling",
}

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
