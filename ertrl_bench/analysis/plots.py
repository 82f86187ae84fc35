"""Figures of the paper's analysis: learning curves, the z map, gain vs. diversity.

Everything renders with matplotlib's Agg backend (no display needed, safe in CI and workers).
Each function returns the ``Figure``; with ``path`` it also saves a PNG and closes the figure so
long report runs do not leak memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from scipy import stats as sps  # noqa: E402

from ertrl_bench.measures.stats import mean_ci, stratified_bootstrap_ci  # noqa: E402

__all__ = [
    "curve_band",
    "plot_learning_curves",
    "embed_2d",
    "plot_z_map",
    "plot_gain_vs_diversity",
]


def _finish(fig: Figure, path: str | Path | None) -> Figure:
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
    return fig


def curve_band(
    values,
    aggregate: str = "mean",
    reps: int = 1000,
    confidence: float = 0.95,
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-step aggregate over runs and its CI; ``values`` is ``[runs, steps]``.

    ``aggregate="mean"`` (default): mean over seeds with a Student-t interval (right for 3-5
    seeds); ``"iqm"``: interquartile mean with a bootstrap CI. Returns ``(center, low, high)``,
    each ``[steps]``. NaNs (a run without that step) are dropped per step.
    """
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 1:
        arr = arr[None]
    center, low, high = (np.full(arr.shape[1], np.nan) for _ in range(3))
    for t in range(arr.shape[1]):
        col = arr[:, t][np.isfinite(arr[:, t])]
        if col.size:
            if aggregate == "mean":
                iv = mean_ci(col, confidence)
            else:
                iv = stratified_bootstrap_ci(col, aggregate, reps, confidence, random_state)
            center[t], low[t], high[t] = iv.point, iv.low, iv.high
    return center, low, high


def plot_learning_curves(
    curves: Mapping[str, tuple[Sequence[float], np.ndarray]],
    *,
    ax=None,
    title: str = "",
    ylabel: str = "normalized return",
    aggregate: str = "mean",
    reps: int = 1000,
    path: str | Path | None = None,
) -> Figure:
    """One line per method (``aggregate`` over seeds) with its 95% CI band vs. gradient step.

    ``curves[method] = (steps [S], values [runs, S])``.
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4))
    else:
        fig = ax.figure
    for name, (steps, values) in curves.items():
        center, low, high = curve_band(values, aggregate, reps)
        steps = np.asarray(steps)
        n_runs = np.atleast_2d(np.asarray(values)).shape[0]
        (line,) = ax.plot(steps, center, label=f"{name} (n={n_runs})")
        ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("gradient step")
    ax.set_ylabel(f"{ylabel} ({aggregate}, 95% CI)")
    if title:
        ax.set_title(title)
    if curves:
        ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return _finish(fig, path)


def embed_2d(z, method: str = "pca", seed: int = 0, **tsne_kwargs) -> np.ndarray:
    """Project ``z [N, L]`` to 2-D with PCA (default, fast, linear) or t-SNE (slower).

    ``tsne_kwargs`` go to ``sklearn.manifold.TSNE`` (e.g. ``max_iter=250`` for a quick look).
    """
    z = np.asarray(z, dtype=float)
    if z.ndim != 2:
        raise ValueError(f"z must be [N, L], got {z.shape}")
    if z.shape[1] == 1:
        return np.column_stack([z[:, 0], np.zeros(len(z))])
    if z.shape[1] == 2 and method == "pca":
        return z - z.mean(axis=0)
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(z)
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30, max(2, (len(z) - 1) / 3)))
        kwargs = {"perplexity": perplexity, "random_state": seed, **tsne_kwargs}
        return TSNE(n_components=2, **kwargs).fit_transform(z)
    raise ValueError(f"unknown embedding {method!r}; use 'pca' or 'tsne'")


_MARKERS = {"offline": "o", "online": "x"}


def plot_z_map(
    z,
    task,
    source,
    *,
    method: str = "pca",
    ax=None,
    title: str = "",
    colorbar_label: str = "task",
    seed: int = 0,
    embed_kwargs: Mapping | None = None,
    path: str | Path | None = None,
) -> Figure:
    """2-D map of task encodings coloured by task and marked by context source.

    ``z [N, L]``, ``task [N]`` (a number: task parameter or index, used as colour), ``source [N]``
    strings such as ``"offline"`` / ``"online"``; ``embed_kwargs`` go to ``embed_2d``. Offline and online clouds of the same colour
    that sit apart are the context distribution shift the paper is about.
    """
    z = np.asarray(z, dtype=float)
    task = np.asarray(task, dtype=float).reshape(-1)
    source = np.asarray(source).astype(str).reshape(-1)
    if not len(z) == len(task) == len(source):
        raise ValueError("z, task and source must have the same length")
    xy = embed_2d(z, method, seed, **dict(embed_kwargs or {}))
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
    else:
        fig = ax.figure
    norm = plt.Normalize(np.nanmin(task), np.nanmax(task)) if len(task) else None
    sc = None
    fallback = iter(["s", "^", "v", "D", "P"])
    for src in dict.fromkeys(source):
        m = source == src
        marker = _MARKERS.get(src) or next(fallback, "*")
        face = {} if marker == "x" else {"edgecolors": "k", "linewidths": 0.3}
        sc = ax.scatter(
            xy[m, 0], xy[m, 1], c=task[m], cmap="viridis", norm=norm, marker=marker, s=18,
            label=src, **face,
        )  # fmt: skip
    if sc is not None:
        fig.colorbar(sc, ax=ax, label=colorbar_label)
        ax.legend(fontsize="small", title="context")
    ax.set_xlabel(f"{method.upper()} 1")
    ax.set_ylabel(f"{method.upper()} 2")
    if title:
        ax.set_title(title)
    return _finish(fig, path)


def plot_gain_vs_diversity(
    diversity: Sequence[float],
    gain: Sequence[float],
    labels: Sequence[str] | None = None,
    *,
    ax=None,
    path: str | Path | None = None,
) -> Figure:
    """Scatter of ER-TRL's gain vs. behavior-policy diversity, Pearson r in the title.

    The paper reports r = 0.85 across families; r needs at least 3 points, otherwise the title
    says so.
    """
    x = np.asarray(diversity, dtype=float)
    y = np.asarray(gain, dtype=float)
    if x.shape != y.shape:
        raise ValueError("diversity and gain must have the same length")
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 4))
    else:
        fig = ax.figure
    ax.scatter(x, y, color="C3")
    for i, label in enumerate(labels or []):
        ax.annotate(label, (x[i], y[i]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if len(x) >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
        r, p = sps.pearsonr(x, y)
        ax.set_title(f"ER-TRL gain vs diversity: Pearson r = {r:.2f} (p = {p:.2g}, n = {len(x)})")
        slope, intercept = np.polyfit(x, y, 1)
        xs = np.linspace(x.min(), x.max(), 50)
        ax.plot(xs, slope * xs + intercept, "--", color="gray", linewidth=1)
    else:
        ax.set_title(f"ER-TRL gain vs diversity: Pearson r needs >= 3 varied points (n = {len(x)})")
    ax.axhline(0, color="k", linewidth=0.5)
    ax.set_xlabel("avg. Wasserstein-2 distance between behavior policies")
    ax.set_ylabel("ER-TRL OOD gain over best baseline")
    ax.grid(alpha=0.3)
    return _finish(fig, path)
