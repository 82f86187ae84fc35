"""write_report on results folders laid out exactly as the runner writes them.

Synthetic metrics files follow ertrl_bench/results_schema.py (the runner validates against the
same model; test_report_on_a_real_tiny_run checks that end to end).
"""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
from scipy import stats as sps

from ertrl_bench.analysis.report import load_runs, write_report
from ertrl_bench.errors import ErtrlError
from ertrl_bench.measures.stats import iqm, mean_std

SPLITS = {
    "train": range(10, 30),
    "moderate": [*range(5, 10), *range(30, 35)],
    "extreme": [*range(0, 5), *range(35, 40)],
    "iid": range(40, 44),
}
PROTOCOLS = {"offline": 0.0, "online": -5.0, "non_prior": -2.0}
BASE = {"train": 80.0, "moderate": 60.0, "extreme": 40.0, "iid": 70.0}


def _task_score(method: str, split: str, task: int, seed: int) -> float:
    """Deterministic synthetic normalized returns: ertrl is 10 points better out of distribution."""
    bonus = 10.0 if method == "ertrl" and split != "train" else 0.0
    return BASE[split] + bonus + (task % 7) - 3 + 2.0 * seed


def _curve_value(method: str, split: str, proto: str, step: int, seed: int) -> float:
    return step / 10 + 3.0 * seed + PROTOCOLS[proto] + (5.0 if method == "ertrl" else 0.0)


def _write_run(
    suite, run_id, method, env, seed, *, encodings=False, offset=0.0, probe=None, score=None,
    curve=True, diversity=None,
):  # fmt: skip
    """A run folder like the runner's; ``score(split, task, proto)`` overrides a task's value."""
    run = suite / run_id
    run.mkdir(parents=True)
    spec = {"method": {"name": method}, "env": {"type": env}, "seed": seed}
    (run / "spec.json").write_text(json.dumps(spec))
    per_task, final = {}, {}
    for split, tasks in SPLITS.items():
        per_task[split], final[split] = {}, {}
        for proto, shift in PROTOCOLS.items():
            scores = {}
            for t in tasks:
                v = _task_score(method, split, t, seed) + shift + offset
                scores[f"task-{t:03d}"] = score(split, t, proto, v) if score else v
            per_task[split][proto] = {
                k: {"return": -100.0 if v is None else v - 100, "normalized": v}
                for k, v in scores.items()
            }
            vals = [v for v in scores.values() if v is not None]
            mean = float(np.mean(vals)) if vals else None
            final[split][proto] = {"return": 0.0, "normalized": mean}
    curve = [
        {
            "step": s,
            **{
                f"{sp}/{p}/normalized": _curve_value(method, sp, p, s, seed)
                for sp in SPLITS
                for p in PROTOCOLS
            },
        }
        for s in range(0, 500, 100)
        if curve
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
        "timing_s": {
            "data": 1.0,
            "setup": 0.5,
            "train": 8.0 + seed + (method == "ertrl"),
            "eval": 3.0,
            "probe": 2.0,
            "total": 14.5 + seed,
        },
        "dataset": "/tmp/data",
    }
    if probe is not None:
        metrics["probe"] = probe
    if diversity is not None:
        metrics["diversity"] = diversity
    (run / "metrics.json").write_text(json.dumps(metrics))
    if encodings:
        rng = np.random.default_rng(seed)
        split = np.array(["extreme"] * 40, dtype="<U8")
        for name, tasks in SPLITS.items():
            if name != "iid":
                split[list(tasks)] = name
        param = np.linspace(0.1, 4.0, 40)[:, None]
        # A good encoder for ertrl (z = task parameter + noise), an uninformative one for focal.
        signal = param if method == "ertrl" else np.zeros_like(param)
        zi = np.concatenate(
            [np.repeat(signal[:, None, :], 30, axis=1), rng.normal(0, 0.05, (40, 30, 2))], -1
        )
        z = zi[:, :4, :]
        np.savez(
            run / "encodings.npz", task_index=np.arange(40), task_split=split, task_param=param,
            z_offline=z, z_online=z + 1.0, z_non_prior=z - 1.0,
            zi=zi,  # as older runs kept it: the report used to fit a probe on it, now never
        )  # fmt: skip


def _index(suite, runs, name="demo"):
    (suite / "suite.json").write_text(json.dumps({"suite": name, "runs": runs}))


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
    _index(suite, runs)
    return suite


def _scores(method, split, proto, seeds=range(3)):
    return np.array(
        [
            [_task_score(method, split, t, s) + PROTOCOLS[proto] for t in SPLITS[split]]
            for s in seeds
        ]
    )


def _row(report, method, split, proto):
    return next(
        r for r in report.rows if (r["method"], r["split"], r["protocol"]) == (method, split, proto)
    )


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
    done = next(r for r in runs if r.done)
    assert done.metrics.protocols() == ["offline", "online", "non_prior"]


def test_report_uses_paper_split_names_and_every_protocol(suite):
    report = write_report(suite, reps=500)
    md = (suite / "report.md").read_text()
    assert report.path == suite / "report.md"

    # 2 methods x 4 splits x 3 protocols; each split its own row, never pooled.
    assert len(report.rows) == 24
    assert {r["protocol"] for r in report.rows} == {"offline", "online", "non_prior"}
    groups = {(r["split"], r["group"]) for r in report.rows}
    assert groups == {("train", "IID"), ("moderate", "OOD"), ("extreme", "extreme"), ("iid", "iid")}
    ood = _row(report, "ertrl", "moderate", "non_prior")
    scores = _scores("ertrl", "moderate", "non_prior")
    assert ood["n_seeds"] == 3 and ood["n_expected"] == 4 and ood["n_tasks"] == 10
    assert ood["iqm"] == pytest.approx(iqm(scores))
    assert (ood["mean"], ood["std"]) == pytest.approx(mean_std(scores))
    assert ood["ci_low"] <= ood["iqm"] <= ood["ci_high"]
    iid = _row(report, "focal", "train", "online")
    assert iid["group"] == "IID" and iid["n_tasks"] == 20 and iid["n_expected"] == 5
    assert iid["mean"] == pytest.approx(mean_std(_scores("focal", "train", "online"))[0])
    assert _row(report, "focal", "iid", "offline")["n_tasks"] == 4

    # Summary per env: protocol columns for IID and OOD; one section per protocol.
    assert (
        "| method | IID offline | IID online | IID non_prior | OOD offline | OOD online "
        "| OOD non_prior |" in md
    )
    for proto in PROTOCOLS:
        assert f"### point_robot — {proto} context" in md
    assert (
        "| method | seeds | IID (train) | OOD (moderate) | extreme | iid (ours, off-grid) |" in md
    )
    assert f"{ood['iqm']:.1f} [{ood['ci_low']:.1f}, {ood['ci_high']:.1f}]" in md
    assert f"{ood['mean']:.1f} ± {ood['std']:.1f}" in md
    assert "3/4" in md and "3/5" in md
    assert "nan" not in md.lower()

    # Missing / failed section lists all three problems with their error.
    section = md.split("## Missing / failed runs", 1)[1]
    assert "point_robot-ertrl-s3" in section and "CUDA out of memory" in section
    assert "point_robot-focal-s3" in section and "no run folder" in section
    assert "point_robot-focal-s4" in section
    assert "6 of 9 runs finished; 1 failed, 2 missing" in md

    # Runs without a recorded probe or diversity are named as such: the report fits nothing
    # and never opens the dataset cache.
    assert report.probe_rows == [] and "the report fits none" in md
    assert "No probe recorded in 6 finished run(s)" in md and "point_robot-focal-s2" in md
    assert report.gain_rows == [] and report.unrecorded_diversity == ["point_robot"]
    assert "Behavior diversity not recorded for point_robot" in md
    assert "`ertrl-bench datasets diversity`" in md

    with open(suite / "returns.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 24 and {r["group"] for r in rows} == {"IID", "OOD", "extreme", "iid"}
    for png in ("curves_point_robot.png", "zmap_point_robot.png"):
        path = suite / png
        assert path in report.figures
        assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 5000
        assert f"]({png})" in md
    assert not (suite / "probe.csv").exists() and (suite / "missing_runs.csv").is_file()
    assert report.rich_table().row_count == 24
    assert report.rich_table("non_prior").row_count == 8


def test_welch_ttest_per_family_on_train_and_moderate(suite):
    report = write_report(suite, reps=200, figures=False)
    rows = {(t["split"], t["protocol"]): t for t in report.ttest_rows}
    # train and moderate only (the paper's t-test), every protocol, ertrl vs focal.
    assert set(rows) == {(s, p) for s in ("train", "moderate") for p in PROTOCOLS}
    t = rows[("moderate", "non_prior")]
    a = _scores("ertrl", "moderate", "non_prior").mean(axis=1)
    b = _scores("focal", "moderate", "non_prior").mean(axis=1)
    ref = sps.ttest_ind(a, b, equal_var=False)
    assert (t["method"], t["baseline"], t["group"]) == ("ertrl", "focal", "OOD")
    assert t["welch_t"] == pytest.approx(ref.statistic)
    assert t["welch_p"] == pytest.approx(ref.pvalue)
    assert t["diff"] == pytest.approx(10.0)  # ertrl's synthetic OOD bonus
    # Same seeds, same task offsets on train: no difference, p = 1.
    assert rows[("train", "offline")]["diff"] == pytest.approx(0.0)
    assert rows[("train", "offline")]["welch_p"] == pytest.approx(1.0)
    md = report.path.read_text()
    assert "ertrl vs each other method" in md
    assert "| OOD (moderate) | focal | 3 vs 3 | +10.0 [" in md
    with open(suite / "ttest.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 6


def test_learning_curves_mean_and_ci_over_seeds_for_every_protocol(suite):
    report = write_report(suite, reps=200, figures=False)
    with open(suite / "curves.csv") as fh:
        rows = list(csv.DictReader(fh))
    # 2 methods x 4 splits x 3 protocols x 5 steps.
    assert len(rows) == 120
    assert {r["protocol"] for r in rows} == set(PROTOCOLS)
    r = next(
        r
        for r in rows
        if (r["method"], r["split"], r["protocol"], r["step"])
        == ("ertrl", "moderate", "online", "300")
    )
    vals = [_curve_value("ertrl", "moderate", "online", 300, s) for s in range(3)]
    low, high = sps.t.interval(0.95, 2, loc=np.mean(vals), scale=sps.sem(vals))
    assert int(r["n_seeds"]) == 3
    assert float(r["mean"]) == pytest.approx(np.mean(vals))
    assert (float(r["ci_low"]), float(r["ci_high"])) == pytest.approx((low, high))
    assert "curves.csv" in report.path.read_text()


def test_cost_table_averages_each_phase_per_method(suite):
    report = write_report(suite, reps=200, figures=False)
    with open(suite / "cost.csv") as fh:
        rows = {r["method"]: r for r in csv.DictReader(fh)}
    assert set(rows) == {"ertrl", "focal"}  # finished runs only
    assert int(rows["ertrl"]["n_runs"]) == 3
    assert float(rows["ertrl"]["train_s"]) == pytest.approx(10.0)  # 8 + mean(0, 1, 2) + 1
    assert float(rows["focal"]["train_s"]) == pytest.approx(9.0)
    assert float(rows["focal"]["total_s"]) == pytest.approx(15.5)
    assert float(rows["focal"]["wall_s"]) == pytest.approx(12.5)
    text = report.path.read_text()
    assert "## Cost of a run" in text and "| point_robot | ertrl | 3 | 1.0 | 0.5 | 10.0 |" in text
    assert float(rows["focal"]["seed_group"]) == 1.0  # trained alone: its own clock
    assert float(rows["focal"]["per_run_s"]) == pytest.approx(15.5)


def test_a_seed_group_shares_its_clock_among_its_runs(suite):
    """Runs trained as one seed group of K record the group's clock: the cost table says K
    and gives each run its share, total / K."""
    for path in suite.glob("point_robot-focal-*/metrics.json"):
        metrics = json.loads(path.read_text())
        metrics["seed_group"] = 3
        path.write_text(json.dumps(metrics))
    write_report(suite, reps=50, figures=False)
    with open(suite / "cost.csv") as fh:
        rows = {r["method"]: r for r in csv.DictReader(fh)}
    assert float(rows["focal"]["seed_group"]) == 3.0
    assert float(rows["focal"]["per_run_s"]) == pytest.approx(15.5 / 3)
    assert float(rows["focal"]["total_s"]) == pytest.approx(15.5)  # the clock as recorded
    assert float(rows["ertrl"]["per_run_s"]) == pytest.approx(float(rows["ertrl"]["total_s"]))


def test_curve_figure_has_a_panel_per_split_and_protocol(suite):
    from ertrl_bench.analysis.figures import build_curve_figure, curve_figure
    from ertrl_bench.analysis.plots import plt

    runs = [r for r in load_runs(suite)[1] if r.done]
    fig = build_curve_figure("point_robot", runs)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[:3] == [f"point_robot: IID (train) / {p}" for p in PROTOCOLS]
    assert len(titles) == 12 and "point_robot: OOD (moderate) / non_prior" in titles
    assert "point_robot: extreme / online" in titles and "point_robot: iid / offline" in titles
    ax = next(a for a in fig.axes if a.get_title() == "point_robot: OOD (moderate) / online")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["ertrl (n=3)", "focal (n=3)"]
    line = ax.get_lines()[0]  # ertrl's mean over seeds at every step
    expected = [np.mean([_curve_value("ertrl", "moderate", "online", s, k) for k in range(3)])
                for s in range(0, 500, 100)]  # fmt: skip
    assert list(line.get_xdata()) == [0, 100, 200, 300, 400]
    assert list(line.get_ydata()) == pytest.approx(expected)
    plt.close(fig)
    before = set(plt.get_fignums())
    out = curve_figure("point_robot", runs, suite / "c.png")
    assert out.read_bytes()[:4] == b"\x89PNG" and set(plt.get_fignums()) == before


def test_bad_metrics_files_are_named_counted_and_skipped(tmp_path):
    suite = tmp_path / "bad"
    suite.mkdir()
    runs = []
    for seed in range(2):
        rid = f"ok-{seed}"
        runs.append({"run_id": rid, "method": "ertrl", "env": "point_robot", "seed": seed})
        _write_run(suite, rid, "ertrl", "point_robot", seed)
    bad = {
        "json": "{not json",
        "list": "[1, 2]",
        "shape": json.dumps({"run_id": "x", "method": "m", "env": "e", "seed": 0, "final": [1]}),
        "curve": json.dumps(
            {"run_id": "x", "method": "m", "env": "e", "seed": 0, "curve": [{"step": 1, "a/b/normalized": "high"}]}
        ),
    }  # fmt: skip
    for name, text in bad.items():
        (suite / name).mkdir()
        (suite / name / "metrics.json").write_text(text)
        runs.append({"run_id": name, "method": "ertrl", "env": "point_robot", "seed": 9})
    _index(suite, runs, "bad")
    report = write_report(suite, reps=100, figures=False)
    assert len(report.warnings) == 4
    for name in bad:
        assert any(str(suite / name / "metrics.json") in w for w in report.warnings)
    assert any("not valid JSON" in w for w in report.warnings)
    assert any("final" in w and "wrong shape" in w for w in report.warnings)
    assert any("curve.0" in w for w in report.warnings)
    md = report.path.read_text()
    assert "**4 warning(s)**" in md and "## Warnings" in md
    assert "2 of 6 runs finished" in md and "4 with unreadable results" in md
    assert {p.status for p in report.problems} == {"invalid"}
    assert _row(report, "ertrl", "moderate", "offline")["n_seeds"] == 2


def test_nan_scores_are_missing_never_printed_and_all_nan_runs_listed(tmp_path):
    suite = tmp_path / "nantest"
    suite.mkdir()
    runs = []

    def some_nan(split, task, proto, v):  # two moderate tasks NaN, one degenerate (None)
        if split == "moderate" and task in (5, 6):
            return float("nan")
        if split == "train" and task == 12:
            return None
        return v

    for method in ("ertrl", "focal"):
        for seed in range(2):
            rid = f"{method}-{seed}"
            runs.append({"run_id": rid, "method": method, "env": "point_robot", "seed": seed})
            _write_run(suite, rid, method, "point_robot", seed, score=some_nan)
    runs.append({"run_id": "allnan", "method": "focal", "env": "point_robot", "seed": 7})
    _write_run(suite, "allnan", "focal", "point_robot", 7, score=lambda *a: float("nan"))
    _index(suite, runs, "nantest")
    assert "NaN" in (suite / "allnan" / "metrics.json").read_text()

    report = write_report(suite, reps=100, figures=False)
    md = report.path.read_text()
    assert re.search(r"nan \[|± nan|\| nan|\[nan|nan\]", md, re.IGNORECASE) is None
    row = _row(report, "ertrl", "moderate", "offline")
    assert row["n_tasks"] == 8 and np.isfinite(row["iqm"])  # NaN tasks left out
    assert _row(report, "focal", "train", "online")["n_tasks"] == 19
    # The all-NaN run is listed, not dropped.
    allnan = next(p for p in report.problems if p.run_id == "allnan")
    assert allnan.status == "no scores"
    assert "allnan" in md.split("## Missing / failed runs", 1)[1]
    assert "1 without any finite score" in md
    # Tasks without a normalized score: counted per env (train/012 degenerate, moderate 5, 6
    # NaN, all 44 of the all-NaN run).
    section = md.split("## Tasks without a normalized score", 1)[1].split("##", 1)[0]
    assert "point_robot: 44 task(s) without a normalized score" in section
    assert "train/task-012 (offline, online, non_prior): 5 run(s)" in section
    assert "return finite in 12 of 15" in section  # 4 runs degenerate, the all-NaN run NaN
    assert "- ... and 24 more" in section  # 20 listed
    assert "moderate/task-005 (offline, online, non_prior): 5 run(s)" in section
    assert "train/task-010 (offline, online, non_prior): 1 run(s) [focal s7]; NaN return" in section
    assert report.missing["point_robot"]["train/online/task-012"][0].startswith("ertrl s0")
    with open(suite / "returns.csv") as fh:
        assert "nan" not in fh.read().lower()


def test_degenerate_ranges_only_counted(tmp_path):
    suite = tmp_path / "deg"
    suite.mkdir()

    def degenerate(split, task, proto, v):
        return None if (split, task) in {("train", 10), ("extreme", 0)} else v

    _write_run(suite, "r0", "ertrl", "point_robot", 0, score=degenerate)
    _index(suite, [{"run_id": "r0", "method": "ertrl", "env": "point_robot", "seed": 0}], "deg")
    report = write_report(suite, reps=50, figures=False)
    md = report.path.read_text()
    assert "point_robot: 2 task(s) without a normalized score in at least one run (6 task" in md
    assert "train/task-010 (offline, online, non_prior): 1 run(s) [ertrl s0]; degenerate" in md
    assert "R_min = R_max" in md
    assert _row(report, "ertrl", "extreme", "online")["n_tasks"] == 9


def test_probe_from_metrics_and_diversity_floor_and_gain_on_moderate(tmp_path):
    suite = tmp_path / "multi"
    runs = []
    diversity = {
        "env_a": {"value": 0.1, "floor": 0.01},
        "env_b": {"value": 0.4, "floor": 0.02},
        "env_c": 0.9,  # the format without a floor
    }
    for i, env in enumerate(diversity):
        for method in ("ertrl", "csro", "focal"):
            # ertrl's advantage grows with the env's diversity; csro is the best baseline.
            offset = {"ertrl": 3.0 * i, "csro": 1.0, "focal": 0.0}[method]
            for seed in range(2):
                run_id = f"{env}-{method}-{seed}"
                probe = {
                    "linear": {"rmse_mean": 0.2 + 0.1 * seed + i, "rmse_std": 0.01},
                    "svr": {"rmse_mean": 0.1 + 0.1 * seed, "rmse_std": 0.03},
                    "resamples": 5,
                }
                runs.append({"run_id": run_id, "method": method, "env": env, "seed": seed})
                # env_a's runs recorded their data's diversity (as the runner copies it from
                # the dataset manifest); env_b's and env_c's predate that: diversity.json
                recorded = {"w2": 0.1, "floor": 0.01, "samples": 4096} if i == 0 else None
                _write_run(
                    suite, run_id, method, env, seed, offset=offset, probe=probe, curve=False,
                    diversity=recorded,
                )  # fmt: skip
    _index(suite, runs, "multi")
    # what the runs recorded comes first: diversity.json's env_a value is not used
    (suite / "diversity.json").write_text(json.dumps({**diversity, "env_a": 0.7}))

    report = write_report(suite, reps=100)
    # Probe numbers come from metrics["probe"]: mean / std over seeds, resample std averaged.
    probe = {(p["env"], p["method"], p["model"]): p for p in report.probe_rows}
    assert {p["variant"] for p in report.probe_rows} == {"paper"}
    p = probe[("env_b", "ertrl", "linear")]
    assert p["n_seeds"] == 2 and p["rmse_mean"] == pytest.approx(1.25)
    assert p["rmse_std"] == pytest.approx(0.05) and p["resample_std"] == pytest.approx(0.01)

    # Gain on the moderate split (OOD) for every protocol: ertrl +10 (bonus) + 3i, csro +1.
    gains = {(g["env"], g["protocol"]): g for g in report.gain_rows}
    assert {pr for _, pr in gains} == set(PROTOCOLS)
    assert gains[("env_a", "offline")]["best_other"] == "csro"
    assert [gains[(e, "non_prior")]["gain"] for e in diversity] == pytest.approx([9.0, 12.0, 15.0])
    assert (
        gains[("env_a", "offline")]["floor"] == 0.01
        and gains[("env_c", "offline")]["floor"] is None
    )
    assert report.pearson_r == pytest.approx(np.corrcoef([0.1, 0.4, 0.9], [9, 12, 15])[0, 1])
    assert set(report.pearson) == set(PROTOCOLS)
    md = report.path.read_text()
    assert "| env | protocol | avg W2 | floor | ertrl | best other | gain |" in md
    assert (
        "| env_a | offline | 0.1000 | 0.0100 |" in md and "| env_c | offline | 0.9000 | — |" in md
    )
    assert "(OOD = moderate)" in md and "gain_vs_diversity.png" in md
    assert "- non_prior: Pearson r = " in md
    assert (suite / "gain_vs_diversity.png").is_file()
    assert "None: every expected run finished." in md

    # The train split on request: ertrl has no bonus there, so the gain is 3i - 1.
    report = write_report(suite, reps=50, figures=False, gain_split="train")
    gains = {g["env"]: g["gain"] for g in report.gain_rows if g["protocol"] == "online"}
    assert list(gains.values()) == pytest.approx([-1.0, 2.0, 5.0])
    assert "(IID = train)" in report.path.read_text()

    # Without diversity.json only env_a's runs recorded one: the others are named, with the
    # command that measures it; the report opens no dataset cache.
    (suite / "diversity.json").unlink()
    report = write_report(suite, reps=50, figures=False)
    assert {g["env"] for g in report.gain_rows} == {"env_a"}
    assert report.gain_rows[0]["diversity"] == 0.1
    assert report.unrecorded_diversity == ["env_b", "env_c"]
    md = report.path.read_text()
    assert "Behavior diversity not recorded for env_b, env_c" in md
    assert "`ertrl-bench datasets diversity`" in md

    # Runs of one env recorded different diversities (different datasets): named, first used.
    metrics_path = suite / "env_a-focal-1" / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics_path.write_text(json.dumps({**metrics, "diversity": {"w2": 0.3}}))
    report = write_report(suite, reps=50, figures=False)
    assert report.gain_rows[0]["diversity"] == 0.1
    assert any("env_a: runs recorded different behavior diversities" in w for w in report.warnings)

    # Diversity for only two envs: r is not computed and the report says why.
    two = dict(list(diversity.items())[:2])
    report = write_report(suite, reps=50, figures=False, diversity=two)
    assert report.pearson_r is None
    assert "needs at least 3 envs" in report.path.read_text()


def test_empty_broken_and_root_folders(tmp_path):
    suite = tmp_path / "results" / "broken"
    (suite / "r1").mkdir(parents=True)
    (suite / "r1" / "metrics.json").write_text("{not json")
    (suite / "r2").mkdir()
    (suite / "r2" / "failed.json").write_text("")
    _index(
        suite,
        [
            {"run_id": "r1", "method": "ertrl", "env": "cheetah_vel", "seed": 0},
            {"run_id": "r2", "method": "ertrl", "env": "cheetah_vel", "seed": 1},
        ],
        "broken",
    )
    report = write_report(suite)
    md = report.path.read_text()
    assert report.rows == []
    assert "No finished runs yet." in md
    assert "unreadable metrics.json" in md and "unreadable failed.json" in md

    empty = tmp_path / "results" / "empty"
    empty.mkdir()
    _index(empty, [], "empty")
    md = write_report(empty).path.read_text()
    assert "No runs found" in md and "every expected run finished" not in md

    # The results root holds suites: not a suite, and nothing written there.
    with pytest.raises(ErtrlError, match="results root holding suites \\(broken, empty\\)"):
        write_report(tmp_path / "results")
    assert not (tmp_path / "results" / "report.md").exists()
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ErtrlError, match="no suite results here"):
        write_report(tmp_path / "nothing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ErtrlError, match="a file, not a results folder"):
        write_report(tmp_path / "file")


def test_runs_without_a_probe_are_named_never_fitted(tmp_path):
    """The probe table holds what runs fitted; the others are named (the first 10, then a
    count), and no probe is fitted from their encodings."""
    from ertrl_bench.analysis.tables import probe_rows

    suite = tmp_path / "noprobe"
    runs = [{"run_id": f"r{i:02d}", "method": "focal", "env": "e", "seed": i} for i in range(12)]
    for r in runs:
        _write_run(suite, r["run_id"], "focal", "e", r["seed"], encodings=True, curve=False)
    _index(suite, runs)
    notes: list[str] = []
    assert probe_rows(load_runs(suite)[1], notes=notes) == []
    assert notes == [
        "No probe recorded in 12 finished run(s), left out of the probe table (the report does not"
        " fit one; rerun with eval.probe enabled to get it): r00, r01, r02, r03, r04, r05, r06,"
        " r07, r08, r09 and 2 more."
    ]


def synthetic_suite(path, name, methods, seeds=range(3), curve=True):
    """A suite folder of synthetic Point-Robot runs (``_write_run``), run ids ``<method>-<seed>``."""
    path.mkdir(parents=True)
    runs = []
    for method in methods:
        for seed in seeds:
            rid = f"{method}-{seed}"
            runs.append({"run_id": rid, "method": method, "env": "point_robot", "seed": seed})
            _write_run(path, rid, method, "point_robot", seed, curve=curve)
    _index(path, runs, name)
    return path


def _variant_suite(tmp_path, methods):
    return synthetic_suite(tmp_path / "results" / "on-iql", "on-iql", methods)


def test_a_study_without_ertrl_compares_with_its_only_ertrl_variant(tmp_path):
    """Every method on IQL (``ertrl-iql``, ``focal-iql``): without --reference the report and
    settle compare with ertrl-iql and say so, instead of leaving the study without tests."""
    from ertrl_bench.analysis.settling import settle

    suite = _variant_suite(tmp_path, ("ertrl-iql", "focal-iql"))
    report = write_report(suite, reps=50, figures=False)
    assert report.reference == "ertrl-iql"
    assert {(t["method"], t["baseline"]) for t in report.ttest_rows} == {("ertrl-iql", "focal-iql")}
    assert any(n.startswith("Reference method: ertrl-iql") for n in report.notes)
    explicit = write_report(suite, reps=50, figures=False, reference="focal-iql")
    assert explicit.reference == "focal-iql" and not any(
        "Reference method" in n for n in explicit.notes
    )
    settled = settle(suite, window=2)
    assert settled.reference == "ertrl-iql"
    assert any(n.startswith("Reference method: ertrl-iql") for n in settled.notes)


def test_two_ertrl_variants_and_no_ertrl_leave_the_choice_to_the_user(tmp_path):
    suite = _variant_suite(tmp_path, ("ertrl-iql", "ertrl-td3bc"))
    report = write_report(suite, reps=50, figures=False)
    assert report.reference == "ertrl" and not report.ttest_rows
    assert "No finished ertrl run: no t-test and no gain table." in report.notes
