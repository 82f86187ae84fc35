"""The authors' scale: packaged normalizer and tables, name mapping, and the report's use of them."""

from __future__ import annotations

import csv
import json
from importlib import resources

import numpy as np
import pytest

from ertrl_bench.analysis import paper_scale
from ertrl_bench.analysis.report import write_report
from ertrl_bench.measures.stats import authors_ttest, iqm, min_detectable_effect
from tests.test_analysis_report import _index, _write_run


def _packaged(name: str) -> dict:
    path = resources.files("ertrl_bench.analysis") / "authors_data" / name
    return json.loads(path.read_text(encoding="utf-8"))


def test_every_family_method_and_protocol_maps_to_the_authors_tables():
    norm, tables = _packaged("normalizer-minmax.json"), _packaged("results.json")
    for ours, (env_name, display) in paper_scale.FAMILIES.items():
        assert sorted(norm[env_name], key=int) == [str(i) for i in range(40)]
        for method in paper_scale.METHODS:
            for split in ("train", "moderate"):
                for proto in paper_scale.PROTOCOLS:
                    got = paper_scale.paper_number(ours, method, split, proto)
                    key = f"{split}/{paper_scale.PROTOCOLS[proto]}"
                    want = tables[display][key][paper_scale.METHODS[method]]
                    assert got == tuple(want)
    assert paper_scale.paper_number("cheetah-vel", "ertrl", "moderate", "non_prior") == (70.4, 1.2)
    assert paper_scale.paper_number("cheetah-vel", "ertrl", "extreme", "offline") is None  # broken
    assert paper_scale.paper_number("point-robot", "ertrl", "train", "offline") is None


def test_authors_normalized_uses_their_task_constants():
    r_min, r_max = _packaged("normalizer-minmax.json")["hopper-mass"]["7"]
    assert paper_scale.authors_range("hopper-mass", "task-007") == (r_min, r_max)
    assert paper_scale.authors_normalized("hopper-mass", "task-007", r_max) == pytest.approx(100)
    mid = (r_min + r_max) / 2
    assert paper_scale.authors_normalized("hopper-mass", "task-007", mid) == pytest.approx(50)
    assert paper_scale.authors_normalized("hopper-mass", "task-041", mid) is None  # off-grid
    assert paper_scale.authors_normalized("point-robot", "task-007", mid) is None


def test_recover_ranges_inverts_the_normalization():
    r_min, r_max = -300.0, -50.0
    rets = [-280.0, -120.0, -60.0]
    pairs = {"task-001": [(r, 100 * (r - r_min) / (r_max - r_min)) for r in rets]}
    pairs["task-002"] = [(-10.0, 5.0), (-10.0, 5.0)]  # one distinct return: underdetermined
    got = paper_scale.recover_ranges(pairs)
    assert got["task-001"] == pytest.approx((r_min, r_max))
    assert "task-002" not in got


def _two_family_suite(tmp_path):
    """ertrl and focal x 3 seeds on cheetah-vel (a paper family) and point-robot (not one)."""
    suite = tmp_path / "two"
    runs = []
    for env in ("cheetah-vel", "point-robot"):
        for method in ("ertrl", "focal"):
            for seed in range(3):
                rid = f"{method}-{env}-s{seed}"
                _write_run(suite, rid, method, env, seed)
                runs.append({"run_id": rid, "method": method, "env": env, "seed": seed})
    _index(suite, runs)
    return suite


def _authors_scores(suite, method, split, proto) -> np.ndarray:
    """seeds x tasks: the synthetic runs' raw returns on the authors' scale, by hand."""
    out = []
    for seed in range(3):
        path = suite / f"{method}-cheetah-vel-s{seed}" / "metrics.json"
        tasks = json.loads(path.read_text())["per_task"][split][proto]
        out.append(
            [
                paper_scale.authors_normalized("cheetah-vel", k, v["return"])
                for k, v in tasks.items()
            ]
        )
    return np.array(out)


def test_report_gives_both_scales_and_the_paper_row_only_on_theirs(tmp_path):
    suite = _two_family_suite(tmp_path)
    report = write_report(suite, reps=200, figures=False)
    with open(suite / "returns.csv") as fh:
        rows = list(csv.DictReader(fh))
    authors = [r for r in rows if r["scale"] == "authors"]
    assert authors and {r["env"] for r in authors} == {"cheetah-vel"}  # no point-robot reference
    row = next(
        r
        for r in authors
        if (r["method"], r["split"], r["protocol"]) == ("ertrl", "moderate", "online")
    )
    # The synthetic runs' return is normalized - 100; put each task on the authors' scale.
    per_seed = []
    for seed in range(3):
        metrics = json.loads((suite / f"ertrl-cheetah-vel-s{seed}" / "metrics.json").read_text())
        tasks = metrics["per_task"]["moderate"]["online"]
        per_seed.append(
            np.mean(
                [
                    paper_scale.authors_normalized("cheetah-vel", k, v["return"])
                    for k, v in tasks.items()
                ]
            )
        )
    assert float(row["mean"]) == pytest.approx(np.mean(per_seed))
    assert float(row["std_ddof0"]) == pytest.approx(np.std(per_seed))
    assert float(row["std"]) == pytest.approx(np.std(per_seed, ddof=1))
    md = report.path.read_text()
    assert (
        "cheetah-vel: on the authors' scale" in md
        and "point-robot: on the authors' scale" not in md
    )
    assert "*paper, ertrl*" in md and "*70.4 ± 1.2*" in md
    # The paper's number never sits in a table of our own scale.
    ours = md.split("### cheetah-vel: on the authors' scale")[0]
    assert "paper" not in ours.split("## Normalized return")[1]


def _pick(rows, **want):
    return next(r for r in rows if all(r[k] == v for k, v in want.items()))


def test_iqm_and_comparison_tables_on_the_authors_scale_for_paper_families_only(tmp_path):
    suite = _two_family_suite(tmp_path)
    report = write_report(suite, reps=200, figures=False)
    with open(suite / "ttest.csv") as fh:
        tests = list(csv.DictReader(fh))
    assert {(t["env"], t["scale"]) for t in tests} == {
        ("cheetah-vel", "ours"), ("point-robot", "ours"), ("cheetah-vel", "authors"),
    }  # fmt: skip
    row = _pick(tests, env="cheetah-vel", scale="authors", split="moderate", protocol="non_prior")
    a = _authors_scores(suite, "ertrl", "moderate", "non_prior").mean(axis=1)
    b = _authors_scores(suite, "focal", "moderate", "non_prior").mean(axis=1)
    assert float(row["diff"]) == pytest.approx(a.mean() - b.mean())
    assert float(row["authors_p"]) == pytest.approx(authors_ttest(a, b).p)
    assert float(row["mde_80"]) == pytest.approx(min_detectable_effect(a, b))
    assert float(row["diff_ci_low"]) <= float(row["diff"]) <= float(row["diff_ci_high"])
    ours = _pick(tests, env="cheetah-vel", scale="ours", split="moderate", protocol="non_prior")
    assert float(ours["diff"]) != pytest.approx(float(row["diff"]))  # really another scale

    arow = _pick(
        report.authors_rows, env="cheetah-vel", method="ertrl", split="train", protocol="offline"
    )
    assert arow["iqm"] == pytest.approx(iqm(_authors_scores(suite, "ertrl", "train", "offline")))
    assert arow["ci_low"] <= arow["iqm"] <= arow["ci_high"]

    md = report.path.read_text()
    cheetah = md.split("### cheetah-vel — non_prior context")[1].split("### point-robot")[0]
    iqm_text = f"{arow['iqm']:.1f} [{arow['ci_low']:.1f}, {arow['ci_high']:.1f}]"
    offline = md.split("### cheetah-vel — offline context")[1].split("### cheetah-vel —")[0]
    assert (
        iqm_text in offline.split("The same IQM [95% agent-bootstrap CI] on the authors' scale")[1]
    )
    assert "The same comparison on the authors' scale" in cheetah
    assert f"{float(row['diff']):+.1f} [{float(row['diff_ci_low']):.1f}, " in cheetah
    robot = md.split("### point-robot: summary")[1]
    assert "authors' scale" not in robot and "authors' scale" in cheetah
