"""Per-run locks (two processes, one results folder) and the parallel local executor (--jobs)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap

import pytest

from ertrl_bench.executors import LocalExecutor, LocalOptions
from ertrl_bench.runner import execute, run_suite
from ertrl_bench.store import RunDir
from ertrl_bench.suite_loader import load_suite
from tests.helpers import entry_point, tiny_suite, wait_for, write_suite


def _specs(tmp_path, **kw):
    return load_suite(write_suite(tmp_path / "s.yaml", tiny_suite(**kw)))[1]


def _hold_lock(run_dir) -> subprocess.Popen:
    """Another real process that takes a run's lock and keeps it until killed."""
    code = textwrap.dedent(
        f"""
        import sys, time
        from ertrl_bench.store import RunLock
        assert RunLock({str(run_dir / ".lock")!r}).acquire()
        print("held", flush=True)
        time.sleep(600)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_run_held_by_another_process_is_not_touched_then_stale_lock_is_taken(tmp_path):
    (spec,) = _specs(tmp_path)
    results = tmp_path / "results"
    rd = RunDir(results, spec)
    holder = _hold_lock(rd.path)
    try:
        out = execute(spec, results)
        assert out.status == "locked"
        assert f"pid {holder.pid} on " in out.message  # the owner is named: pid + host
        assert not (rd.path / "spec.json").exists()  # nothing of the run was touched
        assert rd.lock.is_held_elsewhere()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # kill -9 leaves the lock file behind; the kernel released the lock: it is stale
    assert (rd.path / ".lock").exists()
    assert not rd.lock.is_held_elsewhere()
    assert execute(spec, results).status == "done"


def _local_executor():
    return LocalExecutor(LocalOptions(jobs=1))


def _ray_executor():
    pytest.importorskip("ray")
    from ertrl_bench.executors import RayExecutor, RayOptions

    return RayExecutor(RayOptions(num_cpus=1))


@pytest.mark.parametrize(
    "make_executor",
    [_local_executor, pytest.param(_ray_executor, marks=pytest.mark.slow, id="ray")],
    ids=["local", "ray"],
)
def test_run_suite_waits_for_a_run_another_process_finishes(tmp_path, make_executor):
    """The waiting side does not redo the run: it skips it once the owner has finished it.
    Under Ray too: its workers take the same per-run locks (docs/running.md)."""
    a, b = _specs(tmp_path, seeds=[0, 1])
    executor = make_executor()
    results = tmp_path / "results"
    holder = _hold_lock(RunDir(results, a).path)
    seen = []
    try:
        # finish `a` "in the other process" (here: after our first pass saw it locked)
        def on_outcome(o):
            seen.append((o.run_id, o.status))
            if o.status == "waiting":
                holder.send_signal(signal.SIGKILL)
                holder.wait()
                assert execute(a, results).status == "done"

        outcomes = run_suite([a, b], results, executor, on_outcome=on_outcome, poll_s=0.05)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        if make_executor is _ray_executor:
            import ray

            ray.shutdown()
    by_id = {o.run_id: o.status for o in outcomes}
    assert by_id == {a.run_id(): "skipped", b.run_id(): "done"}
    assert (a.run_id(), "waiting") in seen


@pytest.mark.slow  # two CLI start-ups + 3 runs (~1 min on 2 busy cores); locks are also
def test_two_cli_processes_share_a_results_folder(tmp_path):  # tested above with real processes
    """Two `ertrl-bench run` of one suite into one folder: every run is done exactly once."""
    suite = tiny_suite(name="twice", seeds=[0, 1, 2])
    suite["train"].update(iterations=3, steps_per_iteration=30)
    path = write_suite(tmp_path / "s.yaml", suite)
    results = tmp_path / "results"
    cmd = [*entry_point(), "run", str(path), "--results-dir", str(results), "--jobs", "1"]
    env = {**os.environ, "ERTRL_BENCH_QUIET": "1"}
    first = subprocess.Popen(
        cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env
    )
    try:
        wait_for(
            lambda: any(p.read_text() for p in results.glob("twice/*/.lock") if p.exists()),
            "the first process never locked a run",
            every=0.05,
        )
    except AssertionError:
        first.kill()
        raise
    second = subprocess.Popen(
        cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env
    )
    err1, err2 = first.communicate(timeout=300)[1], second.communicate(timeout=300)[1]
    assert first.returncode == 0 and second.returncode == 0, err1 + err2
    status = re.compile(r"^\s*(done|skipped|waiting|failed)\s+(\S+)", re.M)
    done = [rid for s, rid in status.findall(err1 + err2) if s == "done"]
    ids = [r["run_id"] for r in json.loads((results / "twice" / "suite.json").read_text())["runs"]]
    assert sorted(done) == sorted(ids), err1 + err2  # each run ran once, in one of the two
    for rid in ids:
        assert (results / "twice" / rid / "metrics.json").exists()
        logs = (results / "twice" / rid / "log.jsonl").read_text().splitlines()
        iterations = [json.loads(x)["iteration"] for x in logs if "eval" in json.loads(x)]
        assert iterations == sorted(set(iterations)), "two processes wrote one run's log"


def _finals(outcomes):
    return {o.run_id: o.metrics["per_task"] for o in outcomes}


@pytest.mark.slow  # ~10 s idle, ~35 s on the shared 2 cores: two worker processes import torch
def test_jobs_gives_the_same_numbers_as_sequential(tmp_path):
    specs = _specs(tmp_path, seeds=[0, 1])
    seq = run_suite(specs, tmp_path / "seq", LocalExecutor(LocalOptions(jobs=1)))
    par_ex = LocalExecutor(LocalOptions(jobs=2, threads=1))
    assert par_ex.parallel and par_ex.plan(2) == (2, 1)
    par = run_suite(specs, tmp_path / "par", par_ex)
    assert [o.status for o in seq] == [o.status for o in par] == ["done"] * 2
    assert _finals(seq) == _finals(par)
    # resumable in parallel too: everything is skipped the second time
    again = run_suite(specs, tmp_path / "par", par_ex)
    assert [o.status for o in again] == ["skipped"] * 2


def test_default_jobs_come_from_the_core_count():
    from ertrl_bench.executors import usable_cores

    cores = usable_cores()
    ex = LocalExecutor()
    assert ex.plan(1000) == (cores, 1)
    assert ex.plan(1) == (1, cores)
    # --jobs is capped at the number of runs: never a process without a run
    assert LocalExecutor(LocalOptions(jobs=1000)).plan(2) == (2, max(1, cores // 2))
    assert LocalExecutor(LocalOptions(jobs=1)).plan(10) == (1, cores)
    assert not LocalExecutor(LocalOptions(jobs=1)).parallel


def test_a_broken_lock_fails_only_its_run(tmp_path):
    """A ``.lock`` that is a folder fails its run; the suite's other runs still run."""
    a, b = _specs(tmp_path, seeds=[0, 1])
    results = tmp_path / "results"
    (RunDir(results, a).path / ".lock").mkdir(parents=True)
    outcomes = run_suite([a, b], results, _local_executor())
    by_id = {o.run_id: o.status for o in outcomes}
    assert by_id == {a.run_id(): "failed", b.run_id(): "done"}
    assert "is a folder, not the run's lock file" in outcomes[0].message
    assert not list(results.rglob(".*.tmp"))


def _children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (Linux /proc)."""
    out = []
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                fields = open(f"/proc/{stat}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(stat))
    return out


def _alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_worker_dies_with_its_parent():
    """The executor's worker set-up, in a real grandchild: kill -9 its parent and it goes too."""
    code = textwrap.dedent(
        """
        import os, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", (
            "import os, time; from ertrl_bench.executors import _die_with_parent;"
            f" _die_with_parent({os.getpid()}); print('armed', flush=True); time.sleep(600)"
        )], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "armed"
        print(child.pid, flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    try:
        parent.kill()
        parent.wait()
        wait_for(lambda: not _alive(worker), "the worker's death", timeout=30, every=0.05)
    finally:
        if _alive(worker):
            os.kill(worker, signal.SIGKILL)


@pytest.mark.slow  # ~50 s per case on 2 busy cores: a CLI and two workers importing torch
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("how", ["kill -9", "SIGTERM", "Ctrl-C"])
def test_jobs_workers_stop_with_their_parent(tmp_path, how):
    """`run --jobs 2` stopped in mid-run: no worker outlives its parent or finishes its run, no
    traceback, and each run it stopped says "interrupted" (as with --jobs 1)."""
    suite = tiny_suite(name="stop", seeds=[0, 1])
    suite["train"].update(iterations=500, steps_per_iteration=50)
    path = write_suite(tmp_path / "s.yaml", suite)
    results = tmp_path / "results"
    parent = subprocess.Popen(
        [*entry_point(), "run", str(path), "--results-dir", str(results), "--jobs", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    workers: list[int] = []
    try:
        wait_for(  # two workers importing torch on busy cores
            lambda: len(list(results.glob("stop/*/log.jsonl"))) == 2, "both runs", timeout=600
        )
        workers = _children(parent.pid)
        assert len(workers) >= 2
        parent.send_signal(
            {"kill -9": signal.SIGKILL, "SIGTERM": signal.SIGTERM, "Ctrl-C": signal.SIGINT}[how]
        )
        parent.wait(timeout=120)
        wait_for(lambda: not any(_alive(p) for p in workers), f"the workers' end ({how})", 60)
    finally:  # never leave this test's processes behind
        for pid in [parent.pid, *workers]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        parent.wait()
    stderr = parent.stderr.read()  # workers share it: read once all are gone
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    if how == "Ctrl-C":
        assert parent.returncode == 130, stderr
    for run in results.glob("stop/*/"):
        if run.is_dir():
            assert not (run / "metrics.json").exists()
            assert json.loads((run / "failed.json").read_text())["error"] == "interrupted"
