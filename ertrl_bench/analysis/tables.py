"""The report's numbers, as rows (lists of dicts): returns, t-tests, curves, probe, gain.

Split names follow the paper (``docs/paper.md``, "Evaluation"): **IID = the train split**,
**OOD = the moderate split**. The extreme split and our extra ``iid`` split (off-grid tasks
inside the training range, a departure of ours) are reported under their own names, never pooled
into IID or OOD. Every protocol found in the metrics (offline, online, non_prior, ...) gets its
own rows; nothing here assumes a fixed set.

Returns: per env x method x split x protocol, the IQM over seeds x tasks and the mean over seeds
of the per-seed task mean, each with a 95% agent-bootstrap CI (whole runs resampled: one seed's
agent scores every task, ``stats.agent_bootstrap_ci``), and the sample std (ddof 1) over seeds.
A score is a run's mean over its last ``final_evals`` evaluations (the suite's scoring rule,
``n_evals``). Comparisons (``ttest_rows``): the reference method against each other method on
the train and moderate splits.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from os.path import commonprefix

import numpy as np

from ertrl_bench.measures.stats import (
    agent_bootstrap_ci,
    authors_ttest,
    difference_ci,
    difference_trend,
    fdr_adjust,
    mean_ci,
    mean_std,
    min_detectable_effect,
    probability_of_improvement_ci,
    seeds_for_effect,
    welch_ttest,
)
from ertrl_bench.results_schema import DiversityRecord, is_number

from . import paper_scale
from .load import RunRecord

__all__ = [
    "SPLIT_LABELS",
    "SPLIT_ORDER",
    "PROTOCOL_ORDER",
    "ERTRL",
    "default_reference",
    "MAIN_COLUMNS",
    "TTEST_COLUMNS",
    "CURVE_COLUMNS",
    "CURVE_METRIC_COLUMNS",
    "CURVE_METRICS",
    "PROBE_COLUMNS",
    "GAIN_COLUMNS",
    "COST_COLUMNS",
    "CONVERGENCE_COLUMNS",
    "RANK_COLUMNS",
    "TAU_STABLE",
    "RANK_ALPHA",
    "convergence_rows",
    "unstable_columns",
    "rank_verdicts",
    "ALL_TIED",
    "STABLE",
    "UNSTABLE",
    "ordered",
    "split_label",
    "split_title",
    "score_cells",
    "return_rows",
    "ttest_rows",
    "curve_keys",
    "run_curve",
    "curve_series",
    "curve_rows",
    "curve_columns",
    "probe_rows",
    "gain_rows",
    "pearson",
    "AXES",
    "AXIS_BASELINE",
    "AXIS_GAIN_COLUMNS",
    "AXIS_TREND_COLUMNS",
    "axis_gain_rows",
    "axis_trend_rows",
    "varied_axes",
    "method_labels",
    "AXIS_TITLES",
    "cost_rows",
]

#: The paper's names of our splits; any other split keeps its own name.
SPLIT_LABELS = {"train": "IID", "moderate": "OOD", "extreme": "extreme", "iid": "iid"}
SPLIT_ORDER = ("train", "moderate", "extreme", "iid")
PROTOCOL_ORDER = ("offline", "online", "non_prior", "non-prior")
TTEST_SPLITS = ("train", "moderate")  # the paper's t-test splits
ERTRL = "ertrl"


def default_reference(methods: Sequence[str]) -> tuple[str, str | None]:
    """The method compared with every other one when ``--reference`` is not given, and a note
    saying so when it is not ``ertrl``: ER-TRL, or else the study's only ER-TRL on another
    backbone (``ertrl-iql``), so a study that runs every method on IQL still gets its tests."""
    variants = [m for m in methods if m.startswith(ERTRL + "-")]
    if ERTRL in methods or len(variants) != 1:
        return ERTRL, None
    return variants[0], (
        f"Reference method: {variants[0]}, the study's only ER-TRL variant (no {ERTRL} run);"
        " --reference chooses another."
    )


#: The difference (normalized points) a study should be able to detect: ``ttest.csv``'s
#: ``seeds_mde_10`` is the seeds a method for an MDE (80% power) of at most this much.
PLAN_EFFECT = 10.0
#: ours = our behavior data's R_min / R_max per task; authors = the ER-TRL authors' constants;
#: success = not a return: the success rate in percent (families that report success).
SCALES = ("ours", "authors", "success")

MAIN_COLUMNS = (
    "env", "method", "scale", "group", "split", "protocol", "n_seeds", "n_expected", "n_tasks",
    "n_evals", "iqm", "ci_low", "ci_high", "mean", "mean_ci_low", "mean_ci_high", "std",
    "std_ddof0",
)  # fmt: skip
TTEST_COLUMNS = (
    "env", "scale", "protocol", "group", "split", "method", "baseline", "n_method", "n_baseline",
    "mean_method", "mean_baseline", "diff", "diff_ci_low", "diff_ci_high",
    "welch_t", "welch_p", "welch_q", "welch_q_table", "authors_t", "authors_p", "authors_df",
    "poi", "poi_ci_low", "poi_ci_high", "mde_80", "seeds_mde_10",
)  # fmt: skip
CURVE_COLUMNS = (
    "env", "method", "split", "protocol", "step", "n_seeds", "mean", "ci_low", "ci_high",
)  # fmt: skip
#: curves.csv's columns when some run records a success rate: ``metric`` tells its rows apart
#: (a study without success keeps ``CURVE_COLUMNS``, its rows all being the normalized return).
CURVE_METRIC_COLUMNS = (*CURVE_COLUMNS, "metric")
#: What a learning curve can show: metric -> (key suffix in metrics.json's ``curve`` points,
#: factor to the reported unit, label). success is recorded in [0, 1] and reported in percent,
#: by families whose env reports success (Meta-World) only.
CURVE_METRICS = {
    "normalized": ("normalized", 1.0, "normalized return"),
    "success": ("success", 100.0, "success rate (%)"),
}
PROBE_COLUMNS = (
    "env", "method", "variant", "model", "n_seeds", "rmse_mean", "rmse_std", "resample_std",
)  # fmt: skip
COST_PHASES = ("data", "setup", "train", "eval", "probe", "total")
COST_COLUMNS = (
    "env", "method", "n_runs", *(f"{p}_s" for p in COST_PHASES), "wall_s", "seed_group",
    "per_run_s",
)  # fmt: skip
GAIN_COLUMNS = (
    "env", "protocol", "split", "diversity", "floor", "reference", "reference_value",
    "best_other", "best_other_value", "gain",
)  # fmt: skip


def ordered(values: Iterable[str], order: Sequence[str] = ()) -> list[str]:
    """Unique values, those in ``order`` first (in that order), the rest as first seen."""
    seen = list(dict.fromkeys(values))
    known = [v for v in order if v in seen]
    return known + [v for v in seen if v not in order]


def split_label(split: str) -> str:
    return SPLIT_LABELS.get(split, split)


def split_title(split: str) -> str:
    """``"OOD (moderate)"``, or the bare name when the paper has no other name for it."""
    label = split_label(split)
    return f"{label} ({split})" if label != split else split


# --------------------------------------------------------------------------- score cells


def _task_scores(run: RunRecord, split: str, protocol: str, scale: str) -> dict[str, float]:
    """``{task: normalized}`` of one run (finite scores only) on ``scale``: ``"ours"`` (the
    run's own normalized score), ``"authors"`` (its raw return normalized with the authors'
    constants, ``paper_scale``) or ``"success"`` (not a normalizer: the task's success rate in
    percent, for families that report success). On our scale and for success, a run without
    per-task scores falls back to the split mean."""
    m = run.metrics
    tasks = (m.per_task.get(split) or {}).get(protocol)
    if scale == "success":
        if tasks:
            return {k: 100.0 * s.success for k, s in tasks.items() if is_number(s.success)}
        final = (m.final.get(split) or {}).get(protocol)
        return {"(mean)": 100.0 * final.success} if final and is_number(final.success) else {}
    if scale == "authors":
        found = {
            k: paper_scale.authors_normalized(run.env, k, float(s.return_))
            for k, s in (tasks or {}).items()
            if is_number(s.return_)
        }
        return {k: v for k, v in found.items() if v is not None}
    if tasks:
        return {k: float(s.normalized) for k, s in tasks.items() if is_number(s.normalized)}
    final = (m.final.get(split) or {}).get(protocol)
    if final is not None and is_number(final.normalized):
        return {"(mean)": float(final.normalized)}
    return {}


class Cell:
    """Scores of one env x method x split x protocol: ``(seeds, tasks)`` over shared tasks."""

    def __init__(
        self, scores: np.ndarray, seeds: list, dropped: int, n_expected: int, n_evals=None,
        tasks: Sequence[str] = (),
    ):  # fmt: skip
        self.scores, self.seeds, self.dropped, self.n_expected = scores, seeds, dropped, n_expected
        self.n_evals = n_evals  # the scoring window: mean of the last n_evals evaluations
        self.tasks = list(tasks)  # column labels of ``scores``

    def on_tasks(self, tasks: Sequence[str]) -> np.ndarray:
        """``scores`` restricted to ``tasks`` (in that order)."""
        pos = {t: i for i, t in enumerate(self.tasks)}
        return self.scores[:, [pos[t] for t in tasks]]

    @property
    def per_seed(self) -> np.ndarray:
        return self.scores.mean(axis=1)


def score_cells(
    runs: Sequence[RunRecord],
    expected: Sequence[RunRecord] | None = None,
    scale: str = "ours",
) -> dict[tuple[str, str, str, str], Cell]:
    """``{(env, method, split, protocol): Cell}`` for every combination with a finite score.

    Only tasks scored (finitely) in every contributing seed enter, so seeds stay comparable;
    ``Cell.dropped`` counts the others. ``expected`` (all runs, finished or not) sets
    ``n_expected``. ``scale="authors"``: the authors' normalizer, families they ran only;
    ``scale="success"``: success rates (%), runs of families that report success only.
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; use one of {SCALES}")
    expected = list(expected if expected is not None else runs)
    done = [r for r in runs if r.done]
    if scale == "authors":
        done = [r for r in done if paper_scale.has_reference(r.env)]
    out = {}
    for env in ordered(r.env for r in done):
        for method in ordered(r.method for r in done if r.env == env):
            mine = [r for r in done if r.env == env and r.method == method]
            n_exp = sum(1 for r in expected if r.env == env and r.method == method)
            splits = ordered((s for r in mine for s in r.metrics.splits()), SPLIT_ORDER)
            protos = ordered((p for r in mine for p in r.metrics.protocols()), PROTOCOL_ORDER)
            for split in splits:
                for proto in protos:
                    per_run = [(r, _task_scores(r, split, proto, scale)) for r in mine]
                    per_run = [(r, s) for r, s in per_run if s]
                    if not per_run:
                        continue
                    common = set.intersection(*(set(s) for _, s in per_run))
                    union = set.union(*(set(s) for _, s in per_run))
                    tasks = sorted(common)
                    if not tasks:
                        continue
                    scores = np.array([[s[t] for t in tasks] for _, s in per_run])
                    seeds = [r.seed for r, _ in per_run]
                    windows = {r.final_evals for r, _ in per_run} - {None}
                    out[(env, method, split, proto)] = Cell(
                        scores, seeds, len(union) - len(tasks), max(n_exp, len(per_run)),
                        windows.pop() if len(windows) == 1 else None, tasks,
                    )  # fmt: skip
    return out


def return_rows(
    cells: Mapping[tuple[str, str, str, str], Cell],
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    random_state: int = 0,
    notes: list[str] | None = None,
    scale: str = "ours",
) -> list[dict]:
    """Main table: one row per env x method x split x protocol that has data, on ``scale``."""
    rows = []
    for (env, method, split, proto), cell in cells.items():
        if cell.dropped and notes is not None:
            notes.append(
                f"{env}/{method}/{split_label(split)} ({split})/{proto}: {cell.dropped} task(s) "
                "without a finite score in every seed were left out."
            )
        iv = agent_bootstrap_ci(cell.scores, "iqm", reps, confidence, random_state)
        mv = agent_bootstrap_ci(cell.scores, "mean", reps, confidence, random_state)
        m, s = mean_std(cell.scores, ddof=1)
        rows.append(
            {
                "env": env,
                "method": method,
                "scale": scale,
                "group": split_label(split),
                "split": split,
                "protocol": proto,
                "n_seeds": cell.scores.shape[0],
                "n_expected": cell.n_expected,
                "n_tasks": cell.scores.shape[1],
                "n_evals": cell.n_evals,
                "iqm": iv.point,
                "ci_low": iv.low,
                "ci_high": iv.high,
                "mean": m,
                "mean_ci_low": mv.low,
                "mean_ci_high": mv.high,
                "std": s,
                "std_ddof0": mean_std(cell.scores, ddof=0)[1],
            }
        )
    return rows


EXPERTISE_COLUMNS = (
    "env", "split", "n_tasks", "rmax_ours_median", "rmax_authors_median",
    "rmax_ours_on_authors_scale_median",
)  # fmt: skip


def expertise_rows(runs: Sequence[RunRecord]) -> list[dict]:
    """How expert our behavior data is on the authors' scale, per env x split: the median over
    tasks of our R_max (recovered from the runs' return/normalized pairs), of the authors'
    R_max, and of our R_max normalized with the authors' constants (100 = their best data)."""
    rows = []
    done = [r for r in runs if r.done and paper_scale.has_reference(r.env)]
    for env in ordered(r.env for r in done):
        for split in ordered(
            (s for r in done if r.env == env for s in r.metrics.per_task), SPLIT_ORDER
        ):
            pairs: dict[str, list] = {}
            for r in (r for r in done if r.env == env):
                for tasks in (r.metrics.per_task.get(split) or {}).values():
                    for key, sc in tasks.items():
                        if is_number(sc.return_) and is_number(sc.normalized):
                            pairs.setdefault(key, []).append((sc.return_, sc.normalized))
            ours = paper_scale.recover_ranges(pairs)
            theirs = {k: paper_scale.authors_range(env, k) for k in ours}
            keys = [k for k in ours if theirs[k] is not None]
            if not keys:
                continue
            on_theirs = [paper_scale.authors_normalized(env, k, ours[k][1]) for k in keys]
            rows.append(
                {
                    "env": env,
                    "split": split,
                    "n_tasks": len(keys),
                    "rmax_ours_median": float(np.median([ours[k][1] for k in keys])),
                    "rmax_authors_median": float(np.median([theirs[k][1] for k in keys])),
                    "rmax_ours_on_authors_scale_median": float(np.median(on_theirs)),
                }
            )
    return rows


def seeds_needed(a, b, effect: float = PLAN_EFFECT) -> float:
    """Seeds a method for Welch's MDE (80% power, two-sided 0.05) <= ``effect`` at the seed s.d.s
    of the per-seed scores ``a`` and ``b`` (``stats.seeds_for_effect``): the count, inf when more
    than ``stats.MAX_SEEDS`` would be needed, NaN when a side has fewer than 2 finite scores or
    neither has any spread (nothing to size from)."""
    a, b = (np.asarray(x, dtype=float).reshape(-1) for x in (a, b))
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size < 2 or b.size < 2:
        return float("nan")
    sd_a, sd_b = float(a.std(ddof=1)), float(b.std(ddof=1))
    if sd_a == 0 and sd_b == 0:
        return float("nan")
    n = seeds_for_effect(sd_a, sd_b, effect)
    return float("inf") if n is None else n


def ttest_rows(
    cells: Mapping[tuple[str, str, str, str], Cell],
    *,
    reference: str = ERTRL,
    splits: Sequence[str] = TTEST_SPLITS,
    reps: int = 2000,
    random_state: int = 0,
    scale: str = "ours",
) -> list[dict]:
    """``reference`` vs each other method, per env x protocol x split, over per-seed scores
    (``cells`` from ``score_cells`` on ``scale``, which labels the rows):

    the difference of means with its 95% agent-bootstrap CI; Welch's two-sided test; the
    authors' test (``stats.authors_ttest``: one-sided, ddof-0 stds, df = n - 1); rliable's
    probability that a run of ``reference`` beats one of the other on a task, P(X > Y), with
    its CI (over the tasks both scored); the smallest difference Welch's test would detect
    with 80% power at two-sided alpha 0.05 given the observed spread (``mde_80``), and the seeds
    a method that would bring it to ``PLAN_EFFECT`` points at that spread (``seeds_mde_10``,
    ``seeds_needed``). Welch's p adjusted for the many comparisons (``stats.fdr_adjust``,
    Benjamini-Hochberg): ``welch_q`` over the comparisons of one column (env x protocol x
    split: the reference vs each other method), ``welch_q_table`` over every comparison of the
    env on this scale.
    """
    rows = []
    keys = list(cells)
    for env in ordered(k[0] for k in keys):
        for proto in ordered((k[3] for k in keys if k[0] == env), PROTOCOL_ORDER):
            for split in splits:
                ref = cells.get((env, reference, split, proto))
                if ref is None:
                    continue
                for (e, method, s, p), cell in cells.items():
                    if (e, s, p) != (env, split, proto) or method == reference:
                        continue
                    a, b = ref.per_seed, cell.per_seed
                    w = welch_ttest(a, b)
                    au = authors_ttest(a, b)
                    diff = difference_ci(
                        ref.scores, cell.scores, "mean", reps, random_state=random_state
                    )
                    common = [t for t in ref.tasks if t in set(cell.tasks)]
                    poi = (
                        probability_of_improvement_ci(
                            ref.on_tasks(common), cell.on_tasks(common), reps,
                            random_state=random_state,
                        )
                        if common
                        else None
                    )  # fmt: skip
                    nan = float("nan")
                    rows.append(
                        {
                            "env": env,
                            "scale": scale,
                            "protocol": proto,
                            "group": split_label(split),
                            "split": split,
                            "method": reference,
                            "baseline": method,
                            "n_method": w.n_a,
                            "n_baseline": w.n_b,
                            "mean_method": float(a.mean()),
                            "mean_baseline": float(b.mean()),
                            "diff": w.diff,
                            "diff_ci_low": diff.low,
                            "diff_ci_high": diff.high,
                            "welch_t": w.t,
                            "welch_p": w.p,
                            "welch_q": nan,
                            "welch_q_table": nan,
                            "authors_t": au.t,
                            "authors_p": au.p,
                            "authors_df": au.df,
                            "poi": poi.point if poi else nan,
                            "poi_ci_low": poi.low if poi else nan,
                            "poi_ci_high": poi.high if poi else nan,
                            "mde_80": min_detectable_effect(a, b),
                            "seeds_mde_10": seeds_needed(a, b),
                        }
                    )
    _add_q_values(rows, ("env", "protocol", "split"), "welch_q")
    _add_q_values(rows, ("env",), "welch_q_table")
    return rows


def _add_q_values(rows: list[dict], family: tuple[str, ...], column: str) -> None:
    """Fill ``column`` with the FDR-adjusted Welch p over each family of rows (rows sharing the
    ``family`` fields)."""
    families: dict[tuple, list[dict]] = {}
    for r in rows:
        families.setdefault(tuple(r[f] for f in family), []).append(r)
    for members in families.values():
        for r, q in zip(members, fdr_adjust([r["welch_p"] for r in members]), strict=True):
            r[column] = float(q)


# --------------------------------------------------------------------------- learning curves


def curve_keys(runs: Sequence[RunRecord], metric: str = "normalized") -> list[tuple[str, str]]:
    """``(split, protocol)`` pairs that appear in the runs' ``metric`` curves, in report order."""
    suffix = "/" + CURVE_METRICS[metric][0]
    pairs = []
    for r in runs:
        for point in r.metrics.curve:
            pairs.extend(tuple(k.split("/")[:2]) for k in point.values() if k.endswith(suffix))
    pairs = list(dict.fromkeys(pairs))
    splits = ordered((s for s, _ in pairs), SPLIT_ORDER)
    protos = ordered((p for _, p in pairs), PROTOCOL_ORDER)
    return [(s, p) for s in splits for p in protos if (s, p) in pairs]


def run_curve(
    run: RunRecord, split: str, protocol: str, metric: str = "normalized"
) -> dict[int, float]:
    """One run's ``metric`` curve on ``split`` x ``protocol`` as ``{step: value}`` in the
    reported unit (success in percent); evaluations without a value are left out. The one
    reader of metrics.json's curve values, for the report and ``settle`` alike."""
    suffix, factor, _ = CURVE_METRICS[metric]
    key = f"{split}/{protocol}/{suffix}"
    values = {p.step: p.values().get(key) for p in run.metrics.curve}
    return {step: factor * v for step, v in values.items() if v is not None}


def curve_series(
    runs: Sequence[RunRecord], split: str, protocol: str, metric: str = "normalized"
) -> dict[str, tuple[list[int], np.ndarray]]:
    """``{method: (steps, values [seeds, steps])}`` of the ``metric`` curves; NaN where a seed
    lacks a step or a value; a seed without any value of the metric is left out."""
    out = {}
    for method in ordered(r.method for r in runs):
        series = []
        for r in (r for r in runs if r.method == method):
            pts = run_curve(r, split, protocol, metric)
            if pts:
                series.append(pts)
        if series:
            steps = sorted(set().union(*series))
            out[method] = (steps, np.array([[s.get(t, np.nan) for t in steps] for s in series]))
    return out


def curve_rows(
    runs: Sequence[RunRecord], confidence: float = 0.95, metric: str = "normalized"
) -> list[dict]:
    """Mean ``metric`` over seeds (the normalized return, or the success rate in percent of the
    runs that record one) and its t-interval, per env x method x split x protocol x gradient
    step (the learning curves' numbers); ``metric`` is in each row (curves.csv's column when a
    study has success curves)."""
    rows = []
    done = [r for r in runs if r.done]
    for env in ordered(r.env for r in done):
        env_runs = [r for r in done if r.env == env]
        for split, proto in curve_keys(env_runs, metric):
            for method, (steps, values) in curve_series(env_runs, split, proto, metric).items():
                for j, step in enumerate(steps):
                    iv = mean_ci(values[:, j], confidence)
                    rows.append(
                        {
                            "env": env, "method": method, "split": split, "protocol": proto,
                            "step": step, "n_seeds": int(np.isfinite(values[:, j]).sum()),
                            "mean": iv.point, "ci_low": iv.low, "ci_high": iv.high,
                            "metric": metric,
                        }
                    )  # fmt: skip
    return rows


def curve_columns(rows: Sequence[Mapping]) -> tuple[str, ...]:
    """curves.csv's columns for ``curve_rows``: ``metric`` only when some row is not the
    normalized return (a study without success keeps the file it always had)."""
    if any(r["metric"] != "normalized" for r in rows):
        return CURVE_METRIC_COLUMNS
    return CURVE_COLUMNS


CONVERGENCE_COLUMNS = (
    "env", "split", "protocol", "method", "n_seeds", "from_step", "to_step", "change",
    "change_ci_low", "change_ci_high",
)  # fmt: skip
RANK_COLUMNS = (
    "env", "split", "protocol", "from_step", "to_step", "n_methods", "n_pairs",
    "n_resolved_pairs", "n_reversed", "gamma",
)  # fmt: skip
#: A column's method ranking is stable when Goodman and Kruskal's gamma over the pairs of
#: methods resolved at two consecutive evaluations is at least this everywhere in the scoring
#: window: at most a quarter of the resolved pairs may reverse (with 5 methods and no tied
#: pair, gamma is Kendall's tau: one swap of neighbours gives 0.8, two 0.6).
TAU_STABLE = 0.5
#: Two methods are tied at an evaluation unless Welch's two-sided p is below this (as in the
#: ttest table's "what it says").
RANK_ALPHA = 0.05
#: Verdicts of a column in the scoring window (``rank_verdicts``).
STABLE, UNSTABLE, ALL_TIED = "stable", "unstable", "all tied"


def _pair_order(a: np.ndarray, b: np.ndarray, alpha: float) -> int:
    """+1 / -1 when method a's seeds score above / below method b's beyond seed noise (Welch's
    two-sided t-test over seeds at ``alpha``, the test of ``ttest.csv``), 0 when tied: the
    difference is within noise, or fewer than 2 seeds on a side leave the noise unknown."""
    w = welch_ttest(a, b)
    if w.n_a < 2 or w.n_b < 2 or not np.isfinite(w.diff) or w.diff == 0:
        return 0
    if not np.isfinite(w.p):  # no variance on either side: any difference is resolved
        return 1 if w.diff > 0 else -1
    return (1 if w.diff > 0 else -1) if w.p < alpha else 0


def convergence_rows(
    runs: Sequence[RunRecord], window: int, confidence: float = 0.95
) -> tuple[list[dict], list[dict]]:
    """Convergence diagnostics from the learning curves, per env x split x protocol.

    ``change``: per method, the mean over seeds of (last evaluation - the evaluation
    ``window - 1`` before it, at least the previous one) with its t-interval: how much a score
    averaged over the scoring window still moves. Rank stability, per pair of consecutive
    evaluations in that window: two methods are ordered at an evaluation when Welch's t-test
    over seeds separates them (two-sided p < ``RANK_ALPHA``), tied otherwise;
    ``n_resolved_pairs`` pairs are ordered at both evaluations, ``n_reversed`` of them swap,
    and ``gamma`` = (kept - reversed) / resolved (Goodman and Kruskal's gamma, NaN when no pair
    is resolved): ties flip on noise and say nothing about convergence, so they drop out.
    """
    span = max(2, window)
    change, ranks = [], []
    done = [r for r in runs if r.done]
    for env in ordered(r.env for r in done):
        env_runs = [r for r in done if r.env == env]
        for split, proto in curve_keys(env_runs):
            series = curve_series(env_runs, split, proto)
            at: dict[str, dict] = {}  # method -> step -> per-seed values
            for method, (steps, values) in series.items():
                if len(steps) < 2:
                    continue
                first = max(0, len(steps) - span)
                iv = mean_ci(values[:, -1] - values[:, first], confidence)
                change.append(
                    {
                        "env": env, "split": split, "protocol": proto, "method": method,
                        "n_seeds": int(np.isfinite(values[:, -1] - values[:, first]).sum()),
                        "from_step": steps[first], "to_step": steps[-1],
                        "change": iv.point, "change_ci_low": iv.low, "change_ci_high": iv.high,
                    }
                )  # fmt: skip
                at[method] = {step: values[:, j] for j, step in enumerate(steps)}
            if len(at) < 2:
                continue
            shared = sorted(set.intersection(*(set(m) for m in at.values())))[-span:]
            pairs = list(itertools.combinations(at.values(), 2))
            orders = {t: [_pair_order(x[t], y[t], RANK_ALPHA) for x, y in pairs] for t in shared}
            for a, b in zip(shared, shared[1:], strict=False):
                both = [oa * ob for oa, ob in zip(orders[a], orders[b], strict=True) if oa and ob]
                reversed_ = sum(1 for o in both if o < 0)
                ranks.append(
                    {
                        "env": env, "split": split, "protocol": proto, "from_step": a,
                        "to_step": b, "n_methods": len(at), "n_pairs": len(pairs),
                        "n_resolved_pairs": len(both), "n_reversed": reversed_,
                        "gamma": (len(both) - 2 * reversed_) / len(both) if both else float("nan"),
                    }
                )  # fmt: skip
    return change, ranks


def rank_verdicts(ranks: Sequence[Mapping]) -> dict[tuple[str, str, str], str]:
    """``{(env, split, protocol): verdict}`` from ``rank_stability`` rows (numbers or the CSV's
    text): ``unstable`` when some step of the window has gamma below ``TAU_STABLE``; ``all
    tied`` when no step has a pair resolved at both of its evaluations (no ranking to flip:
    the study can only say no difference beyond its MDE, ``ttest.csv``); else ``stable``."""
    out: dict[tuple[str, str, str], str] = {}
    for r in ranks:
        key = (r["env"], r["split"], r["protocol"])
        resolved = int(float(r["n_resolved_pairs"]))
        gamma = float(r["gamma"]) if resolved else float("nan")
        verdict = out.get(key, ALL_TIED)
        if verdict == UNSTABLE or not resolved:
            out[key] = verdict
        else:
            out[key] = UNSTABLE if not gamma >= TAU_STABLE else STABLE
    return out


def unstable_columns(ranks: Sequence[Mapping]) -> tuple[int, int]:
    """(columns whose ranking is unstable, columns): all-tied columns count as columns, not as
    unstable ones (``rank_verdicts``)."""
    verdicts = list(rank_verdicts(ranks).values())
    return verdicts.count(UNSTABLE), len(verdicts)


def cost_rows(runs: Sequence[RunRecord]) -> list[dict]:
    """Mean seconds per run, per env x method, split by phase (``metrics["timing_s"]``).

    Runs written before the phase split only have ``wall_s`` (everything but the probe); their
    phase columns are NaN. Seconds are wall-clock of the process that ran the run, so they
    include whatever else the machine was doing: compare methods within one suite run. A run
    trained in a seed group of K records the group's clock, shared by its K runs:
    ``seed_group`` is the mean K, ``per_run_s`` the mean of total / K, each run's share.
    """
    rows = []
    done = [r for r in runs if r.done]
    for env in ordered(r.env for r in done):
        for method in ordered(r.method for r in done if r.env == env):
            group = [r.metrics for r in done if r.env == env and r.method == method]

            def avg(values) -> float:
                vals = [float(v) for v in values if is_number(v)]
                return float(np.mean(vals)) if vals else float("nan")

            row = {"env": env, "method": method, "n_runs": len(group)}
            for phase in COST_PHASES:
                row[f"{phase}_s"] = avg(m.timing_s.get(phase) for m in group)
            row["wall_s"] = avg(m.wall_s for m in group)
            sizes = [m.seed_group or 1 for m in group]
            row["seed_group"] = float(np.mean(sizes))
            row["per_run_s"] = avg(
                float(m.timing_s["total"]) / k if is_number(m.timing_s.get("total")) else None
                for m, k in zip(group, sizes, strict=True)
            )
            rows.append(row)
    return rows


# --------------------------------------------------------------------------- probe


def probe_rows(runs: Sequence[RunRecord], *, notes: list[str] | None = None) -> list[dict]:
    """Probe RMSE per env x method x variant x model: mean and std over seeds.

    The run's own probe, ``metrics["probe"]`` (variant ``paper``: the ``docs/paper.md``
    protocol, fresh draws, train + moderate tasks, 5 resamples), read as the run recorded it:
    the report fits nothing. Finished runs without one (made before runs probed, or with
    ``eval.probe.enabled: false``) are named in ``notes``. ``resample_std`` is the mean over
    seeds of the within-run std over resamples.
    """
    per_key: dict[tuple[str, str, str, str], list[tuple[float, float]]] = {}
    without: list[str] = []
    for r in runs:
        if not r.done:
            continue
        if r.metrics.probe is None:
            without.append(r.run_id)
            continue
        for model, stat in r.metrics.probe.models().items():
            if is_number(stat.rmse_mean):
                std = stat.rmse_std if is_number(stat.rmse_std) else float("nan")
                per_key.setdefault((r.env, r.method, "paper", model), []).append(
                    (float(stat.rmse_mean), float(std))
                )
            elif notes is not None:
                notes.append(f"probe {model} of {r.run_id} is NaN / missing: left out.")
    if without and notes is not None:
        named = ", ".join(without[:10]) + (
            f" and {len(without) - 10} more" if len(without) > 10 else ""
        )
        notes.append(
            f"No probe recorded in {len(without)} finished run(s), left out of the probe table"
            f" (the report does not fit one; rerun with eval.probe enabled to get it): {named}."
        )
    rows = []
    for (env, method, variant, model), vals in per_key.items():
        arr = np.asarray(vals, dtype=float)
        rows.append(
            {
                "env": env,
                "method": method,
                "variant": variant,
                "model": model,
                "n_seeds": len(arr),
                "rmse_mean": float(arr[:, 0].mean()),
                "rmse_std": float(arr[:, 0].std()),
                "resample_std": float(np.nanmean(arr[:, 1])) if np.isfinite(arr[:, 1]).any()
                else float("nan"),
            }
        )  # fmt: skip
    return rows


# --------------------------------------------------------------------------- gain vs diversity


def gain_rows(
    rows: Sequence[Mapping],
    diversity: Mapping[str, DiversityRecord],
    *,
    runs: Sequence[RunRecord] = (),
    split: str = "moderate",
    stat: str = "mean",
    reference: str = ERTRL,
    notes: list[str] | None = None,
) -> list[dict]:
    """Per dataset x protocol: ``reference``'s ``split`` score minus the best other method's,
    over the methods that trained on that dataset.

    ``diversity`` is keyed by dataset (``RunRecord.data_label``: the env, or for an env whose
    runs trained on several datasets, e.g. one per ``train_tasks``, the env and what selects
    the dataset); the row's ``env`` is that key. ``runs`` (the finished runs) say which methods
    trained on which dataset; a key no run has (a diversity given by env) takes every method of
    that env. The reference is the method named ``reference``, else the one run that is it
    under another name (``method_labels``: ertrl-t5); the other methods leave out its variants.
    ``split`` defaults to the moderate split (the paper's OOD); ``stat`` is the table's "mean"
    (as in the paper's tables) or "iqm".
    """
    labels = method_labels(runs)
    datasets_of: dict[tuple[str, str], set[str]] = {}  # (env, method) -> its runs' datasets
    for r in runs:
        if r.done:
            datasets_of.setdefault((r.env, r.method), set()).add(r.data_label or r.env)
    on: dict[str, tuple[str, set[str]]] = {}  # dataset -> (its env, the methods trained on it)
    for (env, method), keys in datasets_of.items():
        for key in keys:
            on.setdefault(key, (env, set()))[1].add(method)
    # a method trained on several datasets of one env under one name: its table row mixes them
    spans = sorted(f"{m} ({env})" for (env, m), keys in datasets_of.items() if len(keys) > 1)
    if spans and notes is not None:
        notes.append(
            f"Gain vs diversity leaves out {', '.join(spans)}: trained on several datasets under"
            " one name, its table row mixes them (name each dataset's runs apart, as"
            " suites/task-count.yaml does)."
        )
    out = []
    protos = ordered((r["protocol"] for r in rows), PROTOCOL_ORDER)
    for proto in protos:
        for key, div in diversity.items():
            env, methods = on.get(key, (key, None))
            cand = [
                r for r in rows
                if (r["env"], r["split"], r["protocol"]) == (env, split, proto)
                and (methods is None or r["method"] in methods)
                and len(datasets_of.get((env, r["method"]), ())) <= 1
            ]  # fmt: skip
            mine = [r for r in cand if r["method"] == reference] or [
                r for r in cand if labels.get(r["method"]) == reference
            ]
            others = [
                r for r in cand if reference not in (r["method"], labels.get(r["method"]))
            ]  # fmt: skip
            if len(mine) != 1 or not others:
                continue
            best = max(others, key=lambda r: r[stat])
            out.append(
                {
                    "env": key,
                    "family": env,  # not a CSV column: whether the points are envs (pearson)
                    "protocol": proto,
                    "split": split,
                    "diversity": float(div.value),
                    "floor": div.floor,
                    "reference": reference,
                    "reference_value": mine[0][stat],
                    "best_other": best["method"],
                    "best_other_value": best[stat],
                    "gain": mine[0][stat] - best[stat],
                }
            )
    return out


def pearson(grows: Sequence[Mapping]) -> tuple[float | None, str]:
    """Pearson r of gain vs diversity over envs (or datasets, when an env has several), and a
    sentence saying it (or why it is absent).

    The paper reports r = 0.85 for ER-TRL's gain over envs (docs/paper.md); the sentence quotes
    it only when the reference method is ER-TRL, the method that number is about, and the
    points are envs."""
    envs = len({g.get("family", g["env"]) for g in grows}) == len(grows)
    unit = "envs" if envs else "datasets"
    if len(grows) < 3:
        return (
            None,
            f"Pearson r needs at least 3 {unit} with both results and diversity"
            f" (have {len(grows)}).",
        )
    x = np.array([g["diversity"] for g in grows])
    y = np.array([g["gain"] for g in grows])
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return None, f"Pearson r is undefined: diversity or gain is constant across {unit}."
    from scipy.stats import pearsonr

    r, p = pearsonr(x, y)
    quote = envs and grows[0].get("reference") == ERTRL
    paper = "; the paper reports 0.85 for ER-TRL" if quote else ""
    return float(r), f"Pearson r = {r:.3f} (p = {p:.3g}, n = {len(grows)} {unit}){paper}."


# --------------------------------------------------------------------------- gain vs a suite axis

#: The suite axes a run may vary, each a run field of ``RunRecord``: the data quality (``data:
#: {quality}``), the family's training-task count (env option ``train_tasks``) and the offline
#: RL backbone (``method: {backbone: {type}}``).
AXES = ("quality", "train_tasks", "backbone")
#: How the report names each axis (section titles, figure labels).
AXIS_TITLES = {"quality": "data quality", "train_tasks": "training tasks", "backbone": "backbone"}
#: The paper's backbone first, then the others by name.
BACKBONE_ORDER = ("brac",)
#: Quality from the worst third of the behavior checkpoints to the best, then all of them
#: (ertrl_bench/data/quality.py; spelt out here: the report reads no data code).
QUALITY_ORDER = ("random-heavy", "medium", "expert", "mixed")
AXIS_BASELINE = "focal"  # what the gain vs an axis is over (the paper's closest baseline)
AXIS_GAIN_COLUMNS = (
    "axis", "value", "env", "protocol", "group", "split", "method", "baseline", "n_method",
    "n_baseline", "n_tasks", "mean_method", "mean_baseline", "gain", "gain_ci_low", "gain_ci_high",
    "welch_p", "welch_q", "mde_80",
)  # fmt: skip


def method_labels(runs: Sequence[RunRecord]) -> dict[str, str]:
    """Each method name -> the name of what it is: a suite that varies an axis names each value's
    runs apart (``focal`` / ``focal-expert`` / ``focal-t5`` / ``focal-iql``) so the other tables
    keep them apart; runs whose methods differ only by name (``RunRecord.method_key``) get one label, the
    plain name when there is one (a name every other one starts with, then ``-``), else the
    names' common ``-``-separated prefix."""
    names_of: dict[str, list[str]] = {}
    for r in runs:
        names_of.setdefault(r.method_key or f"name:{r.method}", []).append(r.method)
    out = {}
    for names in names_of.values():
        names = sorted(set(names), key=lambda n: (len(n), n))
        label = names[0]
        if not all(n == label or n.startswith(label + "-") for n in names):
            prefix = commonprefix(names)
            cut = prefix if all(n == prefix or n[len(prefix)] == "-" for n in names) else (
                prefix.rsplit("-", 1)[0] if "-" in prefix else ""
            )  # fmt: skip
            label = cut.rstrip("-") or label
        out.update(dict.fromkeys(names, label))
    return out


def _axis_order(axis: str, values: Iterable) -> list:
    values = set(values)
    first = {"quality": QUALITY_ORDER, "backbone": BACKBONE_ORDER}.get(axis)
    if first:
        return [v for v in first if v in values] + sorted(values - set(first))
    return sorted(values)


def varied_axes(runs: Sequence[RunRecord]) -> dict[str, list]:
    """``{axis: its values in order}`` for each axis (``AXES``) the finished runs vary (two or
    more known values); a run without a known value (``train_tasks`` None: a run from before it
    was recorded) counts for none."""
    done = [r for r in runs if r.done]
    out = {}
    for axis in AXES:
        values = _axis_order(axis, {getattr(r, axis) for r in done} - {None})
        if len(values) >= 2:
            out[axis] = values
    return out


def _axis_pairs(runs: Sequence[RunRecord], reference: str, baseline: str):
    """``(axis, value, env, protocol, split, x, y)`` for each value of each varied axis where
    ``reference`` (x) and ``baseline`` (y) both have finished runs: their ``[seeds, tasks]``
    normalized scores on the tasks both have. Methods are matched by what they are, not their
    names (``method_labels``); where a suite varies two axes, each axis' values hold the other
    at its most common value."""
    done = [r for r in runs if r.done]
    labels = method_labels(done)
    for axis, values in varied_axes(done).items():
        others = [a for a in AXES if a != axis]
        held = {}
        for other in others:
            seen = [getattr(r, other) for r in done]
            held[other] = max(set(seen), key=seen.count)
        for value in values:
            mine = [
                replace(r, method=labels[r.method])
                for r in done
                if getattr(r, axis) == value and all(getattr(r, o) == held[o] for o in others)
            ]
            cells = score_cells(mine)
            for (env, method, split, proto), cell in cells.items():
                base = cells.get((env, baseline, split, proto))
                if method != reference or base is None:
                    continue
                common = [t for t in cell.tasks if t in set(base.tasks)]
                if common:
                    yield (
                        axis,
                        value,
                        env,
                        proto,
                        split,
                        cell.on_tasks(common),
                        base.on_tasks(common),
                    )


def axis_gain_rows(
    runs: Sequence[RunRecord],
    *,
    reference: str = ERTRL,
    baseline: str = AXIS_BASELINE,
    reps: int = 2000,
    confidence: float = 0.95,
    random_state: int = 0,
) -> list[dict]:
    """``reference``'s gain over ``baseline`` at each value of each axis the suite varies, per
    env x protocol x split (``_axis_pairs``): the difference of the mean over seeds x tasks with
    its agent-bootstrap CI (``stats.difference_ci``: each method's seeds resampled whole,
    independently), Welch's p over per-seed means, adjusted by Benjamini-Hochberg over all rows
    of the axis (``welch_q``), and the smallest difference it detects with 80% power
    (``mde_80``): what the study could have seen at that value. focal-t5 is ``focal`` at 5
    training tasks, focal-iql ``focal`` on IQL."""
    axes = varied_axes([r for r in runs if r.done])
    rows = []
    for axis, value, env, proto, split, x, y in _axis_pairs(runs, reference, baseline):
        diff = difference_ci(x, y, "mean", reps, confidence, random_state)
        xs, ys = x.mean(axis=1), y.mean(axis=1)
        rows.append(
            {
                "axis": axis, "value": value, "env": env, "protocol": proto,
                "group": split_label(split), "split": split, "method": reference,
                "baseline": baseline, "n_method": x.shape[0], "n_baseline": y.shape[0],
                "n_tasks": x.shape[1], "mean_method": float(x.mean()),
                "mean_baseline": float(y.mean()), "gain": diff.point,
                "gain_ci_low": diff.low, "gain_ci_high": diff.high,
                "welch_p": welch_ttest(xs, ys).p, "welch_q": float("nan"),
                "mde_80": min_detectable_effect(xs, ys),
            }
        )  # fmt: skip
    _add_q_values(rows, ("axis",), "welch_q")
    return _sorted_axis_rows(rows, lambda r: axes[r["axis"]].index(r["value"]))


def _sorted_axis_rows(rows: list[dict], then=lambda r: 0) -> list[dict]:
    """Axis rows in report order: axis, env, protocol, split, then ``then``."""
    order = {p: i for i, p in enumerate(PROTOCOL_ORDER)}
    split_pos = {s: i for i, s in enumerate(SPLIT_ORDER)}
    return sorted(
        rows,
        key=lambda r: (
            AXES.index(r["axis"]), r["env"], order.get(r["protocol"], 99),
            split_pos.get(r["split"], 99), then(r),
        ),
    )  # fmt: skip


#: Axes whose values are numbers, so a trend per doubling means something.
NUMERIC_AXES = ("train_tasks",)
AXIS_TREND_COLUMNS = (
    "axis", "env", "protocol", "group", "split", "method", "baseline", "values", "min_seeds",
    "slope_per_doubling", "slope_ci_low", "slope_ci_high", "welch_p", "welch_q", "mde_80",
)  # fmt: skip


def axis_trend_rows(
    runs: Sequence[RunRecord],
    *,
    reference: str = ERTRL,
    baseline: str = AXIS_BASELINE,
    reps: int = 2000,
    confidence: float = 0.95,
    random_state: int = 0,
) -> list[dict]:
    """Per env x protocol x split of a numeric axis (``NUMERIC_AXES``) with the gain at three or
    more values: how the gain changes per doubling of the value (``stats.difference_trend``:
    one least-squares slope on log2 of the value, agent-bootstrap CI, Welch-type p and
    80%-power MDE), q = Benjamini-Hochberg over the rows. The question "does the gain keep up as the
    training tasks grow" in one number a cell, with what it could have seen."""
    by_cell: dict[tuple, dict] = {}
    for axis, value, env, proto, split, x, y in _axis_pairs(runs, reference, baseline):
        if axis in NUMERIC_AXES:
            by_cell.setdefault((axis, env, proto, split), {})[value] = (x, y)
    rows = []
    for (axis, env, proto, split), pairs in by_cell.items():
        if len(pairs) < 3:
            continue
        trend = difference_trend(pairs, reps, confidence, random_state)
        rows.append(
            {
                "axis": axis, "env": env, "protocol": proto, "group": split_label(split),
                "split": split, "method": reference, "baseline": baseline,
                "values": " ".join(str(v) for v in sorted(pairs)),
                "min_seeds": min(min(x.shape[0], y.shape[0]) for x, y in pairs.values()),
                "slope_per_doubling": trend.slope, "slope_ci_low": trend.low,
                "slope_ci_high": trend.high, "welch_p": trend.p, "welch_q": float("nan"),
                "mde_80": trend.mde_80,
            }
        )  # fmt: skip
    _add_q_values(rows, ("axis",), "welch_q")
    return _sorted_axis_rows(rows)
