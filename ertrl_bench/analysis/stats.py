"""Aggregate scores the way rliable does (IQM + stratified bootstrap CIs), on plain numpy.

rliable (Agarwal et al., 2021) is the reference method, but it no longer imports with recent
pandas, so the two pieces we need are re-implemented here and checked against hand-computed
values in the tests:

* ``iqm``: the interquartile mean, ``scipy.stats.trim_mean(..., 0.25)`` over all runs x tasks
  (drop the lowest and highest 25 % of the pooled scores, average the rest). It is robust to
  outlier seeds yet uses more data than the median.
* ``stratified_bootstrap_ci``: resample the runs *within each task* (a task is a stratum, so every
  bootstrap sample keeps all tasks), recompute the aggregate, take percentiles. Deterministic for
  a fixed ``random_state``.

Scores follow rliable's layout: ``scores[method]`` is an array ``(runs, tasks)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

__all__ = [
    "Interval",
    "iqm",
    "mean",
    "mean_std",
    "stratified_bootstrap",
    "stratified_bootstrap_ci",
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


def mean_std(scores, ddof: int = 0) -> tuple[float, float]:
    """Mean and std over runs of the per-run mean over tasks: the paper's "mean ± std over seeds".

    ``ddof=0`` matches ``np.std``'s default, which is what such tables are usually computed with;
    pass ``ddof=1`` for the sample std.
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
    """Point estimate and percentile CI of ``aggregate`` under the stratified bootstrap."""
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
