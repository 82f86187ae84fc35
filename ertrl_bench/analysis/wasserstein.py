"""Behavior-policy diversity: Wasserstein-2 distances between action samples (POT).

PAPER.md ("Evaluation", **ours, precisely**): the diversity of a task family is the average over
pairs of training tasks of the W2 distance between the two tasks' behavior-policy action
distributions on a shared set of states, averaged over states. ER-TRL's gain is reported to
correlate (r = 0.85) with it.

``w2_between_samples`` solves the exact optimal-transport problem (``ot.emd2``, squared-Euclidean
cost, uniform weights) and returns its square root. The exact solver needs an ``n x m`` cost
matrix and is roughly cubic, so above ``exact_max`` points per side it switches to the sliced
Wasserstein distance (``ot.sliced.sliced_wasserstein_distance``, p=2). Beware: sliced W2 is a
*different, smaller* quantity (for a pure translation by ``delta`` in ``d`` dimensions it is
``|delta| / sqrt(d)`` instead of ``|delta|``), so all distances that are compared must come from
the same branch; ``policy_distance`` and friends use one fixed ``K`` for every pair and so
always do. Pass ``method="exact"`` or ``"sliced"`` to force a branch.
"""

from __future__ import annotations

from itertools import combinations
from typing import Literal

import numpy as np
import ot
from scipy.spatial.distance import cdist

__all__ = [
    "EXACT_MAX",
    "w2_between_samples",
    "policy_distance",
    "pairwise_distance_matrix",
    "average_pairwise_distance",
]

#: Largest sample size (per side) solved exactly; 2000 x 2000 takes about a second.
EXACT_MAX = 2000

Method = Literal["auto", "exact", "sliced"]


def _as_points(x) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"expected a non-empty sample [n, d], got shape {arr.shape}")
    return arr


def w2_between_samples(
    x,
    y,
    *,
    method: Method = "auto",
    exact_max: int = EXACT_MAX,
    n_projections: int = 500,
    seed: int = 0,
) -> float:
    """W2 distance between the empirical distributions of ``x [n, d]`` and ``y [m, d]``.

    ``method="auto"`` is exact when ``max(n, m) <= exact_max`` and sliced (``n_projections``
    random directions, ``seed``) otherwise; see the module docstring for why the two differ.
    """
    x, y = _as_points(x), _as_points(y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"dimension mismatch: {x.shape[1]} vs {y.shape[1]}")
    if method == "auto":
        method = "exact" if max(len(x), len(y)) <= exact_max else "sliced"
    if method == "exact":
        cost = cdist(x, y, metric="sqeuclidean")  # exact zeros, unlike the |x|^2 expansion
        a = np.full(len(x), 1.0 / len(x))
        b = np.full(len(y), 1.0 / len(y))
        w2_sq = ot.emd2(a, b, cost, numItermax=max(100_000, 50 * len(x) * len(y)))
        return float(np.sqrt(max(float(w2_sq), 0.0)))
    if method == "sliced":
        return float(
            ot.sliced.sliced_wasserstein_distance(x, y, n_projections=n_projections, p=2, seed=seed)
        )
    raise ValueError(f"unknown method {method!r}; use 'auto', 'exact' or 'sliced'")


def _as_policy_actions(actions) -> np.ndarray:
    arr = np.asarray(actions, dtype=np.float64)
    if arr.ndim == 2:  # [S, K] scalar actions
        arr = arr[..., None]
    if arr.ndim != 3:
        raise ValueError(f"expected actions [S, K, d], got shape {arr.shape}")
    return arr


def policy_distance(actions_a, actions_b, **w2_kwargs) -> float:
    """Mean over the S shared states of W2 between two policies' K sampled actions there.

    ``actions_a`` and ``actions_b`` are ``[S, K, d]`` (``[S, K]`` for 1-D actions), row ``s`` of
    both sampled at the same state. Extra keyword arguments go to ``w2_between_samples``.
    """
    a, b = _as_policy_actions(actions_a), _as_policy_actions(actions_b)
    if a.shape[0] != b.shape[0] or a.shape[2] != b.shape[2]:
        raise ValueError(f"policies must share states and action dim: {a.shape} vs {b.shape}")
    return float(np.mean([w2_between_samples(a[s], b[s], **w2_kwargs) for s in range(len(a))]))


def pairwise_distance_matrix(actions, **w2_kwargs) -> np.ndarray:
    """Symmetric ``[T, T]`` matrix of ``policy_distance`` between tasks, zero diagonal.

    ``actions`` is ``[T, S, K, d]``: task ``t``'s behavior policy sampled K times at each of the S
    shared states.
    """
    arr = np.asarray(actions, dtype=np.float64)
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4:
        raise ValueError(f"expected actions [T, S, K, d], got shape {arr.shape}")
    n = arr.shape[0]
    out = np.zeros((n, n))
    for i, j in combinations(range(n), 2):
        out[i, j] = out[j, i] = policy_distance(arr[i], arr[j], **w2_kwargs)
    return out


def average_pairwise_distance(actions, **w2_kwargs) -> float:
    """Family diversity: mean of ``policy_distance`` over all unordered pairs of tasks."""
    mat = pairwise_distance_matrix(actions, **w2_kwargs)
    n = mat.shape[0]
    if n < 2:
        raise ValueError("need at least two tasks")
    return float(mat[np.triu_indices(n, k=1)].mean())
