"""Read a suite's results folder into typed run records (the report's only reader of files;
it reads results only, never the dataset cache).

Layout (written by the runner and ``ertrl_bench.store``)::

    <suite>/suite.json               {"suite": name, "runs": [{"run_id","method","env","seed"}, ...]}
    <suite>/<run_id>/spec.json       resolved spec
    <suite>/<run_id>/metrics.json    the "done" marker, shape: ertrl_bench.results_schema.RunMetrics
    <suite>/<run_id>/failed.json     {"error", "traceback"} when the run failed
    <suite>/<run_id>/encodings.npz   optional: task_index, task_split, task_param, z_<protocol>, zi
    <suite>/diversity.json           optional: {env: avg W2 | {"value", "floor"}}, for runs
                                     without metrics["diversity"] (ertrl-bench datasets diversity;
                                     for an env with one dataset)

Nothing here raises for a broken file: a file that cannot be read or does not fit the schema is
named in a warning and its run is listed (status ``invalid``), never silently dropped. A run
whose every score is NaN / null is listed too (status ``no scores``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ertrl_bench.errors import ErtrlError
from ertrl_bench.results_schema import (
    DiversityRecord,
    MetricsFileError,
    RunMetrics,
    is_number,
    parse_diversity,
    read_diversity,
    read_metrics,
)

__all__ = [
    "RunRecord",
    "SuiteResults",
    "load_suite",
    "load_runs",
    "suite_dirs",
    "load_diversity",
    "label_datasets",
    "missing_scores",
]

RUN_MARKERS = ("metrics.json", "failed.json", "spec.json")


@dataclass
class RunRecord:
    """One expected or found run and what became of it."""

    run_id: str
    method: str
    env: str
    seed: Any
    status: str  # "done" | "failed" | "missing" | "invalid" | "no scores"
    error: str = ""
    path: Path | None = None
    metrics: RunMetrics | None = None
    final_evals: int | None = None  # spec.json train.final_evals: the score's evaluation window
    # what the method is, name aside (spec.json's method without its name, as JSON): methods
    # named per suite axis value (focal-expert, focal-t5) share it with their plain name
    method_key: str | None = None
    # the suite axes a run may vary (``tables.AXES``): data quality, training-task count, backbone
    quality: str = "mixed"
    train_tasks: int | None = None  # metrics.json's, else spec.json's env option; None: unknown
    backbone: str | None = None  # spec.json's method backbone type; None: unknown
    # the dataset it trained on: metrics.json's folder as "<family>/<tier>-<key>" (the key
    # hashes what determines the data, so it names the dataset on any machine); None: unknown
    dataset: str | None = None
    # what the report keys behavior diversity by (``label_datasets``): the env, or for an env
    # whose runs trained on several datasets, the env and what selects this one
    data_label: str = ""

    @property
    def done(self) -> bool:
        return self.status == "done"


@dataclass
class SuiteResults:
    """Everything read from one suite folder."""

    name: str
    path: Path
    runs: list[RunRecord]
    warnings: list[str] = field(default_factory=list)  # files named and skipped

    @property
    def done(self) -> list[RunRecord]:
        return [r for r in self.runs if r.done]


def _read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _name(value: Any, key: str) -> str:
    """Method/env as a string even if given as a spec sub-dict ({"name": ...} / {"type": ...})."""
    if isinstance(value, Mapping):
        value = value.get(key, value.get("name", value.get("type", "")))
    return "" if value is None else str(value)


def _has_score(metrics: RunMetrics) -> bool:
    for by_protocol in metrics.per_task.values():
        for tasks in by_protocol.values():
            if any(is_number(s.normalized) for s in tasks.values()):
                return True
    for by_protocol in metrics.final.values():
        if any(is_number(s.normalized) for s in by_protocol.values()):
            return True
    return False


def _read_axes(rec: RunRecord, spec: Mapping[str, Any]) -> None:
    """``method_key``, ``quality``, ``train_tasks`` and ``backbone`` from a run's spec.json (a
    spec leaves out quality ``mixed`` and the family's own task count: ertrl_bench.suite_loader).
    The backbone is an axis, so it is not part of what the method is (``method_key``)."""
    method = spec.get("method")
    if isinstance(method, Mapping):
        rec.method_key = json.dumps(
            {k: v for k, v in method.items() if k not in ("name", "backbone")},
            sort_keys=True,
            default=str,
        )
        backbone = method.get("backbone")
        kind = backbone.get("type") if isinstance(backbone, Mapping) else None
        if isinstance(kind, str):
            rec.backbone = kind
    data = spec.get("data")
    if isinstance(data, Mapping) and isinstance(data.get("quality"), str):
        rec.quality = data["quality"]
    env = spec.get("env")
    params = env.get("params") if isinstance(env, Mapping) else None
    n = params.get("train_tasks") if isinstance(params, Mapping) else None
    if isinstance(n, int) and not isinstance(n, bool):
        rec.train_tasks = n


def _inspect_run(suite_dir: Path, entry: Mapping[str, Any], warnings: list[str]) -> RunRecord:
    run_id = str(entry.get("run_id", ""))
    rec = RunRecord(
        run_id=run_id,
        method=_name(entry.get("method"), "name"),
        env=_name(entry.get("env"), "type"),
        seed=entry.get("seed"),
        status="missing",
    )
    run_dir = suite_dir / run_id
    if not run_id or not run_dir.is_dir():
        rec.error = "no run folder"
        return rec
    rec.path = run_dir
    spec_path = run_dir / "spec.json"
    if spec_path.is_file():
        try:
            spec = _read_json(spec_path)
            if not isinstance(spec, Mapping):
                raise ValueError(f"expected a JSON object, got {type(spec).__name__}")
            window = (spec.get("train") or {}).get("final_evals")
            rec.final_evals = window if isinstance(window, int) else None
            rec.method = rec.method or _name(spec.get("method"), "name")
            rec.env = rec.env or _name(spec.get("env"), "type")
            rec.seed = spec.get("seed", rec.seed) if rec.seed is None else rec.seed
            _read_axes(rec, spec)
        except Exception as exc:  # a broken spec only costs us the labels
            warnings.append(f"{spec_path}: unreadable spec.json skipped ({exc})")
    metrics_path = run_dir / "metrics.json"
    if metrics_path.is_file():
        try:
            metrics = read_metrics(metrics_path)
        except MetricsFileError as exc:
            rec.status, rec.error = "invalid", f"unreadable metrics.json: {exc}"
            warnings.append(f"{exc} (run {run_id} skipped)")
            return rec
        rec.metrics = metrics
        rec.method = rec.method or metrics.method
        rec.env = rec.env or metrics.env
        rec.seed = metrics.seed if rec.seed is None else rec.seed
        if isinstance(metrics.train_tasks, int):
            rec.train_tasks = metrics.train_tasks
        if metrics.dataset:
            rec.dataset = "/".join(metrics.dataset.replace("\\", "/").rstrip("/").split("/")[-2:])
        if _has_score(metrics):
            rec.status, rec.error = "done", ""
        else:
            rec.status = "no scores"
            rec.error = "metrics.json has no finite normalized score (all NaN / null)"
        return rec
    failed_path = run_dir / "failed.json"
    if failed_path.is_file():
        rec.status = "failed"
        try:
            info = _read_json(failed_path)
            if not isinstance(info, Mapping):
                raise ValueError(f"expected a JSON object, got {type(info).__name__}")
            rec.error = str(info.get("error") or "failed (no error message)")
        except Exception as exc:
            rec.error = f"failed (unreadable failed.json: {exc})"
            warnings.append(f"{failed_path}: unreadable failed.json ({exc})")
        return rec
    rec.error = "not finished (no metrics.json)"
    return rec


def unreadable_runs_hint(runs: list[RunRecord]) -> str:
    """``""``, or what to add to an error or warning when some runs' metrics.json cannot be
    read: each such file and the fix (``run`` redoes those runs, keeping the files aside)."""
    bad = [r for r in runs if r.status == "invalid"]
    if not bad:
        return ""
    return (
        f"; {len(bad)} run(s) with an unreadable metrics.json: "
        + "; ".join(r.error.removeprefix("unreadable metrics.json: ") for r in bad)
        + f". Rerun the suite (ertrl-bench run SUITE --results-dir {bad[0].path.parent.parent})"
        " to redo them: each unreadable file is kept aside as metrics.invalid.json"
    )


def _is_run_dir(path: Path) -> bool:
    return path.is_dir() and any((path / m).is_file() for m in RUN_MARKERS)


def load_suite(suite_dir: str | Path) -> SuiteResults:
    """One ``RunRecord`` per expected run (suite.json), plus warnings naming skipped files.

    Folders of runs the current suite.json no longer lists (an edited suite's old runs) are left
    out. Without a readable suite.json every sub-folder holding a spec.json, metrics.json or
    failed.json counts.
    """
    suite_dir = Path(suite_dir)
    name, entries, warnings = suite_dir.name, [], []
    suite_json = suite_dir / "suite.json"
    if suite_json.is_file():
        try:
            data = _read_json(suite_json)
            if not isinstance(data, Mapping) or not isinstance(data.get("runs", []), list):
                raise ValueError('expected {"suite": name, "runs": [...]}')
            name = str(data.get("suite") or name)
            entries = [dict(r) for r in data.get("runs", []) if isinstance(r, Mapping)]
        except Exception as exc:
            warnings.append(f"{suite_json}: unreadable, runs found from their folders ({exc})")
            entries = []
    if not entries:
        subs = sorted(p for p in suite_dir.iterdir() if _is_run_dir(p))
        entries = [{"run_id": sub.name} for sub in subs]
    runs = [_inspect_run(suite_dir, e, warnings) for e in entries]
    label_datasets(runs)
    return SuiteResults(name=name, path=suite_dir, runs=runs, warnings=warnings)


def label_datasets(runs: list[RunRecord]) -> None:
    """Set each run's ``data_label``: its env when the env's finished runs trained on one
    dataset; else the env and what selects the run's dataset -- ``point-robot (train_tasks=5)``
    when each dataset has its own training-task count, else the dataset's folder name."""
    done = [r for r in runs if r.done]
    datasets: dict[str, dict] = {}  # env -> {dataset: {its runs' train_tasks}}
    for r in done:
        datasets.setdefault(r.env, {}).setdefault(r.dataset, set()).add(r.train_tasks)
    for r in runs:
        by_dataset = datasets.get(r.env, {})
        if len(by_dataset) <= 1 or not r.done:
            r.data_label = r.env
            continue
        counts = [next(iter(c)) for c in by_dataset.values() if len(c) == 1]
        if None not in counts and len(set(counts)) == len(by_dataset):  # one count a dataset
            r.data_label = f"{r.env} (train_tasks={r.train_tasks})"
        else:
            r.data_label = f"{r.env} ({(r.dataset or 'dataset unknown').split('/')[-1]})"


def load_runs(suite_dir: str | Path) -> tuple[str, list[RunRecord]]:
    """Suite name and one ``RunRecord`` per expected run (see ``load_suite``)."""
    res = load_suite(suite_dir)
    return res.name, res.runs


def suite_dirs(path: str | Path) -> list[Path]:
    """The suite folders under ``path``: ``[path]`` for a suite, its suites for a results root.

    Raises ``ErtrlError`` naming ``path`` when it is neither (no suite.json, no run folders, no
    suites), is not a folder, or cannot be listed.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ErtrlError(f"{path}: a file, not a results folder (pass e.g. results/smoke)")
    if not path.is_dir():
        raise ErtrlError(
            f"{path}: no such results folder (run a suite first: ertrl-bench run suites/smoke.yaml)"
        )
    try:
        if (path / "suite.json").is_file() or any(_is_run_dir(p) for p in path.iterdir()):
            return [path]
        if _is_run_dir(path):
            raise ErtrlError(
                f"{path}: one run's folder, not a suite's; pass the suite's folder that holds"
                f" it: {path.parent}"
            )
        suites = sorted(
            p for p in path.iterdir()
            if p.is_dir()
            and ((p / "suite.json").is_file() or any(_is_run_dir(q) for q in p.iterdir()))
        )  # fmt: skip
    except OSError as exc:
        raise ErtrlError(
            f"{exc.filename or path}: cannot read the results ({exc.strerror})"
        ) from None
    if not suites:
        raise ErtrlError(
            f"{path}: no suite results here (no suite.json and no run folders); pass a suite's "
            "folder, e.g. results/smoke"
        )
    return suites


def load_diversity(
    suite: SuiteResults, diversity: Mapping | str | Path | None = None
) -> tuple[dict[str, DiversityRecord], list[str]]:
    """``({dataset: DiversityRecord}, [datasets with finished runs but no record])``, each
    dataset by its runs' ``data_label`` (the env, when the env's runs trained on one dataset).

    ``diversity`` (a mapping or a JSON path) when given; else what each dataset's finished runs
    recorded (``metrics["diversity"]``: measured when it was built); else
    ``<suite>/diversity.json`` (``ertrl-bench datasets diversity`` writes it, by env, for runs
    made before runs recorded it). Never opens the dataset cache. Raises ``MetricsFileError``
    for a ``diversity.json`` that cannot be read; runs of one dataset whose records differ (runs
    without a recorded dataset folder, or a dataset measured again) are named in
    ``suite.warnings`` and the first is used.
    """
    if diversity is not None:
        if isinstance(diversity, (str, Path)):
            return read_diversity(Path(diversity)), []
        return parse_diversity(dict(diversity)), []
    found: dict[str, DiversityRecord] = {}
    for r in suite.done:
        rec = r.metrics.diversity
        if rec is None:
            continue
        first = found.setdefault(r.data_label, rec)
        if (first.value, first.floor) != (rec.value, rec.floor):
            suite.warnings.append(
                f"{r.data_label}: runs recorded different behavior diversities for one"
                f" dataset; {first.value:.4g} is used, {r.run_id} has {rec.value:.4g}"
            )
    labels = dict.fromkeys(r.data_label for r in suite.done)
    if any(label not in found for label in labels):
        path = suite.path / "diversity.json"
        if path.is_file():
            for label, rec in read_diversity(path).items():
                found.setdefault(label, rec)
    return found, [label for label in labels if label not in found]


def missing_scores(runs: list[RunRecord]) -> dict[str, dict[str, list[str]]]:
    """Tasks without a finite normalized score: ``{env: {split/protocol/task: [run labels]}}``.

    A null / NaN normalized score with a finite return means the task's normalisation range is
    degenerate (R_min = R_max); both are reported, never averaged in.
    """
    out: dict[str, dict[str, list[str]]] = {}
    for r in runs:
        if r.metrics is None:
            continue
        for split, by_protocol in r.metrics.per_task.items():
            for protocol, tasks in by_protocol.items():
                for task, score in tasks.items():
                    if is_number(score.normalized):
                        continue
                    ret = score.return_
                    why = "return finite" if is_number(ret) else "return NaN"
                    label = f"{r.method} s{r.seed} ({why})"
                    key = f"{split}/{protocol}/{task}"
                    out.setdefault(r.env, {}).setdefault(key, []).append(label)
    return out
