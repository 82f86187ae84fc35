"""The z-probe of PAPER.md: how well does a linear / RBF-SVR readout recover the task parameter?

A good task representation lets a simple regressor read the task parameter (e.g. Cheetah-Vel's
target velocity) off the per-transition encoding z_i; the paper reports the test RMSE (0.1689 for
ER-TRL vs 0.1720 for the best baseline on Cheetah-Vel). Two variants:

* ``probe_rmse``: pool transitions, 80/20 split *by sample*, mean and std of the test RMSE over 5
  resamples (the paper's protocol: train and moderate tasks pooled).
* ``probe_heldout_tasks``: fit on the training tasks, evaluate on held-out tasks (a harder,
  extrapolating probe that says whether z generalises out of distribution).

RMSE of a multi-dimensional target is ``sqrt(mean over samples and dims of the squared error)``.
Regressors use scikit-learn defaults (``SVR()`` is RBF, C=1, epsilon=0.1, gamma="scale"); a
multi-dimensional target gets one SVR per dimension via ``MultiOutputRegressor``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import train_test_split
from sklearn.multioutput import MultiOutputRegressor
from sklearn.svm import SVR

__all__ = ["MODELS", "ProbeResult", "make_regressor", "probe_rmse", "probe_heldout_tasks"]

MODELS = ("linear", "svr")


@dataclass(frozen=True)
class ProbeResult:
    """Test RMSE of one probe model: mean and std over resamples, and each resample's value."""

    model: str
    mean: float
    std: float
    values: tuple[float, ...]
    n_train: int
    n_test: int


def make_regressor(model: str, n_outputs: int):
    """A fresh scikit-learn regressor for ``model`` in ``MODELS``."""
    if model == "linear":
        return LinearRegression()
    if model == "svr":
        return SVR() if n_outputs == 1 else MultiOutputRegressor(SVR())
    raise ValueError(f"unknown probe model {model!r}; choose from {MODELS}")


def _prepare(z, y) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if z.ndim == 1:
        z = z[:, None]
    if y.ndim == 1:
        y = y[:, None]
    if z.ndim != 2 or y.ndim != 2 or len(z) != len(y):
        raise ValueError(f"need z [N, L] and y [N, P] or [N]; got {z.shape} and {y.shape}")
    if len(z) < 5:
        raise ValueError("need at least 5 samples to probe")
    return z, y


def _subsample(z, y, max_samples: int | None, rng: np.random.Generator):
    if max_samples is None or len(z) <= max_samples:
        return z, y
    idx = rng.choice(len(z), size=max_samples, replace=False)
    return z[idx], y[idx]


def _fit_rmse(model: str, z_tr, y_tr, z_te, y_te) -> float:
    reg = make_regressor(model, y_tr.shape[1])
    target = y_tr[:, 0] if y_tr.shape[1] == 1 else y_tr
    reg.fit(z_tr, target)
    pred = np.asarray(reg.predict(z_te), dtype=np.float64).reshape(len(z_te), -1)
    return float(np.sqrt(np.mean((pred - y_te) ** 2)))


def probe_rmse(
    z,
    y,
    *,
    models: Sequence[str] = MODELS,
    n_resamples: int = 5,
    test_size: float = 0.2,
    seed: int = 0,
    max_samples: int | None = None,
) -> dict[str, ProbeResult]:
    """Test RMSE of each probe on random ``1 - test_size`` / ``test_size`` splits by sample.

    ``z`` is ``[N, L]``, ``y`` the true task parameter of each row, ``[N, P]`` or ``[N]``.
    Resample ``k`` splits with ``random_state=seed + k``, so results are reproducible.
    ``max_samples`` randomly keeps at most that many rows first (SVR is quadratic in N).
    """
    z, y = _prepare(z, y)
    z, y = _subsample(z, y, max_samples, np.random.default_rng(seed))
    values: dict[str, list[float]] = {m: [] for m in models}
    n_tr = n_te = 0
    for k in range(n_resamples):
        z_tr, z_te, y_tr, y_te = train_test_split(z, y, test_size=test_size, random_state=seed + k)
        n_tr, n_te = len(z_tr), len(z_te)
        for m in models:
            values[m].append(_fit_rmse(m, z_tr, y_tr, z_te, y_te))
    return {
        m: ProbeResult(m, float(np.mean(v)), float(np.std(v)), tuple(v), n_tr, n_te)
        for m, v in values.items()
    }


def probe_heldout_tasks(
    z_train,
    y_train,
    z_test,
    y_test,
    *,
    models: Sequence[str] = MODELS,
    seed: int = 0,
    max_samples: int | None = None,
) -> dict[str, ProbeResult]:
    """Fit each probe on the training tasks' rows, report RMSE on the held-out tasks' rows.

    One fit per model (the regressors are deterministic), so ``std`` is 0; ``max_samples``
    subsamples the *training* rows with ``seed``.
    """
    z_tr, y_tr = _prepare(z_train, y_train)
    z_te, y_te = _prepare(z_test, y_test)
    if z_tr.shape[1] != z_te.shape[1] or y_tr.shape[1] != y_te.shape[1]:
        raise ValueError("train and test must have the same z and y widths")
    z_tr, y_tr = _subsample(z_tr, y_tr, max_samples, np.random.default_rng(seed))
    out = {}
    for m in models:
        rmse = _fit_rmse(m, z_tr, y_tr, z_te, y_te)
        out[m] = ProbeResult(m, rmse, 0.0, (rmse,), len(z_tr), len(z_te))
    return out
