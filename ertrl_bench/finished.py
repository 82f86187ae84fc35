"""Finished runs in results folders, found by what they compute: the one lookup behind
``run --reuse`` (``ertrl_bench.reuse``: copy a run with an equal ``RunSpec.computation_key``)
and budget extension (``ertrl_bench.extend``: continue a shorter run's checkpoint)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ertrl_bench.config import RunSpec
from ertrl_bench.errors import ErtrlError
from ertrl_bench.results_schema import MetricsFileError, read_metrics


@dataclass(frozen=True)
class Source:
    """A finished run a results folder holds."""

    path: Path  # its run folder
    spec: RunSpec  # its spec.json

    @property
    def label(self) -> str:
        """``<suite>/<run id>``: what ``reused_from`` and ``extended_from`` record."""
        return f"{self.spec.suite}/{self.path.name}"


def suite_folders(folder: Path) -> list[Path]:
    """The suite folders ``folder`` names: itself if it holds a ``suite.json``, else its
    sub-folders that do (a results folder). ``ErtrlError`` if it does not exist or holds none."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ErtrlError(
            f"--reuse {folder}: a file, not a results folder; give the folder `ertrl-bench run`"
            " wrote (e.g. --reuse results/repro-point-robot)"
        )
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


def _finished_run(run_dir: Path, wanted: Callable[[RunSpec], bool]) -> RunSpec | None:
    """The spec of the finished run in ``run_dir`` (None: unfinished, unreadable, its folder
    name is not its spec's run id, or not ``wanted``: then its metrics are not read)."""
    if run_dir.is_symlink() or not (run_dir / "spec.json").is_file():
        return None
    try:
        spec = RunSpec.model_validate(json.loads((run_dir / "spec.json").read_text("utf-8")))
        if spec.run_id() != run_dir.name or not wanted(spec):
            return None
        read_metrics(run_dir / "metrics.json")
    except (OSError, ValueError, MetricsFileError):
        return None
    return spec


def finished_runs(
    folders: Sequence[Path], wanted: Callable[[RunSpec], bool] = lambda spec: True
) -> Iterator[Source]:
    """The finished runs in ``folders`` (each a suite's folder or a folder of them), in the
    order given, whose spec is ``wanted``.

    Checks every folder first: one that does not exist or holds no suite is an ``ErtrlError``."""
    suites = [s for folder in folders for s in suite_folders(folder)]
    yield from runs_in(suites, wanted)


def runs_in(
    suite_dirs: Sequence[Path], wanted: Callable[[RunSpec], bool] = lambda spec: True
) -> Iterator[Source]:
    """The finished runs whose spec is ``wanted`` in each of ``suite_dirs`` (suite folders), in
    the order given, then by run id."""
    for suite_dir in suite_dirs:
        for run_dir in sorted(p for p in suite_dir.iterdir() if p.is_dir()):
            if (spec := _finished_run(run_dir, wanted)) is not None:
                yield Source(run_dir, spec)


def find_sources(folders: Sequence[Path]) -> dict[str, Source]:
    """The finished runs in ``folders`` by ``computation_key`` (the first folder given wins).

    Checks every folder first: one that does not exist or holds no suite is an ``ErtrlError``."""
    sources: dict[str, Source] = {}
    for source in finished_runs(folders):
        sources.setdefault(source.spec.computation_key(), source)
    return sources
