"""What the report claims from the numbers: comparisons, power, convergence, the reference."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from ertrl_bench.analysis.report import write_report
from ertrl_bench.errors import ErtrlError
from ertrl_bench.measures.stats import authors_ttest, min_detectable_effect
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
    assert float(row["diff_ci_low"]) <= float(row["diff"]) <= float(row["diff_ci_high"])
    # ertrl's runs are 10 above focal's on every OOD task, seed for seed: P(X > Y) per task
    # compares all seed pairs (seeds shift by 2 each), so it is high but not 1.
    assert 0.5 < float(row["poi"]) <= 1.0
    md = report.path.read_text()
    assert "does not beat" not in md
    train = rows[("train", "offline")]  # identical scores: nothing significant, MDE stated
    assert f"no difference larger than {float(train['mde_80']):.1f} could be detected" in md


def test_unstable_rankings_flag_the_study_and_bold_nothing(tmp_path):
    stable = write_report(_suite(tmp_path / "a"), reps=100, figures=False)
    assert stable.converged and "**Not converged**" not in stable.path.read_text()
    assert "**" in stable.path.read_text().split("## Convergence")[0]

    suite = _suite(tmp_path / "b", flip_last=True)
    report = write_report(suite, reps=100, figures=False)
    assert not report.converged
    md = report.path.read_text()
    assert "**Not converged**" in md
    tables = md.split("## Normalized return")[1].split("## Convergence")[0]
    assert "**" not in tables  # no "best" bolded anywhere in the score tables
    with open(suite / "rank_stability.csv") as fh:
        taus = [float(r["kendall_tau"]) for r in csv.DictReader(fh)]
    assert taus and all(t == pytest.approx(-1.0) for t in taus)
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
