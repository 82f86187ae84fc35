"""The report's gain vs a suite axis (``tables.axis_gain_rows``, ``figures.axis_gain_figure``).

A suite that varies the data quality, the number of training tasks or the backbone gets the
reference's gain over FOCAL at each value, with agent-bootstrap CIs, as ``gain_vs_axis.csv`` and
``gain_vs_<axis>.png``; methods named per value (focal-t5, focal-expert, focal-iql) count as
their plain method; a suite that varies none gets neither file.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from ertrl_bench.analysis.report import write_report
from ertrl_bench.analysis.tables import method_labels
from ertrl_bench.measures.stats import (
    difference_ci,
    difference_trend,
    fdr_adjust,
    min_detectable_effect,
    welch_ttest,
)

FOCAL = {"encoder": {"type": "mlp"}, "encoder_losses": [{"type": "dml"}]}
ERTRL = {"encoder": {"type": "mlp"}, "encoder_losses": [{"type": "dml"}, {"type": "gan_entropy"}]}
SPLITS = {"train": range(10, 14), "moderate": range(30, 34)}
# ertrl's true gain at each value
GAIN = {5: 2.0, 10: 4.0, 20: 6.0, 40: 8.0, "mixed": 6.0, "expert": -1.0, "brac": 6.0, "iql": 1.5}
# each backbone with its own parameters: what a method is (its label) leaves the backbone out
BACKBONES = {"brac": {"alpha_init": 50.0}, "iql": {"expectile": 0.7}}
DIVERSITY = {5: 0.2, 10: 0.3, 20: 0.5, 40: 0.6}  # each task count's dataset's recorded W2


def _score(method: str, value, split: str, task: int, seed: int) -> float:
    return 50.0 + (GAIN[value] if method == "ertrl" else 0.0) + task % 3 + 1.5 * seed


def _write_run(suite, method, value, seed, axis, name=None):
    """A finished run folder as the runner writes it (spec.json + metrics.json): each task
    count's runs trained on their own dataset folder, whose diversity they recorded."""
    plain = value in (20, "mixed", "brac")
    name = name or (method if plain else f"{method}-{'t' if axis == 'train_tasks' else ''}{value}")
    env = {"type": "point-robot", "params": {}}
    data = {}
    if axis == "train_tasks" and not plain:
        env["params"]["train_tasks"] = value
    if axis == "quality" and not plain:
        data["quality"] = value
    run_id = f"{name}-point-robot-s{seed}"
    spec = {"method": {"name": name, **(ERTRL if method == "ertrl" else FOCAL)}}
    if axis == "backbone":
        spec["method"]["backbone"] = {"type": value, "params": BACKBONES[value]}
    spec.update(env=env, data=data, seed=seed)
    per_task = {
        split: {
            "offline": {
                f"task-{t:03d}": {
                    "return": 0.0,
                    "normalized": _score(method, value, split, t, seed),
                }
                for t in tasks
            }
        }
        for split, tasks in SPLITS.items()
    }
    final = {s: {"offline": {"return": 0.0, "normalized": 50.0}} for s in SPLITS}
    metrics = {"run_id": run_id, "method": name, "env": "point-robot", "seed": seed}
    metrics.update(final=final, per_task=per_task)
    if axis == "train_tasks":
        metrics["train_tasks"] = value
        metrics["dataset"] = f"/home/u/.cache/ertrl-bench/datasets/point-robot/small-{value:03d}"
        metrics["diversity"] = {"w2": DIVERSITY[value], "floor": 0.01}
    (suite / run_id).mkdir(parents=True)
    (suite / run_id / "spec.json").write_text(json.dumps(spec))
    (suite / run_id / "metrics.json").write_text(json.dumps(metrics))
    return {"run_id": run_id, "method": name, "env": "point-robot", "seed": seed}


def _suite(tmp_path, axis: str, values) -> object:
    suite = tmp_path / axis
    suite.mkdir()
    runs = [
        _write_run(suite, m, v, seed, axis)
        for v in values
        for m in ("focal", "ertrl")
        for seed in range(3)
    ]
    (suite / "suite.json").write_text(json.dumps({"suite": axis, "runs": runs}))
    return suite


def _csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize(
    ("axis", "values"),
    [("train_tasks", [5, 20]), ("quality", ["expert", "mixed"]), ("backbone", ["brac", "iql"])],
)
def test_the_gain_over_focal_at_each_value_with_its_ci(tmp_path, axis, values):
    suite = _suite(tmp_path, axis, values)
    rep = write_report(suite, reps=200)
    rows = _csv(suite / "gain_vs_axis.csv")
    assert {r["axis"] for r in rows} == {axis}
    assert (suite / f"gain_vs_{axis}.png").is_file()
    assert f"![gain vs {axis}](gain_vs_{axis}.png)" in rep.path.read_text()
    for r in rows:
        value = int(r["value"]) if axis == "train_tasks" else r["value"]
        assert (r["method"], r["baseline"], r["n_method"], r["n_baseline"]) == (
            "ertrl", "focal", "3", "3"
        )  # fmt: skip
        assert float(r["gain"]) == pytest.approx(GAIN[value])
        tasks = SPLITS[r["split"]]
        scores = {
            m: np.array([[_score(m, value, r["split"], t, s) for t in tasks] for s in range(3)])
            for m in ("ertrl", "focal")
        }
        ci = difference_ci(scores["ertrl"], scores["focal"], "mean", 200, random_state=0)
        assert (float(r["gain_ci_low"]), float(r["gain_ci_high"])) == pytest.approx(
            (ci.low, ci.high)
        )
        xs, ys = scores["ertrl"].mean(axis=1), scores["focal"].mean(axis=1)
        assert float(r["welch_p"]) == pytest.approx(welch_ttest(xs, ys).p)
        assert float(r["mde_80"]) == pytest.approx(min_detectable_effect(xs, ys))
    q = fdr_adjust([float(r["welch_p"]) for r in rows])
    assert [float(r["welch_q"]) for r in rows] == pytest.approx(q.tolist())
    assert [r["value"] for r in rows if r["split"] == "moderate"] == [str(v) for v in values]


def test_the_gains_trend_per_doubling_of_the_training_tasks(tmp_path):
    """With three or more task counts, one slope of the gain on log2(count) a cell: here the
    gain grows by exactly 2 points per doubling (2, 4, 6, 8 at 5, 10, 20, 40 tasks)."""
    suite = _suite(tmp_path, "train_tasks", [5, 10, 20, 40])
    rep = write_report(suite, reps=200, figures=False)
    rows = _csv(suite / "gain_trend.csv")
    assert [(r["split"], r["values"], r["min_seeds"]) for r in rows] == [
        ("train", "5 10 20 40", "3"), ("moderate", "5 10 20 40", "3")
    ]  # fmt: skip
    for r in rows:
        assert float(r["slope_per_doubling"]) == pytest.approx(2.0)
        assert float(r["slope_ci_low"]) < 2.0 < float(r["slope_ci_high"])
        pairs = {}
        for v in (5, 10, 20, 40):
            tasks = SPLITS[r["split"]]
            pairs[v] = tuple(
                np.array([[_score(m, v, r["split"], t, s) for t in tasks] for s in range(3)])
                for m in ("ertrl", "focal")
            )
        trend = difference_trend(pairs, 200, random_state=0)
        assert (float(r["slope_ci_low"]), float(r["welch_p"]), float(r["mde_80"])) == pytest.approx(
            (trend.low, trend.p, trend.mde_80)
        )
    text = rep.path.read_text()
    assert "**Trend.** How ertrl's gain over focal changes per doubling" in text
    assert "| point-robot | offline | OOD (moderate) | 5 10 20 40 | 3 | 2.00 [" in text


def test_two_task_counts_give_no_trend(tmp_path):
    suite = _suite(tmp_path, "train_tasks", [5, 20])
    rep = write_report(suite, reps=50, figures=False)
    assert rep.axis_gain_rows and rep.axis_trend_rows == []
    assert not (suite / "gain_trend.csv").exists()


def test_no_axis_varied_no_axis_files(tmp_path):
    suite = _suite(tmp_path, "train_tasks", [20])
    rep = write_report(suite, reps=50, figures=False)
    assert rep.axis_gain_rows == []
    assert not (suite / "gain_vs_axis.csv").exists()
    assert not list(suite.glob("gain_vs_*.png"))


def test_another_baseline_is_an_option(tmp_path):
    suite = _suite(tmp_path, "train_tasks", [5, 20])
    rep = write_report(suite, reps=50, figures=False, reference="focal", axis_baseline="ertrl")
    gains = {(r["value"], r["split"]): r["gain"] for r in rep.axis_gain_rows}
    assert gains[(5, "moderate")] == pytest.approx(-GAIN[5])


def test_a_missing_baseline_is_a_note_not_an_error(tmp_path):
    suite = _suite(tmp_path, "train_tasks", [5, 20])
    rep = write_report(suite, reps=50, figures=False, axis_baseline="csro")
    assert rep.axis_gain_rows == []
    assert any("no value has finished runs of both ertrl and csro" in n for n in rep.notes)


def test_methods_named_per_value_are_labelled_as_their_plain_method():
    from ertrl_bench.analysis.load import RunRecord

    def rec(name, key):
        return RunRecord(name, name, "point-robot", 0, "done", method_key=key)

    runs = [rec("focal", "F"), rec("focal-t5", "F"), rec("ertrl-t5", "E"), rec("ertrl-t40", "E")]
    assert method_labels(runs) == {
        "focal": "focal", "focal-t5": "focal", "ertrl-t5": "ertrl", "ertrl-t40": "ertrl"
    }  # fmt: skip


def test_each_task_count_is_its_own_dataset_in_the_gain_vs_diversity(tmp_path):
    """Diversity is keyed by the dataset a run trained on, not by env: each task count's
    diversity and gain is one point of gain_vs_diversity, and nothing is warned."""
    suite = _suite(tmp_path, "train_tasks", [5, 20])
    rep = write_report(suite, reps=50, figures=False)
    assert rep.warnings == [] and rep.unrecorded_diversity == []
    assert set(rep.diversity) == {"point-robot (train_tasks=5)", "point-robot (train_tasks=20)"}
    rows = [r for r in _csv(suite / "gain_vs_diversity.csv") if r["protocol"] == "offline"]
    got = {r["env"]: (float(r["diversity"]), float(r["gain"]), r["best_other"]) for r in rows}
    assert got == {
        "point-robot (train_tasks=5)": (0.2, pytest.approx(GAIN[5]), "focal-t5"),
        "point-robot (train_tasks=20)": (0.5, pytest.approx(GAIN[20]), "focal"),
    }
    assert "| point-robot (train_tasks=5) | offline | 0.2000 |" in rep.path.read_text()
    assert rep.pearson["offline"][1] == (
        "Pearson r needs at least 3 datasets with both results and diversity (have 2)."
    )


def test_one_method_name_over_several_datasets_is_left_out_of_the_gain_with_a_note(tmp_path):
    """Runs named alike on two datasets share one table row, which mixes the datasets: that
    method has no per-dataset gain, and a note says how to name them apart."""
    suite = _suite(tmp_path, "train_tasks", [5, 20])
    extra = [_write_run(suite, "focal", 40, seed, "train_tasks", name="focal") for seed in (7, 8)]
    index = json.loads((suite / "suite.json").read_text())
    (suite / "suite.json").write_text(json.dumps({**index, "runs": index["runs"] + extra}))
    rep = write_report(suite, reps=50, figures=False)
    assert {g["env"] for g in rep.gain_rows} == {"point-robot (train_tasks=5)"}
    assert any("leaves out focal (point-robot)" in n for n in rep.notes)


def test_backbones_are_ordered_the_papers_first():
    """BRAC (the paper's backbone) leads the backbone axis, whatever the others are called."""
    from ertrl_bench.analysis.load import RunRecord
    from ertrl_bench.analysis.tables import varied_axes

    runs = [
        RunRecord(f"focal-{b}", "focal", "point-robot", 0, "done", backbone=b)
        for b in ("iql", "awac", "brac")
    ]
    assert varied_axes(runs) == {"backbone": ["brac", "awac", "iql"]}
