"""The z-probe (docs/paper.md): how well does a linear / RBF-SVR readout recover the task parameter?

A good task representation lets a simple regressor read the task parameter (e.g. Cheetah-Vel's
target velocity) off the per-transition encoding z_i. The paper's probe figure (Cheetah-Vel
0.1689 vs 0.1720) is not a reliable target (docs/paper.md: it is a *training* RMSE, from a copy
bug in the authors' table); we report our test RMSE as measured.

* ``probe_agent`` / ``ProbeConfig``: **the paper's protocol**, run by every run at its end
  (``runner.py`` stores it as ``metrics["probe"]``). Per resample, a *fresh* draw of
  ``transitions`` (1000) dataset transitions per task of the 20 train and 10 moderate tasks is
  encoded (z_i, not averaged); the first ``test`` (200) of each task are test rows, the other 800
  training rows (24k / 6k rows); a linear regression and an RBF-SVR are fitted to the task
  parameter; test RMSE; mean and std over ``resamples`` (5). No row cap by default: the SVR
  fits all 24k rows (measured on this project's 2-core CPU: about 75 s per fit + 15 s to
  predict the 6k test rows, so ~7.5 min per run for 5 resamples); ``svr_max_train_rows`` caps
  the SVR's training rows (a seeded random subset, recorded in ``metrics["probe_protocol"]``;
  6000 rows: about 8 s per resample).
* ``probe_rmse``: pooled rows, random 80/20 split *by sample* (the older analysis of stored
  encodings; rows of one draw, not fresh draws).
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

from ertrl_bench.config import ProbeConfig

__all__ = [
    "MODELS",
    "ProbeConfig",
    "ProbeResult",
    "draw_probe_indices",
    "make_regressor",
    "probe_agent",
    "probe_encodings",
    "probe_fits",
    "probe_heldout_tasks",
    "probe_resample",
    "probe_rmse",
]

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
    from sklearn.linear_model import LinearRegression
    from sklearn.multioutput import MultiOutputRegressor
    from sklearn.svm import SVR

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
    from sklearn.model_selection import train_test_split

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


# --------------------------------------------------------------------------- the paper's protocol


def probe_resample(
    zi,
    params,
    n_test: int,
    *,
    models: Sequence[str] = MODELS,
    svr_max_train_rows: int | str = "all",
    rng: np.random.Generator | None = None,
) -> tuple[dict[str, float], int, int]:
    """Test RMSE of each model on one draw: ``zi [T, n, L]`` encodings, ``params [T, P]``.

    The first ``n_test`` rows of each task are test rows, the rest training rows (per task, so
    every task is in both). Returns ``({model: rmse}, n_train, n_test)`` (row counts overall).
    ``svr_max_train_rows`` (a number, or ``"all"``) fits the SVR on that many training rows drawn
    with ``rng``.
    """
    zi = np.asarray(zi, dtype=np.float64)
    params = np.asarray(params, dtype=np.float64).reshape(len(zi), -1)
    if zi.ndim != 3 or not 0 < n_test < zi.shape[1]:
        raise ValueError(f"need zi [T, n, L] with 0 < n_test < n; got {zi.shape}, {n_test}")
    n_lat, n_par = zi.shape[-1], params.shape[1]
    z_te = zi[:, :n_test].reshape(-1, n_lat)
    z_tr = zi[:, n_test:].reshape(-1, n_lat)
    y_te = np.repeat(params, n_test, axis=0)
    y_tr = np.repeat(params, zi.shape[1] - n_test, axis=0)
    assert y_te.shape == (len(z_te), n_par)
    out = {}
    for m in models:
        zt, yt = z_tr, y_tr
        if m == "svr" and svr_max_train_rows != "all" and len(z_tr) > svr_max_train_rows:
            rng = rng if rng is not None else np.random.default_rng(0)
            idx = rng.choice(len(z_tr), size=svr_max_train_rows, replace=False)
            zt, yt = z_tr[idx], y_tr[idx]
        out[m] = _fit_rmse(m, zt, yt, z_te, y_te)
    return out, len(z_tr), len(z_te)


def draw_probe_indices(counts, n: int, generator):
    """``[T, n]`` dataset row indices per task: without replacement where a task holds >= n
    transitions (the usual case: 180k per task at paper scale), with replacement otherwise."""
    import torch

    rows = []
    for c in counts.tolist():
        if c >= n:
            rows.append(torch.randperm(c, generator=generator)[:n])
        else:
            rows.append(torch.randint(0, c, (n,), generator=generator))
    return torch.stack(rows)


def probe_agent(agent, task_data, rows, params, config: ProbeConfig | None = None, seed: int = 0):
    """The paper's probe of ``agent``'s per-transition encoder on the tasks ``rows`` ``[T]``.

    ``task_data`` is the run's ``TaskDataset``; ``params [T, P]`` the tasks' parameters (what is
    regressed). Every resample draws fresh transitions (torch generator seeded with ``seed``,
    so the global RNGs are untouched). Returns ``(probe, protocol)``: ``probe`` is the metrics
    record ``{"linear": {"rmse_mean", "rmse_std"}, "svr": {...}, "resamples": R}``;
    ``protocol`` the row counts and per-resample values (no timings: metrics stay repeatable).
    It is ``probe_fits(probe_encodings(...))``: the overlapped executor runs the first part
    (the agent's) in the training process and the second (CPU only) in a worker.
    """
    cfg = config or ProbeConfig()
    return probe_fits(probe_encodings(agent, task_data, rows, cfg, seed), params, cfg, seed)


def probe_encodings(agent, task_data, rows, config: ProbeConfig, seed: int = 0) -> list:
    """The encodings ``z_i [T, n, L]`` (float numpy) of every resample's fresh transitions."""
    import torch

    from ertrl_bench.batch import FIELDS, Transitions

    rows = torch.as_tensor(rows, device=task_data.device)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(config.resamples):
        idx = draw_probe_indices(task_data.counts[rows].cpu(), config.transitions, gen)
        idx = idx.to(task_data.device)
        r = rows[:, None]
        ctx = Transitions(*(task_data.data[f][r, idx] for f in FIELDS), task_ids=rows)
        with torch.no_grad():
            z_i, _ = agent.infer(ctx)
        out.append(z_i.float().cpu().numpy())
    return out


def probe_fits(encodings: list, params, config: ProbeConfig, seed: int = 0):
    """``probe_agent``'s result from ``probe_encodings``' output: the regressions (CPU only)."""
    cfg = config
    params = np.asarray(params, dtype=np.float64).reshape(len(encodings[0]), -1)
    rng = np.random.default_rng(seed)
    values: dict[str, list[float]] = {m: [] for m in MODELS}
    n_tr = n_te = 0
    for z_i in encodings:
        res, n_tr, n_te = probe_resample(
            z_i, params, cfg.test, svr_max_train_rows=cfg.svr_max_train_rows, rng=rng
        )
        for m, v in res.items():
            values[m].append(v)
    probe = {
        m: {"rmse_mean": float(np.mean(v)), "rmse_std": float(np.std(v))} for m, v in values.items()
    }
    probe["resamples"] = cfg.resamples
    protocol = {
        "tasks": len(params),
        "transitions": cfg.transitions,
        "test": cfg.test,
        "n_train": n_tr,
        "n_test": n_te,
        "svr_train_rows": n_tr
        if cfg.svr_max_train_rows == "all"
        else min(n_tr, cfg.svr_max_train_rows),
        "values": {m: [float(x) for x in v] for m, v in values.items()},
    }
    return probe, protocol
