"""``ertrl-bench run SUITE --reuse FOLDER``: copy finished runs of other suites, don't retrain them.

A run's id hashes its suite's name, so two suites that ask for the same computation (a question
suite's FOCAL / BRAC arm and the powered study's, say) get different ids and would each train
it. ``--reuse`` finds, for every unfinished run of the suite, a finished run in FOLDER whose
spec is equal to it in everything but the suite's name (``RunSpec.computation_key``; device,
checkpoint policy and versions are left out as the run id leaves them out) and copies it into
this suite's folder as a normal finished run (``RunDir.copy_finished``): the same numbers the
run would compute, since a spec and seed fix them (on CPU, bit for bit).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ertrl_bench.config import RunSpec
from ertrl_bench.errors import ErtrlError
from ertrl_bench.finished import Source, find_sources, suite_folders
from ertrl_bench.progress import console
from ertrl_bench.runner import Outcome
from ertrl_bench.store import RunDir

__all__ = ["Source", "find_sources", "reuse_finished", "suite_folders"]  # the lookup: finished.py


def reuse_finished(
    specs: Sequence[RunSpec],
    results_root: Path,
    sources: dict[str, Source],
    on_outcome: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Copy a source run for each of ``specs`` that is not finished and has one; their outcomes
    (status ``reused``). A run another process holds, or whose copy fails, is left to the
    normal run (which waits for it, or trains it and reports any problem with its folder)."""
    out = []
    for spec in specs:
        source = sources.get(spec.computation_key())
        if source is None:
            continue
        rd = RunDir(results_root, spec)
        with rd.unfinished_and_free() as held:
            if not held:
                continue
            try:
                metrics = rd.copy_finished(source.path, source.spec, source.label)
            except (OSError, ValueError, ErtrlError) as exc:
                console.print(
                    f"{spec.run_id()}: not reused from {source.label} ({exc}); it trains instead",
                    markup=False,
                    highlight=False,
                )
                continue
        outcome = Outcome(spec.run_id(), "reused", f"from {source.label}", metrics)
        out.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return out
