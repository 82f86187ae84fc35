"""Turn a suite's results folder into ``report.md`` + CSV tables + PNG figures.

Layout read (written by the runner)::

    <suite>/suite.json               {"suite": name, "runs": [{"run_id","method","env","seed"}, ...]}
    <suite>/<run_id>/spec.json       resolved spec
    <suite>/<run_id>/metrics.json    the "done" marker: final, per_task, curve, wall_s
    <suite>/<run_id>/failed.json     {"error", "traceback"} when the run failed
    <suite>/<run_id>/encodings.npz   optional: task_index, task_split, task_param, z_offline,
                                     z_online, zi
    <suite>/diversity.json           optional: {env: avg Wasserstein distance}

The report is built for partial results: a run that is missing, unfinished or failed is listed
with its error and simply left out of the statistics; a broken artefact becomes a note, never an
exception. Numbers follow PAPER.md ("Evaluation"): normalized return per env x method x split
group x protocol, as the IQM over seeds x evaluation tasks with a 95% stratified-bootstrap CI
(robust, rliable-style) and as the bare mean +- std over seeds of the per-seed task mean (what
the paper's tables print).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .probe import probe_heldout_tasks, probe_rmse
from .stats import mean_std, stratified_bootstrap_ci

__all__ = [
    "SPLIT_GROUPS",
    "MAIN_COLUMNS",
    "RunRecord",
    "Report",
    "load_runs",
    "return_rows",
    "probe_rows",
    "gain_rows",
    "write_report",
]

#: Split groups of the report; "OOD" is the union the paper's headline may refer to.
SPLIT_GROUPS: dict[str, tuple[str, ...]] = {
    "IID": ("train", "iid"),
    "OOD-moderate": ("moderate",),
    "OOD-extreme": ("extreme",),
    "OOD": ("moderate", "extreme"),
}
SPLIT_ORDER = ("train", "iid", "moderate", "extreme")
PROTOCOL_ORDER = ("offline", "online", "non-prior")
ERTRL = "ertrl"

MAIN_COLUMNS = (
    "env",
    "method",
    "group",
    "protocol",
    "n_seeds",
    "n_expected",
    "n_tasks",
    "iqm",
    "ci_low",
    "ci_high",
    "mean",
    "std",
)


# --------------------------------------------------------------------------- loading


@dataclass
class RunRecord:
    """One expected or found run and what became of it."""

    run_id: str
    method: str
    env: str
    seed: Any
    status: str  # "done" | "failed" | "missing"
    error: str = ""
    path: Path | None = None
    metrics: dict | None = None

    @property
    def done(self) -> bool:
        return self.status == "done"


def _read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _name(value: Any, key: str) -> str:
    """Method/env as a string even if given as a spec sub-dict ({"name": ...} / {"type": ...})."""
    if isinstance(value, Mapping):
        value = value.get(key, value.get("name", value.get("type", "")))
    return "" if value is None else str(value)


def _inspect_run(suite_dir: Path, entry: Mapping[str, Any]) -> RunRecord:
    run_id = str(entry.get("run_id", ""))
    rec = RunRecord(
        run_id=run_id,
        method=_name(entry.get("method"), "name"),
        env=_name(entry.get("env"), "type"),
        seed=entry.get("seed"),
        status="missing",
    )
    run_dir = suite_dir / run_id
    if not run_id or not run_dir.is_dir():
        rec.error = "no run folder"
        return rec
    rec.path = run_dir
    if not (rec.method and rec.env) and (run_dir / "spec.json").is_file():
        try:
            spec = _read_json(run_dir / "spec.json")
            rec.method = rec.method or _name(spec.get("method"), "name")
            rec.env = rec.env or _name(spec.get("env"), "type")
            rec.seed = spec.get("seed", rec.seed) if rec.seed is None else rec.seed
        except Exception as exc:  # a broken spec only costs us the labels
            rec.error = f"unreadable spec.json: {exc}"
    metrics_path = run_dir / "metrics.json"
    if metrics_path.is_file():
        try:
            metrics = _read_json(metrics_path)
            if not isinstance(metrics, Mapping):
                raise ValueError("not a JSON object")
        except Exception as exc:
            rec.status, rec.error = "failed", f"unreadable metrics.json: {exc}"
            return rec
        rec.status, rec.error, rec.metrics = "done", "", dict(metrics)
        rec.method = rec.method or _name(metrics.get("method"), "name")
        rec.env = rec.env or _name(metrics.get("env"), "type")
        rec.seed = metrics.get("seed") if rec.seed is None else rec.seed
        return rec
    failed_path = run_dir / "failed.json"
    if failed_path.is_file():
        rec.status = "failed"
        try:
            info = _read_json(failed_path)
            rec.error = str(info.get("error") or "failed (no error message)")
        except Exception as exc:
            rec.error = f"failed (unreadable failed.json: {exc})"
        return rec
    rec.error = "not finished (no metrics.json)"
    return rec


def load_runs(suite_dir: str | Path) -> tuple[str, list[RunRecord]]:
    """Suite name and one ``RunRecord`` per expected run (suite.json).

    Folders of runs the current suite.json no longer lists (an edited suite's old runs) are left
    out. Without suite.json every sub-folder holding a spec.json, metrics.json or failed.json counts.
    """
    suite_dir = Path(suite_dir)
    name, entries = suite_dir.name, []
    suite_json = suite_dir / "suite.json"
    if suite_json.is_file():
        try:
            data = _read_json(suite_json)
            name = str(data.get("suite") or name)
            entries = [dict(r) for r in data.get("runs", []) if isinstance(r, Mapping)]
        except Exception:
            entries = []
    known = {str(e.get("run_id")) for e in entries}
    markers = ("metrics.json", "failed.json", "spec.json")
    subs = sorted(p for p in suite_dir.iterdir() if p.is_dir()) if suite_dir.is_dir() else []
    for sub in subs if not entries else []:
        if sub.name not in known and any((sub / m).is_file() for m in markers):
            entries.append({"run_id": sub.name})
    return name, [_inspect_run(suite_dir, e) for e in entries]


# --------------------------------------------------------------------------- returns table


def _ordered(values: Iterable[str], order: Sequence[str] = ()) -> list[str]:
    seen = list(dict.fromkeys(values))
    known = [v for v in order if v in seen]
    return known + [v for v in seen if v not in order]


def _protocols(runs: Sequence[RunRecord]) -> list[str]:
    found = []
    for r in runs:
        for key in ("per_task", "final"):
            for per_proto in (r.metrics.get(key) or {}).values():
                if isinstance(per_proto, Mapping):
                    found.extend(per_proto)
    return _ordered(found, PROTOCOL_ORDER)


def _task_scores(metrics: Mapping, splits: Sequence[str], protocol: str) -> dict[str, float]:
    """``{split/task: normalized}`` for one run; a split without per_task falls back to final."""
    out: dict[str, float] = {}
    for split in splits:
        per_task = ((metrics.get("per_task") or {}).get(split) or {}).get(protocol)
        if isinstance(per_task, Mapping) and per_task:
            for task, val in per_task.items():
                score = val.get("normalized") if isinstance(val, Mapping) else val
                if score is not None and math.isfinite(float(score)):
                    out[f"{split}/{task}"] = float(score)
            continue
        final = ((metrics.get("final") or {}).get(split) or {}).get(protocol)
        if isinstance(final, Mapping) and final.get("normalized") is not None:
            out[f"{split}/(mean)"] = float(final["normalized"])
    return out


def _score_matrix(runs: Sequence[RunRecord], splits, protocol) -> tuple[np.ndarray, int] | None:
    """``(runs x tasks)`` matrix over the tasks all runs share, and the number of tasks dropped."""
    per_run = [s for s in (_task_scores(r.metrics, splits, protocol) for r in runs) if s]
    if not per_run:
        return None
    common = set.intersection(*(set(s) for s in per_run))
    union = set.union(*(set(s) for s in per_run))
    tasks = sorted(common)
    if not tasks:
        return None
    return np.array([[s[t] for t in tasks] for s in per_run]), len(union) - len(tasks)


def return_rows(
    runs: Sequence[RunRecord],
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    random_state: int = 0,
    notes: list[str] | None = None,
) -> list[dict]:
    """Main table: one row per env x method x split group x protocol that has data."""
    rows = []
    envs = _ordered(r.env for r in runs)
    methods = _ordered(r.method for r in runs)
    for env in envs:
        for method in methods:
            expected = [r for r in runs if r.env == env and r.method == method]
            done = [r for r in expected if r.done]
            if not done:
                continue
            for protocol in _protocols(done):
                for group, splits in SPLIT_GROUPS.items():
                    built = _score_matrix(done, splits, protocol)
                    if built is None:
                        continue
                    scores, dropped = built
                    if dropped and notes is not None:
                        notes.append(
                            f"{env}/{method}/{group}/{protocol}: {dropped} task(s) not present in "
                            "every seed were left out."
                        )
                    iv = stratified_bootstrap_ci(scores, "iqm", reps, confidence, random_state)
                    m, s = mean_std(scores)
                    rows.append(
                        {
                            "env": env,
                            "method": method,
                            "group": group,
                            "protocol": protocol,
                            "n_seeds": scores.shape[0],
                            "n_expected": len(expected),
                            "n_tasks": scores.shape[1],
                            "iqm": iv.point,
                            "ci_low": iv.low,
                            "ci_high": iv.high,
                            "mean": m,
                            "std": s,
                        }
                    )
    return rows


# --------------------------------------------------------------------------- probe


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _rows_of(enc: Mapping[str, np.ndarray], splits: Sequence[str]):
    zi = np.asarray(enc["zi"], dtype=float)  # [T, n, L]
    param = np.asarray(enc["task_param"], dtype=float).reshape(len(zi), -1)  # [T, P]
    split = np.asarray(enc["task_split"]).astype(str)
    sel = np.isin(split, list(splits))
    if not sel.any():
        return None
    z = zi[sel].reshape(-1, zi.shape[-1])
    y = np.repeat(param[sel], zi.shape[1], axis=0)
    return z, y


def probe_rows(
    runs: Sequence[RunRecord],
    *,
    max_samples: int | None = 2000,
    seed: int = 0,
    notes: list[str] | None = None,
) -> list[dict]:
    """Probe RMSE per env x method x variant x model, mean +- std over seeds.

    ``within``: train + moderate tasks pooled, 80/20 by sample, 5 resamples (PAPER.md).
    ``heldout``: fit on the train-split tasks, evaluate on the moderate / iid tasks.
    ``max_samples`` caps the rows fitted (SVR is quadratic); the paper used 1000 per task.
    """
    per_key: dict[tuple[str, str, str, str], list[float]] = {}
    for r in runs:
        path = r.path / "encodings.npz" if r.path else None
        if not r.done or path is None or not path.is_file():
            continue
        try:
            enc = _load_npz(path)
            if not {"zi", "task_param", "task_split"} <= set(enc):
                continue
            variants = {}
            within = _rows_of(enc, ("train", "moderate"))
            if within is not None:
                variants["within"] = probe_rmse(*within, seed=seed, max_samples=max_samples)
            train = _rows_of(enc, ("train",))
            held = _rows_of(enc, ("moderate", "iid"))
            if train is not None and held is not None:
                variants["heldout"] = probe_heldout_tasks(
                    *train, *held, seed=seed, max_samples=max_samples
                )
        except Exception as exc:
            if notes is not None:
                notes.append(f"probe skipped for {r.run_id}: {type(exc).__name__}: {exc}")
            continue
        for variant, results in variants.items():
            for model, res in results.items():
                per_key.setdefault((r.env, r.method, variant, model), []).append(res.mean)
    rows = []
    for (env, method, variant, model), vals in per_key.items():
        arr = np.asarray(vals)
        rows.append(
            {
                "env": env,
                "method": method,
                "variant": variant,
                "model": model,
                "n_seeds": len(arr),
                "rmse_mean": float(arr.mean()),
                "rmse_std": float(arr.std()),
            }
        )
    return rows


# --------------------------------------------------------------------------- gain vs diversity


def _load_diversity(suite_dir: Path, diversity) -> dict[str, float] | None:
    if diversity is None:
        path = suite_dir / "diversity.json"
        if not path.is_file():
            return None
        diversity = path
    if isinstance(diversity, (str, Path)):
        diversity = _read_json(Path(diversity))
    # a value is a number or a record {"w2": value, "floor": same-policy floor, ...}
    return {
        str(k): float(v["w2"] if isinstance(v, Mapping) else v) for k, v in dict(diversity).items()
    }


def gain_rows(
    rows: Sequence[Mapping], diversity: Mapping[str, float], *, protocol: str = "offline",
    stat: str = "mean", group: str = "OOD",
) -> list[dict]:  # fmt: skip
    """Per env: ER-TRL's ``group`` score minus the best other method's (``stat`` of the table)."""
    out = []
    for env, div in diversity.items():
        cand = [r for r in rows if r["env"] == env and r["group"] == group]
        cand = [r for r in cand if r["protocol"] == protocol]
        mine = [r for r in cand if r["method"] == ERTRL]
        others = [r for r in cand if r["method"] != ERTRL]
        if not mine or not others:
            continue
        best = max(others, key=lambda r: r[stat])
        out.append(
            {
                "env": env,
                "diversity": float(div),
                "ertrl": mine[0][stat],
                "best_other": best["method"],
                "best_other_value": best[stat],
                "gain": mine[0][stat] - best[stat],
            }
        )
    return out


def _pearson(grows: Sequence[Mapping]) -> tuple[float | None, str]:
    if len(grows) < 3:
        return (
            None,
            f"Pearson r needs at least 3 envs with both results and diversity (have {len(grows)}).",
        )
    x = np.array([g["diversity"] for g in grows])
    y = np.array([g["gain"] for g in grows])
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return None, "Pearson r is undefined: diversity or gain is constant across envs."
    from scipy.stats import pearsonr

    r, p = pearsonr(x, y)
    return float(r), f"Pearson r = {r:.3f} (p = {p:.3g}, n = {len(grows)} envs); paper: 0.85."


# --------------------------------------------------------------------------- figures


def _curve_figure(env: str, runs: Sequence[RunRecord], path: Path) -> Path | None:
    from .plots import (
        plot_learning_curves,
        plt,
    )  # plots selects the Agg backend before pyplot loads

    keys = []
    for r in runs:
        for point in r.metrics.get("curve") or []:
            keys.extend(k for k in point if k.endswith("/normalized"))
    keys = list(dict.fromkeys(keys))
    if not keys:
        return None
    splits = _ordered((k.split("/")[0] for k in keys), SPLIT_ORDER)
    protos = _ordered((k.split("/")[1] for k in keys if k.count("/") >= 2), PROTOCOL_ORDER)
    fig, axes = plt.subplots(
        len(splits), len(protos), figsize=(5 * len(protos), 3.4 * len(splits)), squeeze=False
    )
    for i, split in enumerate(splits):
        for j, proto in enumerate(protos):
            key = f"{split}/{proto}/normalized"
            curves = {}
            for method in _ordered(r.method for r in runs):
                series = []
                for r in (r for r in runs if r.method == method):
                    pts = {
                        int(p["step"]): float(p[key])
                        for p in r.metrics.get("curve") or []
                        if key in p and "step" in p and p[key] is not None
                    }
                    if pts:
                        series.append(pts)
                if series:
                    steps = sorted(set().union(*series))
                    vals = np.array([[s.get(t, np.nan) for t in steps] for s in series])
                    curves[method] = (steps, vals)
            plot_learning_curves(curves, ax=axes[i, j], title=f"{env}: {split} / {proto}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _zmap_figure(env: str, runs: Sequence[RunRecord], path: Path, method: str) -> Path | None:
    from .plots import plot_z_map, plt  # plots selects the Agg backend before pyplot loads

    picked = {}
    for r in runs:  # first run (suite order) of each method that has encodings
        enc_path = r.path / "encodings.npz" if r.path else None
        if r.method in picked or enc_path is None or not enc_path.is_file():
            continue
        enc = _load_npz(enc_path)
        if "z_offline" in enc or "z_online" in enc:
            picked[r.method] = (r, enc)
    if not picked:
        return None
    fig, axes = plt.subplots(1, len(picked), figsize=(5.5 * len(picked), 4.5), squeeze=False)
    for ax, (name, (r, enc)) in zip(axes[0], picked.items(), strict=True):
        param = enc.get("task_param")
        n_tasks = next(len(enc[k]) for k in ("z_offline", "z_online") if k in enc)
        if param is not None and np.asarray(param).reshape(n_tasks, -1).shape[1] == 1:
            colour, label = np.asarray(param, dtype=float).reshape(-1), "task parameter"
        else:
            colour = np.asarray(enc.get("task_index", np.arange(n_tasks)), dtype=float)
            label = "task index"
        zs, cs, srcs = [], [], []
        for src in ("offline", "online"):
            z = enc.get(f"z_{src}")
            if z is None:
                continue
            z = np.asarray(z, dtype=float)  # [T, R, L]
            zs.append(z.reshape(-1, z.shape[-1]))
            cs.append(np.repeat(colour, z.shape[1]))
            srcs.extend([src] * (z.shape[0] * z.shape[1]))
        plot_z_map(
            np.concatenate(zs), np.concatenate(cs), np.array(srcs), method=method, ax=ax,
            title=f"{env} / {name} (seed {r.seed})", colorbar_label=label,
        )  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- report object


@dataclass
class Report:
    """What ``write_report`` produced; ``rows`` is the main table for the CLI."""

    suite: str
    path: Path
    rows: list[dict]
    columns: tuple[str, ...] = MAIN_COLUMNS
    probe_rows: list[dict] = field(default_factory=list)
    gain_rows: list[dict] = field(default_factory=list)
    pearson_r: float | None = None
    pearson_note: str = ""
    problems: list[RunRecord] = field(default_factory=list)
    n_expected: int = 0
    n_done: int = 0
    tables: list[Path] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def rich_table(self, protocol: str | None = None):
        """The main table as a ``rich.table.Table`` (optionally one protocol only)."""
        from rich.table import Table

        table = Table(title=f"{self.suite}: normalized return (IQM [95% CI] | mean ± std)")
        for col in ("env", "method", "group", "protocol", "seeds", "IQM [95% CI]", "mean ± std"):
            table.add_column(col, justify="right" if col in ("seeds",) else "left")
        for r in self.rows:
            if protocol is None or r["protocol"] == protocol:
                table.add_row(
                    r["env"], r["method"], r["group"], r["protocol"],
                    f"{r['n_seeds']}/{r['n_expected']}", _fmt_ci(r), _fmt_ms(r),
                )  # fmt: skip
        return table


# --------------------------------------------------------------------------- writing


def _f(x: float, digits: int = 1) -> str:
    return "nan" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _fmt_ci(r: Mapping) -> str:
    return f"{_f(r['iqm'])} [{_f(r['ci_low'])}, {_f(r['ci_high'])}]"


def _fmt_ms(r: Mapping) -> str:
    return f"{_f(r['mean'])} ± {_f(r['std'])}"


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _md_table(header: Sequence[str], body: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines.extend("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in body)
    return lines + [""]


def _write_csv(path: Path, rows: Sequence[Mapping], columns: Sequence[str]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _returns_markdown(rows: Sequence[Mapping]) -> list[str]:
    lines: list[str] = []
    for env in _ordered(r["env"] for r in rows):
        for proto in _ordered((r["protocol"] for r in rows if r["env"] == env), PROTOCOL_ORDER):
            sub = [r for r in rows if r["env"] == env and r["protocol"] == proto]
            groups = [g for g in SPLIT_GROUPS if any(r["group"] == g for r in sub)]
            best = {g: max(r["iqm"] for r in sub if r["group"] == g) for g in groups}
            lines.append(f"### {env} — {proto} context")
            lines.append("")
            lines.append("IQM over seeds x tasks [95% stratified-bootstrap CI] (best IQM in bold):")
            lines.append("")
            body_ci, body_ms = [], []
            for method in _ordered(r["method"] for r in sub):
                cells = {r["group"]: r for r in sub if r["method"] == method}
                seeds = max(f"{c['n_seeds']}/{c['n_expected']}" for c in cells.values())
                ci = []
                for g in groups:
                    c = cells.get(g)
                    text = _fmt_ci(c) if c else "—"
                    ci.append(f"**{text}**" if c and c["iqm"] == best[g] and len(sub) > 1 else text)
                body_ci.append([method, seeds, *ci])
                body_ms.append(
                    [method, seeds, *(_fmt_ms(cells[g]) if g in cells else "—" for g in groups)]
                )
            lines += _md_table(["method", "seeds", *groups], body_ci)
            lines.append("Mean ± std over seeds of the per-seed mean over tasks (paper-style):")
            lines.append("")
            lines += _md_table(["method", "seeds", *groups], body_ms)
    return lines


def write_report(
    results_dir: str | Path,
    *,
    diversity: Mapping[str, float] | str | Path | None = None,
    reps: int = 2000,
    confidence: float = 0.95,
    random_state: int = 0,
    probe: bool = True,
    probe_max_samples: int | None = 2000,
    figures: bool = True,
    zmap_method: str = "pca",
    gain_protocol: str = "offline",
    gain_stat: str = "mean",
) -> Report:
    """Analyse ``results_dir`` (one suite folder) and write report.md, CSVs and PNGs into it.

    ``diversity`` ({env: avg W2}, or a JSON path) overrides ``<suite>/diversity.json``. The gain
    is ER-TRL's OOD ``gain_stat`` ("mean" as in the paper's tables, or "iqm") under
    ``gain_protocol`` minus the best other method's.
    """
    suite_dir = Path(results_dir)
    suite_dir.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    name, runs = load_runs(suite_dir)
    done = [r for r in runs if r.done]
    problems = [r for r in runs if not r.done]

    rows = return_rows(
        done, reps=reps, confidence=confidence, random_state=random_state, notes=notes
    )
    # n_expected counts every expected run of the env x method, not just the finished ones.
    for row in rows:
        row["n_expected"] = sum(
            1 for r in runs if r.env == row["env"] and r.method == row["method"]
        )

    prows = probe_rows(done, max_samples=probe_max_samples, notes=notes) if probe else []

    try:
        div = _load_diversity(suite_dir, diversity)
    except Exception as exc:
        div = None
        notes.append(f"diversity ignored: {type(exc).__name__}: {exc}")
    grows = gain_rows(rows, div, protocol=gain_protocol, stat=gain_stat) if div else []
    r_value, r_note = _pearson(grows) if div else (None, "")

    report = Report(
        suite=name, path=suite_dir / "report.md", rows=rows, probe_rows=prows, gain_rows=grows,
        pearson_r=r_value, pearson_note=r_note, problems=problems, n_expected=len(runs),
        n_done=len(done), notes=notes,
    )  # fmt: skip
    report.tables.append(_write_csv(suite_dir / "returns.csv", rows, MAIN_COLUMNS))
    if prows:
        cols = ("env", "method", "variant", "model", "n_seeds", "rmse_mean", "rmse_std")
        report.tables.append(_write_csv(suite_dir / "probe.csv", prows, cols))
    if grows:
        cols = ("env", "diversity", "ertrl", "best_other", "best_other_value", "gain")
        report.tables.append(_write_csv(suite_dir / "gain_vs_diversity.csv", grows, cols))
    report.tables.append(
        _write_csv(
            suite_dir / "missing_runs.csv",
            [vars(p) for p in problems],
            ("run_id", "method", "env", "seed", "status", "error"),
        )
    )

    curve_figs, zmap_figs = {}, {}
    if figures:
        for env in _ordered(r.env for r in done):
            env_runs = [r for r in done if r.env == env]
            slug = "".join(c if c.isalnum() or c in "-_" else "_" for c in env)
            for kind, fn, store in (
                ("curves", lambda p, er=env_runs, e=env: _curve_figure(e, er, p), curve_figs),
                ("zmap", lambda p, er=env_runs, e=env: _zmap_figure(e, er, p, zmap_method), zmap_figs),
            ):  # fmt: skip
                try:
                    out = fn(suite_dir / f"{kind}_{slug}.png")
                except Exception as exc:
                    notes.append(f"{kind} figure for {env} failed: {type(exc).__name__}: {exc}")
                    out = None
                if out is not None:
                    store[env] = out
                    report.figures.append(out)
        if grows:
            from .plots import plot_gain_vs_diversity

            try:
                out = suite_dir / "gain_vs_diversity.png"
                plot_gain_vs_diversity(
                    [g["diversity"] for g in grows], [g["gain"] for g in grows],
                    [g["env"] for g in grows], path=out,
                )  # fmt: skip
                report.figures.append(out)
            except Exception as exc:
                notes.append(f"gain-vs-diversity figure failed: {type(exc).__name__}: {exc}")

    report.path.write_text(_render(report, curve_figs, zmap_figs, div), encoding="utf-8")
    return report


def _render(report: Report, curve_figs, zmap_figs, diversity) -> str:
    lines = [
        f"# Results: {report.suite}",
        "",
        f"{report.n_done} of {report.n_expected} runs finished; "
        f"{sum(p.status == 'failed' for p in report.problems)} failed, "
        f"{sum(p.status == 'missing' for p in report.problems)} missing or unfinished.",
        "",
        "Normalized return = 100 (R - R_min) / (R_max - R_min) per task (PAPER.md). Split groups: "
        "IID = train (+ iid), OOD-moderate, OOD-extreme, OOD = moderate ∪ extreme. "
        "IQM = interquartile mean over all seeds x evaluation tasks, with a 95% stratified "
        "bootstrap CI (runs resampled within each task, rliable's method).",
        "",
        "## Normalized return",
        "",
    ]
    if report.rows:
        lines += _returns_markdown(report.rows)
    else:
        lines += ["No finished runs yet.", ""]
    if curve_figs:
        lines += ["## Learning curves", ""]
        lines += [f"![{env} learning curves]({p.name})" for env, p in curve_figs.items()] + [""]

    lines += ["## Task-representation probe (RMSE to the task parameter, lower is better)", ""]
    if report.probe_rows:
        lines.append(
            "within = train + moderate tasks pooled, 80/20 split by sample, mean of 5 resamples; "
            "heldout = fit on train tasks, evaluated on moderate/iid tasks. Mean ± std over seeds."
        )
        lines.append("")
        body = [
            [p["env"], p["method"], p["variant"], p["model"], p["n_seeds"],
             f"{p['rmse_mean']:.4f} ± {p['rmse_std']:.4f}"]
            for p in report.probe_rows
        ]  # fmt: skip
        lines += _md_table(["env", "method", "variant", "model", "seeds", "RMSE"], body)
    else:
        lines += ["No encodings.npz with per-transition encodings (zi) found.", ""]
    if zmap_figs:
        lines += ["### Context encodings (offline vs online context)", ""]
        lines += [f"![{env} z map]({p.name})" for env, p in zmap_figs.items()] + [""]

    lines += ["## ER-TRL gain vs behavior-policy diversity", ""]
    if diversity is None:
        lines += ["No diversity.json in the suite folder and none passed in.", ""]
    elif not report.gain_rows:
        lines += ["No env has both diversity and results for ER-TRL and another method.", ""]
    else:
        body = [
            [g["env"], f"{g['diversity']:.4f}", _f(g["ertrl"], 2),
             f"{g['best_other']} ({_f(g['best_other_value'], 2)})", _f(g["gain"], 2)]
            for g in report.gain_rows
        ]  # fmt: skip
        lines += _md_table(["env", "avg W2", "ertrl", "best other", "gain"], body)
        lines += [report.pearson_note, ""]
        if any(p.name == "gain_vs_diversity.png" for p in report.figures):
            lines += ["![gain vs diversity](gain_vs_diversity.png)", ""]

    lines += ["## Missing / failed runs", ""]
    if report.problems:
        body = [
            [p.run_id, p.method, p.env, p.seed, p.status, p.error[:300]] for p in report.problems
        ]
        lines += _md_table(["run_id", "method", "env", "seed", "status", "error"], body)
    else:
        lines += ["None: every expected run finished.", ""]
    if report.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in report.notes]
        lines.append("")
    return "\n".join(lines)
