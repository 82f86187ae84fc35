"""``ertrl-bench status``: each run's state read from real run folders, and nothing written.

The folders are made the way the runner makes them: a finished tiny run, one copied by
``--reuse``'s code, one stopped by Ctrl-C after a checkpoint, one held by a live process, one
whose lock a killed process left, one failed, one never started.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from ertrl_bench.checkpoint import read_checkpoint
from ertrl_bench.cli import main
from ertrl_bench.extend import extend_unfinished
from ertrl_bench.reuse import find_sources, reuse_finished
from ertrl_bench.runner import _record_failure, execute
from ertrl_bench.store import RunDir, write_suite_index
from ertrl_bench.suite_loader import load_suite
from tests.helpers import REPO, tiny_suite, write_suite


def _suite(path, name: str, seeds):
    suite = tiny_suite(name=name, seeds=list(seeds), checkpoint={"every_minutes": 0.0005})
    suite["train"].update(iterations=2, steps_per_iteration=10)
    return write_suite(path, suite)


def _stop_after_a_checkpoint(spec, results) -> None:
    """Run ``spec`` and Ctrl-C it once it has written a checkpoint (test_checkpoint's way)."""
    rd = RunDir(results, spec)

    def interrupt(signum, frame):
        if rd.checkpoint_path.exists():
            raise KeyboardInterrupt
        signal.setitimer(signal.ITIMER_REAL, 0.005)

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.005)
        with pytest.raises(KeyboardInterrupt):
            execute(spec, results)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert rd.checkpoint_path.exists() and not rd.metrics_path.exists()


def _take_lock(rd: RunDir, then: str) -> subprocess.Popen:
    """Another process that takes the run's lock as the runner does, then ``then``."""
    code = (
        "import os, sys, time\nfrom pathlib import Path\nfrom ertrl_bench.store import RunLock\n"
        "assert RunLock(Path(sys.argv[1])).acquire()\nprint('held', flush=True)\n" + then
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(rd.path / ".lock")],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def _snapshot(root) -> dict:
    return {
        p: (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(root.rglob("*")) if p.is_file()
    }


def _status(capsys, *argv) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main(["status", *map(str, argv)])
    captured = capsys.readouterr()
    return info.value.code, captured.out + captured.err


def test_status_names_each_runs_state_and_writes_nothing(tmp_path, capsys):
    results = tmp_path / "results"
    suite = _suite(tmp_path / "st.yaml", "st", range(7))
    done, reused, stopped, running, stale, failed, fresh = load_suite(suite)[1]
    finished = execute(done, results)
    assert finished.status == "done"
    # reused: copied from another suite's finished run of the same spec, as --reuse does
    (source,) = load_suite(_suite(tmp_path / "src.yaml", "src", [1]))[1]
    assert execute(source, tmp_path / "other").status == "done"
    write_suite_index(tmp_path / "other", "src", [source])
    copied = reuse_finished([reused], results, find_sources([tmp_path / "other" / "src"]))
    assert [o.status for o in copied] == ["reused"]
    _stop_after_a_checkpoint(stopped, results)
    RunDir(results, running).path.mkdir(parents=True)
    holder = _take_lock(RunDir(results, running), "time.sleep(60)")
    killed = _take_lock(RunDir(results, stale), "os.kill(os.getpid(), 9)")
    killed.wait(timeout=30)
    RunDir(results, failed).start("cpu")  # as the runner does before a run fails
    _record_failure(RunDir(results, failed), "ValueError: bad things\nsecond line", "tb")
    before = _snapshot(results)
    try:
        code, text = _status(capsys, suite, "--results-dir", results, "--json")
        assert code == 0, text
        report = json.loads(text)
        rows = {r["run_id"]: r for r in report["runs"]}
        assert [r["run_id"] for r in report["runs"]] == [s.run_id() for s in load_suite(suite)[1]]
        expect = [
            (done, "done"),
            (reused, "reused"),
            (stopped, "stopped"),
            (running, "running"),
            (stale, "not started"),  # its lock's holder was killed: the lock is stale
            (failed, "failed"),
            (fresh, "not started"),
        ]
        assert [rows[s.run_id()]["status"] for s, _ in expect] == [status for _, status in expect]
        assert rows[done.run_id()]["step"] == rows[done.run_id()]["total"] == 20
        assert rows[reused.run_id()]["detail"] == f"from src/{source.run_id()}"
        assert rows[done.run_id()]["log_age_s"] >= 0
        # the step its checkpoint resumes from, read without torch, is torch's reading of it
        rd = RunDir(results, stopped)
        state = read_checkpoint(rd.checkpoint_path, stopped.run_id())
        at, wall = state["loop"]["step"], state["run"]["timing"]["wall"]
        assert rows[stopped.run_id()]["step"] == at < 20
        # its time left, at its wall clock per step so far; none for the others
        assert rows[stopped.run_id()]["left_s"] == pytest.approx((20 - at) * wall / at)
        assert [r["run_id"] for r in report["runs"] if r["left_s"] is not None] == [
            stopped.run_id()
        ]
        assert rows[running.run_id()]["detail"] == f"pid {holder.pid} on {os.uname().nodename}"
        assert rows[failed.run_id()]["detail"] == "ValueError: bad things"
        assert rows[fresh.run_id()]["step"] is None and rows[fresh.run_id()]["log_age_s"] is None
        assert report["summary"]["counts"] == {
            "done": 1,
            "reused": 1,
            "running": 1,
            "stopped": 1,
            "failed": 1,
            "not started": 2,
        }
        # the suite's own finished run only (the reused one cost this suite nothing)
        own = finished.metrics["timing_s"]["total"]
        assert report["summary"]["run_seconds"] == pytest.approx(own, abs=0.06)
        # the two not started, each at the mean cost of the finished runs of its method and env
        # (the done one and the reused one: its source's cost)
        theirs = json.loads(RunDir(results, reused).metrics_path.read_text())["timing_s"]["total"]
        expected = 2 * (own + theirs) / 2
        assert report["summary"]["not_started_run_seconds"] == pytest.approx(expected, abs=0.2)
        assert report["summary"]["not_started_unestimated"] == 0

        code, text = _status(capsys, suite, "--results-dir", results)
        assert code == 0, text
        flat = " ".join(text.split())
        assert "stopped at step" in flat and "of 20" in flat and "left (est.)" in flat
        assert "7 run(s): 1 done, 1 reused, 1 running, 1 stopped, 1 failed, 2 not started" in flat
        assert "the 2 not started: ~" in flat and "to go by" not in flat
        assert _snapshot(results) == before  # read only: no file written, touched or made
    finally:
        holder.kill()
        holder.wait(timeout=30)
    # once its holder is gone, the running run is free: it has no log, so not started
    code, text = _status(capsys, suite, "--results-dir", results, "--json")
    assert json.loads(text)["summary"]["counts"]["not started"] == 3


def test_a_run_waiting_to_extend_a_shorter_one_says_so(tmp_path, capsys):
    """``run`` copies a finished shorter run's checkpoint into each run it extends before the
    runs start: until one trains, status shows where it will start and why it has no log."""
    results = tmp_path / "results"
    short = tiny_suite(name="short", checkpoint={"keep": True})
    short["train"].update(iterations=2, steps_per_iteration=10)
    (spec,) = load_suite(write_suite(tmp_path / "short.yaml", short))[1]
    assert execute(spec, results).status == "done"
    write_suite_index(results, "short", [spec])
    longer = {**short, "name": "longer", "train": {**short["train"], "iterations": 4}}
    path = write_suite(tmp_path / "longer.yaml", longer)
    (waiting,) = load_suite(path)[1]
    assert extend_unfinished([waiting], results)
    capsys.readouterr()  # extend's own line
    code, text = _status(capsys, path, "--results-dir", results, "--json")
    assert code == 0, text
    (row,) = json.loads(text)["runs"]
    assert (row["status"], row["step"], row["total"]) == ("stopped", 20, 40)
    assert row["detail"].startswith("extends a shorter finished run from this step")


def test_status_of_a_suite_not_run_there_yet(tmp_path, capsys):
    suite = _suite(tmp_path / "st.yaml", "st", [0, 1])
    code, text = _status(capsys, suite, "--results-dir", tmp_path)
    assert code == 0, text
    flat = " ".join(text.split())
    assert "2 run(s): 2 not started; 0 run-seconds" in flat
    assert "the 2 not started: no finished run of their method and env to go by" in flat
    assert list(tmp_path.iterdir()) == [suite]  # no results folder made


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["no-such-suite"], "no-such-suite"),
        (["smoke", "--results-dir", "{tmp}/missing"], "missing: no such folder"),
        (["smoke", "--results-dir", "{tmp}/file"], "file: is not a folder"),
    ],
    ids=["unknown suite", "missing results dir", "results dir is a file"],
)
def test_status_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, needle):
    (tmp_path / "file").write_text("")
    code, text = _status(capsys, *(a.format(tmp=tmp_path) for a in argv))
    assert code == 2, text
    assert "Traceback" not in text and len(text.strip().splitlines()) == 1, text
    assert needle in text
