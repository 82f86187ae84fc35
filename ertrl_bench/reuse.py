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

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ertrl_bench.config import RunSpec
from ertrl_bench.errors import ErtrlError
from ertrl_bench.progress import console
from ertrl_bench.results_schema import MetricsFileError, read_metrics
from ertrl_bench.runner import Outcome
from ertrl_bench.store import RunDir


@dataclass(frozen=True)
class Source:
    """A finished run another suite folder holds."""

    path: Path  # its run folder
    spec: RunSpec  # its spec.json

    @property
    def label(self) -> str:
        """``<suite>/<run id>``: what ``reused_from`` records."""
        return f"{self.spec.suite}/{self.path.name}"


def suite_folders(folder: Path) -> list[Path]:
    """The suite folders ``folder`` names: itself if it holds a ``suite.json``, else its
    sub-folders that do (a results folder). ``ErtrlError`` if it does not exist or holds none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ErtrlError(
            f"--reuse {folder}: no such folder; give a suite's results folder"
            " (e.g. --reuse results/repro-point-robot) or a results folder holding suites"
        )
    if (folder / "suite.json").is_file():
        return [folder]
    found = sorted(p.parent for p in folder.glob("*/suite.json") if p.is_file())
    if not found:
        raise ErtrlError(
            f"--reuse {folder}: holds no suite (no suite.json in it or in its sub-folders);"
            " give the folder `ertrl-bench run` wrote (e.g. --reuse results/repro-point-robot)"
        )
    return found


def _finished_run(run_dir: Path) -> RunSpec | None:
    """The spec of the finished run in ``run_dir`` (None: unfinished, unreadable, or its folder
    name is not its spec's run id)."""
    if run_dir.is_symlink() or not (run_dir / "spec.json").is_file():
        return None
    try:
        spec = RunSpec.model_validate(json.loads((run_dir / "spec.json").read_text("utf-8")))
        read_metrics(run_dir / "metrics.json")
    except (OSError, ValueError, MetricsFileError):
        return None
    return spec if spec.run_id() == run_dir.name else None


def find_sources(folders: Sequence[Path]) -> dict[str, Source]:
    """The finished runs in ``folders`` by ``computation_key`` (the first folder given wins).

    Checks every folder first: one that does not exist or holds no suite is an ``ErtrlError``."""
    suites = [s for folder in folders for s in suite_folders(folder)]
    sources: dict[str, Source] = {}
    for suite_dir in suites:
        for run_dir in sorted(p for p in suite_dir.iterdir() if p.is_dir()):
            if (spec := _finished_run(run_dir)) is not None:
                sources.setdefault(spec.computation_key(), Source(run_dir, spec))
    return sources


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
        rd = RunDir(results_root, spec)
        if source is None or rd.is_done():
            continue
        try:
            rd.check_real_folders()
            if not rd.lock.acquire():
                continue
        except ErtrlError:
            continue
        try:
            if rd.is_done():  # finished by another process while we looked
                continue
            metrics = rd.copy_finished(source.path, source.spec, source.label)
        except (OSError, ValueError, ErtrlError) as exc:
            console.print(
                f"{spec.run_id()}: not reused from {source.label} ({exc}); it trains instead",
                markup=False,
                highlight=False,
            )
            continue
        finally:
            rd.lock.release()
        outcome = Outcome(spec.run_id(), "reused", f"from {source.label}", metrics)
        out.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return out
