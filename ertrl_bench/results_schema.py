"""The typed shape of a run's ``metrics.json``: written by the runner, read by the report.

One schema for both sides, so a change to what a run records is a change here, and the report
never has to guess. The runner builds a plain dict and checks it with :func:`validate_metrics`
before writing; the report reads files with :func:`read_metrics`, which names the file and the
field when one does not fit.

Layout (``docs/paper.md``, "Evaluation")::

    {
      "run_id": str, "method": str, "env": str, "seed": int,
      "final":    {split: {protocol: {"return": float, "normalized": float | null,
                                      "success": float}}},        # success: see below
      "per_task": {split: {protocol: {task_key: {"return": float, "normalized": float | null,
                                                 "success": float}}}},
      "curve":    [{"step": int, "<split>/<protocol>/normalized": float | null,
                    "<split>/<protocol>/success": float, ...}, ...],
      "wall_s": float,                                 # data + setup + train + eval
      "timing_s": {"data", "setup", "train", "eval", "probe", "total": float},  # seconds
      "dataset": str,                                  # dataset folder the run trained on
      "train_tasks": int,                              # how many training tasks it trained on
      "seed_group": int,                               # optional: runs trained together with it
                                                       # as one seed group (timing_s is the group's)
      "diversity": {"w2", "floor", ...},               # optional: that dataset's behavior-policy
                                                       # W2 diversity, as its build recorded it
      "probe": {"linear": {"rmse_mean", "rmse_std"},   # optional: the run's own z-probe
                "svr": {"rmse_mean", "rmse_std"}, "resamples": int},
    }

``normalized`` is ``null`` (or NaN) when a task's normalisation range is degenerate
(R_min = R_max) or the run produced no finite return; the report counts such tasks as missing,
never as a score.

``success`` (in [0, 1]) is there only for families whose env reports a success flag
(``StepResult.success``: Meta-World); for the others the key is absent, never 0. Per task it is
the fraction of evaluation runs whose scored episode succeeded at any step (Meta-World's
convention), averaged over the scoring window like the returns; in ``final`` and the curve it
is the mean over the split's tasks: the success rate. Unknown top-level keys are kept (a plugin may record more), so the schema
constrains what the report reads without forbidding additions.
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, ValidationError, model_validator

__all__ = [
    "Score",
    "ProbeStat",
    "ProbeRecord",
    "CurvePoint",
    "RunMetrics",
    "DiversityRecord",
    "MetricsFileError",
    "validate_metrics",
    "read_metrics",
    "read_diversity",
    "parse_diversity",
    "is_number",
]


def is_number(value: Any) -> bool:
    """True for a finite int/float (not bool, None or NaN/inf): a score the report can use."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


class _Open(BaseModel):
    """Extra keys are kept: writers may record more than the report reads."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Score(_Open):
    """One evaluation score: raw return and normalized return (``None`` when undefined), and
    the success rate for families that report success (``None``: absent, no notion of it)."""

    # strict: a number or null, never a string such as "NaN" (a hand-edited file)
    return_: StrictFloat | None = Field(default=None, alias="return")
    normalized: StrictFloat | None = None
    success: StrictFloat | None = Field(default=None, ge=0.0, le=1.0)


class ProbeStat(_Open):
    """Test RMSE of one probe model within one run: mean and std over its resamples."""

    rmse_mean: float | None = None
    rmse_std: float | None = None


class ProbeRecord(_Open):
    """``metrics["probe"]``: the run's own z-probe (``docs/paper.md``, "Evaluation": Probe)."""

    linear: ProbeStat | None = None
    svr: ProbeStat | None = None
    resamples: int | None = None

    def models(self) -> dict[str, ProbeStat]:
        """``{model: ProbeStat}`` for linear, svr and any extra model recorded the same way."""
        out = {k: v for k, v in (("linear", self.linear), ("svr", self.svr)) if v is not None}
        for key, value in (self.model_extra or {}).items():
            if isinstance(value, dict) and "rmse_mean" in value:
                out[key] = ProbeStat.model_validate(value)
        return out


class CurvePoint(_Open):
    """One evaluation during training: the step and ``"<split>/<protocol>/normalized"`` values
    (and ``"<split>/<protocol>/success"`` for families that report success)."""

    step: int

    @model_validator(mode="after")
    def _values_are_numbers(self):
        for key, value in (self.model_extra or {}).items():
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float))
            ):
                raise ValueError(f"curve value {key!r} must be a number or null, got {value!r}")
        return self

    def values(self) -> dict[str, float | None]:
        """``{"<split>/<protocol>/<metric>": value}`` (NaN and null as ``None``)."""
        return {
            k: (float(v) if is_number(v) else None)
            for k, v in (self.model_extra or {}).items()
            if k.count("/") >= 2
        }


class DiversityRecord(_Open):
    """Behavior-policy diversity of one env: the average W2 and, when known, its same-policy floor.

    A run's ``metrics["diversity"]`` (its dataset's, ``ertrl_bench.data.diversity``), or one
    entry of a suite's ``diversity.json`` (env -> this record, written by ``ertrl-bench datasets
    diversity``); ``w2`` is read as ``value``, a bare number as ``{"value": number}`` (the
    format before the floor existed).
    """

    value: float
    floor: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _accept_number_and_w2(cls, data):
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            return {"value": data}
        if isinstance(data, dict) and "value" not in data and "w2" in data:
            return {**data, "value": data["w2"]}
        return data


class RunMetrics(_Open):
    """A finished run's ``metrics.json``: a run whose file does not fit is not finished.

    ``per_task`` and ``final`` are required and non-empty: the report scores runs per task, so
    a run without them would silently drop out of its method's statistics.
    """

    run_id: str
    method: str
    env: str
    seed: int
    final: dict[str, dict[str, Score]] = Field(min_length=1)
    per_task: dict[str, dict[str, dict[str, Score]]] = Field(min_length=1)
    curve: list[CurvePoint] = Field(default_factory=list)
    wall_s: StrictFloat | None = None
    timing_s: dict[str, StrictFloat] = Field(default_factory=dict)
    dataset: str | None = None
    # the family's training-task count (its ``train_tasks`` option); None: a run from before
    train_tasks: int | None = None
    # how many runs trained together as one seed group (its timing_s is the group's wall clock,
    # shared); None: trained alone
    seed_group: int | None = None
    diversity: DiversityRecord | None = None
    probe: ProbeRecord | None = None

    def protocols(self) -> list[str]:
        """Protocols this run has scores for, in the order first seen."""
        seen: dict[str, None] = {}
        for table in (self.per_task, self.final):
            for by_protocol in table.values():
                seen.update(dict.fromkeys(by_protocol))
        return list(seen)

    def splits(self) -> list[str]:
        return list(dict.fromkeys([*self.per_task, *self.final]))


class MetricsFileError(ValueError):
    """A results file that cannot be read or does not fit the schema; the message names it."""


def _first_errors(exc: ValidationError, limit: int = 3) -> str:
    parts = []
    for err in exc.errors()[:limit]:
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        parts.append(f"{where}: {err['msg']}")
    more = len(exc.errors()) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def validate_metrics(metrics: dict) -> RunMetrics:
    """Check a metrics dict against the schema (the runner calls this before writing)."""
    try:
        return RunMetrics.model_validate(metrics)
    except ValidationError as exc:
        raise MetricsFileError(f"metrics do not fit the schema: {_first_errors(exc)}") from None


def _load_json(path: Path) -> Any:
    try:
        # O_NONBLOCK + the regular-file check: a FIFO or device here never blocks the caller
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise MetricsFileError(f"{path}: not a regular file")
            text = f.read().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MetricsFileError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise MetricsFileError(f"{path}: not valid JSON ({exc})") from None


def read_metrics(path: str | Path) -> RunMetrics:
    """Read and validate one ``metrics.json``; :class:`MetricsFileError` names file and field.

    The one check of a finished run: ``run``'s "done" test, its resume summary and the report
    all go through it, so a file one of them rejects is rejected by all (and the run redone).
    """
    data = _load_json(Path(path))
    if not isinstance(data, dict):
        raise MetricsFileError(f"{path}: expected a JSON object, got {type(data).__name__}")
    try:
        return RunMetrics.model_validate(data)
    except ValidationError as exc:
        raise MetricsFileError(f"{path}: wrong shape: {_first_errors(exc)}") from None


def read_diversity(path: str | Path) -> dict[str, DiversityRecord]:
    """Read ``diversity.json`` ({env: number | {"value", "floor"}})."""
    data = _load_json(Path(path))
    return parse_diversity(data, source=str(path))


def parse_diversity(data: Any, source: str = "diversity") -> dict[str, DiversityRecord]:
    if not isinstance(data, dict):
        raise MetricsFileError(f"{source}: expected a JSON object {{env: value}}")
    try:
        return {str(k): DiversityRecord.model_validate(v) for k, v in data.items()}
    except ValidationError as exc:
        raise MetricsFileError(f"{source}: wrong shape: {_first_errors(exc)}") from None
