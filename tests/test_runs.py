"""The run lifecycle: results layout, resume, --force, determinism, kills, NaN losses."""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from ertrl_bench.data.store import pid_alive
from ertrl_bench.options import Strict
from ertrl_bench.plugins import hookimpl
from ertrl_bench.runner import execute
from ertrl_bench.suite_loader import load_suite
from tests.helpers import build_datasets, run_cli, tiny_suite, wait_for, write_suite


def _specs(tmp_path, **kw):
    return load_suite(write_suite(tmp_path / "s.yaml", tiny_suite(**kw)))[1]


def _comparable(metrics):
    return {k: v for k, v in metrics.items() if k not in ("wall_s", "timing_s")}


def test_run_writes_layout_and_resumes(tmp_path):
    (spec,) = _specs(tmp_path)
    out = execute(spec, tmp_path / "results")
    assert out.status == "done", out.message
    run_dir = tmp_path / "results" / "tiny" / spec.run_id()
    for name in ("spec.json", "env.json", "log.jsonl", "metrics.json", "encodings.npz"):
        assert (run_dir / name).exists(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["final"]) == {"train", "moderate"}
    assert set(metrics["final"]["train"]) == {"offline", "online", "non_prior"}
    assert len(metrics["per_task"]["train"]["offline"]) == 20
    lines = [json.loads(x) for x in (run_dir / "log.jsonl").read_text().splitlines()]
    assert any("eval" in x for x in lines) and any("brac/q_loss" in x for x in lines)
    # where the run's time went: every phase measured, and together they are the run
    timing = metrics["timing_s"]
    assert set(timing) == {"data", "setup", "train", "eval", "probe", "total"}
    assert all(v >= 0 for v in timing.values()) and timing["train"] > 0 and timing["eval"] > 0
    parts = sum(v for k, v in timing.items() if k != "total")
    assert parts <= timing["total"] + 0.01 and parts >= 0.8 * timing["total"]
    assert metrics["wall_s"] <= timing["total"]
    mtime = (run_dir / "metrics.json").stat().st_mtime_ns
    again = execute(spec, tmp_path / "results")
    assert again.status == "skipped" and again.message == "already done"
    assert (run_dir / "metrics.json").stat().st_mtime_ns == mtime
    # a component's package version changed since: kept, but reported as stale
    newer = spec.model_copy(update={"versions": {**spec.versions, "backbones/brac": "x 9.9"}})
    stale = execute(newer, tmp_path / "results")
    assert stale.status == "skipped" and (run_dir / "metrics.json").stat().st_mtime_ns == mtime
    assert "stale" in stale.message and "backbones/brac" in stale.message
    assert "--force" in stale.message
    forced = execute(spec, tmp_path / "results", force=True)
    assert forced.status == "done"
    assert (run_dir / "metrics.json").stat().st_mtime_ns != mtime


def test_same_config_and_seed_gives_identical_numbers(tmp_path):
    (spec,) = _specs(tmp_path)
    a = execute(spec, tmp_path / "a").metrics
    b = execute(spec, tmp_path / "b").metrics
    assert _comparable(a) == _comparable(b)
    (other,) = _specs(tmp_path, seeds=[1])
    c = execute(other, tmp_path / "c").metrics
    assert c["per_task"] != a["per_task"]


def test_killed_run_leaves_no_metrics_and_resumes(tmp_path):
    suite = tiny_suite(name="killme")
    # far more steps than the test waits for, so a busy machine never lets it finish first
    suite["train"].update(iterations=2000, steps_per_iteration=50)
    path = write_suite(tmp_path / "s.yaml", suite)
    results = tmp_path / "results"
    build_datasets(path)  # so the run is training when it is killed
    proc = subprocess.Popen(
        [sys.executable, "-m", "ertrl_bench.cli", "run", str(path), "--results-dir", str(results)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
        start_new_session=True,
    )

    def two_log_lines():
        logs = list(results.glob("killme/*/log.jsonl"))
        return logs if any(len(p.read_text().splitlines()) >= 2 for p in logs) else None

    try:
        logs = wait_for(two_log_lines, "the run never wrote two log lines", timeout=300)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    run_dir = logs[0].parent
    assert not (run_dir / "metrics.json").exists()
    # a kill that lands while a checkpoint is written leaves its temp file (never a half
    # checkpoint.pt); the rerun removes it once its writer is gone (the run's worker process
    # outlives proc.wait() by a moment: it is another process of the killed group)
    assert not (run_dir / "checkpoint.pt").exists() or (run_dir / "checkpoint.pt").stat().st_size
    writers = {int(p.name.split(".")[-3]) for p in run_dir.glob(".*.tmp")}
    wait_for(lambda: not any(pid_alive(w) for w in writers), "the killed writer lives on", 30)
    (spec,) = load_suite(path)[1]
    spec = spec.model_copy(
        update={"train": spec.train.model_copy(update={"iterations": 1, "steps_per_iteration": 5})}
    )
    assert execute(spec, results).status == "done"
    left = sorted(p.name for p in run_dir.iterdir())
    assert not [n for n in left if n.endswith(".tmp")], left


class _NaNOptions(Strict):
    pass


class _NaNRegularizer:
    """Returns a NaN encoder loss: the run must fail clearly, the others must finish."""

    def __init__(self, options, problem):
        pass

    def update(self, batch):
        return {}

    def encoder_loss(self, batch):
        return batch.z.sum() * float("nan"), {"nan/loss": torch.tensor(float("nan"))}

    def joint_parameters(self):
        return []

    def state_dict(self):
        return {}


class _NaNPlugin:
    @hookimpl
    def register_encoder_losses(self, register):
        register("nan_reg", _NaNRegularizer, _NaNOptions)


def test_nan_loss_fails_that_run_only(tmp_path, register_test_plugin):
    register_test_plugin(_NaNPlugin(), "nan-plugin")
    nanny = {"name": "nanny", "encoder_losses": ["dml", "nan_reg"]}
    suite = tiny_suite(name="nan", methods=["focal", nanny])
    path = write_suite(tmp_path / "s.yaml", suite)
    outcomes = {s.method.name: execute(s, tmp_path / "r") for s in load_suite(path)[1]}
    assert outcomes["focal"].status == "done"
    bad = outcomes["nanny"]
    assert bad.status == "failed"
    # checked every step, and the component is named (not dml, which stays finite)
    assert "non-finite at train step 1: encoder loss 'nan_reg' (plugin nan-plugin)" in bad.message
    run_dir = tmp_path / "r" / "nan" / bad.run_id
    records = [json.loads(x) for x in (run_dir / "log.jsonl").read_text().splitlines()]
    assert records[-1] == {"iteration": 0, "step": 1, "diverged": True}
    failed = json.loads(
        (tmp_path / "r" / "nan" / outcomes["nanny"].run_id / "failed.json").read_text()
    )
    assert "diverged" in failed["error"]
    assert not (tmp_path / "r" / "nan" / outcomes["nanny"].run_id / "metrics.json").exists()


@pytest.mark.parametrize("seeds_per_step", [1, 2])
def test_a_run_starts_with_gradients_on_whatever_an_interrupt_left(tmp_path, seeds_per_step):
    """A Ctrl-C inside ``torch.no_grad``'s enter or exit leaves gradients off for the process
    (CI on 55df6b1: the resumed run in the same process failed, and every test after it); a run
    alone and a seed group both start with them on."""
    from ertrl_bench.executors import LocalExecutor, LocalOptions
    from ertrl_bench.runner import run_suite

    suite = tiny_suite(name="grad", methods=["focal"], seeds=[0, 1])
    suite["train"].update(iterations=1, steps_per_iteration=5)
    specs = load_suite(write_suite(tmp_path / "s.yaml", suite))[1]
    executor = LocalExecutor(LocalOptions(jobs=1, seeds_per_step=seeds_per_step))
    torch.set_grad_enabled(False)
    try:
        outcomes = run_suite(specs, tmp_path / "r", executor)
        assert [o.status for o in outcomes] == ["done", "done"], [o.message for o in outcomes]
        grouped = ["seed group" in o.message for o in outcomes]
        assert grouped == [seeds_per_step > 1] * 2  # each path taken: alone, as a group
    finally:
        torch.set_grad_enabled(True)


def test_only_runs_the_matching_runs_and_leaves_the_suite_whole(tmp_path):
    """``run --only PATTERN``: the other runs are not started; the suite index (status, report)
    still lists every run; a pattern that matches nothing is one error, before anything runs."""
    suite = write_suite(tmp_path / "s.yaml", tiny_suite(name="part", seeds=[0, 1]))
    s0, s1 = (spec.run_id() for spec in load_suite(suite)[1])
    results = tmp_path / "r"
    typo = run_cli("run", suite, "--results-dir", results, "--only", "focal-*-s7-*")
    assert typo.returncode == 2 and "--only 'focal-*-s7-*' matches none" in typo.stderr
    assert not (results / "part").exists()
    r = run_cli("run", suite, "--results-dir", results, "--only", "*-s1-*", "--jobs", "1")
    assert r.returncode == 0, r.stderr
    assert "1 run(s) of 2 (--only)" in r.stderr
    assert (results / "part" / s1 / "metrics.json").exists()
    assert not (results / "part" / s0).exists()
    index = json.loads((results / "part" / "suite.json").read_text())
    assert [run["run_id"] for run in index["runs"]] == [s0, s1]
    assert index["invocations"][-1]["only"] == ["*-s1-*"]
