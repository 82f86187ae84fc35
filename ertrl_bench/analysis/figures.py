"""The report's figures, one PNG per env (curves, z map), one for gain vs diversity and one per
suite axis varied (gain vs data quality / training-task count).

Drawing primitives are in ``plots``; this module decides what goes in each figure. Every figure
shows every protocol the metrics contain (one column per protocol).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ertrl_bench.data.store import atomic_write_bytes

from .load import RunRecord
from .tables import (
    AXIS_TITLES,
    CURVE_METRICS,
    PROTOCOL_ORDER,
    curve_keys,
    curve_series,
    ordered,
    split_label,
    split_title,
)

__all__ = [
    "build_curve_figure",
    "curve_figure",
    "zmap_figure",
    "gain_figure",
    "axis_gain_figure",
]


def save_png(fig, path: Path, dpi: int) -> None:
    """Save ``fig`` as a PNG at ``path`` atomically (a symlink there is replaced, not followed)."""
    atomic_write_bytes(Path(path), lambda f: fig.savefig(f, format="png", dpi=dpi))


def build_curve_figure(env: str, runs: Sequence[RunRecord], metric: str = "normalized"):
    """Learning curves of one env as a Figure (``None`` without curves of ``metric``): a grid of
    splits (rows) x protocols (columns); per method the mean over seeds of ``metric`` (the
    normalized return, or the success rate in percent of the runs that record one) vs gradient
    step with its 95% t-interval band."""
    from .plots import plot_learning_curves, plt  # plots selects Agg before pyplot loads

    pairs = curve_keys(runs, metric)
    if not pairs:
        return None
    splits = ordered(s for s, _ in pairs)
    protos = ordered((p for _, p in pairs), PROTOCOL_ORDER)
    fig, axes = plt.subplots(
        len(splits), len(protos), figsize=(5 * len(protos), 3.4 * len(splits)), squeeze=False
    )
    for i, split in enumerate(splits):
        for j, proto in enumerate(protos):
            ax = axes[i, j]
            title = f"{env}: {split_title(split)} / {proto}"
            if (split, proto) not in pairs:
                ax.set_title(title + ": no data")
                ax.axis("off")
                continue
            plot_learning_curves(
                curve_series(runs, split, proto, metric), ax=ax, title=title,
                ylabel=CURVE_METRICS[metric][2], aggregate="mean",
            )  # fmt: skip
            ax.set_xlabel("gradient step")
    # Fixed margins: tight_layout would draw the whole grid once more (seconds on a busy CPU).
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.07, top=0.95, wspace=0.25, hspace=0.45)
    return fig


def curve_figure(
    env: str, runs: Sequence[RunRecord], path: Path, metric: str = "normalized"
) -> Path | None:
    """``build_curve_figure`` saved as a PNG at ``path`` (``None`` without curves)."""
    from .plots import plt

    fig = build_curve_figure(env, runs, metric)
    if fig is None:
        return None
    try:
        save_png(fig, path, dpi=90)
    finally:
        plt.close(fig)
    return path


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def zmap_figure(env: str, runs: Sequence[RunRecord], path: Path, method: str) -> Path | None:
    """2-D map of the final z per task under each protocol's context, first seed per method."""
    from .plots import plot_z_map, plt

    picked = {}
    for r in runs:  # first run (suite order) of each method that has encodings
        enc_path = r.path / "encodings.npz" if r.path else None
        if r.method in picked or enc_path is None or not enc_path.is_file():
            continue
        enc = _load_npz(enc_path)
        if any(k.startswith("z_") for k in enc):
            picked[r.method] = (r, enc)
    if not picked:
        return None
    fig, axes = plt.subplots(1, len(picked), figsize=(5.5 * len(picked), 4.5), squeeze=False)
    for ax, (name, (r, enc)) in zip(axes[0], picked.items(), strict=True):
        sources = ordered((k[2:] for k in enc if k.startswith("z_")), PROTOCOL_ORDER)
        n_tasks = len(enc[f"z_{sources[0]}"])
        param = enc.get("task_param")
        if param is not None and np.asarray(param).reshape(n_tasks, -1).shape[1] == 1:
            colour, label = np.asarray(param, dtype=float).reshape(-1), "task parameter"
        else:
            colour = np.asarray(enc.get("task_index", np.arange(n_tasks)), dtype=float)
            label = "task index"
        zs, cs, srcs = [], [], []
        for src in sources:
            z = np.asarray(enc[f"z_{src}"], dtype=float)  # [T, R, L]
            if z.ndim == 2:
                z = z[:, None, :]
            zs.append(z.reshape(-1, z.shape[-1]))
            cs.append(np.repeat(colour, z.shape[1]))
            srcs.extend([src] * (z.shape[0] * z.shape[1]))
        plot_z_map(
            np.concatenate(zs), np.concatenate(cs), np.array(srcs), method=method, ax=ax,
            title=f"{env} / {name} (seed {r.seed})", colorbar_label=label,
        )  # fmt: skip
    fig.tight_layout()
    save_png(fig, path, dpi=110)
    plt.close(fig)
    return path


def gain_figure(grows: Sequence[Mapping], path: Path) -> Path | None:
    """The reference method's gain vs diversity, one panel per protocol (Pearson r in titles)."""
    from .plots import plot_gain_vs_diversity, plt

    protos = ordered((g["protocol"] for g in grows), PROTOCOL_ORDER)
    if not protos:
        return None
    fig, axes = plt.subplots(1, len(protos), figsize=(5.5 * len(protos), 4.2), squeeze=False)
    for ax, proto in zip(axes[0], protos, strict=True):
        sub = [g for g in grows if g["protocol"] == proto]
        plot_gain_vs_diversity(
            [g["diversity"] for g in sub], [g["gain"] for g in sub], [g["env"] for g in sub],
            ax=ax,
        )  # fmt: skip
        split = sub[0]["split"]
        title = ax.get_title().replace("ER-TRL gain vs diversity: ", "")
        ax.set_title(f"{proto} context, {split_title(split)}\n{title}", fontsize=9)
        ax.set_ylabel(
            f"{sub[0].get('reference', 'ertrl')} {split_label(split)} gain over best other"
        )
    fig.tight_layout()
    save_png(fig, path, dpi=110)
    plt.close(fig)
    return path


def axis_gain_figure(arows: Sequence[Mapping], axis: str, path: Path) -> Path | None:
    """The reference's gain over the baseline vs one suite axis (``tables.axis_gain_rows``):
    one panel per env x protocol, one line per split, 95% agent-bootstrap CIs as error bars.
    Task counts are drawn on a log2 axis, qualities (worst third to all) and backbones as
    categories."""
    from .plots import plt

    rows = [r for r in arows if r["axis"] == axis]
    panels = list(dict.fromkeys((r["env"], r["protocol"]) for r in rows))
    if not panels:
        return None
    values = list(dict.fromkeys(r["value"] for r in rows))
    numeric = axis == "train_tasks"
    if numeric:
        values = sorted(values)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), squeeze=False)
    splits = ordered((r["split"] for r in rows), ("train", "iid", "moderate", "extreme"))
    for ax, (env, proto) in zip(axes[0], panels, strict=True):
        for k, split in enumerate(splits):
            sub = [r for r in rows if (r["env"], r["protocol"], r["split"]) == (env, proto, split)]
            if not sub:
                continue
            sub.sort(key=lambda r: values.index(r["value"]))
            x = np.array([r["value"] if numeric else values.index(r["value"]) for r in sub], float)
            shift = (k - (len(splits) - 1) / 2) * 0.06  # splits side by side, not on top
            x = x * 2**shift if numeric else x + shift
            y = np.array([r["gain"] for r in sub], float)
            err = np.abs(
                np.array([[r["gain_ci_low"] for r in sub], [r["gain_ci_high"] for r in sub]]) - y
            )
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=split_title(split))
        ax.axhline(0, color="k", linewidth=0.5)
        if numeric:
            ax.set_xscale("log", base=2)
            ax.set_xticks(values, [str(v) for v in values])
        else:
            ax.set_xticks(range(len(values)), values)
        ref, base = rows[0]["method"], rows[0]["baseline"]
        ax.set_title(f"{env}, {proto} context", fontsize=9)
        ax.set_xlabel(AXIS_TITLES.get(axis, axis))
        ax.set_ylabel(f"{ref} minus {base} (normalized, mean)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, path, dpi=110)
    plt.close(fig)
    return path
