"""The report layer: reads a suite's results and writes report.md, CSV tables and PNG figures (on
our normalizer and, via ``paper_scale``, the authors').

It only reads results (run folders, the suite folder), never the dataset cache: the W2
diversity and the z probe are measured by data builds and runs (``ertrl_bench.measures``, which
never imports this package) and read back here; ``measures.stats`` aggregates them. The suite
report is split by job: ``load`` (read runs through ``ertrl_bench.results_schema``), ``tables``
(numbers), ``figures`` (PNGs), ``markdown`` (report.md), ``report`` (the orchestrator that
writes the files).

Submodules are imported lazily so ``import ertrl_bench.analysis`` stays cheap (no matplotlib or
scikit-learn until a function that needs them is used).
"""

from __future__ import annotations

from ertrl_bench.lazy import lazy_exports

_EXPORTS = {
    "plot_learning_curves": "plots",
    "plot_z_map": "plots",
    "plot_gain_vs_diversity": "plots",
    "write_report": "report",
    "Report": "report",
    "load_runs": "load",
    "load_suite": "load",
    "suite_dirs": "load",
}

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
