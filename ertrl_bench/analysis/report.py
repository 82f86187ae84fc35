"""Turn a suite's results folder into ``report.md`` + CSV tables + PNG figures.

It reads results only (the run folders and the suite folder), never the dataset cache, and fits
nothing: diversity and the probe are as the data build and the runs recorded them.

The thin orchestrator: ``load`` reads the runs (typed by ``ertrl_bench.results_schema``),
``tables`` computes the numbers, ``figures`` draws them, ``markdown`` renders report.md, and
this module writes the files.

Files written into the suite folder: ``report.md``, ``returns.csv`` (both scales: ours and,
for the authors' 8 families, theirs), ``expertise.csv``, ``ttest.csv`` (both scales likewise),
``success.csv`` (success rates, only when some run's family reports success: Meta-World),
``curves.csv`` (a ``metric`` column beside the normalized return's rows when some run records a
success rate), ``convergence.csv``, ``rank_stability.csv``, ``probe.csv``, ``cost.csv`` and
``gain_vs_diversity.csv``, ``gain_vs_axis.csv`` and ``gain_trend.csv`` (the gain's slope per
doubling of the training tasks, three or more counts: ``tables.axis_trend_rows``) (when there is
something to put in them),
``missing_runs.csv``, ``curves_<env>.png``, ``success_curves_<env>.png`` (success-rate curves,
likewise only with success), ``zmap_<env>.png``, ``gain_vs_diversity.png``,
``gain_vs_<axis>.png`` (a suite varying the data quality or the training-task count, the
reference's gain over FOCAL at each value: ``tables.axis_gain_rows``); the generated block of a
``NOTES.md`` beside them (``glance``).

The report is built for partial results: a run that is missing, unfinished, failed, unreadable
or without any finite score is listed with its reason and left out of the statistics; a broken
artefact becomes a warning, never an exception. Numbers follow ``docs/paper.md``
("Evaluation"): IID = train split, OOD = moderate split, extreme and our extra ``iid`` split
under their own names; every protocol in the metrics gets its columns.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ertrl_bench.data.store import atomic_write_text
from ertrl_bench.errors import ErtrlError
from ertrl_bench.results_schema import DiversityRecord, MetricsFileError

from .figures import axis_gain_figure, curve_figure, gain_figure, zmap_figure
from .load import RunRecord, load_diversity, load_runs, load_suite, missing_scores, suite_dirs
from .markdown import fmt_ci, fmt_ms, render
from .tables import (
    ALL_TIED,
    AXIS_BASELINE,
    AXIS_GAIN_COLUMNS,
    AXIS_TREND_COLUMNS,
    CONVERGENCE_COLUMNS,
    COST_COLUMNS,
    ERTRL,
    EXPERTISE_COLUMNS,
    GAIN_COLUMNS,
    MAIN_COLUMNS,
    PROBE_COLUMNS,
    PROTOCOL_ORDER,
    RANK_COLUMNS,
    TTEST_COLUMNS,
    axis_gain_rows,
    axis_trend_rows,
    convergence_rows,
    cost_rows,
    curve_columns,
    curve_rows,
    default_reference,
    expertise_rows,
    gain_rows,
    ordered,
    pearson,
    probe_rows,
    rank_verdicts,
    return_rows,
    score_cells,
    ttest_rows,
    unstable_columns,
    varied_axes,
)

__all__ = [
    "MAIN_COLUMNS",
    "RunRecord",
    "Report",
    "load_runs",
    "suite_dirs",
    "check_writable",
    "write_csv",
    "write_report",
]


#: The CLI's main table (IQM with its agent-bootstrap CI; s.d. is the sample std).
TABLE_HEAD = ("env", "method", "split", "protocol", "seeds", "IQM [95% CI]", "mean ± s.d. (ddof 1)")


@dataclass
class Report:
    """What ``write_report`` produced; ``rows`` is the main table for the CLI."""

    suite: str
    path: Path
    rows: list[dict]
    columns: tuple[str, ...] = MAIN_COLUMNS
    reference: str = ERTRL  # the method every other one is compared with
    authors_rows: list[dict] = field(default_factory=list)  # the same on the authors' scale
    # success rate (%) per env x method x split x protocol: runs whose family reports success
    success_rows: list[dict] = field(default_factory=list)
    convergence_rows: list[dict] = field(default_factory=list)
    rank_rows: list[dict] = field(default_factory=list)
    expertise_rows: list[dict] = field(default_factory=list)
    ttest_rows: list[dict] = field(default_factory=list)
    authors_ttest_rows: list[dict] = field(default_factory=list)  # ttest_rows, authors' scale
    # curves.csv: the normalized return's rows, then the success rate's (%), if any ("metric")
    curve_rows: list[dict] = field(default_factory=list)
    probe_rows: list[dict] = field(default_factory=list)
    gain_rows: list[dict] = field(default_factory=list)
    # the reference's gain over axis_baseline at each value of a suite axis (axis_gain_rows)
    axis_gain_rows: list[dict] = field(default_factory=list)
    # that gain's slope per doubling of a numeric axis value (axis_trend_rows)
    axis_trend_rows: list[dict] = field(default_factory=list)
    axis_baseline: str = AXIS_BASELINE
    cost_rows: list[dict] = field(default_factory=list)
    gain_split: str = "moderate"
    pearson: dict[str, tuple[float | None, str]] = field(default_factory=dict)
    # dataset (its runs' ``data_label``: the env when it has one) -> recorded W2
    diversity: dict[str, DiversityRecord] = field(default_factory=dict)
    unrecorded_diversity: list[str] = field(default_factory=list)  # datasets without a record
    problems: list[RunRecord] = field(default_factory=list)
    missing: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    n_expected: int = 0
    n_done: int = 0
    tables: list[Path] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def unstable(self) -> tuple[int, int]:
        """(columns whose method ranking is unstable in the scoring window, columns)."""
        return unstable_columns(self.rank_rows)

    @property
    def converged(self) -> bool:
        """False when at least half of the columns have unstable rankings (pairs of methods
        separated beyond seed noise swap order; tied pairs do not count, ``rank_verdicts``):
        the report then bolds no "best" method."""
        bad, total = self.unstable
        return not (total and 2 * bad >= total)

    @property
    def all_tied(self) -> bool:
        """True when no column has a pair of methods separated at two consecutive evaluations
        (``rank_verdicts``): there is no ranking, so none is bolded either."""
        verdicts = set(rank_verdicts(self.rank_rows).values())
        return verdicts == {ALL_TIED}

    @property
    def ranked(self) -> bool:
        """Whether the report bolds a "best" method: converged and not all tied."""
        return self.converged and not self.all_tied

    @property
    def pearson_r(self) -> float | None:
        """Pearson r of the headline protocol (non_prior when present, else the first)."""
        return self.pearson[self._headline()][0] if self.pearson else None

    @property
    def pearson_note(self) -> str:
        return self.pearson[self._headline()][1] if self.pearson else ""

    def _headline(self) -> str:
        return next(
            (p for p in ("non_prior", "non-prior") if p in self.pearson), next(iter(self.pearson))
        )

    def plain_lines(self) -> list[str]:
        """The main table as tab-separated lines (for pipes and files: never cut to 80 columns)."""
        return ["\t".join(TABLE_HEAD)] + [
            "\t".join([r["env"], r["method"], r["group"], r["protocol"],
                       f"{r['n_seeds']}/{r['n_expected']}", fmt_ci(r), fmt_ms(r)])
            for r in self.rows
        ]  # fmt: skip

    def rich_table(self, protocol: str | None = None):
        """The main table as a ``rich.table.Table`` (optionally one protocol only)."""
        from rich.table import Table

        table = Table(title=f"{self.suite}: normalized return over seeds")
        for col in TABLE_HEAD:
            table.add_column(col, justify="right" if col in ("seeds",) else "left")
        for r in self.rows:
            if protocol is None or r["protocol"] == protocol:
                table.add_row(
                    r["env"], r["method"], r["group"],
                    r["protocol"], f"{r['n_seeds']}/{r['n_expected']}", fmt_ci(r), fmt_ms(r),
                )  # fmt: skip
        return table


# --------------------------------------------------------------------------- writing


def _csv_value(v: Any) -> Any:
    return "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else v


def write_csv(path: Path, rows: Sequence[Mapping], columns: Sequence[str]) -> Path:
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows({k: _csv_value(v) for k, v in row.items()} for row in rows)
    atomic_write_text(path, buf.getvalue())  # replaces a symlink there, never writes through it
    return path


# --------------------------------------------------------------------------- orchestration


def check_writable(suite_dir: Path) -> None:
    if not os.access(suite_dir, os.W_OK | os.X_OK):
        raise ErtrlError(
            f"{suite_dir}: cannot write the report there (folder not writable); copy the "
            "results to a writable folder and report that copy"
        )


def write_report(
    results_dir: str | Path,
    *,
    diversity: Mapping[str, Any] | str | Path | None = None,
    reps: int = 2000,
    confidence: float = 0.95,
    random_state: int = 0,
    figures: bool = True,
    zmap_method: str = "pca",
    gain_split: str = "moderate",
    gain_stat: str = "mean",
    reference: str | None = None,
    axis_baseline: str = AXIS_BASELINE,
) -> Report:
    """Analyse ``results_dir`` (one suite folder) and write report.md, CSVs and PNGs into it.

    Reads results only, never the dataset cache: behavior diversity as the runs recorded it
    (else ``<suite>/diversity.json``; ``diversity``, {env: avg W2 | {"value", "floor"}} or a
    JSON path, overrides both), the probe as each run fitted it. ``reference``: the method
    compared with every other one (t-tests, effect sizes, gain; default
    ``tables.default_reference``). The gain is the reference's
    ``gain_stat`` ("mean" as in the paper's tables, or "iqm") on ``gain_split`` (default:
    moderate, the paper's OOD) minus the best other method's, per protocol and dataset (an env
    whose runs trained on several datasets, e.g. one per training-task count, gives one point
    each: ``tables.gain_rows``). A suite that varies the data quality or the training-task
    count also gets the reference's gain over ``axis_baseline`` (FOCAL) at each value, with CIs.
    Raises ``ErtrlError`` (message naming the path) for a folder
    that is not a suite or cannot be written.
    """
    suite_dir = Path(results_dir)
    dirs = suite_dirs(suite_dir)
    if dirs != [suite_dir]:
        names = ", ".join(d.name for d in dirs)
        raise ErtrlError(
            f"{suite_dir}: a results root holding suites ({names}), not a suite; report each "
            f"one (ertrl-bench report {dirs[0]}) or pass the root to `ertrl-bench report`"
        )
    check_writable(suite_dir)
    notes: list[str] = []
    loaded = load_suite(suite_dir)
    runs = loaded.runs
    done = [r for r in runs if r.done]
    problems = [r for r in runs if not r.done]
    methods = ordered(r.method for r in runs if r.method)
    if reference is None:
        reference, chosen = default_reference(methods)
        if chosen:
            notes.append(chosen)
    elif reference != ERTRL and methods and reference not in methods:
        raise ErtrlError(
            f"--reference {reference!r}: no such method in {suite_dir} (methods: "
            f"{', '.join(methods)}); pass one of them"
        )

    cells = score_cells(done, runs)
    rows = return_rows(
        cells, reps=reps, confidence=confidence, random_state=random_state, notes=notes
    )
    authors_cells = score_cells(done, runs, scale="authors")
    authors_rows = return_rows(
        authors_cells, reps=reps, confidence=confidence, random_state=random_state,
        scale="authors",
    )  # fmt: skip
    success_rows = return_rows(
        score_cells(done, runs, scale="success"), reps=reps, confidence=confidence,
        random_state=random_state, scale="success",
    )  # fmt: skip
    trows = ttest_rows(cells, reference=reference, reps=reps, random_state=random_state)
    authors_trows = ttest_rows(
        authors_cells, reference=reference, reps=reps, random_state=random_state, scale="authors"
    )
    windows = [r.final_evals for r in done if r.final_evals]
    window = max(set(windows), key=windows.count) if windows else 2
    conv, ranks = convergence_rows(done, window, confidence)
    if done and not any(r.method == reference for r in done):
        notes.append(f"No finished {reference} run: no t-test and no gain table.")
    crows = curve_rows(done, confidence) + curve_rows(done, confidence, metric="success")
    prows = probe_rows(done, notes=notes)

    try:
        div, unrecorded = load_diversity(loaded, diversity)
    except MetricsFileError as exc:
        div, unrecorded = {}, ordered(r.env for r in done)
        loaded.warnings.append(f"{exc} (diversity ignored)")
    grows = gain_rows(
        rows, div, runs=done, split=gain_split, stat=gain_stat, reference=reference, notes=notes
    )
    arows = axis_gain_rows(
        done, reference=reference, baseline=axis_baseline, reps=reps, confidence=confidence,
        random_state=random_state,
    )  # fmt: skip
    trows_axis = axis_trend_rows(
        done, reference=reference, baseline=axis_baseline, reps=reps, confidence=confidence,
        random_state=random_state,
    )  # fmt: skip
    axes = varied_axes(done)
    if axes and not arows:
        notes.append(
            f"The runs vary {' and '.join(axes)}, but no value has finished runs of both"
            f" {reference} and {axis_baseline} (--reference / --axis-baseline): no gain vs"
            " axis."
        )
    by_proto = {}
    for proto in ordered((g["protocol"] for g in grows), PROTOCOL_ORDER):
        by_proto[proto] = pearson([g for g in grows if g["protocol"] == proto])

    report = Report(
        suite=loaded.name, path=suite_dir / "report.md", rows=rows, ttest_rows=trows,
        authors_rows=authors_rows, authors_ttest_rows=authors_trows, expertise_rows=expertise_rows(done), reference=reference,
        success_rows=success_rows,
        convergence_rows=conv, rank_rows=ranks,
        curve_rows=crows, probe_rows=prows, gain_rows=grows, gain_split=gain_split,
        axis_gain_rows=arows, axis_trend_rows=trows_axis, axis_baseline=axis_baseline,
        cost_rows=cost_rows(done),
        pearson=by_proto, diversity=div, unrecorded_diversity=unrecorded,
        problems=problems, missing=missing_scores(runs),
        n_expected=len(runs), n_done=len(done), warnings=loaded.warnings, notes=notes,
    )  # fmt: skip
    try:
        _write_files(report, suite_dir, done, figures, zmap_method)
    except OSError as exc:
        where = exc.filename or suite_dir
        raise ErtrlError(
            f"{where}: cannot write the report ({exc.strerror or exc}); copy the results to a "
            "writable folder and report that copy"
        ) from None
    return report


def _write_files(report: Report, suite_dir: Path, done, figures: bool, zmap_method) -> None:
    optional = (  # written when it has rows
        ("success.csv", report.success_rows, MAIN_COLUMNS),
        ("expertise.csv", report.expertise_rows, EXPERTISE_COLUMNS),
        ("ttest.csv", report.ttest_rows and report.ttest_rows + report.authors_ttest_rows,
         TTEST_COLUMNS),
        ("curves.csv", report.curve_rows, curve_columns(report.curve_rows)),
        ("probe.csv", report.probe_rows, PROBE_COLUMNS),
        ("gain_vs_axis.csv", report.axis_gain_rows, AXIS_GAIN_COLUMNS),
        ("gain_trend.csv", report.axis_trend_rows, AXIS_TREND_COLUMNS),
        ("gain_vs_diversity.csv", report.gain_rows, GAIN_COLUMNS),
        ("convergence.csv", report.convergence_rows, CONVERGENCE_COLUMNS),
        ("rank_stability.csv", report.rank_rows, RANK_COLUMNS),
        ("cost.csv", report.cost_rows, COST_COLUMNS),
    )  # fmt: skip
    report.tables.append(
        write_csv(suite_dir / "returns.csv", report.rows + report.authors_rows, MAIN_COLUMNS)
    )
    for name, rows, columns in optional:
        if rows:
            report.tables.append(write_csv(suite_dir / name, rows, columns))
    report.tables.append(
        write_csv(
            suite_dir / "missing_runs.csv",
            [vars(p) for p in report.problems],
            ("run_id", "method", "env", "seed", "status", "error"),
        )
    )

    curve_figs, success_figs, zmap_figs = {}, {}, {}
    if figures:
        for env in ordered(r.env for r in done):
            env_runs = [r for r in done if r.env == env]
            slug = "".join(c if c.isalnum() or c in "-_" else "_" for c in env)
            for kind, fn, store in (
                ("curves", lambda p, er=env_runs, e=env: curve_figure(e, er, p), curve_figs),
                ("success_curves",
                 lambda p, er=env_runs, e=env: curve_figure(e, er, p, "success"), success_figs),
                ("zmap", lambda p, er=env_runs, e=env: zmap_figure(e, er, p, zmap_method), zmap_figs),
            ):  # fmt: skip
                try:
                    out = fn(suite_dir / f"{kind}_{slug}.png")
                except OSError:
                    raise
                except Exception as exc:
                    report.notes.append(
                        f"{kind} figure for {env} failed: {type(exc).__name__}: {exc}"
                    )
                    out = None
                if out is not None:
                    store[env] = out
                    report.figures.append(out)
        if report.gain_rows:
            try:
                out = gain_figure(report.gain_rows, suite_dir / "gain_vs_diversity.png")
                if out is not None:
                    report.figures.append(out)
            except OSError:
                raise
            except Exception as exc:
                report.notes.append(f"gain-vs-diversity figure failed: {type(exc).__name__}: {exc}")

        for axis in ordered(r["axis"] for r in report.axis_gain_rows):
            try:
                out = axis_gain_figure(
                    report.axis_gain_rows, axis, suite_dir / f"gain_vs_{axis}.png"
                )
                if out is not None:
                    report.figures.append(out)
            except OSError:
                raise
            except Exception as exc:
                report.notes.append(f"gain-vs-{axis} figure failed: {type(exc).__name__}: {exc}")

    atomic_write_text(report.path, render(report, curve_figs, zmap_figs, success_figs))
    notes = suite_dir / "NOTES.md"
    if notes.is_file():  # its generated block (glance.py) follows the CSVs just written
        from .glance import sync_file

        sync_file(notes, suite_dir.parent, suite_dir)
