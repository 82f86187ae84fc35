"""write_report on synthetic results folders laid out exactly as the runner writes them."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from ertrl_bench.analysis.report import load_runs, write_report
from ertrl_bench.analysis.stats import iqm, mean_std

SPLITS = {"train": range(10, 30), "moderate": [*range(5, 10), *range(30, 35)]}
SPLITS["extreme"] = [*range(0, 5), *range(35, 40)]


def _task_score(method: str, split: str, task: int, seed: int) -> float:
    """Deterministic synthetic normalized returns: ertrl is 10 points better out of distribution."""
    base = {"train": 80.0, "moderate": 60.0, "extreme": 40.0}[split]
    bonus = 10.0 if method == "ertrl" and split != "train" else 0.0
    return base + bonus + (task % 7) - 3 + 2.0 * seed


def _write_run(suite, run_id, method, env, seed, *, encodings=False, offset=0.0):
    run = suite / run_id
    run.mkdir(parents=True)
    spec = {"method": {"name": method}, "env": {"type": env}, "seed": seed}
    (run / "spec.json").write_text(json.dumps(spec))
    per_task, final = {}, {}
    for split, tasks in SPLITS.items():
        per_task[split], final[split] = {}, {}
        for proto, shift in (("offline", 0.0), ("online", -5.0)):
            scores = {
                f"task-{t:03d}": _task_score(method, split, t, seed) + shift + offset for t in tasks
            }
            per_task[split][proto] = {
                k: {"return": v - 100, "normalized": v} for k, v in scores.items()
            }
            mean = float(np.mean(list(scores.values())))
            final[split][proto] = {"return": mean - 100, "normalized": mean}
    curve = [
        {
            "step": s,
            **{f"{sp}/{p}/normalized": s / 10 + seed for sp in SPLITS for p in ("offline",)},
        }
        for s in range(0, 500, 100)
    ]
    metrics = {
        "run_id": run_id,
        "method": method,
        "env": env,
        "seed": seed,
        "final": final,
        "per_task": per_task,
        "curve": curve,
        "wall_s": 12.5,
    }
    (run / "metrics.json").write_text(json.dumps(metrics))
    if encodings:
        rng = np.random.default_rng(seed)
        idx = np.arange(40)
        split = np.array(["extreme"] * 40, dtype="<U8")
        for name, tasks in SPLITS.items():
            split[list(tasks)] = name
        param = np.linspace(0.1, 4.0, 40)[:, None]
        # A good encoder for ertrl (z = task parameter + noise), an uninformative one for focal.
        signal = param if method == "ertrl" else np.zeros_like(param)
        zi = np.concatenate(
            [np.repeat(signal[:, None, :], 30, axis=1), rng.normal(0, 0.05, (40, 30, 2))], -1
        )
        z_off = zi[:, :4, :]
        np.savez(
            run / "encodings.npz",
            task_index=idx,
            task_split=split,
            task_param=param,
            z_offline=z_off,
            z_online=z_off + 1.0,
            zi=zi,
        )


@pytest.fixture
def suite(tmp_path):
    suite = tmp_path / "results" / "demo"
    suite.mkdir(parents=True)
    runs = []
    for method in ("ertrl", "focal"):
        for seed in range(3):
            run_id = f"point_robot-{method}-s{seed}"
            runs.append({"run_id": run_id, "method": method, "env": "point_robot", "seed": seed})
            _write_run(suite, run_id, method, "point_robot", seed, encodings=True)
    # One failed run, one that never started (no folder), one still running (no metrics.json).
    runs.append(
        {"run_id": "point_robot-ertrl-s3", "method": "ertrl", "env": "point_robot", "seed": 3}
    )
    (suite / "point_robot-ertrl-s3").mkdir()
    (suite / "point_robot-ertrl-s3" / "failed.json").write_text(
        json.dumps({"error": "RuntimeError: CUDA out of memory", "traceback": "Traceback ..."})
    )
    runs.append(
        {"run_id": "point_robot-focal-s3", "method": "focal", "env": "point_robot", "seed": 3}
    )
    runs.append(
        {"run_id": "point_robot-focal-s4", "method": "focal", "env": "point_robot", "seed": 4}
    )
    (suite / "point_robot-focal-s4").mkdir()
    (suite / "point_robot-focal-s4" / "log.jsonl").write_text("{}\n")
    (suite / "suite.json").write_text(json.dumps({"suite": "demo", "runs": runs}))
    return suite


def test_load_runs_classifies_every_expected_run(suite):
    name, runs = load_runs(suite)
    assert name == "demo"
    status = {r.run_id: (r.status, r.error) for r in runs}
    assert len(runs) == 9
    assert sum(s == "done" for s, _ in status.values()) == 6
    assert status["point_robot-ertrl-s3"] == ("failed", "RuntimeError: CUDA out of memory")
    assert status["point_robot-focal-s3"] == ("missing", "no run folder")
    assert status["point_robot-focal-s4"][0] == "missing"
    assert "no metrics.json" in status["point_robot-focal-s4"][1]


def test_write_report_renders_tables_missing_runs_and_figures(suite):
    report = write_report(suite, reps=500)
    md = (suite / "report.md").read_text()
    assert report.path == suite / "report.md"

    # Main table: 2 methods x 4 split groups x 2 protocols, values checked against the stats.
    assert len(report.rows) == 16
    row = next(
        r
        for r in report.rows
        if (r["method"], r["group"], r["protocol"]) == ("ertrl", "OOD-moderate", "offline")
    )
    scores = np.array(
        [[_task_score("ertrl", "moderate", t, s) for t in SPLITS["moderate"]] for s in range(3)]
    )
    assert row["n_seeds"] == 3 and row["n_expected"] == 4 and row["n_tasks"] == 10
    assert row["iqm"] == pytest.approx(iqm(scores))
    assert (row["mean"], row["std"]) == pytest.approx(mean_std(scores))
    assert row["ci_low"] <= row["iqm"] <= row["ci_high"]
    ood = next(
        r
        for r in report.rows
        if (r["method"], r["group"], r["protocol"]) == ("focal", "OOD", "online")
    )
    assert ood["n_tasks"] == 20 and ood["n_expected"] == 5
    # IID is the train split here (no iid split present).
    iid = next(r for r in report.rows if r["group"] == "IID" and r["method"] == "focal")
    assert iid["n_tasks"] == 20

    assert "## Normalized return" in md
    assert "| method | seeds | IID | OOD-moderate | OOD-extreme | OOD |" in md
    expected_cell = f"{row['iqm']:.1f} [{row['ci_low']:.1f}, {row['ci_high']:.1f}]"
    assert expected_cell in md
    assert f"{row['mean']:.1f} ± {row['std']:.1f}" in md
    assert "3/4" in md and "3/5" in md

    # Missing / failed section lists all three problems with their error.
    section = md.split("## Missing / failed runs", 1)[1]
    assert "point_robot-ertrl-s3" in section and "CUDA out of memory" in section
    assert "point_robot-focal-s3" in section and "no run folder" in section
    assert "point_robot-focal-s4" in section
    assert "6 of 9 runs finished; 1 failed, 2 missing" in md

    # Probe: ertrl's encoder carries the parameter, focal's does not.
    probe = {(p["method"], p["variant"], p["model"]): p for p in report.probe_rows}
    assert probe[("ertrl", "within", "linear")]["rmse_mean"] < 0.05
    assert probe[("focal", "within", "linear")]["rmse_mean"] > 0.5
    assert probe[("ertrl", "heldout", "linear")]["n_seeds"] == 3
    assert "Task-representation probe" in md and "heldout" in md

    # No diversity.json -> said so, no gain table.
    assert "No diversity.json" in md and report.gain_rows == []

    # Files: CSVs and PNGs.
    with open(suite / "returns.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 16
    for png in ("curves_point_robot.png", "zmap_point_robot.png"):
        path = suite / png
        assert path in report.figures
        assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 5000
        assert f"]({png})" in md
    assert (suite / "probe.csv").is_file() and (suite / "missing_runs.csv").is_file()
    assert report.rich_table().row_count == 16


def test_gain_vs_diversity_with_pearson(tmp_path):
    suite = tmp_path / "multi"
    runs = []
    diversity = {"env_a": 0.1, "env_b": 0.4, "env_c": 0.9}
    for i, env in enumerate(diversity):
        for method in ("ertrl", "csro", "focal"):
            # ertrl's advantage grows with the env's diversity; csro is the best baseline.
            offset = {"ertrl": 3.0 * i, "csro": 1.0, "focal": 0.0}[method]
            for seed in range(2):
                run_id = f"{env}-{method}-{seed}"
                runs.append({"run_id": run_id, "method": method, "env": env, "seed": seed})
                _write_run(suite, run_id, method, env, seed, offset=offset)
    (suite / "suite.json").write_text(json.dumps({"suite": "multi", "runs": runs}))
    (suite / "diversity.json").write_text(json.dumps(diversity))

    report = write_report(suite, reps=200, probe=False)
    gains = {g["env"]: g for g in report.gain_rows}
    # OOD mean: ertrl has +10 (synthetic bonus) + 3i; csro +1.
    assert gains["env_a"]["best_other"] == "csro"
    assert [gains[e]["gain"] for e in diversity] == pytest.approx([9.0, 12.0, 15.0])
    assert report.pearson_r == pytest.approx(np.corrcoef([0.1, 0.4, 0.9], [9, 12, 15])[0, 1])
    md = report.path.read_text()
    assert "Pearson r = " in md and "gain_vs_diversity.png" in md
    assert (suite / "gain_vs_diversity.png").is_file()
    assert "None: every expected run finished." in md

    # Passing diversity for only two envs: r is not computed and the report says why.
    report = write_report(suite, reps=200, probe=False, figures=False, diversity=dict(
        list(diversity.items())[:2]))  # fmt: skip
    assert report.pearson_r is None
    assert "needs at least 3 envs" in report.path.read_text()


def test_write_report_survives_empty_and_broken_results(tmp_path):
    suite = tmp_path / "broken"
    (suite / "r1").mkdir(parents=True)
    (suite / "r1" / "metrics.json").write_text("{not json")
    (suite / "r2").mkdir()
    (suite / "r2" / "failed.json").write_text("")
    (suite / "suite.json").write_text(
        json.dumps(
            {
                "suite": "broken",
                "runs": [
                    {"run_id": "r1", "method": "ertrl", "env": "cheetah_vel", "seed": 0},
                    {"run_id": "r2", "method": "ertrl", "env": "cheetah_vel", "seed": 1},
                ],
            }
        )
    )
    report = write_report(suite)
    md = report.path.read_text()
    assert report.rows == []
    assert "No finished runs yet." in md
    assert "unreadable metrics.json" in md and "unreadable failed.json" in md
