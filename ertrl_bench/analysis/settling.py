"""``ertrl-bench settle``: at which budget do a study's runs settle, and what do BRAC's alpha,
Q loss and divergence do meanwhile?

Reads a study folder's finished runs (``metrics.json`` curves, ``log.jsonl``; results only)
and computes, with ``ertrl_bench.measures.settling``:

* per method, the **window table**: each run's mean over spans of evaluations (by default
  between consecutive candidate budgets) and the s.d. (ddof 1) of its last ``window``
  evaluations;
* the **budget table**: the budget rule at every candidate budget for every method x split x
  protocol, and the budgets that settle every cell;
* the **diagnostics**: each logged quantity of ``DIAGNOSTICS`` per run, averaged over the steps
  since the previous evaluation, at each budget (table) and at every evaluation
  (``diagnostics.png``, beside the offline curves);
* the **seed plan**: at one budget (the cheapest that settles every cell, else the last
  evaluation), per column and per method against the reference (ERTRL, as the report), the seed
  s.d.s, today's MDE and the seeds a method for an MDE of at most ``effect`` points
  (``tables.seeds_needed``: Welch's two-sided test, 80% power, as the report's MDE).

The curves are those of one **metric**: the normalized return (default), or, with
``metric="success"``, the success rate in percent (families that report success: Meta-World),
so that a study can ask where its success rates settle too.

``markdown`` renders the four tables; ``write_files`` writes ``settling.csv`` (the budget
table) and ``diagnostics.png`` into the study folder (``settling_success.csv`` and
``diagnostics_success.png`` for the success rate). Bad input raises ``ErtrlError`` naming the
folder or run and the fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ertrl_bench.errors import ErtrlError
from ertrl_bench.measures.settling import (
    BudgetCell,
    budget_cell,
    default_budgets,
    interval_means,
    span_means,
)
from ertrl_bench.measures.stats import min_detectable_effect

from .load import RunRecord, load_suite, suite_dirs, unreadable_runs_hint
from .markdown import fmt_seeds
from .tables import (
    CURVE_METRICS,
    ERTRL,
    PLAN_EFFECT,
    curve_keys,
    default_reference,
    ordered,
    run_curve,
    seeds_needed,
    split_label,
)

__all__ = [
    "DIAGNOSTICS",
    "SETTLING_COLUMNS",
    "PlanRow",
    "Settling",
    "parse_step",
    "parse_steps",
    "parse_spans",
    "settle",
    "seed_plan",
    "markdown",
    "write_files",
]

#: Logged quantities drawn and tabled when some run logged them, with their labels.
DIAGNOSTICS = {
    "brac/alpha": "BRAC alpha",
    "brac/q_loss": "Q loss",
    "brac/divergence": "divergence",
    "brac/log_std_at_clamp": "log-std at clamp",
    "iql/q_loss": "IQL Q loss",
}
SETTLING_COLUMNS = (
    "env", "method", "split", "protocol", "budget", "window_from", "window_to", "n_seeds",
    "mean", "seed_sd", "trend", "drift", "settled",
)  # fmt: skip

Column = tuple[str, str]  # (split, protocol)


@dataclass
class Group:
    """The finished runs of one method (of one env), in seed order."""

    env: str
    method: str
    runs: list[RunRecord]
    values: dict[Column, np.ndarray]  # [seeds, evaluations], NaN where a run lacks a value
    cells: dict[Column, list[BudgetCell]] = field(default_factory=dict)  # budgets, then last
    diagnostics: dict[str, np.ndarray] = field(default_factory=dict)  # key -> [runs, evals]

    def label(self, several_envs: bool) -> str:
        return f"{self.env} {self.method}" if several_envs else self.method


@dataclass(frozen=True)
class PlanRow:
    """The reference against one other method in one column, at the plan's budget."""

    env: str
    column: Column
    reference: str
    method: str
    sd_reference: float  # seed s.d. (ddof 1) of the scores with the plan's budget
    sd_method: float
    n_reference: int  # seeds measured
    n_method: int
    mde: float  # min_detectable_effect at today's seeds (80% power, two-sided 0.05)
    seeds: float  # seeds a method for mde <= effect (tables.seeds_needed: inf past the cap)


@dataclass
class Settling:
    """Everything ``settle`` computed for one study folder."""

    path: Path
    window: int
    steps: list[int]  # the evaluation steps every run shares
    budgets: list[int]
    spans: list[tuple[int | None, int]]  # (start, end]; start None: the evaluation at end
    columns: list[Column]
    groups: list[Group]
    notes: list[str] = field(default_factory=list)
    effect: float = PLAN_EFFECT  # the seed plan's target MDE, normalized points
    reference: str = ERTRL
    plan_at: int | None = None  # the seed plan's budget; None: no plan
    plan_settled: bool = False  # plan_at is the cheapest budget that settles every cell
    plan: list[PlanRow] = field(default_factory=list)
    metric: str = "normalized"  # a key of CURVE_METRICS

    @property
    def final(self) -> int:
        return self.steps[-1]

    @property
    def several_envs(self) -> bool:
        return len({g.env for g in self.groups}) > 1

    def settled_budgets(self) -> list[int]:
        """The candidate budgets that settle every cell."""
        return [
            b
            for i, b in enumerate(self.budgets)
            if all(cells[i].settled for g in self.groups for cells in g.cells.values())
        ]


# --------------------------------------------------------------------------- options


def _step(text: str, option: str) -> int:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(k?)\s*", text, flags=re.IGNORECASE)
    value = float(match.group(1)) * (1000 if match.group(2) else 1) if match else -1.0
    if value < 0 or value != int(value):
        raise ErtrlError(f"{option} {text!r}: expected a gradient step such as 5000 or 5k")
    return int(value)


def parse_step(text: str, option: str) -> int:
    """``"30k"`` -> ``30000``; ``ErtrlError`` naming ``option`` otherwise."""
    return _step(text, option)


def parse_steps(text: str, option: str = "--budgets") -> list[int]:
    """``"5000,10k"`` -> ``[5000, 10000]``."""
    return [_step(part, option) for part in text.split(",") if part.strip()]


def parse_spans(text: str) -> list[tuple[int | None, int]]:
    """``"2k,5k-10k"`` -> ``[(None, 2000), (5000, 10000)]``: the evaluation at 2k, the mean over
    the evaluations in (5k, 10k]."""
    spans = []
    for part in (p for p in text.split(",") if p.strip()):
        ends = part.split("-")
        if len(ends) > 2:
            raise ErtrlError(f"--spans {part!r}: expected STEP or FROM-TO, e.g. 2k or 5k-10k")
        if len(ends) == 1:
            spans.append((None, _step(ends[0], "--spans")))
            continue
        start, end = (_step(e, "--spans") for e in ends)
        if start >= end:
            raise ErtrlError(f"--spans {part!r}: FROM must be below TO, e.g. 5k-10k")
        spans.append((start, end))
    return spans


def step_label(step: int) -> str:
    """5000 -> ``5k``; 150 -> ``150``."""
    return f"{step // 1000}k" if step % 1000 == 0 and step else str(step)


def span_label(span: tuple[int | None, int]) -> str:
    """``at 2k``, ``5-10k`` (thousands on both ends), ``100-200``."""
    start, end = span
    if start is None:
        return f"at {step_label(end)}"
    if start % 1000 == 0 and end % 1000 == 0:
        return f"{start // 1000}-{end // 1000}k"
    return f"{start}-{end}"


# --------------------------------------------------------------------------- reading


def _study_folder(path: Path) -> Path:
    dirs = suite_dirs(path)  # names the path when it is not a results folder
    if len(dirs) > 1:
        names = ", ".join(d.name for d in dirs)
        raise ErtrlError(
            f"{path}: holds several studies ({names}); pass one study's folder, e.g. {dirs[0]}"
        )
    return dirs[0]


def _steps(run: RunRecord) -> list[int]:
    """The run's evaluation steps, in order (its curve's values: ``tables.run_curve``)."""
    return sorted(p.step for p in run.metrics.curve)


def _seed_order(run: RunRecord) -> tuple:
    """Integer seeds by value, anything else after them by name."""
    return (0, run.seed, "") if isinstance(run.seed, int) else (1, 0, str(run.seed))


def _read_log(path: Path, notes: list[str]) -> list[dict]:
    rows = []
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        notes.append(f"{path}: unreadable ({exc.strerror}); no diagnostics for this run")
        return rows
    bad = 0
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(row, Mapping) and isinstance(row.get("step"), int):
            rows.append(row)
    if bad:
        notes.append(f"{path}: {bad} unreadable line(s) skipped")
    return rows


def _diagnostics(group: Group, steps: list[int], notes: list[str]) -> None:
    series: dict[str, list[np.ndarray]] = {}
    for run in group.runs:
        log = run.path / "log.jsonl"
        rows = _read_log(log, notes) if log.is_file() else []
        if not log.is_file():
            notes.append(f"{log}: missing; no diagnostics for this run")
        for key in DIAGNOSTICS:
            found = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
            at = np.array([s for s, _ in found]), np.array([v for _, v in found], dtype=float)
            series.setdefault(key, []).append(interval_means(*at, steps))
    group.diagnostics = {
        key: np.array(rows) for key, rows in series.items() if np.isfinite(rows).any()
    }


def _shared_steps(runs: Sequence[RunRecord], window: int, folder: Path) -> list[int]:
    """The evaluation steps every run shares; ``ErtrlError`` naming the run that differs or has
    too few evaluations for ``window``."""
    steps = _steps(runs[0])
    for run in runs:
        own = _steps(run)
        if len(own) < window + 1:
            raise ErtrlError(
                f"{run.path}: {len(own)} evaluation(s); --window {window} needs at least"
                f" {window + 1} (a full window before the last evaluation): lower --window or"
                " evaluate more often (train.eval_every in the suite)"
            )
        if own != steps:
            raise ErtrlError(
                f"{run.path}: evaluated at steps {own[0]}..{own[-1]} ({len(own)}), other runs"
                f" of {folder} at {steps[0]}..{steps[-1]} ({len(steps)}); the budget rule"
                " compares runs at the same evaluations: pass a folder of runs of one schedule"
            )
    return steps


def _checked_budgets(budgets: Sequence[int], steps: list[int], window: int, folder: Path):
    for b in budgets:
        if b not in steps or steps.index(b) < window - 1 or b == steps[-1]:
            raise ErtrlError(
                f"--budgets {b}: not a candidate budget of {folder}; a budget is an evaluation"
                f" step from {steps[window - 1]} to {steps[-2]} (a full window of {window}"
                f" evaluations, before the last at {steps[-1]})"
            )
    return sorted(set(budgets))


def _checked_spans(spans: Sequence[tuple[int | None, int]], steps: list[int], folder: Path):
    for span in spans:
        try:
            span_means(steps, np.zeros((1, len(steps))), *span)
        except ValueError as exc:
            raise ErtrlError(
                f"--spans {span_label(span)}: {exc} in {folder} (its runs are evaluated at"
                f" {len(steps)} steps from {steps[0]} to {steps[-1]})"
            ) from None
    return list(spans)


def _checked_plan_budget(at: int | None, s: Settling) -> tuple[int, bool]:
    """``--at`` (any evaluation step with a full window), else the cheapest budget that settles
    every cell, else the last evaluation; and whether it is that settled budget."""
    if at is None:
        settled = s.settled_budgets()
        return (settled[0], True) if settled else (s.final, False)
    if at not in s.steps or s.steps.index(at) < s.window - 1:
        raise ErtrlError(
            f"--at {at}: not an evaluation step of {s.path} with a full window; pick one from"
            f" {s.steps[s.window - 1]} to {s.steps[-1]} (the runs are evaluated every"
            f" {s.steps[1] - s.steps[0]} steps)"
        )
    return at, False


def seed_plan(s: Settling, at: int | None = None) -> list[PlanRow]:
    """The seed plan at ``at`` (``_checked_plan_budget``) for every env that has a reference
    group; sets ``s.plan_at``, ``s.plan_settled`` and notes an env without the reference."""
    s.plan_at, s.plan_settled = _checked_plan_budget(at, s)
    rows = []
    for env in ordered(g.env for g in s.groups):
        groups = [g for g in s.groups if g.env == env]
        ref = next((g for g in groups if g.method == s.reference), None)
        if ref is None:
            where = f" of {env}" if s.several_envs else ""
            s.notes.append(f"no finished {s.reference} run{where}: no seed plan (--reference)")
            continue
        for g in (g for g in groups if g is not ref):
            for col in s.columns:
                a = budget_cell(s.steps, ref.values[col], s.plan_at, s.window)
                b = budget_cell(s.steps, g.values[col], s.plan_at, s.window)
                rows.append(
                    PlanRow(
                        env=env, column=col, reference=ref.method, method=g.method,
                        sd_reference=a.sd, sd_method=b.sd, n_reference=len(a.scores),
                        n_method=len(b.scores), mde=min_detectable_effect(a.scores, b.scores),
                        seeds=seeds_needed(a.scores, b.scores, s.effect),
                    )
                )  # fmt: skip
    return rows


def _group(
    env: str, method: str, members: list[RunRecord], columns: list[Column], metric: str
) -> Group:
    """One method's runs with their ``metric`` curves as ``[seeds, evaluations]`` per column."""
    values = {}
    for split, proto in columns:
        rows = []
        for r in members:
            pts = run_curve(r, split, proto, metric)
            rows.append([pts.get(step, np.nan) for step in _steps(r)])
        values[(split, proto)] = np.array(rows, dtype=float)
    return Group(env=env, method=method, runs=members, values=values)


def _has_metric(run: RunRecord, metric: str) -> bool:
    return any(run_curve(run, *column, metric) for column in curve_keys([run], metric))


def _why_left_out(run: RunRecord, metric: str) -> str:
    if not run.done:
        return run.status
    if run.metrics is None or not run.metrics.curve:
        return "no evaluation curve"
    return f"no {CURVE_METRICS[metric][0]} in its curve"


def settle(
    path: str | Path,
    window: int = 5,
    budgets: Sequence[int] | None = None,
    spans: Sequence[tuple[int | None, int]] | None = None,
    effect: float = PLAN_EFFECT,
    reference: str | None = None,
    at: int | None = None,
    metric: str = "normalized",
) -> Settling:
    """The window, budget, diagnostics and seed-plan tables of the study folder ``path`` (module
    doc).

    ``budgets``: default ``measures.settling.default_budgets``; ``spans``: default the spans
    between consecutive budgets and the last evaluation; ``effect``, ``reference``, ``at``: the
    seed plan's target MDE (points), reference method (default
    ``tables.default_reference``) and budget (``seed_plan``); ``metric``: a
    key of ``CURVE_METRICS`` (the success rate reads only the runs that record one). Raises
    ``ErtrlError`` naming the folder or run and the fix when there is nothing to compute.
    """
    if metric not in CURVE_METRICS:
        raise ErtrlError(f"--metric {metric!r}: choose {' or '.join(CURVE_METRICS)}")
    folder = _study_folder(Path(path))
    if window < 2:
        raise ErtrlError(f"--window {window}: at least 2 (a trend needs two evaluations)")
    if not (np.isfinite(effect) and effect > 0):
        raise ErtrlError(f"--effect {effect:g}: the target MDE is a positive number of points")
    suite = load_suite(folder)
    runs = [r for r in suite.done if r.metrics is not None and r.metrics.curve]
    if not runs:
        raise ErtrlError(
            f"{folder}: no finished run with an evaluation curve (metrics.json) here; run the"
            " study first (ertrl-bench run SUITE) or pass the folder it wrote"
            + unreadable_runs_hint(suite.runs)
        )
    if metric != "normalized":
        runs = [r for r in runs if _has_metric(r, metric)]
        if not runs:
            raise ErtrlError(
                f"{folder}: no finished run records a"
                f" {CURVE_METRICS[metric][2].split(' (')[0]} (only families whose environment"
                " reports success do: Meta-World's); drop --metric"
                f" {metric} to settle on the normalized return"
            )
    steps = _shared_steps(runs, window, folder)
    budgets = _checked_budgets(budgets or default_budgets(steps, window), steps, window, folder)
    if spans is None:
        ends = [*budgets, steps[-1]]
        spans = list(zip([0, *ends[:-1]], ends, strict=True))
    spans = _checked_spans(spans, steps, folder)
    notes = list(suite.warnings)
    used = {r.run_id for r in runs}
    left_out = [
        f"{r.run_id} ({_why_left_out(r, metric)})" for r in suite.runs if r.run_id not in used
    ]
    if left_out:
        notes.append(f"left out: {', '.join(left_out)}")
    columns = curve_keys(runs, metric)
    groups = []
    for env in ordered(r.env for r in runs):
        for method in ordered(r.method for r in runs if r.env == env):
            members = [r for r in runs if r.env == env and r.method == method]
            group = _group(env, method, sorted(members, key=_seed_order), columns, metric)
            for col, vals in group.values.items():
                group.cells[col] = [
                    budget_cell(steps, vals, b, window) for b in [*budgets, steps[-1]]
                ]
            _diagnostics(group, steps, notes)
            if len(members) < 2:
                notes.append(
                    f"{group.label(False)}: one seed, no seed spread: the budget rule settles"
                    " none of its cells"
                )
            groups.append(group)
    methods = {g.method for g in groups}
    if reference is None:
        reference, chosen = default_reference(ordered(methods))
        if chosen:
            notes.append(chosen)
    elif reference != ERTRL and reference not in methods:
        raise ErtrlError(
            f"--reference {reference!r}: no finished run of it in {folder} (methods: "
            f"{', '.join(ordered(methods))})"
        )
    result = Settling(
        path=folder,
        window=window,
        steps=steps,
        budgets=budgets,
        spans=spans,
        columns=columns,
        groups=groups,
        notes=notes,
        effect=effect,
        reference=reference,
        metric=metric,
    )
    result.plan = seed_plan(result, at)
    return result


# --------------------------------------------------------------------------- rendering


def _column_label(col: Column) -> str:
    return f"{split_label(col[0])} {col[1]}"


def _sig(value: float) -> str:
    """Three significant digits, never in exponent form (1730, 4.38, 0.0531)."""
    if not np.isfinite(value):
        return "nan"
    return np.format_float_positional(float(f"{value:.3g}"), trim="-")


def _table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|---" * len(header) + "|",
        *("| " + " | ".join(row) + " |" for row in body),
    ]


def window_markdown(s: Settling) -> list[str]:
    lines = []
    header = ["column", *(span_label(sp) for sp in s.spans), f"s.d. of the last {s.window}"]
    for g in s.groups:
        seeds = " / ".join(str(r.seed) for r in g.runs)
        lines += ["", f"{g.label(s.several_envs)}, seeds {seeds}:", ""]
        body = []
        for col in s.columns:
            vals = g.values[col]
            cells = [span_means(s.steps, vals, *sp) for sp in s.spans]
            cells.append(vals[:, -s.window :].std(axis=1, ddof=1))
            body.append([_column_label(col), *(" / ".join(f"{v:.1f}" for v in c) for c in cells)])
        lines += _table(header, body)
    return lines


def budget_markdown(s: Settling) -> list[str]:
    counts = ", ".join(f"{g.label(s.several_envs)} x {len(g.runs)}" for g in s.groups)
    header = ["method", "column", *(step_label(b) for b in s.budgets), "last"]
    body = []
    for g in s.groups:
        for col in s.columns:
            *cells, last = g.cells[col]
            body.append(
                [
                    g.label(s.several_envs),
                    _column_label(col),
                    *(
                        f"{c.mean:.1f} ±{c.sd:.1f} ({c.trend:+.1f}, {c.drift:+.1f})"
                        + ("" if c.settled else " ✗")
                        for c in cells
                    ),
                    f"{last.mean:.1f}",
                ]
            )
    settled = s.settled_budgets()
    return [
        f"runs: {counts}; score with B steps: the mean of the last {s.window} evaluations up to B",
        "",
        *_table(header, body),
        "",
        "Each cell: seed-mean score with B steps ± seed s.d. (ddof 1) (trend across the window,",
        "drift from the last window); ✗ = |trend| or |drift| above the seed s.d.",
        "budgets that settle every cell: "
        + (", ".join(step_label(b) for b in settled) if settled else "none"),
    ]


def diagnostics_markdown(s: Settling) -> list[str]:
    keys = [k for k in DIAGNOSTICS if any(k in g.diagnostics for g in s.groups)]
    if not keys:
        return ["no run logged " + ", ".join(DIAGNOSTICS) + ": no diagnostics"]
    at = [*s.budgets, s.final]
    idx = [s.steps.index(b) for b in at]
    since = s.steps[1] - s.steps[0]
    header = ["method", "quantity", *(f"at {step_label(b)}" for b in at)]
    body = []
    for g in s.groups:
        for key in keys:
            if key not in g.diagnostics:
                continue
            vals = g.diagnostics[key]
            cells = [" / ".join(_sig(v) for v in vals[:, i]) for i in idx]
            body.append([g.label(s.several_envs), DIAGNOSTICS[key], *cells])
    return [
        f"Logged quantities, seed by seed, each the mean over the steps since the previous"
        f" evaluation (here {since} steps):",
        "",
        *_table(header, body),
    ]


def _one(value: float) -> str:
    """One decimal; the em dash when not finite (one seed: no s.d., no MDE)."""
    return f"{value:.1f}" if np.isfinite(value) else "—"


def plan_markdown(s: Settling) -> list[str]:
    if s.plan_at is None or not s.plan:
        return [f"no pair of {s.reference} and another method: no seed plan"]
    why = (
        "the cheapest budget that settles every cell"
        if s.plan_settled
        else "the last evaluation: the suite's own score"
        if s.plan_at == s.final
        else "chosen with --at"
    )
    first = s.steps[s.steps.index(s.plan_at) - s.window + 1]
    header = ["column", "vs", f"s.d. {s.reference}", "s.d. vs", "seeds now", "MDE now",
              f"seeds for MDE ≤ {s.effect:g}"]  # fmt: skip
    body = [
        [_column_label(r.column), f"{r.env} {r.method}" if s.several_envs else r.method,
         _one(r.sd_reference), _one(r.sd_method), f"{r.n_reference} vs {r.n_method}",
         _one(r.mde), fmt_seeds(r.seeds)]
        for r in sorted(s.plan, key=lambda r: s.columns.index(r.column))
    ]  # fmt: skip
    sized = [r for r in s.plan if not np.isnan(r.seeds)]
    most = max(sized, key=lambda r: r.seeds, default=None)
    # the report's MDE is on the normalized return; the success rate's is in percentage points
    mde_is, points = (
        (" (the report's MDE)", "points")
        if s.metric == "normalized"
        else (" (on the success rate)", "percentage points")
    )
    return [
        f"At {step_label(s.plan_at)} ({why}; a score is the mean of the evaluations"
        f" {step_label(first)}-{step_label(s.plan_at)}), per column: the seed s.d. (ddof 1) of"
        f" {s.reference}'s and the other method's scores; MDE now = the smallest difference"
        f" Welch's two-sided test (alpha 0.05) detects with 80% power at the seeds measured"
        f"{mde_is}; the last column = the seeds a method that bring it to at most"
        f" {s.effect:g} {points} if the spreads stay as measured (--effect; — with fewer than 2"
        f" seeds a side or no spread).",
        "",
        *_table(header, body),
        "",
        "seeds a method for MDE ≤ "
        + f"{s.effect:g} in every column: "
        + (
            f"{fmt_seeds(most.seeds)} ({_column_label(most.column)}, {most.reference} vs"
            f" {most.method})"
            if most
            else "—"
        ),
    ]


def markdown(s: Settling) -> str:
    """The window tables, the budget table, the diagnostics table and the seed plan, with the
    notes."""
    of = "" if s.metric == "normalized" else f": {CURVE_METRICS[s.metric][2]}"
    lines = [
        f"# Where the runs of {s.path.name} settle{of}",
        "",
        "## Window tables",
        "",
        f"Each cell lists the seeds in order: the mean over a span of"
        f" evaluations (FROM-TO: those after FROM up to TO), and the s.d. (ddof 1) of the"
        f" last {s.window}.",
        *window_markdown(s),
        "",
        "## Budget",
        "",
        *budget_markdown(s),
        "",
        "## Diagnostics",
        "",
        *diagnostics_markdown(s),
        "",
        f"## Seeds for MDE ≤ {s.effect:g}",
        "",
        *plan_markdown(s),
    ]
    if s.notes:
        lines += ["", *(f"- {n}" for n in s.notes)]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- files


def settling_rows(s: Settling) -> list[dict]:
    rows = []
    for g in s.groups:
        for (split, proto), cells in g.cells.items():
            for c in cells:
                rows.append(
                    {
                        "env": g.env, "method": g.method, "split": split, "protocol": proto,
                        "budget": c.budget, "window_from": c.first_step, "window_to": c.budget,
                        "n_seeds": len(c.scores), "mean": c.mean, "seed_sd": c.sd,
                        "trend": c.trend, "drift": c.drift, "settled": c.settled,
                    }
                )  # fmt: skip
    return rows


def diagnostics_figure(s: Settling, path: Path) -> Path | None:
    """Each logged quantity per run over steps, beside each split's offline curve (colour: the
    method); ``None`` when no run logged any."""
    from .figures import save_png
    from .plots import plt

    keys = [k for k in DIAGNOSTICS if any(k in g.diagnostics for g in s.groups)]
    if not keys:
        return None
    splits = ordered(sp for sp, _ in s.columns)
    curves = [
        (
            sp,
            "offline" if (sp, "offline") in s.columns else next(p for q, p in s.columns if q == sp),
        )
        for sp in splits
    ]
    panels = len(keys) + len(curves)
    fig, axes = plt.subplots(1, panels, figsize=(4 * panels, 3.2), squeeze=False)
    axes = axes[0]
    try:
        for i, g in enumerate(s.groups):
            color = f"C{i % 10}"
            for ax, key in zip(axes[: len(keys)], keys, strict=True):
                for row in g.diagnostics.get(key, []):
                    ax.plot(s.steps, row, color=color, lw=1)
                ax.set_title(DIAGNOSTICS[key])
            for ax, col in zip(axes[len(keys) :], curves, strict=True):
                for row in g.values[col]:
                    ax.plot(s.steps, row, color=color, lw=1)
                ax.set_title(f"{_column_label(col)} ({CURVE_METRICS[s.metric][2]})")
            axes[0].plot([], [], color=color, label=g.label(s.several_envs))
        for ax in axes:
            ax.set_xlabel("gradient steps")
        axes[0].legend()
        fig.tight_layout()
        save_png(fig, path, dpi=80)
    finally:
        plt.close(fig)
    return path


def write_files(s: Settling) -> list[Path]:
    """``settling.csv`` and ``diagnostics.png`` (when some run logged a quantity) in the study
    folder, ``settling_success.csv`` and ``diagnostics_success.png`` for the success rate; the
    paths written."""
    from .report import check_writable, write_csv

    check_writable(s.path)
    end = "" if s.metric == "normalized" else f"_{s.metric}"
    written = [write_csv(s.path / f"settling{end}.csv", settling_rows(s), SETTLING_COLUMNS)]
    png = diagnostics_figure(s, s.path / f"diagnostics{end}.png")
    return written + ([png] if png else [])
