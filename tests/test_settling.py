"""Where runs settle: the budget rule on a hand-computed case (``measures.settling``), and
``ertrl-bench settle`` on real tiny runs, on the published convergence study and on bad input."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ertrl_bench.analysis.settling import markdown, parse_spans, settle
from ertrl_bench.cli import main
from ertrl_bench.measures.settling import (
    budget_cell,
    default_budgets,
    interval_means,
    span_means,
    window_scores,
)
from ertrl_bench.measures.stats import seeds_for_effect
from ertrl_bench.runner import execute
from ertrl_bench.store import write_suite_index
from ertrl_bench.suite_loader import load_suite
from tests.helpers import REPO, tiny_suite, write_suite

# Two seeds evaluated at 6 steps; hand-computed below with a window of 3 evaluations.
STEPS = [100, 200, 300, 400, 500, 600]
VALUES = np.array([[0, 2, 4, 6, 6, 6], [0, 4, 4, 7, 8, 8]], dtype=float)


def test_the_budget_rule_on_a_hand_computed_case():
    # B = 400: windows 200..400: seed means 4 and 5; seed-mean curve (3, 4, 6.5): slope 350 /
    # 20000 per step x 200 steps = 3.5; the last window (400..600) scores 6 and 23/3.
    cell = budget_cell(STEPS, VALUES, 400, 3)
    assert cell.first_step == 200 and cell.budget == 400
    assert cell.scores == pytest.approx([4, 5])
    assert cell.mean == pytest.approx(4.5) and cell.sd == pytest.approx(2**-0.5)
    assert cell.trend == pytest.approx(3.5)
    assert cell.drift == pytest.approx(4.5 - (6 + 23 / 3) / 2)
    assert not cell.settled
    # B = 600 (the last): curve (6.5, 7, 7): trend 0.5, no drift, seed s.d. (23/3 - 6) / sqrt 2
    last = budget_cell(STEPS, VALUES, 600, 3)
    assert last.trend == pytest.approx(0.5) and last.drift == pytest.approx(0)
    assert last.sd == pytest.approx((23 / 3 - 6) / 2**0.5) and last.settled
    # one seed: no spread, nothing settles, even a flat window
    alone = budget_cell(STEPS, VALUES[:1], 600, 3)
    assert np.isnan(alone.sd) and alone.trend == pytest.approx(0, abs=1e-9)
    assert not alone.settled
    assert window_scores(STEPS, VALUES, 500, 3) == pytest.approx([16 / 3, 19 / 3])
    with pytest.raises(ValueError, match="2 evaluation.s. up to step 250, the window needs 3"):
        budget_cell(STEPS, VALUES, 250, 3)
    # candidate budgets: the ends of non-overlapping windows before the last evaluation
    assert default_budgets(STEPS, 3) == [300]
    assert default_budgets(range(1000, 30001, 1000), 5) == [5000, 10000, 15000, 20000, 25000]


def test_spans_and_logged_quantities_on_a_hand_computed_case():
    assert span_means(STEPS, VALUES, 100, 300) == pytest.approx([3, 4])
    assert span_means(STEPS, VALUES, None, 200) == pytest.approx([2, 4])
    with pytest.raises(ValueError, match=r"no evaluation in steps \(600, 700\]"):
        span_means(STEPS, VALUES, 600, 700)
    logged = interval_means([50, 100, 150, 200, 250, 300], [1, 3, 5, 7, 9, 11], [100, 300, 400])
    assert logged[:2] == pytest.approx([2, 8]) and np.isnan(logged[2])
    assert parse_spans("2k, 5k-10000") == [(None, 2000), (5000, 10000)]


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory) -> Path:
    """Two real FOCAL seeds, evaluated after each of 4 iterations of 10 steps (a few seconds)."""
    tmp = tmp_path_factory.mktemp("settle")
    suite = tiny_suite(name="conv", seeds=(0, 1))
    suite["train"].update(iterations=4, eval_every=1, final_evals=2)
    s, specs = load_suite(write_suite(tmp / "s.yaml", suite))
    root = tmp / "results"
    write_suite_index(root, s.name, specs)
    for spec in specs:
        assert execute(spec, root).status == "done"
    return root / s.name


def test_settle_on_real_tiny_runs(cli, tiny_study, tmp_path):
    study = tmp_path / "conv"
    shutil.copytree(tiny_study, study)
    index = json.loads((study / "suite.json").read_text())
    index["runs"].append({"run_id": "focal-s9", "method": "focal", "env": "point-robot", "seed": 9})
    (study / "suite.json").write_text(json.dumps(index))  # a run that never started
    res = cli("settle", study, "--window", "2")
    assert res.returncode == 0, res.stderr
    assert f"wrote {study / 'settling.csv'}, {study / 'diagnostics.png'}" in res.stderr
    out = res.stdout
    assert "focal, seeds 0 / 1:" in out and "| column | 0-20 | 20-40 | s.d. of the last 2 |" in out
    assert "runs: focal x 2" in out and "| method | column | 20 | last |" in out
    assert "| focal | BRAC alpha |" in out and "- left out: focal-s9 (missing)" in out
    assert "- no finished ertrl run: no seed plan (--reference)" in out
    # the CSV's numbers are the runs' own: the mean of their 2 evaluations up to each budget
    curves = [
        json.loads((study / r / "metrics.json").read_text())["curve"]
        for r in sorted(p.name for p in study.iterdir() if (p / "metrics.json").is_file())
    ]
    assert [p["step"] for p in curves[0]] == [10, 20, 30, 40]
    rows = list(csv.DictReader((study / "settling.csv").open()))
    assert {(r["budget"], r["window_from"]) for r in rows} == {("20", "10"), ("40", "30")}
    row = next(
        r for r in rows if (r["split"], r["protocol"], r["budget"]) == ("train", "offline", "20")
    )
    key = "train/offline/normalized"
    scores = [np.mean([c[0][key], c[1][key]]) for c in curves]
    assert float(row["mean"]) == pytest.approx(np.mean(scores))
    assert float(row["seed_sd"]) == pytest.approx(np.std(scores, ddof=1))
    assert (study / "diagnostics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _main(capsys, *argv) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main(["settle", *map(str, argv)])
    captured = capsys.readouterr()
    return info.value.code, " ".join((captured.err + captured.out).split())


def test_settle_errors_name_the_folder_and_the_fix(capsys, tiny_study, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    unfinished = tmp_path / "unfinished"
    (unfinished / "run-0").mkdir(parents=True)
    (unfinished / "run-0" / "spec.json").write_text("{}")
    uneven = tmp_path / "uneven"
    shutil.copytree(tiny_study, uneven)
    run = next(p for p in sorted(uneven.iterdir()) if (p / "metrics.json").is_file())
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["curve"] = metrics["curve"][:-1]
    (run / "metrics.json").write_text(json.dumps(metrics))
    truncated = tmp_path / "truncated"
    shutil.copytree(tiny_study, truncated)
    cut = sorted(truncated.glob("*/metrics.json"))
    for path in cut:
        path.write_text(path.read_text()[:100])
    two = tmp_path / "two"
    for name in ("a", "b"):
        (two / name).mkdir(parents=True)
        (two / name / "suite.json").write_text(json.dumps({"suite": name, "runs": []}))
    for args, message in (
        ((empty,), f"{empty}: no suite results here"),
        ((two,), f"{two}: holds several studies (a, b); pass one study's folder"),
        ((cut[0].parent,), f"{cut[0].parent}: one run's folder, not a suite's; pass the suite's"
         f" folder that holds it: {truncated}"),
        ((truncated,), "no finished run with an evaluation curve (metrics.json) here; run the"
         " study first (ertrl-bench run SUITE) or pass the folder it wrote; 2 run(s) with an"
         " unreadable metrics.json: "),
        ((truncated,), f"{cut[1]}: not valid JSON"),
        ((truncated,), f"Rerun the suite (ertrl-bench run SUITE --results-dir {tmp_path}) to"
         " redo them: each unreadable file is kept aside as metrics.invalid.json"),
        ((unfinished,), f"{unfinished}: no finished run with an evaluation curve"),
        ((tiny_study,), "4 evaluation(s); --window 5 needs at least 6 (a full window before the"
         " last evaluation): lower --window or evaluate more often"),
        ((tiny_study, "-w", "1"), "--window 1: at least 2"),
        ((tiny_study, "-w", "2", "--budgets", "25"), "--budgets 25: not a candidate budget of"),
        ((tiny_study, "-w", "2", "--budgets", "10"), "an evaluation step from 20 to 30"),
        ((tiny_study, "-w", "2", "--budgets", "five"), "--budgets 'five': expected a gradient"),
        ((tiny_study, "-w", "2", "--spans", "30-20"), "--spans '30-20': FROM must be below TO"),
        ((tiny_study, "-w", "2", "--spans", "40-50"), "--spans 40-50: no evaluation in steps"),
        ((uneven, "-w", "2"), "the budget rule compares runs at the same evaluations"),
        ((tiny_study, "-w", "2", "--effect", "0"), "--effect 0: the target MDE is a positive"),
        ((tiny_study, "-w", "2", "--at", "10"), "--at 10: not an evaluation step of"),
        ((tiny_study, "-w", "2", "--at", "25"), "pick one from 20 to 40"),
        ((tiny_study, "-w", "2", "--reference", "csro"), "--reference 'csro': no finished run"),
    ):  # fmt: skip
        code, text = _main(capsys, *args)
        assert code == 2, text
        assert message in text and "Traceback" not in text, text
    assert not (tiny_study / "settling.csv").exists()  # nothing written on an error


def test_the_convergence_study_notes_quote_settle():
    """Every table row of results/converge-point-robot/NOTES.md is the command's own output
    (window, budget and diagnostics tables), so the notes cannot drift from the runs."""
    study = REPO / "results" / "converge-point-robot"
    out = markdown(settle(study, spans=parse_spans("2k,5k-10k,10k-20k,20k-30k")))
    rows = [line for line in (study / "NOTES.md").read_text().splitlines() if line.startswith("| ")]
    assert len(rows) > 30
    assert [r for r in rows if r not in out.splitlines()] == []


def test_the_seed_plan_of_the_convergence_study_is_the_reports_power():
    """At the last evaluation (no budget settles every cell) the plan's spreads are the budget
    table's, its MDE and seeds are the report's ttest.csv columns; a smaller effect or another
    budget re-sizes it; a study without a pair has no plan."""
    study = REPO / "results" / "converge-point-robot"
    s = settle(study)
    assert s.plan_at == 30000 and not s.plan_settled and len(s.plan) == 6  # 2 splits x 3
    with open(study / "settling.csv") as fh:
        sds = {
            (r["method"], r["split"], r["protocol"], int(r["budget"])): float(r["seed_sd"])
            for r in csv.DictReader(fh)
        }
    with open(study / "ttest.csv") as fh:
        tests = {(r["split"], r["protocol"]): r for r in csv.DictReader(fh) if r["scale"] == "ours"}
    for r in s.plan:
        split, proto = r.column
        assert (r.reference, r.method) == ("ertrl", "focal")
        assert r.sd_reference == pytest.approx(sds[("ertrl", split, proto, 30000)])
        assert r.sd_method == pytest.approx(sds[("focal", split, proto, 30000)])
        assert r.seeds == seeds_for_effect(r.sd_reference, r.sd_method, 10.0)
        assert r.mde == pytest.approx(float(tests[r.column]["mde_80"]))
        assert r.seeds == int(tests[r.column]["seeds_mde_10"])
    out = markdown(s)
    assert "## Seeds for MDE ≤ 10" in out and "At 30k (the last evaluation" in out
    assert "| OOD non_prior | focal | 6.1 | 2.3 | 3 vs 3 | 17.7 | 6 |" in out
    assert "in every column: 19 (OOD offline, ertrl vs focal)" in out

    strict = settle(study, effect=5.0, at=15000)
    assert strict.plan_at == 15000 and "At 15k (chosen with --at" in markdown(strict)
    for r, loose in zip(strict.plan, settle(study, at=15000).plan, strict=True):
        assert r.sd_reference == pytest.approx(sds[("ertrl", *r.column, 15000)])
        assert r.seeds >= loose.seeds
    swapped = markdown(settle(study, reference="focal"))
    assert "| column | vs | s.d. focal | s.d. vs |" in swapped
    assert "| OOD non_prior | ertrl | 2.3 | 6.1 | 3 vs 3 | 17.7 | 6 |" in swapped


def test_a_study_of_one_method_has_no_seed_plan(tiny_study):
    out = markdown(settle(tiny_study, window=2, reference="focal"))
    assert "no pair of focal and another method: no seed plan" in out
