"""``ertrl-bench run SUITE --reuse RESULTS``: finished runs of another suite with the same spec
(all but the suite's name) are copied, not trained, and equal what training them gives."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ertrl_bench.analysis.report import write_report
from ertrl_bench.errors import ErtrlError
from ertrl_bench.reuse import find_sources, reuse_finished
from ertrl_bench.runner import execute
from ertrl_bench.store import RunDir, write_suite_index
from ertrl_bench.suite_loader import load_suite
from tests.helpers import run_cli, tiny_suite, write_suite


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder`` with its bytes and mtime (to prove nothing was written)."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _run_folder(results: Path, suite: str) -> Path:
    (folder,) = [p for p in (results / suite).iterdir() if p.is_dir()]
    return folder


def _train(suite_yaml: Path, results: Path) -> Path:
    """Train the suite's one run in this process (as ``run --jobs 1`` does); its folder."""
    (spec,) = load_suite(suite_yaml)[1]
    assert execute(spec, results).status == "done"
    return RunDir(results, spec).path


@pytest.fixture(scope="module")
def finished_a(tmp_path_factory) -> Path:
    """Suite ``a`` (FOCAL, seed 0) run to the end; its results folder."""
    tmp = tmp_path_factory.mktemp("reuse")
    _train(write_suite(tmp / "a.yaml", tiny_suite("a")), tmp / "res")
    write_suite_index(tmp / "res", "a", load_suite(tmp / "a.yaml")[1])  # as `run` writes it
    return tmp / "res"


def test_reused_run_is_a_finished_run_of_the_suite_equal_to_training_it(finished_a, tmp_path):
    source = finished_a / "a"
    before = _snapshot(source)
    b_yaml = write_suite(tmp_path / "b.yaml", tiny_suite("b"))
    r = run_cli("run", b_yaml, "--results-dir", tmp_path / "res", "--reuse", source)
    assert r.returncode == 0, r.stderr
    assert "1 of 1 run(s) reused from" in r.stderr
    assert not [line for line in r.stderr.splitlines() if line.split()[:1] == ["done"]]
    src_run, run = _run_folder(finished_a, "a"), _run_folder(tmp_path / "res", "b")
    assert f"reused {run.name} from a/{src_run.name}" in " ".join(r.stderr.split())
    assert _snapshot(source) == before  # the source folder is only read

    # a normal finished run of suite b: its spec, id and provenance; the report reads it
    (spec,) = load_suite(b_yaml)[1]
    assert run.name == spec.run_id() and RunDir(tmp_path / "res", spec).is_done()
    assert json.loads((run / "spec.json").read_text())["suite"] == "b"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["run_id"] == spec.run_id()
    assert metrics["reused_from"] == f"a/{src_run.name}"
    log = (run / "log.jsonl").read_text().splitlines()
    assert json.loads(log[-1]) == {"reused_from": f"a/{src_run.name}"}
    assert not (run / "checkpoint.pt").exists()
    report = write_report(tmp_path / "res" / "b")
    assert report.warnings == [] and report.problems == [] and report.n_done == 1

    # b trained from scratch gives the same numbers: that is what makes the copy valid
    fresh = _train(b_yaml, tmp_path / "fresh")
    assert fresh.name == run.name
    trained = json.loads((fresh / "metrics.json").read_text())
    for key in ("final", "per_task", "curve", "probe", "train_tasks", "dataset"):
        assert metrics[key] == trained[key], key
    with np.load(run / "encodings.npz") as a, np.load(fresh / "encodings.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for name in a.files:
            np.testing.assert_array_equal(a[name], b[name])


def test_a_run_whose_spec_differs_in_anything_but_the_suite_is_not_reused(finished_a, tmp_path):
    sources = find_sources([finished_a])  # a results folder holding suites works too
    assert len(sources) == 1
    other_eval = tiny_suite("c")
    other_eval["eval"] = {**other_eval["eval"], "runs_per_task": 2}
    for suite in (other_eval, tiny_suite("c", seeds=(1,)), tiny_suite("c", tier="small")):
        specs = load_suite(write_suite(tmp_path / "c.yaml", suite))[1]
        assert reuse_finished(specs, tmp_path / "res", sources) == []
    assert not (tmp_path / "res").exists()
    # device and checkpoint policy are not part of the computation (nor of the run id)
    (spec,) = load_suite(write_suite(tmp_path / "d.yaml", tiny_suite("d")))[1]
    spec = spec.model_copy(update={"device": "auto"})
    assert [o.status for o in reuse_finished([spec], tmp_path / "res", sources)] == ["reused"]


def test_unfinished_source_runs_are_not_reused(finished_a, tmp_path):
    copy = tmp_path / "a"
    shutil.copytree(finished_a / "a", copy)
    run = _run_folder(tmp_path, "a")
    (run / "metrics.json").write_text('{"run_id": "half"}')  # not the schema: not finished
    assert find_sources([copy]) == {}
    (run / "metrics.json").unlink()
    assert find_sources([copy]) == {}


def test_reuse_folder_missing_or_without_suite_is_one_error_before_anything_runs(
    finished_a, tmp_path
):
    b_yaml = write_suite(tmp_path / "b.yaml", tiny_suite("b"))
    missing = tmp_path / "nope"
    r = run_cli(
        "run", b_yaml, "--results-dir", tmp_path / "res", "--reuse", finished_a, "--reuse", missing
    )
    assert r.returncode == 2, r.stderr
    assert f"--reuse {missing}: no such folder" in " ".join(r.stderr.split())
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "res").exists()  # nothing ran, not even the suite's index
    (tmp_path / "empty" / "x").mkdir(parents=True)
    with pytest.raises(ErtrlError, match="empty: holds no suite"):
        find_sources([tmp_path / "empty"])
    with pytest.raises(ErtrlError, match="b.yaml: a file, not a results folder; give the folder"):
        find_sources([b_yaml])  # e.g. the suite file given instead of its results
    r = run_cli("run", b_yaml, "--results-dir", tmp_path / "res", "--reuse", finished_a, "--force")
    assert r.returncode == 2 and "give one of the two" in r.stderr


@pytest.mark.parametrize(
    ("suite", "shared"),
    [
        ("backbones", {"focal", "csro", "ertrl"}),  # the BRAC arms
        ("data-quality", {"focal", "ertrl"}),  # the mixed arm
        ("task-count", {"focal", "ertrl"}),  # the 20-task arm
    ],
)
def test_the_question_suites_shared_arms_are_repro_point_robot_runs(suite, shared):
    """What the suites' headers promise: ``--reuse results/repro-point-robot`` copies these arms
    (seeds 0-4) and trains only the others."""
    repro = {s.computation_key() for s in load_suite("repro-point-robot")[1]}
    specs = load_suite(suite)[1]
    reused = [s for s in specs if s.computation_key() in repro]
    assert {s.method.name for s in reused} == shared
    assert sorted({s.seed for s in reused}) == [0, 1, 2, 3, 4]
    assert len(reused) == 5 * len(shared)
