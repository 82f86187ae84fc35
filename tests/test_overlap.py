"""The local executor's ``overlap``: runs train one after another in this process while a CPU
worker pool runs the finished runs' probe regressions. Same numbers as sequential; a failing
worker fails only its run; Ctrl-C / SIGTERM leave "interrupted" markers and a rerun resumes."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from functools import partial

import pytest

import ertrl_bench.runner as runner
from ertrl_bench.executors import LocalExecutor, LocalOptions
from ertrl_bench.runner import execute, run_suite
from ertrl_bench.store import RunDir
from ertrl_bench.suite_loader import load_suite
from tests.helpers import entry_point, tiny_suite, wait_for, write_suite

TIMING = ("wall_s", "timing_s")  # the runs' own seconds: the only fields that may differ


def _specs(tmp_path, **kw):
    return load_suite(write_suite(tmp_path / "s.yaml", tiny_suite(**kw)))[1]


def _numbers(results, spec) -> str:
    """metrics.json without its timings, as text (byte-for-byte comparable)."""
    metrics = json.loads((RunDir(results, spec).path / "metrics.json").read_text())
    return json.dumps({k: v for k, v in metrics.items() if k not in TIMING}, sort_keys=True)


def _overlap() -> LocalExecutor:
    return LocalExecutor(LocalOptions(overlap=True, cpu_workers=1))


def test_overlap_gives_the_same_metrics_as_sequential(tmp_path):
    specs = _specs(tmp_path, seeds=[0, 1])
    seq = run_suite(specs, tmp_path / "seq", LocalExecutor(LocalOptions(jobs=1)))
    ex = _overlap()
    assert not ex.parallel and ex.plan(2)[0] == 1
    over = run_suite(specs, tmp_path / "over", ex)
    assert [o.status for o in seq] == [o.status for o in over] == ["done"] * 2
    for spec in specs:
        assert "probe" in json.loads(_numbers(tmp_path / "over", spec))
        assert _numbers(tmp_path / "seq", spec) == _numbers(tmp_path / "over", spec)
        assert not RunDir(tmp_path / "over", spec).lock.is_held_elsewhere()
    assert [o.status for o in run_suite(specs, tmp_path / "over", ex)] == ["skipped"] * 2


def failing_fits(encodings, params, config, seed):
    """A stand-in for the probe's regressions that fails for seed 1 (runs in the worker)."""
    if seed == 1:
        raise ValueError("the regression blew up")
    return runner._timed_probe_fits(encodings, params, config, seed)  # the worker's: the real one


@pytest.mark.slow  # ~20 s on 2 busy cores: four tiny runs and a worker importing torch
def test_a_failing_cpu_phase_fails_only_its_run(tmp_path, monkeypatch):
    specs = _specs(tmp_path, seeds=[0, 1])
    real = runner._timed_probe_fits
    # pickled by name: the worker imports this module and calls failing_fits
    monkeypatch.setattr(runner, "_timed_probe_fits", failing_fits)
    results = tmp_path / "r"
    outcomes = {o.run_id: o for o in run_suite(specs, results, _overlap())}
    good, bad = (outcomes[s.run_id()] for s in specs)
    assert good.status == "done" and bad.status == "failed"
    assert "ValueError in the probe's worker: the regression blew up" in bad.message
    failed = json.loads((RunDir(results, specs[1]).path / "failed.json").read_text())
    assert "the regression blew up" in failed["error"]
    assert not (RunDir(results, specs[1]).path / "metrics.json").exists()
    assert not RunDir(results, specs[1]).lock.is_held_elsewhere()
    # a rerun redoes only the failed run, from its checkpoint (taken after its last evaluation)
    monkeypatch.setattr(runner, "_timed_probe_fits", real)
    again = {o.run_id: o for o in run_suite(specs, results, _overlap())}
    assert again[specs[0].run_id()].status == "skipped"
    assert again[specs[1].run_id()].status == "done"
    assert again[specs[1].run_id()].message.startswith("resumed from step")


@pytest.mark.slow  # ~20 s each on 2 busy cores
@pytest.mark.parametrize("probe_done", [True, False], ids=["probe-done", "probe-unfinished"])
def test_ctrl_c_interrupts_the_pending_probe_and_a_rerun_resumes(tmp_path, probe_done):
    """Ctrl-C as run 1 starts training: run 0's probe, if its worker finished, is kept; if not,
    run 0 says "interrupted" like run 1. Either way a rerun ends with the sequential numbers."""
    specs = _specs(tmp_path, seeds=[0, 1])
    results = tmp_path / "r"
    run = partial(execute, results_root=results)

    def fn(spec, cpu_pool):
        if spec is specs[0] and not probe_done:
            cpu_pool.apply_async(time.sleep, (60,))  # the worker is busy: run 0's probe waits
        if spec is specs[1]:
            if probe_done:
                cpu_pool.apply(time.sleep, (0,))  # one worker, first in first out
            raise KeyboardInterrupt
        return run(spec, cpu_pool=cpu_pool)

    with pytest.raises(KeyboardInterrupt):
        list(_overlap().map(fn, specs))
    rd0 = RunDir(results, specs[0])
    assert (rd0.path / "metrics.json").exists() == probe_done
    if not probe_done:
        assert json.loads((rd0.path / "failed.json").read_text())["error"] == "interrupted"
    assert not rd0.lock.is_held_elsewhere()
    outcomes = run_suite(specs, results, _overlap())
    assert [o.status for o in outcomes] == ["skipped" if probe_done else "done", "done"]
    seq = tmp_path / "seq"
    run_suite(specs, seq, LocalExecutor(LocalOptions(jobs=1)))
    for spec in specs:
        assert _numbers(seq, spec) == _numbers(results, spec)


def test_overlap_with_jobs_is_refused(cli, tmp_path):
    suite = write_suite(tmp_path / "s.yaml", tiny_suite())
    opts = ["--executor-opt", "overlap=true", "--jobs", "2"]
    proc = cli("run", str(suite), "--results-dir", str(tmp_path / "r"), *opts)
    assert proc.returncode == 2, proc.stderr
    assert "overlap trains one run at a time in this process (jobs: 1)" in " ".join(
        proc.stderr.split()
    )


@pytest.mark.slow  # ~30 s on 2 busy cores: a CLI and a worker importing torch
@pytest.mark.parametrize("how", ["SIGTERM", "Ctrl-C"])
def test_overlapped_cli_stops_with_interrupted_markers(tmp_path, how):
    suite = tiny_suite(name="stop", seeds=[0])
    suite["train"].update(iterations=500, steps_per_iteration=50)
    path = write_suite(tmp_path / "s.yaml", suite)
    results = tmp_path / "results"
    cmd = [*entry_point(), "run", str(path), "--results-dir", str(results)]
    parent = subprocess.Popen(
        [*cmd, "--executor-opt", "overlap=true"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        wait_for(lambda: len(list(results.glob("stop/*/log.jsonl"))) == 1, "the run", timeout=600)
        parent.send_signal({"SIGTERM": signal.SIGTERM, "Ctrl-C": signal.SIGINT}[how])
        parent.wait(timeout=120)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    stderr = parent.stderr.read()
    assert "Traceback" not in stderr, stderr
    assert parent.returncode == 130, stderr
    (run,) = [p for p in results.glob("stop/*/") if p.is_dir()]
    assert not (run / "metrics.json").exists()
    assert json.loads((run / "failed.json").read_text())["error"] == "interrupted"
