"""Success rate (Meta-World's convention: an episode succeeds if the env's success flag is true
at any step): carried by ``StepResult.success``, recorded in behavior datasets, ``metrics.json``
and the report for families that report it, absent (not 0) for those that do not.

The families here are Point-Robot's env (``PointRobotBatch``: no success) with a scripted
expert, and the same env saying "success" within 0.1 of the goal; the real Meta-World check is
in plugins/ertrl-bench-metaworld/tests. Each test runs a tiny suite (seconds).
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from ertrl_bench.analysis.report import write_report
from ertrl_bench.analysis.tables import CURVE_COLUMNS
from ertrl_bench.data import get_datasets
from ertrl_bench.envs.base import ListBatchEnv, ScriptedBehavior, StepResult
from ertrl_bench.envs.point_robot import (
    PointRobot,
    PointRobotBatch,
    PointRobotEnv,
    PointRobotOptions,
)
from ertrl_bench.plugins import hookimpl
from ertrl_bench.results_schema import MetricsFileError, validate_metrics
from ertrl_bench.runner import execute
from ertrl_bench.suite_loader import load_suite
from tests.helpers import TINY_DATA, tiny_suite, write_suite

NEAR = 0.1  # "success": within this distance of the goal


class _SuccessBatch(PointRobotBatch):
    def step(self, actions):
        res = super().step(actions)
        near = np.linalg.norm(self.pos - self.goals, axis=1) < NEAR
        return StepResult(res.next_obs, res.reward, res.terminated, res.truncated, near)


class ScriptedPointRobot(PointRobot):
    """Point-Robot (no notion of success) with a scripted expert, so that its data builds in
    a second (noise 0: at the goal in 10 of its 20 steps; noise 1: mostly not)."""

    name = "scripted-point-robot"

    def scripted_behavior(self):
        def act(tasks, obs):
            return np.clip((np.stack([self.goal(t) for t in tasks]) - obs) / 0.1, -1.0, 1.0)

        return ScriptedBehavior(noise=(0.0, 1.0), act=act)


class SuccessPointRobot(ScriptedPointRobot):
    """The same, its env reporting success within ``NEAR`` of the goal."""

    name = "success-point-robot"

    def make_batch(self, tasks):
        return _SuccessBatch(np.stack([self.goal(t) for t in tasks]), self.horizon)


class _Plugin:
    @hookimpl
    def register_envs(self, register):
        register("scripted-point-robot", ScriptedPointRobot, PointRobotOptions)
        register("success-point-robot", SuccessPointRobot, PointRobotOptions)


class _InfoEnv(PointRobotEnv):
    def step(self, action):
        obs, r, te, tr, _ = super().step(action)
        return obs, r, te, tr, {"success": np.linalg.norm(obs - self.goal) < NEAR}


def test_list_batch_env_passes_info_success_on_and_none_without_it():
    goals = [(1.0, 0.0), (0.05, 0.0)]  # the second is reached by the first step
    with_info = ListBatchEnv([_InfoEnv(g) for g in goals])
    with_info.reset(seed=0)
    res = with_info.step(np.zeros((2, 2), np.float32))
    assert res.success.tolist() == [False, True]
    plain = ListBatchEnv([PointRobotEnv(g) for g in goals])
    plain.reset(seed=0)
    assert plain.step(np.zeros((2, 2), np.float32)).success is None
    tasks = PointRobot().tasks("train")[:2]
    batch = PointRobot().make_batch(tasks)
    batch.reset(seed=0)
    assert batch.step(np.zeros((2, 2), np.float32)).success is None


def _run(tmp_path, env: str) -> tuple[dict, object]:
    suite = tiny_suite(name=f"s-{env}")
    suite["grid"]["envs"] = [env]
    suite["eval"]["probe"] = {"enabled": False}
    (spec,) = load_suite(write_suite(tmp_path / "s.yaml", suite))[1]
    out = execute(spec, tmp_path / "results")
    assert out.status == "done", out.message
    return out.metrics, spec


def _keys(tree) -> set[str]:
    if isinstance(tree, dict):
        return set(tree) | set().union(*(_keys(v) for v in tree.values()))
    if isinstance(tree, list):
        return set().union(set(), *(_keys(v) for v in tree))
    return set()


def test_success_is_recorded_in_data_metrics_and_report(tmp_path, register_test_plugin):
    register_test_plugin(_Plugin(), "success-envs")
    metrics, spec = _run(tmp_path, "success-point-robot")
    # the behavior data: per episode, and per noise level (the expert always succeeds)
    meta = get_datasets(SuccessPointRobot(), spec.tier, spec.data).meta["task-010"]
    k = len(meta["episode_success"]) // 2
    assert meta["episode_success"][:k] == [True] * k
    assert meta["checkpoint_success"]["0"] == 1.0 >= meta["checkpoint_success"]["1"]
    # metrics.json: per task, per split x protocol (the rate), and in the curve
    for split in ("train", "moderate"):
        for protocol, score in metrics["final"][split].items():
            rates = [s["success"] for s in metrics["per_task"][split][protocol].values()]
            assert all(r in (0.0, 1.0) for r in rates)  # one run per task
            assert score["success"] == pytest.approx(np.mean(rates))
    assert {"train/offline/success", "moderate/non_prior/success"} <= set(metrics["curve"][-1])
    validate_metrics(metrics)
    bad = json.loads(json.dumps(metrics))
    bad["final"]["train"]["offline"]["success"] = 1.5
    with pytest.raises(MetricsFileError, match="success"):
        validate_metrics(bad)
    report = write_report(tmp_path / "results" / spec.suite, figures=False, reps=200)
    assert {r["scale"] for r in report.success_rows} == {"success"}
    assert (tmp_path / "results" / spec.suite / "success.csv").is_file()
    text = report.path.read_text()
    assert "## Success rate" in text and "### success-point-robot: success rate (%)" in text


def test_a_family_without_success_records_none(tmp_path, register_test_plugin):
    register_test_plugin(_Plugin(), "success-envs")
    metrics, spec = _run(tmp_path, "scripted-point-robot")
    assert "success" not in _keys(metrics["final"]) | _keys(metrics["per_task"])
    assert not any(k.endswith("/success") for point in metrics["curve"] for k in point)
    meta = get_datasets(ScriptedPointRobot(), spec.tier, spec.data).meta["task-010"]
    assert "episode_success" not in meta and "checkpoint_success" not in meta
    study = tmp_path / "results" / spec.suite
    report = write_report(study, reps=200)
    assert report.success_rows == []
    assert not (study / "success.csv").exists()
    assert "Success rate" not in report.path.read_text()
    # the learning curves: the normalized return's only, in curves.csv's columns of old
    assert {r["metric"] for r in report.curve_rows} == {"normalized"}
    header = (study / "curves.csv").read_text().splitlines()[0]
    assert header == ",".join(CURVE_COLUMNS)
    assert (study / "curves_scripted-point-robot.png").is_file()
    assert not list(study.glob("success_curves_*"))


def test_the_report_gives_success_rate_learning_curves(tmp_path, register_test_plugin):
    """curves.csv gets the success rate's rows (percent, mean over seeds of the runs' curves)
    beside the normalized return's, told apart by ``metric``; a figure and a sub-section."""
    from ertrl_bench.analysis.tables import CURVE_METRIC_COLUMNS

    study = _run_success_suite(
        tmp_path, register_test_plugin, "sc", tiny_suite(name="sc", seeds=(0, 1))
    )
    curves = []
    for i, path in enumerate(sorted(study.glob("*/metrics.json"))):
        # tiny agents never reach the goal: give each seed and step its own rate to compare
        metrics = json.loads(path.read_text())
        for j, point in enumerate(metrics["curve"]):
            for key in [k for k in point if k.endswith("/success")]:
                point[key] = (i + 2 * j + ("online" in key)) / 8
        path.write_text(json.dumps(metrics))
        curves.append(metrics["curve"])

    report = write_report(study, reps=200)
    with open(study / "curves.csv") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == CURVE_METRIC_COLUMNS
        rows = list(reader)
    by_metric = {m: [r for r in rows if r["metric"] == m] for m in ("normalized", "success")}
    assert len(by_metric["success"]) == len(by_metric["normalized"]) == 3 * 2  # steps x protocols
    assert len(rows) == 12 and len(report.curve_rows) == 12
    for metric, factor in (("success", 100.0), ("normalized", 1.0)):
        for r in by_metric[metric]:
            key = f"{r['split']}/{r['protocol']}/{metric}"
            seeds = [factor * p[key] for c in curves for p in c if p["step"] == int(r["step"])]
            assert (r["n_seeds"], len(seeds)) == ("2", 2)
            assert float(r["mean"]) == pytest.approx(np.mean(seeds))
    first = by_metric["success"][0]  # the first evaluation, offline: seeds at 0 and 1/8
    assert (first["protocol"], first["mean"]) == ("offline", "6.25")
    assert (study / "success_curves_success-point-robot.png").is_file()
    text = report.path.read_text()
    curves_section = text.split("## Learning curves")[1].split("\n## ")[0]
    assert "### Success rate" in curves_section
    assert "(success_curves_success-point-robot.png)" in curves_section


class _SacSuccessPointRobot(PointRobot):
    """Success near the goal, behavior data from SAC (no scripted expert)."""

    name = "sac-success-point-robot"

    def make_batch(self, tasks):
        return _SuccessBatch(np.stack([self.goal(t) for t in tasks]), self.horizon)


def test_a_sac_build_records_success_too():
    data = get_datasets(_SacSuccessPointRobot(), "smoke", TINY_DATA, tasks=[10])
    meta, k = data.meta["task-010"], TINY_DATA["trajectories_per_checkpoint"]
    checkpoints = TINY_DATA["checkpoints"]
    assert len(meta["episode_success"]) == k * len(checkpoints)
    assert all(isinstance(x, bool) for x in meta["episode_success"])
    assert set(meta["checkpoint_success"]) == {str(c) for c in checkpoints}


def _strip_success(path) -> None:
    """A run's metrics.json as if its family reported no success."""
    metrics = json.loads(path.read_text())
    metrics["curve"] = [
        {k: v for k, v in p.items() if not k.endswith("/success")} for p in metrics["curve"]
    ]
    path.write_text(json.dumps(metrics))


def test_settle_reads_the_success_rate_curves(tmp_path, register_test_plugin, capsys):
    """``settle --metric success``: the budget rule and the seed plan on the success rate in
    percent, from the runs that record one (others left out, named); a study without any is one
    clear error."""
    from ertrl_bench.analysis.settling import markdown, settle, write_files
    from ertrl_bench.cli import main

    suite = tiny_suite(name="conv", methods=("focal", "ertrl"), seeds=(0, 1))
    study = _run_success_suite(
        tmp_path, register_test_plugin, "conv", suite, iterations=3, final_evals=2
    )

    result = settle(study, window=2, metric="success")
    assert [(g.method, len(g.runs)) for g in result.groups] == [("focal", 2), ("ertrl", 2)]
    for group in result.groups:
        for run, row in zip(group.runs, group.values[("train", "offline")], strict=True):
            curve = json.loads((run.path / "metrics.json").read_text())["curve"]
            assert row.tolist() == pytest.approx([100 * p["train/offline/success"] for p in curve])
    text = markdown(result)
    assert text.startswith("# Where the runs of conv settle: success rate (%)")
    assert "(on the success rate); the last column" in text and "10 percentage points" in text
    assert [p.name for p in write_files(result)] == [
        "settling_success.csv",
        "diagnostics_success.png",
    ]
    assert "success" not in markdown(settle(study, window=2)).split("\n")[0]

    stripped = next(r.path for r in result.groups[1].runs if r.seed == 1)
    _strip_success(stripped / "metrics.json")
    text = markdown(settle(study, window=2, metric="success"))
    assert f"left out: {stripped.name} (no success in its curve)" in text
    assert len(settle(study, window=2).groups[1].runs) == 2  # the return is still there

    for path in study.glob("*/metrics.json"):
        _strip_success(path)
    for args, message in (
        (["--metric", "success"], f"{study}: no finished run records a success rate"),
        (["--metric", "sucess"], "--metric 'sucess': choose normalized or success"),
    ):
        with pytest.raises(SystemExit) as info:
            main(["settle", str(study), "-w", "2", *args])
        out = " ".join(capsys.readouterr().err.split())
        assert info.value.code == 2 and message in out and "Traceback" not in out, out


def _run_success_suite(tmp_path, register_test_plugin, name: str, suite: dict, **train):
    """Run a tiny suite on the success-reporting Point-Robot, evaluated at every iteration on
    the train split; its results folder."""
    from ertrl_bench.store import write_suite_index

    register_test_plugin(_Plugin(), "success-envs")
    suite["grid"]["envs"] = ["success-point-robot"]
    suite["train"].update(eval_every=1, **train)
    suite["eval"].update(splits=["train"], probe={"enabled": False})
    s, specs = load_suite(write_suite(tmp_path / "s.yaml", suite))
    write_suite_index(tmp_path / "results", s.name, specs)
    for spec in specs:
        assert execute(spec, tmp_path / "results").status == "done"
    return tmp_path / "results" / name
