"""Aggregate scores and compare methods over seeds, on plain numpy.

Scores follow rliable's layout (Agarwal et al., 2021): ``scores[method]`` is an array
``(runs, tasks)``; a run is one seed's agent. rliable no longer imports with recent pandas, so
what we need is written here and checked against hand-computed values in the tests.

* ``iqm``: the interquartile mean, ``scipy.stats.trim_mean(..., 0.25)`` over all runs x tasks.
* ``agent_bootstrap_ci``: **the report's intervals.** One seed's agent produces the scores of
  every task of a family, so the tasks of a run are not independent draws: a bootstrap sample
  resamples whole runs (rows), keeping each run's tasks together; several families (a mapping
  ``{family: (runs, tasks)}``) are strata, each resampled on its own. Expanded percentile
  intervals (``expanded_alpha``). ``tests/test_stats.py`` measures the coverage on synthetic
  scores with a per-seed effect shared across tasks: 93-97% with 20 seeds, where resampling
  runs per task (below) covers far less. No bootstrap reaches beyond the most extreme seed, so
  with 3 seeds nominal 95% intervals cover ~76% (measured there too); the report says so.
* ``stratified_bootstrap_ci``: rliable's resampling of runs *within each task* independently.
  Kept for comparison: it treats tasks of one run as independent and is too narrow here.
* ``difference_ci``, ``probability_of_improvement``: effect sizes of a comparison, with
  agent-bootstrap intervals. ``welch_ttest``, ``authors_ttest`` and ``min_detectable_effect``:
  tests over per-seed scores and the power of the comparison; ``seeds_for_effect``, its
  inverse for planning: the seeds a method for a given MDE at a measured spread.
* ``difference_trend``: how a difference changes along a numeric axis (per doubling of, e.g.,
  the training tasks): one slope over all values, with the same agent bootstrap.

Standard deviations are the sample std (``ddof=1``) unless a caller reproduces the paper's
tables, which use numpy's default ``ddof=0``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

__all__ = [
    "Interval",
    "fdr_adjust",
    "iqm",
    "mean",
    "mean_std",
    "stratified_bootstrap",
    "stratified_bootstrap_ci",
    "agent_bootstrap",
    "agent_bootstrap_ci",
    "expanded_alpha",
    "difference_ci",
    "Trend",
    "difference_trend",
    "probability_of_improvement",
    "probability_of_improvement_ci",
    "AuthorsTest",
    "authors_ttest",
    "min_detectable_effect",
    "MAX_SEEDS",
    "seeds_for_effect",
    "kendall_tau",
    "interval_estimates",
    "mean_ci",
    "Welch",
    "welch_ttest",
]

#: An aggregate maps ``[..., runs, tasks]`` to ``[...]`` so the bootstrap can be vectorised.
Aggregate = Callable[[np.ndarray], np.ndarray]

# Bootstrap samples are drawn in chunks of at most this many scores to bound memory.
_CHUNK_ELEMENTS = 4_000_000


def _as_runs_tasks(scores) -> np.ndarray:
    """Coerce to float ``(runs, tasks)``; a 1-D array is the runs of a single task."""
    arr = np.asarray(scores, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"scores must be (runs, tasks) or (runs,), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError("scores is empty")
    return arr


def iqm(scores) -> np.ndarray | float:
    """Interquartile mean over the last two axes (runs x tasks), pooled like rliable.

    Trims ``floor(0.25 * n)`` values from each end of the ``n`` pooled scores. A 1-D array is
    trimmed as a whole. Extra leading axes are kept (used to evaluate many bootstrap samples).
    """
    arr = np.asarray(scores, dtype=float)
    if arr.ndim <= 2:
        return float(sps.trim_mean(arr, proportiontocut=0.25, axis=None))
    flat = arr.reshape(*arr.shape[:-2], -1)
    return sps.trim_mean(flat, proportiontocut=0.25, axis=-1)


def mean(scores) -> np.ndarray | float:
    """Plain mean over the last two axes (runs x tasks); same calling convention as ``iqm``."""
    arr = np.asarray(scores, dtype=float)
    if arr.ndim <= 2:
        return float(arr.mean())
    return arr.reshape(*arr.shape[:-2], -1).mean(axis=-1)


def mean_std(scores, ddof: int = 1) -> tuple[float, float]:
    """Mean and std over runs of the per-run mean over tasks ("mean ± s.d. over seeds").

    ``ddof=1`` (default): the sample std. ``ddof=0`` is numpy's default and what the paper's
    tables print; use it only to reproduce them. NaN std when there are not more runs than ddof.
    """
    arr = _as_runs_tasks(scores)
    per_run = arr.mean(axis=1)
    std = float(per_run.std(ddof=ddof)) if per_run.size > ddof else float("nan")
    return float(per_run.mean()), std


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap confidence interval."""

    point: float
    low: float
    high: float

    @property
    def width(self) -> float:
        return self.high - self.low

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high


def _resolve(aggregate: str | Aggregate) -> Aggregate:
    if callable(aggregate):
        return aggregate
    try:
        return {"iqm": iqm, "mean": mean}[aggregate]
    except KeyError:
        msg = f"unknown aggregate {aggregate!r}; use 'iqm', 'mean' or a callable"
        raise ValueError(msg) from None


def stratified_bootstrap(
    scores,
    aggregate: str | Aggregate = "iqm",
    reps: int = 2000,
    random_state: int | np.random.Generator | None = 0,
) -> np.ndarray:
    """Bootstrap distribution ``[reps]`` of ``aggregate`` with runs resampled within each task.

    Each task column gets its own independent draw of run indices with replacement, as in
    rliable's ``StratifiedBootstrap``; a single-run input therefore has zero spread.
    """
    arr = _as_runs_tasks(scores)
    fn = _resolve(aggregate)
    rng = np.random.default_rng(random_state)
    runs, tasks = arr.shape
    cols = np.arange(tasks)
    out = np.empty(reps, dtype=float)
    chunk = max(1, _CHUNK_ELEMENTS // arr.size)
    for start in range(0, reps, chunk):
        n = min(chunk, reps - start)
        idx = rng.integers(0, runs, size=(n, runs, tasks))
        out[start : start + n] = np.asarray(fn(arr[idx, cols]), dtype=float).reshape(n)
    return out


def stratified_bootstrap_ci(
    scores,
    aggregate: str | Aggregate = "iqm",
    reps: int = 2000,
    confidence: float = 0.95,
    random_state: int | np.random.Generator | None = 0,
) -> Interval:
    """Point estimate and (plain) percentile CI of ``aggregate`` under the stratified bootstrap."""
    if not 0 < confidence < 1:
        raise ValueError("confidence must be in (0, 1)")
    arr = _as_runs_tasks(scores)
    fn = _resolve(aggregate)
    point = float(np.asarray(fn(arr)))
    boot = stratified_bootstrap(arr, fn, reps=reps, random_state=random_state)
    alpha = 100 * (1 - confidence) / 2
    low, high = np.percentile(boot, [alpha, 100 - alpha])
    return Interval(point, float(low), float(high))


def interval_estimates(
    score_dict: Mapping[str, np.ndarray],
    aggregate: str | Aggregate = "iqm",
    reps: int = 2000,
    confidence: float = 0.95,
    random_state: int = 0,
) -> dict[str, Interval]:
    """rliable's ``get_interval_estimates`` for one aggregate: ``{method: Interval}``.

    Each method gets its own generator seeded with ``random_state`` so its CI does not depend on
    which other methods are in the dict or their order.
    """
    return {
        name: stratified_bootstrap_ci(s, aggregate, reps, confidence, random_state)
        for name, s in score_dict.items()
    }


def mean_ci(values, confidence: float = 0.95) -> Interval:
    """Mean over seeds and its Student-t confidence interval (NaNs dropped).

    Used for learning curves: with 3-5 seeds a percentile bootstrap of the mean is too narrow
    (it cannot see beyond the observed spread), the t interval accounts for the small sample.
    One value gives a zero-width interval; no value gives NaNs.
    """
    arr = np.asarray(values, dtype=float).reshape(-1)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    m = float(arr.mean())
    if arr.size == 1:
        return Interval(m, m, m)
    half = float(
        sps.t.ppf(0.5 + confidence / 2, arr.size - 1) * arr.std(ddof=1) / np.sqrt(arr.size)
    )
    return Interval(m, m - half, m + half)


@dataclass(frozen=True)
class Welch:
    """Welch's two-sample t-test of ``a`` vs ``b`` (two-sided); ``t``/``p`` NaN when undefined."""

    t: float
    p: float
    diff: float  # mean(a) - mean(b)
    n_a: int
    n_b: int


def welch_ttest(a, b) -> Welch:
    """The paper's t-test over seeds: ``scipy.stats.ttest_ind(a, b, equal_var=False)``.

    ``a`` and ``b`` are per-seed scores (NaNs dropped). Needs >= 2 values on each side and some
    variance; otherwise ``t`` and ``p`` are NaN (the report prints them as missing).
    """
    a = np.asarray(a, dtype=float).reshape(-1)
    b = np.asarray(b, dtype=float).reshape(-1)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    diff = float(a.mean() - b.mean()) if a.size and b.size else float("nan")
    if a.size < 2 or b.size < 2 or (np.ptp(a) == 0 and np.ptp(b) == 0):
        return Welch(float("nan"), float("nan"), diff, int(a.size), int(b.size))
    res = sps.ttest_ind(a, b, equal_var=False)
    return Welch(float(res.statistic), float(res.pvalue), diff, int(a.size), int(b.size))


def fdr_adjust(pvalues) -> np.ndarray:
    """Benjamini-Hochberg q-values of a family of tests (``scipy.stats.false_discovery_control``):
    a report makes many comparisons at once, and with 20 of them one p < 0.05 is expected by
    chance alone; ``q < 0.05`` keeps the expected share of false findings among those declared
    at or below 5%. NaN p-values (a test that could not run) are not part of the family and
    stay NaN."""
    p = np.asarray(pvalues, dtype=float).reshape(-1)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = sps.false_discovery_control(p[ok], method="bh")
    return q


# --------------------------------------------------------------------------- agent bootstrap

#: Scores of one method: ``(runs, tasks)``, or ``{family: (runs, tasks)}`` (families = strata).
Scores = np.ndarray | Mapping[str, np.ndarray]


def _strata(scores: Scores) -> list[np.ndarray]:
    if isinstance(scores, Mapping):
        if not scores:
            raise ValueError("scores is empty")
        return [_as_runs_tasks(v) for v in scores.values()]
    return [_as_runs_tasks(scores)]


def _resample_runs(arr: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """``[n, runs, tasks]``: ``n`` bootstrap samples of whole runs (rows), tasks kept together."""
    idx = rng.integers(0, arr.shape[0], size=(n, arr.shape[0]))
    return arr[idx]


def _pooled(samples: list[np.ndarray]) -> np.ndarray:
    """Strata ``[n, runs_f, tasks_f]`` pooled into ``[n, 1, sum(runs_f * tasks_f)]``."""
    if len(samples) == 1:
        return samples[0]
    n = samples[0].shape[0]
    return np.concatenate([s.reshape(n, 1, -1) for s in samples], axis=-1)


def _chunks(reps: int, elements: int):
    step = max(1, _CHUNK_ELEMENTS // max(1, elements))
    for start in range(0, reps, step):
        yield start, min(step, reps - start)


def agent_bootstrap(
    scores: Scores,
    aggregate: str | Aggregate = "iqm",
    reps: int = 2000,
    random_state: int | np.random.Generator | None = 0,
) -> np.ndarray:
    """Bootstrap distribution ``[reps]`` of ``aggregate`` over resampled agents (runs).

    Each sample draws runs with replacement and keeps each run's whole row of task scores; with a
    mapping of families each family's runs are drawn on their own (stratified by family) and the
    aggregate is taken over the pooled scores (a callable then receives ``[n, 1, pooled]``).
    """
    strata = _strata(scores)
    fn = _resolve(aggregate)
    rng = np.random.default_rng(random_state)
    out = np.empty(reps, dtype=float)
    for start, n in _chunks(reps, sum(a.size for a in strata)):
        pooled = _pooled([_resample_runs(a, rng, n) for a in strata])
        out[start : start + n] = np.asarray(fn(pooled), dtype=float).reshape(n)
    return out


def expanded_alpha(runs: int, confidence: float = 0.95) -> float:
    """Tail probability of the expanded percentile interval (Hesterberg, 2015) for ``runs`` seeds.

    A plain percentile interval is too narrow with few resampled units (its spread is the
    ``(runs-1)/runs`` plug-in variance and it uses normal, not Student-t, quantiles). The
    expanded interval takes the percentiles at ``Phi(-sqrt(runs/(runs-1)) * t_{runs-1})``
    instead of ``(1-confidence)/2``; on synthetic scores its coverage is ~95% from 10 seeds on
    (93% at 5). It cannot reach past the most extreme seed, so with 3 seeds it covers ~76%.
    """
    if not 0 < confidence < 1:
        raise ValueError("confidence must be in (0, 1)")
    if runs < 2:
        return (1 - confidence) / 2
    z = np.sqrt(runs / (runs - 1)) * sps.t.ppf(0.5 + confidence / 2, runs - 1)
    return float(sps.norm.sf(z))


def _percentile_interval(
    point: float, boot: np.ndarray, confidence: float, runs: int | None = None
) -> Interval:
    """Percentiles of ``boot``; expanded for ``runs`` resampled units when given."""
    tail = expanded_alpha(runs, confidence) if runs else (1 - confidence) / 2
    low, high = np.percentile(boot, [100 * tail, 100 * (1 - tail)])
    return Interval(point, float(low), float(high))


def _min_runs(*scores: Scores) -> int:
    return min(a.shape[0] for s in scores for a in _strata(s))


def _point(scores: Scores, fn: Aggregate) -> float:
    strata = _strata(scores)
    return float(np.asarray(fn(_pooled([a[None] for a in strata])[0])).reshape(-1)[0])


def agent_bootstrap_ci(
    scores: Scores,
    aggregate: str | Aggregate = "iqm",
    reps: int = 2000,
    confidence: float = 0.95,
    random_state: int | np.random.Generator | None = 0,
) -> Interval:
    """Point estimate and expanded percentile CI (``expanded_alpha``, for the smallest number of
    runs of any family) of ``aggregate`` under the agent bootstrap."""
    fn = _resolve(aggregate)
    boot = agent_bootstrap(scores, fn, reps, random_state)
    return _percentile_interval(_point(scores, fn), boot, confidence, _min_runs(scores))


def difference_ci(
    x: Scores,
    y: Scores,
    aggregate: str | Aggregate = "mean",
    reps: int = 2000,
    confidence: float = 0.95,
    random_state: int | np.random.Generator | None = 0,
) -> Interval:
    """``aggregate(x) - aggregate(y)`` with a CI; the runs of ``x`` and ``y`` are resampled
    independently (different methods' seeds are different agents)."""
    fn = _resolve(aggregate)
    rng = np.random.default_rng(random_state)
    bx = agent_bootstrap(x, fn, reps, rng)
    by = agent_bootstrap(y, fn, reps, rng)
    point = _point(x, fn) - _point(y, fn)
    return _percentile_interval(point, bx - by, confidence, _min_runs(x, y))


@dataclass(frozen=True)
class Trend:
    """How a difference changes per doubling of an axis value (``difference_trend``)."""

    slope: float
    low: float
    high: float
    p: float
    mde_80: float  # the smallest slope the test detects with 80% power
    values: int  # how many axis values the slope is fitted over


def difference_trend(
    pairs: Mapping[float, tuple[np.ndarray, np.ndarray]],
    reps: int = 2000,
    confidence: float = 0.95,
    random_state: int | np.random.Generator | None = 0,
) -> Trend:
    """The least-squares slope of ``mean(x_v) - mean(y_v)`` on ``log2(v)`` over the axis values
    ``v`` of ``pairs`` (``{v: (x_v, y_v)}``, each ``[runs, tasks]``): the change of the
    difference per doubling of ``v``. One slope over all values says more than the values'
    differences one by one (each has the seeds of its own value only).

    The slope is a weighted sum of the 2V groups' means, and every group is its own agents:
    the CI is the agent bootstrap's (each group's runs resampled whole, on their own; expanded
    for the fewest runs of any group, as ``difference_ci``); ``p`` is Welch's test generalised
    to that weighted sum (per-run means over tasks, standard error from the groups' sample
    variances, Welch-Satterthwaite degrees of freedom), ``mde_80`` the smallest slope it detects
    with 80% power (``min_detectable_effect``'s noncentral t). Needs two or more values > 0 and
    two or more runs a group; p and MDE are NaN without spread.
    """
    values = sorted(pairs)
    if len(values) < 2 or values[0] <= 0:
        raise ValueError("a trend needs two or more axis values, all > 0")
    groups = [np.asarray(a, dtype=float) for v in values for a in pairs[v]]
    if min(g.shape[0] for g in groups) < 2:
        raise ValueError("a trend needs two or more runs for every value and side")
    rng = np.random.default_rng(random_state)
    t = np.log2(np.asarray(values, dtype=float))
    c = (t - t.mean()) / ((t - t.mean()) @ (t - t.mean()))  # slope = c @ differences
    weights = np.repeat(c, 2) * np.tile([1.0, -1.0], len(values))  # x_v: +c_v, y_v: -c_v
    slope = float(sum(w * g.mean() for w, g in zip(weights, groups, strict=True)))
    boot = sum(
        w * agent_bootstrap(g, "mean", reps, rng) for w, g in zip(weights, groups, strict=True)
    )
    ci = _percentile_interval(slope, boot, confidence, min(g.shape[0] for g in groups))
    per_run = [g.mean(axis=1) for g in groups]
    parts = np.array([w**2 * m.var(ddof=1) / m.size for w, m in zip(weights, per_run, strict=True)])
    se = float(np.sqrt(parts.sum()))
    if se == 0:
        return Trend(slope, ci.low, ci.high, float("nan"), float("nan"), len(values))
    df = float(
        parts.sum() ** 2 / sum(q**2 / (m.size - 1) for q, m in zip(parts, per_run, strict=True))
    )
    p = float(2 * sps.t.sf(abs(slope) / se, df))
    return Trend(slope, ci.low, ci.high, p, _t_mde(se, df, 0.8, 0.05), len(values))


def _poi_per_task(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``[..., tasks]``: P(X > Y) + P(X = Y) / 2 over all run pairs, per task (``[..., runs, tasks]``)."""
    gt = (x[..., :, None, :] > y[..., None, :, :]).mean(axis=(-3, -2))
    eq = (x[..., :, None, :] == y[..., None, :, :]).mean(axis=(-3, -2))
    return gt + 0.5 * eq


def probability_of_improvement(x: Scores, y: Scores) -> float:
    """rliable's probability of improvement of X over Y.

    Per task, the chance that a run of X scores above a run of Y (ties count half: the
    Mann-Whitney U statistic over ``runs_x * runs_y``), averaged over all tasks (of all families).
    """
    sx, sy = _strata(x), _strata(y)
    if len(sx) != len(sy) or any(a.shape[1] != b.shape[1] for a, b in zip(sx, sy, strict=True)):
        raise ValueError("x and y must have the same families and tasks")
    return float(np.concatenate([_poi_per_task(a, b) for a, b in zip(sx, sy, strict=True)]).mean())


def probability_of_improvement_ci(
    x: Scores,
    y: Scores,
    reps: int = 2000,
    confidence: float = 0.95,
    random_state: int | np.random.Generator | None = 0,
) -> Interval:
    """``probability_of_improvement`` with an agent-bootstrap CI (both methods' runs resampled)."""
    point = probability_of_improvement(x, y)
    sx, sy = _strata(x), _strata(y)
    rng = np.random.default_rng(random_state)
    boot = np.empty(reps, dtype=float)
    elements = sum(a.shape[0] * b.shape[0] * a.shape[1] for a, b in zip(sx, sy, strict=True))
    for start, n in _chunks(reps, elements):
        per_task = [
            _poi_per_task(_resample_runs(a, rng, n), _resample_runs(b, rng, n))
            for a, b in zip(sx, sy, strict=True)
        ]
        boot[start : start + n] = np.concatenate(per_task, axis=-1).mean(axis=-1)
    return _percentile_interval(point, boot, confidence, _min_runs(x, y))


# --------------------------------------------------------------------------- tests and power


def _clean(values) -> np.ndarray:
    arr = np.asarray(values, dtype=float).reshape(-1)
    return arr[np.isfinite(arr)]


@dataclass(frozen=True)
class AuthorsTest:
    """The ER-TRL authors' t-test (their table notebook), ``a`` better than ``b``, one-sided."""

    t: float
    p: float
    df: int


def authors_ttest(a, b) -> AuthorsTest:
    """t = (mean a - mean b) / sqrt(s_a^2/n_a + s_b^2/n_b) with ddof-0 stds; p = P(T > t) for
    Student's t with df = n - 1 (n = the smaller seed count; the authors' df 4 for 5 seeds).

    It is neither Welch's test nor two-sided; its p-values are about half of Welch's near 0.05.
    NaN when a side has fewer than 2 values or there is no variance.
    """
    a, b = _clean(a), _clean(b)
    n = min(a.size, b.size)
    se = np.sqrt(a.var() / max(a.size, 1) + b.var() / max(b.size, 1)) if n else 0.0
    if n < 2 or se == 0:
        return AuthorsTest(float("nan"), float("nan"), max(n - 1, 0))
    t = float((a.mean() - b.mean()) / se)
    return AuthorsTest(t, float(sps.t.sf(t, n - 1)), n - 1)


def _welch_df(va: float, vb: float, na: int, nb: int) -> float:
    qa, qb = va / na, vb / nb
    return (qa + qb) ** 2 / (qa**2 / (na - 1) + qb**2 / (nb - 1))


def _welch_mde(va: float, vb: float, na: int, nb: int, power: float, alpha: float) -> float:
    """``min_detectable_effect`` from the two sample variances and seed counts (``se > 0``)."""
    return _t_mde(float(np.sqrt(va / na + vb / nb)), _welch_df(va, vb, na, nb), power, alpha)


def _t_mde(se: float, df: float, power: float, alpha: float) -> float:
    """The smallest true effect a two-sided t-test with standard error ``se`` and ``df``
    degrees of freedom detects with probability ``power`` at level ``alpha``."""
    from scipy.optimize import brentq

    crit = sps.t.ppf(1 - alpha / 2, df)

    def short(ncp: float) -> float:
        upper = sps.nct.sf(crit, df, ncp)
        if not np.isfinite(upper):
            upper = 1.0 - sps.nct.cdf(crit, df, ncp)
        lower = sps.nct.cdf(-crit, df, ncp)  # negligible; scipy may give NaN far in the tail
        return float(upper + (lower if np.isfinite(lower) else 0.0) - power)

    high = 1.0
    while short(high) < 0:  # power rises with the noncentrality: bracket the root
        high *= 2
    return float(brentq(short, 0.0, high) * se)


def min_detectable_effect(a, b, power: float = 0.8, alpha: float = 0.05) -> float:
    """Smallest true difference of means Welch's two-sided test at level ``alpha`` detects with
    probability ``power``, given the observed sample stds and seed counts of ``a`` and ``b``.

    Solves power(D) = P(|T| > t_crit) for T ~ noncentral t(df, D / se), with Welch's se and
    degrees of freedom from the observed spread. NaN when either side has < 2 values or no
    spread: then nothing can be said about power.
    """
    a, b = _clean(a), _clean(b)
    if a.size < 2 or b.size < 2:
        return float("nan")
    va, vb = a.var(ddof=1), b.var(ddof=1)
    if float(np.sqrt(va / a.size + vb / b.size)) == 0:
        return float("nan")
    return _welch_mde(va, vb, a.size, b.size, power, alpha)


#: ``seeds_for_effect`` looks no further than this many seeds a method.
MAX_SEEDS = 1000


def seeds_for_effect(
    sd_a: float,
    sd_b: float,
    effect: float,
    power: float = 0.8,
    alpha: float = 0.05,
    max_seeds: int = MAX_SEEDS,
) -> int | None:
    """Seeds a method (the same count on both sides) for ``min_detectable_effect`` <= ``effect``.

    The study designer's inverse of ``min_detectable_effect`` (same test: Welch's, two-sided at
    ``alpha``, ``power``): ``sd_a`` and ``sd_b`` are the two methods' seed s.d.s of agent-level
    scores (ddof 1, e.g. ``np.std(per_seed, ddof=1)`` from a pilot study), assumed to stay as
    measured. Returns the smallest n >= 2 whose MDE with n seeds on each side is at most
    ``effect``, or None when not even ``max_seeds`` suffice. The MDE falls with n (smaller se,
    more degrees of freedom), so a bisection finds n. Raises ``ValueError`` for an effect that is
    not positive, an s.d. that is negative or not finite (one seed has none: measure two), or no
    spread on either side (then nothing can be said about power, as ``min_detectable_effect``).
    """
    if not (np.isfinite(effect) and effect > 0):
        raise ValueError(f"effect must be a positive number of points, got {effect!r}")
    for name, sd in (("sd_a", sd_a), ("sd_b", sd_b)):
        if not (np.isfinite(sd) and sd >= 0):
            raise ValueError(f"{name} must be a finite s.d. >= 0 (two seeds at least), got {sd!r}")
    if sd_a == 0 and sd_b == 0:
        raise ValueError("no spread on either side: nothing can be said about power")
    if max_seeds < 2:
        raise ValueError(f"max_seeds must be at least 2 (Welch's test needs 2), got {max_seeds}")
    va, vb = float(sd_a) ** 2, float(sd_b) ** 2

    def enough(n: int) -> bool:
        return _welch_mde(va, vb, n, n, power, alpha) <= effect

    if not enough(max_seeds):
        return None
    low, high = 1, max_seeds  # enough(high); low = 1 has no test
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid, high)
    return high


def kendall_tau(x, y) -> float:
    """Kendall's tau-b between two score vectors over the same methods (NaN if undefined)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(sps.kendalltau(x, y).statistic)
