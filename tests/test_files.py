"""Written files get the usual permissions (the umask's), not mkstemp's private 0600."""

import os

import pytest

from ertrl_bench.data.store import atomic_write_bytes, atomic_write_json


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_writes_respect_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_json(tmp_path / "a.json", {"x": 1})
        atomic_write_bytes(tmp_path / "b.bin", lambda f: f.write(b"abc"))
        # a plain open() is the reference for "the usual permissions"
        with open(tmp_path / "ref", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    assert (tmp_path / "ref").stat().st_mode & 0o777 == expected
    for name in ("a.json", "b.bin"):
        assert (tmp_path / name).stat().st_mode & 0o777 == expected, name
    assert not list(tmp_path.glob(".*tmp"))


# --- nothing is written through a symlink under the results folder (issue 24) ----------------


def _victim(tmp_path, name="victim.txt"):
    victim = tmp_path / name
    victim.write_text("precious")
    return victim


def _tiny_spec(tmp_path, **kw):
    from ertrl_bench.suite_loader import load_suite
    from tests.helpers import tiny_suite, write_suite

    return load_suite(write_suite(tmp_path / "s.yaml", tiny_suite(**kw)))[1]


@pytest.mark.parametrize("kind", ["symlink", "dangling symlink", "hard link", "folder", "fifo"])
def test_a_lock_that_is_not_a_plain_file_fails_only_its_run(tmp_path, kind):
    from ertrl_bench.runner import execute
    from ertrl_bench.store import RunDir

    (spec,) = _tiny_spec(tmp_path)
    results = tmp_path / "results"
    rd = RunDir(results, spec)
    rd.path.mkdir(parents=True)
    lock = rd.path / ".lock"
    victim = _victim(tmp_path)
    if kind == "symlink":
        lock.symlink_to(victim)
    elif kind == "dangling symlink":
        lock.symlink_to(tmp_path / "nowhere")
    elif kind == "hard link":
        os.link(victim, lock)
    elif kind == "folder":
        lock.mkdir()
    else:
        os.mkfifo(lock)
    out = execute(spec, results)
    assert out.status == "failed"
    assert f"{lock}: is a" in out.message and "Remove it" in out.message
    assert victim.read_text() == "precious"
    assert not (tmp_path / "nowhere").exists()
    assert "Remove it" in (rd.path / "failed.json").read_text()
    assert not rd.metrics_path.exists()
    assert not list(rd.path.glob(".*.tmp"))


def test_a_symlinked_run_or_suite_folder_is_refused(tmp_path):
    from ertrl_bench.runner import execute
    from ertrl_bench.store import RunDir

    (spec,) = _tiny_spec(tmp_path)
    results = tmp_path / "results"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "metrics.json").write_text("precious")
    rd = RunDir(results, spec)
    rd.path.parent.mkdir(parents=True)
    rd.path.symlink_to(elsewhere, target_is_directory=True)
    out = execute(spec, results, force=True)
    assert out.status == "failed" and f"{rd.path}: is a symlink" in out.message
    assert sorted(p.name for p in elsewhere.iterdir()) == ["metrics.json"]
    assert (elsewhere / "metrics.json").read_text() == "precious"


def test_report_replaces_symlinked_outputs_and_leaves_their_targets(tmp_path):
    from ertrl_bench.analysis.report import write_report
    from tests.test_analysis_report import _index, _write_run

    suite = tmp_path / "suite"
    runs = [
        {"run_id": f"r{i}", "method": m, "env": "cheetah-vel", "seed": 0}
        for i, m in enumerate(("ertrl", "focal"))
    ]
    for r in runs:
        _write_run(suite, r["run_id"], r["method"], r["env"], r["seed"])
    _index(suite, runs)
    outputs = ["report.md", "returns.csv", "missing_runs.csv", "curves_cheetah-vel.png"]
    victims = {}
    for name in outputs:
        victims[name] = _victim(tmp_path, f"victim-{name}")
        (suite / name).symlink_to(victims[name])
    notes = "<!-- generated:study begin -->\nold\n<!-- generated:study end -->\n"
    victims["NOTES.md"] = tmp_path / "victim-NOTES.md"
    victims["NOTES.md"].write_text(notes)  # a block the report rewrites
    (suite / "NOTES.md").symlink_to(victims["NOTES.md"])
    write_report(suite, reps=50)
    assert victims.pop("NOTES.md").read_text() == notes
    assert not (suite / "NOTES.md").is_symlink() and "old" not in (suite / "NOTES.md").read_text()
    for name in outputs:
        assert victims[name].read_text() == "precious", name
        assert not (suite / name).is_symlink(), name
        assert (suite / name).stat().st_size > 0, name


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs Linux's /proc")
def test_a_killed_writer_not_yet_reaped_counts_as_gone(tmp_path):
    """A zombie (exited, its parent has not waited for it) writes nothing more: its temp files
    are stale, so ``pid_alive`` says no; a live process and this one say yes."""
    import subprocess
    import sys
    import time

    from ertrl_bench.data.store import clean_stale_tmp, pid_alive

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # exited but not reaped: a zombie of this process
        state = open(f"/proc/{child.pid}/stat").read().rpartition(")")[2].split()[0]
        if state == "Z":
            break
        time.sleep(0.05)
    (tmp_path / f".checkpoint.pt.{child.pid}.abc.tmp").write_bytes(b"half")
    assert not pid_alive(child.pid)
    assert [p.name for p in clean_stale_tmp(tmp_path)] == [f".checkpoint.pt.{child.pid}.abc.tmp"]
    child.wait()
    assert not pid_alive(child.pid) and pid_alive(os.getpid())
