"""What the report claims from the numbers: comparisons, power, convergence, the reference."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from ertrl_bench.analysis.report import write_report
from ertrl_bench.errors import ErtrlError
from ertrl_bench.measures.stats import (
    authors_ttest,
    kendall_tau,
    min_detectable_effect,
    seeds_for_effect,
)
from tests.test_analysis_report import _index, _scores, _write_run


def _suite(tmp_path, flip_last: bool = False):
    """ertrl and focal x 3 seeds on point_robot; ertrl's curve is above focal's at every step
    unless ``flip_last`` lifts focal above it at the last evaluation only."""
    suite = tmp_path / "s"
    runs = []
    for method in ("ertrl", "focal"):
        for seed in range(3):
            rid = f"{method}-s{seed}"
            _write_run(suite, rid, method, "point_robot", seed)
            runs.append({"run_id": rid, "method": method, "env": "point_robot", "seed": seed})
            spec_path = suite / rid / "spec.json"
            spec = json.loads(spec_path.read_text())
            spec["train"] = {"final_evals": 2}
            spec_path.write_text(json.dumps(spec))
            if flip_last and method == "focal":
                path = suite / rid / "metrics.json"
                metrics = json.loads(path.read_text())
                for key in metrics["curve"][-1]:
                    if key != "step":
                        metrics["curve"][-1][key] += 20.0
                path.write_text(json.dumps(metrics))
    _index(suite, runs)
    return suite


def test_comparison_columns_tests_effect_sizes_and_power(tmp_path):
    suite = _suite(tmp_path)
    report = write_report(suite, reps=300, figures=False)
    with open(suite / "ttest.csv") as fh:
        rows = {(r["split"], r["protocol"]): r for r in csv.DictReader(fh)}
    row = rows[("moderate", "non_prior")]
    a = _scores("ertrl", "moderate", "non_prior").mean(axis=1)
    b = _scores("focal", "moderate", "non_prior").mean(axis=1)
    au = authors_ttest(a, b)
    assert float(row["authors_p"]) == pytest.approx(au.p) and int(row["authors_df"]) == 2
    assert float(row["mde_80"]) == pytest.approx(min_detectable_effect(a, b))
    seeds = seeds_for_effect(np.std(a, ddof=1), np.std(b, ddof=1), 10.0)
    assert int(row["seeds_mde_10"]) == seeds
    assert (seeds <= 3) == (float(row["mde_80"]) <= 10)  # 3 seeds a side today
    assert float(row["diff_ci_low"]) <= float(row["diff"]) <= float(row["diff_ci_high"])
    # ertrl's runs are 10 above focal's on every OOD task, seed for seed: P(X > Y) per task
    # compares all seed pairs (seeds shift by 2 each), so it is high but not 1.
    assert 0.5 < float(row["poi"]) <= 1.0
    md = report.path.read_text()
    assert "does not beat" not in md
    train = rows[("train", "offline")]  # identical scores: nothing significant, MDE stated
    assert f"no difference larger than {float(train['mde_80']):.1f} could be detected" in md
    assert "| MDE (80%) | seeds for MDE ≤ 10 | what it says |" in md
    assert f"| {float(row['mde_80']):.1f} | {seeds} | no difference larger than" in md


def test_score_change_over_the_window_is_reported_per_method(tmp_path):
    stable = write_report(_suite(tmp_path / "a"), reps=100, figures=False)
    assert stable.converged and "**Not converged**" not in stable.path.read_text()
    # curves 5 apart with seeds 3 apart: never separated, so no ranking and nothing bolded
    assert stable.all_tied and "**All tied**" in stable.path.read_text()

    suite = _suite(tmp_path / "b", flip_last=True)
    write_report(suite, reps=100, figures=False)
    with open(suite / "convergence.csv") as fh:
        change = next(
            r for r in csv.DictReader(fh)
            if (r["method"], r["split"], r["protocol"]) == ("focal", "train", "offline")
        )  # fmt: skip
    # Scoring window 2: last evaluation (step 400) minus the one before (300): 10 + 20.
    assert (change["from_step"], change["to_step"]) == ("300", "400")
    assert float(change["change"]) == pytest.approx(30.0)


def test_reference_is_a_report_option(tmp_path):
    suite = _suite(tmp_path)
    report = write_report(suite, reps=100, figures=False, reference="focal")
    assert {t["method"] for t in report.ttest_rows} == {"focal"}
    assert {t["baseline"] for t in report.ttest_rows} == {"ertrl"}
    assert "focal vs each other method" in report.path.read_text()
    row = next(t for t in report.ttest_rows if t["split"] == "moderate")
    assert row["diff"] == pytest.approx(-10.0)
    with pytest.raises(ErtrlError, match="--reference 'pearl': no such method .* ertrl, focal"):
        write_report(suite, reps=100, figures=False, reference="pearl")
    assert np.isfinite(row["mde_80"])


def _curve_suite(tmp_path, curves):
    """Runs of each method in ``curves`` x 3 seeds whose learning curves (every column, steps
    0-400, all 5 in the scoring window) are ``curves[method](seed, step)``."""
    suite = tmp_path / "s"
    runs = []
    for method, value in curves.items():
        for seed in range(3):
            rid = f"{method}-s{seed}"
            _write_run(suite, rid, method, "point_robot", seed)
            runs.append({"run_id": rid, "method": method, "env": "point_robot", "seed": seed})
            spec = json.loads((suite / rid / "spec.json").read_text())
            spec["train"] = {"final_evals": 5}
            (suite / rid / "spec.json").write_text(json.dumps(spec))
            metrics = json.loads((suite / rid / "metrics.json").read_text())
            for point in metrics["curve"]:
                for key in point:
                    if key != "step":
                        point[key] = value(seed, point["step"])
            (suite / rid / "metrics.json").write_text(json.dumps(metrics))
    _index(suite, runs)
    return suite


def _verdicts(report):
    from ertrl_bench.analysis.tables import rank_verdicts

    return set(rank_verdicts(report.rank_rows).values())


def _wobble(step):
    return 0.5 if step % 200 else -0.5  # +-0.5 alternating: noise well inside the seeds' s.d. 5


def test_tied_methods_swapping_on_noise_leave_the_ranking_stable(tmp_path):
    """ertrl and focal are within noise of each other (seeds 5 apart, means 1 apart) and swap
    at every evaluation; csro is 40 below both. The swap is not instability; under plain
    Kendall tau over the means (1/3 at every step) it used to flag the study."""
    suite = _curve_suite(
        tmp_path,
        {
            "ertrl": lambda seed, step: 50 + 5 * seed + _wobble(step),
            "focal": lambda seed, step: 50 + 5 * seed - _wobble(step),
            "csro": lambda seed, step: 10 + 5 * seed,
        },
    )
    report = write_report(suite, reps=100, figures=False)
    assert report.converged and _verdicts(report) == {"stable"}
    for r in report.rank_rows:
        assert (r["n_pairs"], r["n_resolved_pairs"], r["n_reversed"]) == (3, 2, 0)
        assert r["gamma"] == pytest.approx(1.0)
    means = {"ertrl": [55.5, 54.5], "focal": [54.5, 55.5], "csro": [15.0, 15.0]}
    assert kendall_tau(*zip(*means.values(), strict=True)) < 0.5  # the old criterion's number
    md = report.path.read_text()
    assert "**Not converged**" not in md and "0 of 12 columns are unstable, 0 all tied" in md
    summary = md.split("summary (IID")[1].split("| method |")[1].split("\n\n")[0]
    bold = {
        line.split("|")[1].strip(): [c.strip().startswith("**") for c in line.split("|")[2:-1]]
        for line in summary.splitlines()[2:]
    }
    # Final scores: ertrl 10 above the others out of distribution (seeds 2 apart), all equal
    # on IID: the best is bolded only where Welch's test separates it from every other.
    assert bold == {"ertrl": [False] * 3 + [True] * 3, "focal": [False] * 6, "csro": [False] * 6}


def test_separated_methods_that_swap_order_are_unstable(tmp_path):
    """ertrl and focal are 20 apart with seeds 1 apart, and swap at every evaluation."""
    suite = _curve_suite(
        tmp_path,
        {
            "ertrl": lambda seed, step: 50 + seed + 40 * _wobble(step),
            "focal": lambda seed, step: 50 + seed - 40 * _wobble(step),
        },
    )
    report = write_report(suite, reps=100, figures=False)
    assert not report.converged and _verdicts(report) == {"unstable"}
    assert all((r["n_resolved_pairs"], r["n_reversed"]) == (1, 1) for r in report.rank_rows)
    md = report.path.read_text()
    assert "**Not converged**" in md and "12 of 12 columns are unstable" in md
    tables = md.split("## Normalized return")[1].split("## Convergence")[0]
    assert "**" not in tables  # no "best" bolded anywhere in the score tables
    with open(suite / "rank_stability.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(float(r["gamma"]) == pytest.approx(-1.0) for r in rows)


def test_methods_all_within_noise_are_all_tied_not_unstable(tmp_path, capsys):
    suite = _curve_suite(
        tmp_path,
        {
            "ertrl": lambda seed, step: 50 + 5 * seed + _wobble(step),
            "focal": lambda seed, step: 50 + 5 * seed - _wobble(step),
        },
    )
    report = write_report(suite, reps=100, figures=False)
    assert report.converged and _verdicts(report) == {"all tied"}
    assert all(r["n_resolved_pairs"] == 0 and np.isnan(r["gamma"]) for r in report.rank_rows)
    assert report.all_tied and not report.ranked
    md = report.path.read_text()
    assert "0 of 12 columns are unstable, 12 all tied" in md and "**All tied**" in md
    tables = md.split("## Normalized return")[1].split("## Convergence")[0]
    assert "**" not in tables  # no ranking: no "best" bolded
    with open(suite / "rank_stability.csv") as fh:
        assert {r["n_resolved_pairs"] for r in csv.DictReader(fh)} == {"0"}

    from ertrl_bench.analysis import glance

    assert "unstable (pairs of methods separated beyond seed noise swap order) in 0 of 12 " \
        "columns, all tied (no pair separated at two consecutive evaluations) in 12" in \
        glance.study_block(suite)  # fmt: skip


def test_q_values_adjust_each_column_and_the_whole_table(tmp_path):
    """ttest.csv's welch_q is Benjamini-Hochberg over the reference's comparisons in one
    column (env x protocol x split), welch_q_table over every comparison of the env; the
    report says how many tests reach p < 0.05 and how many keep q < 0.05."""
    from ertrl_bench.measures.stats import fdr_adjust

    suite = _suite(tmp_path)
    for seed in range(3):
        _write_run(suite, f"csro-s{seed}", "csro", "point_robot", seed, offset=1.5 * seed)
    index = json.loads((suite / "suite.json").read_text())
    runs = index["runs"] + [
        {"run_id": f"csro-s{s}", "method": "csro", "env": "point_robot", "seed": s}
        for s in range(3)
    ]
    _index(suite, runs)
    report = write_report(suite, reps=100, figures=False)
    with open(suite / "ttest.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r["scale"] == "ours"]
    p = np.array([float(r["welch_p"]) for r in rows])
    assert [float(r["welch_q_table"]) for r in rows] == pytest.approx(fdr_adjust(p).tolist())
    columns = {}
    for i, r in enumerate(rows):
        columns.setdefault((r["protocol"], r["split"]), []).append(i)
    assert all(len(c) == 2 for c in columns.values())  # ertrl vs focal and vs csro
    for members in columns.values():
        q = [float(rows[i]["welch_q"]) for i in members]
        assert q == pytest.approx(fdr_adjust(p[members]).tolist())
    text = report.path.read_text()
    hits = int((p < 0.05).sum())
    assert f"of the {len(rows)} tests of ertrl vs another method below" in text
    assert f"{hits} reach Welch p < 0.05" in text


def test_verdict_says_when_a_difference_does_not_survive_the_adjustment():
    from ertrl_bench.analysis.markdown import verdict

    row = {"method": "ertrl", "baseline": "focal", "diff": 2.5, "mde_80": 2.9}
    assert verdict({**row, "welch_p": 0.025, "welch_q": 0.04}) == (
        "ertrl above focal (Welch p < 0.05, q < 0.05)"
    )
    assert verdict({**row, "welch_p": 0.025, "welch_q": 0.1}) == (
        "ertrl above focal at p < 0.05, not after FDR adjustment (q = 0.1)"
    )
    assert verdict({**row, "welch_p": 0.3, "welch_q": 0.3}) == (
        "no difference larger than 2.9 could be detected"
    )
