"""Where do a study's runs settle? Window scores over evaluations, and the budget rule.

Everything works on a run's evaluation curve: ``steps`` (the gradient steps of its evaluations,
increasing) and ``values`` ``[seeds, evaluations]`` (one row per seed of a method, one column
of a split x protocol), on plain numpy. Reading results folders is the report layer's job
(``ertrl_bench.analysis.settling``, ``ertrl-bench settle``).

* The **score with a budget of B steps** is a run's mean over its last ``window`` evaluations
  at or before step B: the suite's scoring rule (``train.final_evals``), applied at B. On an
  evenly spaced schedule that is the mean over the evaluations in (B - window x interval, B].
* **The budget rule** (written for ``results/converge-point-robot``): B *settles* a cell
  (method x split x protocol) when both

  - the *trend*, the change of the seed-mean curve across B's window (least-squares slope
    times the window's length in steps), and
  - the *drift*, the seed-mean score at B minus the seed-mean score at the last evaluation,

  are at most the seed s.d. (ddof 1) of the scores at B in absolute value. One seed has no
  spread: no budget settles it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "BudgetCell",
    "budget_cell",
    "default_budgets",
    "interval_means",
    "span_means",
    "window_index",
    "window_scores",
]


def window_index(steps: Sequence[int], budget: int, window: int) -> np.ndarray:
    """Positions of the last ``window`` evaluations at or before ``budget``.

    Raises ``ValueError`` when fewer than ``window`` evaluations lie there.
    """
    upto = np.flatnonzero(np.asarray(steps) <= budget)
    if len(upto) < window:
        raise ValueError(
            f"{len(upto)} evaluation(s) up to step {budget}, the window needs {window}"
        )
    return upto[-window:]


def window_scores(steps: Sequence[int], values, budget: int, window: int) -> np.ndarray:
    """Each seed's score with ``budget`` steps: its mean over the window (``[seeds]``)."""
    values = np.asarray(values, dtype=float)
    return values[:, window_index(steps, budget, window)].mean(axis=1)


def default_budgets(steps: Sequence[int], window: int) -> list[int]:
    """The candidate budgets: the end of every ``window``-th evaluation before the last (the
    windows do not overlap), e.g. 5k, 10k, ..., 25k for 30 evaluations every 1k steps."""
    steps = list(steps)
    return [int(s) for s in steps[window - 1 : -1 : window]]


@dataclass(frozen=True)
class BudgetCell:
    """The budget rule at one budget for one method x split x protocol."""

    budget: int
    first_step: int  # the window's first evaluation
    scores: np.ndarray  # each seed's score with ``budget`` steps
    mean: float  # over seeds
    sd: float  # seed s.d. (ddof 1); NaN with one seed
    trend: float  # change of the seed-mean curve across the window
    drift: float  # mean - the mean at the last evaluation

    @property
    def settled(self) -> bool:
        """|trend| and |drift| at most the seed s.d. (False without a spread: NaN)."""
        return bool(abs(self.trend) <= self.sd and abs(self.drift) <= self.sd)


def budget_cell(steps: Sequence[int], values, budget: int, window: int) -> BudgetCell:
    """The budget rule (module docstring) at ``budget``, against the last evaluation's window."""
    steps = np.asarray(steps)
    values = np.asarray(values, dtype=float)
    idx = window_index(steps, budget, window)
    scores = values[:, idx].mean(axis=1)
    sd = float(scores.std(ddof=1)) if len(scores) > 1 else float("nan")
    at = steps[idx]
    mean_curve = values[:, idx].mean(axis=0)
    trend = float(np.polyfit(at, mean_curve, 1)[0] * (at[-1] - at[0]))
    last = window_scores(steps, values, int(steps[-1]), window).mean()
    mean = float(scores.mean())
    return BudgetCell(
        budget=int(budget),
        first_step=int(at[0]),
        scores=scores,
        mean=mean,
        sd=sd,
        trend=trend,
        drift=float(mean - last),
    )


def span_means(steps: Sequence[int], values, start: int | None, end: int) -> np.ndarray:
    """Each seed's mean over the evaluations in (``start``, ``end``]; with ``start`` None, its
    evaluation at step ``end``. Raises ``ValueError`` when there is none."""
    steps = np.asarray(steps)
    values = np.asarray(values, dtype=float)
    keep = steps == end if start is None else (steps > start) & (steps <= end)
    if not keep.any():
        where = f"at step {end}" if start is None else f"in steps ({start}, {end}]"
        raise ValueError(f"no evaluation {where}")
    return values[:, keep].mean(axis=1)


def interval_means(log_steps: Sequence[int], log_values, ends: Sequence[int]) -> np.ndarray:
    """Means of a logged quantity over the steps since the previous end (from step 0), at each
    of ``ends``: ``[len(ends)]``, NaN where nothing was logged in an interval."""
    log_steps = np.asarray(log_steps)
    log_values = np.asarray(log_values, dtype=float)
    out, start = [], 0
    for end in ends:
        keep = (log_steps > start) & (log_steps <= end)
        out.append(log_values[keep].mean() if keep.any() else np.nan)
        start = end
    return np.array(out)
