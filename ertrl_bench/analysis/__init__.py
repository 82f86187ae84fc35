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

import importlib

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

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
