"""`ertrl-bench report` through the real entry point, and the metrics schema on a real run."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from ertrl_bench.analysis.report import write_report
from ertrl_bench.results_schema import (
    MetricsFileError,
    RunMetrics,
    read_metrics,
    validate_metrics,
)
from ertrl_bench.runner import execute
from ertrl_bench.store import write_suite_index
from ertrl_bench.suite_loader import load_suite
from tests.helpers import tiny_suite, write_suite
from tests.test_analysis_report import synthetic_suite


def _small_suite(path, name, methods=("ertrl", "focal")):
    return synthetic_suite(path, name, methods, seeds=range(2), curve=False)


def test_cli_report_on_results_root_reports_each_suite(cli, tmp_path):
    root = tmp_path / "results"
    _small_suite(root / "alpha", "alpha")
    _small_suite(root / "beta", "beta", methods=("csro",))
    res = cli("report", root)
    assert res.returncode == 0, res.stderr
    for name in ("alpha", "beta"):
        md = (root / name / "report.md").read_text()
        assert f"# Results: {name}" in md and "runs finished" in md
        assert f"wrote {root / name / 'report.md'}" in res.stdout
    assert not (root / "report.md").exists()
    # Piped output: plain tab-separated lines, nothing cut.
    lines = [line.split("\t") for line in res.stdout.splitlines() if "\t" in line]
    assert lines[0][-1] == "mean ± s.d. (ddof 1)"  # the sample std, labelled
    assert lines[0][:6] == ["env", "method", "split", "protocol", "seeds", "IQM [95% CI]"]
    assert ["point_robot", "ertrl", "OOD", "non_prior", "2/2"] in [row[:5] for row in lines]
    assert "Traceback" not in res.stderr


def _main(monkeypatch, capsys, *args) -> tuple[int, str]:
    """The real entry point (``ertrl_bench.cli.main``) in-process: exit code and flat stderr."""
    from ertrl_bench import cli

    monkeypatch.setattr(sys, "argv", ["ertrl-bench", "report", *map(str, args)])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    return exc.value.code, " ".join(capsys.readouterr().err.split())


def test_cli_report_errors_name_the_path_and_exit_2(cli, tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "file").write_text("x")
    run = tmp_path / "suite" / "run-0"
    run.mkdir(parents=True)
    (run / "spec.json").write_text("{}")
    for args, message in (
        ((empty,), f"{empty}: no suite results here"),
        (
            (run,),
            f"{run}: one run's folder, not a suite's; pass the suite's folder that holds"
            f" it: {run.parent}",
        ),
        ((tmp_path / "nope",), f"{tmp_path / 'nope'}: no such results folder"),
        ((tmp_path / "file",), f"{tmp_path / 'file'}: a file, not a results folder"),
        ((empty, "--gain-split", "ood"), "--gain-split 'ood': choose train, iid, moderate"),
        ((empty, "--no-diversity"), "--diversity / --no-diversity: gone; the report no longer"),
        ((empty, "--diversity"), f"`ertrl-bench datasets diversity {empty}` writes it beside"),
    ):
        code, stderr = _main(monkeypatch, capsys, *args)
        assert code == 2 and message in stderr and "Traceback" not in stderr
    # Through a real subprocess: a suite whose report cannot be written (report.md is a folder,
    # so it fails even for root).
    suite = _small_suite(tmp_path / "s", "s", methods=("ertrl",))
    (suite / "report.md").mkdir()
    res = cli("report", suite)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"{suite / 'report.md'}: cannot write the report" in res.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_cli_report_on_read_only_folder(cli, tmp_path):
    suite = _small_suite(tmp_path / "ro", "ro", methods=("ertrl",))
    suite.chmod(0o555)
    try:
        res = cli("report", suite)
    finally:
        suite.chmod(0o755)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"{suite}: cannot write the report there" in res.stderr


def test_schema_rejects_what_the_report_could_not_read(tmp_path):
    score = {"return": 1.0, "normalized": 50}
    good = {
        "run_id": "r", "method": "m", "env": "e", "seed": 0,
        "final": {"train": {"offline": score}},
        "per_task": {"train": {"offline": {"task-000": score}}},
    }  # fmt: skip
    assert validate_metrics(good).curve == []
    bad_cases = {
        "per_task": {**good, "per_task": {"train": {"offline": [1.0]}}},
        "per_task: Field required": {k: v for k, v in good.items() if k != "per_task"},
        "final: Dictionary should have at least 1 item": {**good, "final": {}},
        "normalized: Input should be a valid number": {
            **good,
            "final": {"train": {"offline": {"normalized": "NaN"}}},
        },
        "timing_s.total": {**good, "timing_s": {"total": "12"}},
        "seed": {**good, "seed": "zero"},
        "curve.0.step": {**good, "curve": [{"train/offline/normalized": 1.0}]},
        "probe.linear": {**good, "probe": {"linear": 0.3}},
    }
    for field, metrics in bad_cases.items():
        with pytest.raises(MetricsFileError, match=re.escape(field)):
            validate_metrics(metrics)
    # NaN and null scores fit the schema (reported as missing, not rejected).
    m = validate_metrics(
        {**good, "final": {"train": {"offline": {"return": float("nan"), "normalized": None}}}}
    )
    assert m.final["train"]["offline"].normalized is None
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({k: v for k, v in good.items() if k != "seed"}))
    with pytest.raises(MetricsFileError, match=f"{path}: wrong shape: seed: Field required"):
        read_metrics(path)


def test_report_on_a_real_tiny_run(tmp_path):
    """The runner's own metrics.json validates, round-trips and reports with every protocol."""
    suite = tiny_suite(name="real", methods=("focal",), seeds=(0,))
    s, specs = load_suite(write_suite(tmp_path / "s.yaml", suite))
    root = tmp_path / "results"
    write_suite_index(root, s.name, specs)
    out = execute(specs[0], root)
    assert out.status == "done", out.message
    metrics = read_metrics(root / s.name / specs[0].run_id() / "metrics.json")
    assert isinstance(metrics, RunMetrics)
    assert metrics.model_dump(by_alias=True, exclude_none=True)["final"] == json.loads(
        json.dumps(out.metrics["final"])
    )
    protocols = specs[0].eval.protocols
    assert sorted(metrics.protocols()) == sorted(protocols)
    report = write_report(root / s.name, reps=100)
    assert report.probe_rows and {p["variant"] for p in report.probe_rows} == {"paper"}
    assert {r["protocol"] for r in report.rows} == set(protocols)
    assert {(r["split"], r["group"]) for r in report.rows} == {
        ("train", "IID"),
        ("moderate", "OOD"),
    }
    md = report.path.read_text()
    assert "1 of 1 runs finished" in md and "## Learning curves" in md
    assert (root / s.name / "curves_point-robot.png").is_file()
    assert len(report.curve_rows) == 2 * len(protocols) * 2  # splits x protocols x evaluations


def test_runner_summary_and_curve_skip_tasks_without_a_normalized_score():
    from ertrl_bench.runner import _summarise

    tasks = {
        "a": {"return": 1.0, "normalized": 10.0},
        "b": {"return": 3.0, "normalized": float("nan")},  # R_min = R_max (data's NaN)
        "c": {"return": 2.0, "normalized": None},
    }
    out = _summarise({"train": {"offline": tasks}})["train"]["offline"]
    assert out == {"return": 2.0, "normalized": 10.0}  # not NaN: the curve keeps its split
    gone = _summarise({"train": {"offline": {"b": tasks["b"]}}})["train"]["offline"]
    assert np.isnan(gone["normalized"]) and gone["return"] == 3.0


def test_diversity_from_the_data_build_through_the_runs_to_the_report(cli, tmp_path, monkeypatch):
    """The build records the diversity in the dataset's manifest, each run copies it into its
    metrics.json, the report reads it there with no dataset cache at all; for runs without it
    `datasets diversity` writes diversity.json from the cache."""
    from ertrl_bench.data.store import DatasetDir

    suite = tiny_suite(name="div", methods=("ertrl", "focal"), seeds=(0,))
    s, specs = load_suite(write_suite(tmp_path / "s.yaml", suite))
    root = tmp_path / "results"
    write_suite_index(root, s.name, specs)
    metrics = [execute(spec, root).metrics for spec in specs]
    recorded = DatasetDir(Path(metrics[0]["dataset"])).manifest()["diversity"]
    assert all(m["diversity"] == recorded for m in metrics) and recorded["samples"] == 64

    monkeypatch.setenv("ERTRL_BENCH_DATA", str(tmp_path / "no-cache"))
    report = write_report(root / s.name, reps=50, figures=False)
    assert report.unrecorded_diversity == [] and not (tmp_path / "no-cache").exists()
    assert {g["diversity"] for g in report.gain_rows} == {recorded["w2"]}
    monkeypatch.undo()

    for spec in specs:  # runs made before runs recorded it
        path = root / s.name / spec.run_id() / "metrics.json"
        path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items()
                                    if k != "diversity"}))  # fmt: skip
    assert write_report(root / s.name, reps=50, figures=False).gain_rows == []
    (root / s.name / "diversity.json").write_text('{"other-env": 0.5}')  # kept: merged into
    res = cli("datasets", "diversity", root)
    assert res.returncode == 0, res.stderr
    assert json.loads((root / s.name / "diversity.json").read_text()) == {
        "other-env": 0.5,
        "point-robot": recorded,
    }
    assert {g["diversity"] for g in write_report(root / s.name, reps=50).gain_rows} == {
        recorded["w2"]
    }
    # the runs' own dataset is read wherever it is (here: not under $ERTRL_BENCH_DATA)
    res = cli("datasets", "diversity", root, env={"ERTRL_BENCH_DATA": str(tmp_path / "none")})
    assert res.returncode == 0, res.stderr
    # runs that trained on another dataset than this version builds (an older format): named
    for spec in specs:
        path = root / s.name / spec.run_id() / "metrics.json"
        old_format = {**json.loads(path.read_text()), "dataset": str(tmp_path / "format-2")}
        path.write_text(json.dumps(old_format))
    res = cli("datasets", "diversity", root)
    assert res.returncode == 2 and f"the runs trained on {tmp_path / 'format-2'}, not" in res.stderr
    for spec in specs:  # unfinished runs: the dataset they would train on, if cached
        (root / s.name / spec.run_id() / "metrics.json").unlink()
    res = cli("datasets", "diversity", root, env={"ERTRL_BENCH_DATA": str(tmp_path / "none")})
    assert res.returncode == 2 and "point-robot [smoke] is not in the dataset cache" in res.stderr
