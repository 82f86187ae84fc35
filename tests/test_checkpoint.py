"""Mid-run checkpoints: a run killed at any point resumes to the numbers of an uninterrupted one.

The kill tests run the real ``ertrl-bench run`` in a subprocess and SIGKILL its process group
(the parent and its workers) at a random moment after a checkpoint, then rerun it until the suite
finishes, and compare every run's metrics.json, encodings and training log with an uninterrupted
run of the same suite, bit for bit (CPU).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from ertrl_bench.backbones.brac import BRAC, BRACOptions
from ertrl_bench.config import Strict
from ertrl_bench.conformance import ConformanceError
from ertrl_bench.errors import ErtrlError
from ertrl_bench.executors import LocalExecutor, LocalOptions
from ertrl_bench.plugins import get_registry, hookimpl
from ertrl_bench.runner import execute, load_trained, run_suite
from ertrl_bench.store import RunDir
from ertrl_bench.suite_loader import load_suite
from ertrl_bench.testing import check_backbone
from tests.helpers import REPO, entry_point, tiny_suite, wait_for, write_suite

METHODS = ("focal", "csro", "unicorn", "offline_pearl", "ertrl")


def _suite(tmp_path: Path, methods=METHODS, iterations=2, steps=10, **checkpoint) -> Path:
    suite = tiny_suite(name="ck", methods=list(methods))
    suite["train"].update(iterations=iterations, steps_per_iteration=steps)
    if checkpoint:
        suite["checkpoint"] = checkpoint
    return write_suite(tmp_path / "ck.yaml", suite)


def _comparable(run_dir: Path) -> dict:
    """What must not change with a kill: metrics (not the wall times), z's, the training log
    (not its timing records, nor the resume marker)."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    with np.load(run_dir / "encodings.npz") as z:
        encodings = {k: z[k].tolist() for k in z.files}
    return {
        "metrics": {k: v for k, v in metrics.items() if k not in ("wall_s", "timing_s")},
        "log": [
            r for r in log if "resumed_at_step" not in r and not any(k.endswith("_s") for k in r)
        ],
        "encodings": encodings,
    }


def _uninterrupted(suite: Path, results: Path) -> dict[str, dict]:
    out = {}
    for spec in load_suite(suite)[1]:
        assert execute(spec, results).status == "done"
        out[spec.run_id()] = _comparable(RunDir(results, spec).path)
    return out


def _run_killing(
    suite: Path,
    results: Path,
    args: list[str],
    rng: random.Random,
    max_delay_s: float = 0.3,
    kills_per_run: int = 1,
    together: int = 1,
    max_kills: int = 1000,
) -> int:
    """``ertrl-bench run`` in a subprocess, SIGKILLed a random moment (up to ``max_delay_s``)
    after ``together`` runs killed fewer than ``kills_per_run`` times wrote a new checkpoint (fewer
    when fewer are left); rerun until the suite finishes, killing it at most ``max_kills`` times.
    Returns the number of kills."""
    run_dirs = [RunDir(results, spec).path for spec in load_suite(suite)[1]]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    kills: Counter[Path] = Counter()
    killed_at: dict[Path, int] = {}  # the checkpoint's mtime when the run was last killed

    def mtime(d: Path) -> int | None:
        try:
            return (d / "checkpoint.pt").stat().st_mtime_ns
        except FileNotFoundError:
            return None

    def ready() -> list[Path]:
        """Runs with a checkpoint written since their last kill (not the one they resume from)."""
        return [
            d
            for d in run_dirs
            if kills[d] < kills_per_run
            and mtime(d) not in (None, killed_at.get(d))
            and not (d / "metrics.json").exists()
        ]

    for attempt in range(40):
        if attempt == max_kills:
            kills_per_run = 0  # no more kills: let it finish
        proc = subprocess.Popen(
            [*entry_point(), "run", str(suite), "--results-dir", str(results), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # its own process group: the kill reaches its workers too
        )
        left = [
            d for d in run_dirs if kills[d] < kills_per_run and not (d / "metrics.json").exists()
        ]
        try:
            wait_for(
                lambda proc=proc, n=min(together, len(left)): (
                    proc.poll() is not None or len(ready()) >= n > 0
                ),
                "a checkpoint or the end of the suite",
                timeout=300,
                every=0.02,
            )
        except BaseException:  # the test fails or is stopped: leave no run behind
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        if proc.poll() is not None:
            assert proc.returncode == 0, f"the run ended with {proc.returncode}"
            return attempt
        targets = ready()
        time.sleep(rng.uniform(0.0, max_delay_s))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for d in targets:
            if not (d / "metrics.json").exists():
                kills[d] += 1
                killed_at[d] = mtime(d)
    raise AssertionError("the suite never finished")


def _resumed(run_dir: Path) -> bool:
    log = (run_dir / "log.jsonl").read_text().splitlines()
    return any("resumed_at_step" in json.loads(line) for line in log)


def _check_against(reference: dict[str, dict], results: Path, suite_name: str = "ck") -> None:
    for run_id, expected in reference.items():
        run_dir = results / suite_name / run_id
        assert _comparable(run_dir) == expected, run_id
        assert not (run_dir / "checkpoint.pt").exists(), "a finished run keeps no checkpoint"
        assert not list(run_dir.glob(".*.tmp")), "no temp file left behind"


def test_killed_suite_resumes_to_identical_numbers_jobs_2(tmp_path):
    """Two methods at a time under --jobs 2 (checkpoints every ~0.03 s, set from the CLI), the
    whole process group SIGKILLed while both are in flight, then run to the end. Every method
    under SIGKILL, one and two at a time: the slow test below."""
    suite = _suite(tmp_path, methods=("ertrl", "offline_pearl"))
    reference = _uninterrupted(suite, tmp_path / "reference")
    results = tmp_path / "killed"
    args = ["--jobs", "2", "--checkpoint-every", "0.0005"]
    kills = _run_killing(suite, results, args, random.Random(0), together=2, max_kills=1)
    assert kills == 1
    _check_against(reference, results)
    assert any(_resumed(results / "ck" / rid) for rid in reference)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_interrupted_at_a_random_moment_resumes_to_identical_numbers(tmp_path, method):
    """A run stopped at a random moment after its first checkpoint (a timer signal, in this
    process: no start-up cost) and rerun ends as an uninterrupted run, bit for bit.

    The moment is drawn from the reference run's time; a rerun can be faster than the reference
    (warm caches, a quieter machine) and end before it, so then the draw is repeated earlier in a
    fresh folder (halved each time: the timer re-arms until the first checkpoint exists)."""
    (spec,) = load_suite(_suite(tmp_path, methods=(method,), every_minutes=0.0005))[1]
    reference = execute(spec, tmp_path / "a")
    timing = reference.metrics["timing_s"]
    delay = random.Random(method).uniform(0.1, 0.9) * (timing["train"] + timing["eval"])
    for attempt in range(6):
        rd = RunDir(tmp_path / f"b{attempt}", spec)
        if _stopped_by_timer(spec, rd, delay / 2**attempt):
            break
    else:
        pytest.fail("every rerun ended before its timer fired")
    assert not rd.metrics_path.exists() and rd.checkpoint_path.exists()
    again = execute(spec, rd.path.parent.parent)
    assert again.status == "done" and again.message.startswith("resumed from step"), again
    assert _comparable(rd.path) == _comparable(RunDir(tmp_path / "a", spec).path)


def _stopped_by_timer(spec, rd: RunDir, delay: float) -> bool:
    """Run ``spec`` into ``rd``, raising KeyboardInterrupt ``delay`` seconds in (or at the first
    moment after that a checkpoint exists); False when the run finished first."""

    def interrupt(signum, frame):
        if not rd.checkpoint_path.exists():  # not before the first checkpoint
            signal.setitimer(signal.ITIMER_REAL, 0.01)
            return
        raise KeyboardInterrupt

    # the interrupt can land inside a block that swaps SIGINT / SIGTERM handlers: whatever it
    # leaves there must not reach the tests after this one
    others = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, delay)
        execute(spec, rd.path.parent.parent)
    except KeyboardInterrupt:
        return True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        for sig, handler in others.items():
            signal.signal(sig, handler)
    assert rd.metrics_path.exists()
    return False


@pytest.mark.slow
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_repeated_random_kills_resume_to_identical_numbers(tmp_path, jobs):
    """Longer runs, each killed up to three times at random moments (mid-iteration, during an
    evaluation or the probe), one run at a time and two at a time."""
    suite = _suite(tmp_path, iterations=4, steps=30)
    reference = _uninterrupted(suite, tmp_path / "reference")
    results = tmp_path / "killed"
    args = ["--jobs", jobs, "--checkpoint-every", "0.002"]
    kills = _run_killing(
        suite, results, args, random.Random(int(jobs)), 1.5, kills_per_run=3, together=int(jobs)
    )
    assert kills >= len(METHODS)
    _check_against(reference, results)
    assert all(_resumed(results / "ck" / rid) for rid in reference)


def _logged_step(run_dir: Path) -> int:
    try:
        lines = (run_dir / "log.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return 0
    return max((json.loads(x).get("step", 0) for x in lines if '"step"' in x), default=0)


def _stop_suite(tmp_path: Path, seeds) -> tuple[Path, list[Path]]:
    """One iteration of 400 steps (no evaluation before its end), no timed checkpoint due."""
    suite = tiny_suite(name="ck", seeds=list(seeds), checkpoint={"every_minutes": 60})
    suite["train"].update(iterations=1, steps_per_iteration=400)
    suite = write_suite(tmp_path / "ck.yaml", suite)
    return suite, [tmp_path / "stopped" / "ck" / s.run_id() for s in load_suite(suite)[1]]


def _check_stopped_mid_iteration(dirs: list[Path]) -> None:
    """Each run wrote the checkpoint of the step it stopped after: its only one here."""
    for d in dirs:
        assert not (d / "metrics.json").exists()
        step = torch.load(d / "checkpoint.pt", weights_only=True)["loop"]["step"]
        assert 50 <= step < 400 and step >= _logged_step(d), (d.name, step)


@pytest.mark.usefixtures("ctrl_c_delivered")
@pytest.mark.parametrize("sig, seeds_per_step", [(signal.SIGTERM, 1), (signal.SIGINT, 2)])
def test_a_stopped_run_checkpoints_the_step_it_stopped_at_and_resumes_identically(
    tmp_path, sig, seeds_per_step
):
    """Ctrl-C (SIGINT) or SIGTERM during the training steps, here in this process (a run alone;
    a seed group of two): the step in progress ends, is checkpointed, and the run stops, losing
    nothing; rerun, it ends as an uninterrupted run."""
    suite, dirs = _stop_suite(tmp_path, seeds=range(seeds_per_step))
    specs = load_suite(suite)[1]
    executor = LocalExecutor(LocalOptions(jobs=1, seeds_per_step=seeds_per_step))
    assert {o.status for o in run_suite(specs, tmp_path / "reference", executor)} == {"done"}

    def signal_at_step_50() -> None:
        wait_for(lambda: all(_logged_step(d) >= 50 for d in dirs), "step 50", 300, 0.01)
        assert not any((d / "checkpoint.pt").exists() for d in dirs)
        os.kill(os.getpid(), sig)

    sender = threading.Thread(target=signal_at_step_50, daemon=True)
    sender.start()
    with pytest.raises(KeyboardInterrupt):
        run_suite(specs, tmp_path / "stopped", executor)
    sender.join()
    _check_stopped_mid_iteration(dirs)
    again = run_suite(specs, tmp_path / "stopped", executor)
    assert all(o.status == "done" and "resumed from step" in o.message for o in again), again
    for d in dirs:
        assert _comparable(d) == _comparable(tmp_path / "reference" / "ck" / d.name), d.name


def test_workers_of_a_sigtermed_parent_checkpoint_their_step_and_resume_identically(tmp_path):
    """``kill PID`` of a real ``ertrl-bench run --jobs 2``: the parent stops as on Ctrl-C (exit
    130), its two workers get SIGTERM, each checkpoints the step in progress and exits; the rerun
    ends as an uninterrupted run of the same command."""
    suite, dirs = _stop_suite(tmp_path, seeds=(0, 1))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }

    def cli(results: Path) -> subprocess.Popen:
        command = [*entry_point(), "run", str(suite), "--results-dir", str(results), "--jobs", "2"]
        return subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # its own process group: to wait for its workers' exit
        )

    def group_gone(pgid: int) -> bool:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        return False

    assert cli(tmp_path / "reference").wait(timeout=600) == 0
    proc = cli(tmp_path / "stopped")
    try:
        wait_for(lambda: all(_logged_step(d) >= 50 for d in dirs), "step 50", 300, 0.01)
        assert not any((d / "checkpoint.pt").exists() for d in dirs)
        os.kill(proc.pid, signal.SIGTERM)  # the parent only
        assert proc.wait(timeout=120) == 130  # as Ctrl-C: the pool stopped, its workers joined
        wait_for(lambda: group_gone(proc.pid), "the workers' exit", 120)
    finally:
        if not group_gone(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
    _check_stopped_mid_iteration(dirs)
    assert cli(tmp_path / "stopped").wait(timeout=600) == 0
    for d in dirs:
        assert _resumed(d)
        assert _comparable(d) == _comparable(tmp_path / "reference" / "ck" / d.name), d.name


# --------------------------------------------------------------------------------------------
# In-process: keep / remove, unusable checkpoints, components without load_state_dict


def _one_run(tmp_path, **checkpoint):
    (spec,) = load_suite(_suite(tmp_path, methods=("focal",), **checkpoint))[1]
    return spec


def test_kept_checkpoint_of_a_finished_run_resumes_after_the_last_evaluation(tmp_path):
    spec = _one_run(tmp_path, every_minutes=0.001)
    plain = execute(spec, tmp_path / "a")
    assert plain.status == "done" and plain.message == ""
    assert not RunDir(tmp_path / "a", spec).checkpoint_path.exists()  # removed by default
    kept = spec.model_copy(update={"checkpoint": spec.checkpoint.model_copy(update={"keep": True})})
    assert kept.run_id() == spec.run_id()  # the checkpoint policy is not part of the id
    rd = RunDir(tmp_path / "b", kept)
    assert execute(kept, tmp_path / "b").status == "done"
    assert rd.checkpoint_path.exists()
    assert _comparable(rd.path) == _comparable(RunDir(tmp_path / "a", spec).path)
    rd.metrics_path.unlink()  # as if killed during the probe, after the last checkpoint
    again = execute(kept, tmp_path / "b")
    assert again.status == "done" and again.message == "resumed from step 20"
    assert _comparable(rd.path) == _comparable(RunDir(tmp_path / "a", spec).path)


def test_load_trained_rebuilds_the_agent_its_checkpoint_holds(tmp_path):
    suite = _suite(tmp_path, methods=("ertrl",), every_minutes=0.001, keep=True)
    (spec,) = load_suite(suite)[1]
    rd = RunDir(tmp_path / "r", spec)
    assert execute(spec, tmp_path / "r").status == "done"
    trained = load_trained(rd.path)
    assert trained.spec == spec and trained.step == 20
    saved = torch.load(rd.checkpoint_path, weights_only=True)["loop"]["agent"]
    policy = trained.agent.backbone.policy.state_dict()
    assert all(torch.equal(policy[k], v) for k, v in saved["backbone"]["policy"].items())
    encoder = trained.agent.encoder.state_dict()
    assert all(torch.equal(encoder[k], v) for k, v in saved["encoder"].items())
    assert torch.equal(trained.agent.backbone.raw_alpha, saved["backbone"]["raw_alpha"])
    # the data it trained on, each task's row as the agent saw it
    key = trained.data.tasks[0].key
    obs = trained.task_data.data["obs"][trained.rows[key], : len(trained.data.arrays[key]["obs"])]
    assert np.array_equal(obs.numpy(), trained.data.arrays[key]["obs"])
    rd.checkpoint_path.unlink()
    with pytest.raises(ErtrlError, match="--keep-checkpoints"):
        load_trained(rd.path)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other run"])
def test_unusable_checkpoint_is_reported_once_and_the_run_starts_over(tmp_path, capsys, damage):
    spec = _one_run(tmp_path, every_minutes=0.001, keep=True)
    rd = RunDir(tmp_path / "r", spec)
    assert execute(spec, tmp_path / "r").status == "done"
    reference = _comparable(rd.path)
    good = rd.checkpoint_path.read_bytes()
    if damage == "garbage":
        rd.checkpoint_path.write_bytes(b"not a checkpoint")
    elif damage == "truncated":
        rd.checkpoint_path.write_bytes(good[: len(good) // 2])
    else:  # a checkpoint copied from another run's folder
        state = torch.load(rd.checkpoint_path, weights_only=True)
        torch.save({**state, "run_id": "ertrl-point-robot-s0-0123456789"}, rd.checkpoint_path)
    # a finished run is never touched, whatever its kept checkpoint holds
    assert execute(spec, tmp_path / "r").status == "skipped"
    capsys.readouterr()
    rd.metrics_path.unlink()
    out = execute(spec, tmp_path / "r")
    assert out.status == "done" and out.message == "checkpoint unusable: started over"
    err = capsys.readouterr().err
    assert err.count("starting this run over from step 0") == 1
    assert str(rd.checkpoint_path) in err.replace("\n", "")
    want = {"garbage": "unreadable", "truncated": "unreadable", "other run": "belongs to run"}
    assert want[damage] in err
    assert _comparable(rd.path) == reference
    assert not _resumed(rd.path)


class _NoLoadOptions(Strict):
    pass


class _NoLoad:
    """An encoder loss from before the checkpoint contract: state_dict, no load_state_dict."""

    def __init__(self, options, problem):
        self.device = problem.device

    def update(self, batch):
        return {}

    def encoder_loss(self, batch):
        return torch.zeros((), device=self.device), {}

    def joint_parameters(self):
        return []

    def state_dict(self):
        return {}


class _NoLoadPlugin:
    @hookimpl
    def register_encoder_losses(self, register):
        register("no_load", _NoLoad, _NoLoadOptions)


def test_component_without_load_state_dict_runs_without_checkpoints(
    tmp_path, capsys, register_test_plugin
):
    register_test_plugin(_NoLoadPlugin(), "old-plugin")
    suite = tiny_suite(name="old", methods=[{"name": "old", "encoder_losses": ["dml", "no_load"]}])
    suite["checkpoint"] = {"every_minutes": 0.001}
    (spec,) = load_suite(write_suite(tmp_path / "s.yaml", suite))[1]
    out = execute(spec, tmp_path / "r")
    assert out.status == "done"
    err = capsys.readouterr().err.replace("\n", "")
    assert err.count("no checkpoints") == 1
    assert "encoder loss 'no_load' (plugin old-plugin) has no load_state_dict()" in err
    assert not list((tmp_path / "r").rglob("checkpoint.pt"))


def test_checker_finds_a_state_dict_that_forgets_the_optimizers():
    class Forgetful(BRAC):
        def state_dict(self):
            return {k: v for k, v in super().state_dict().items() if not k.startswith("opt_")}

        def load_state_dict(self, state):
            for k in ("policy", "q", "v", "v_target", "c"):
                getattr(self, k).load_state_dict(state[k])
            self.raw_alpha.copy_(state["raw_alpha"])

    with pytest.raises(ConformanceError, match="does not restore the whole state"):
        check_backbone(Forgetful, BRACOptions(hidden=(8,)))


def test_every_builtin_backbone_restores_its_whole_state():
    """The same round trip for each built-in backbone (the encoder losses: test_protocol.py's
    test_builtin_losses_pass_the_checker)."""
    registry = get_registry()
    for name in registry.entries["backbones"]:
        entry = registry.get("backbones", name)
        if entry.plugin.startswith("ertrl_bench"):
            check_backbone(name, entry.options.model_validate({"hidden": [8]}))


def test_resume_with_another_torch_thread_count_warns_once_naming_the_fix(tmp_path, capsys):
    """On CPU a sum split over N threads rounds differently: env.json records each attempt's
    count, the checkpoint the count the run started with, and a resume with another count says
    so (the run, both counts, ``--executor-opt threads=N``)."""
    spec = _one_run(tmp_path, every_minutes=0.001, keep=True)
    rd = RunDir(tmp_path / "r", spec)
    before = torch.get_num_threads()

    def attempt(threads: int):
        (out,) = run_suite([spec], tmp_path / "r", LocalExecutor(LocalOptions(threads=threads)))
        assert out.status == "done" and torch.get_num_threads() == before  # count restored
        return json.loads((rd.path / "env.json").read_text())["torch_threads"]

    assert attempt(1) == 1
    assert torch.load(rd.checkpoint_path, weights_only=True)["run"]["torch_threads"] == 1
    capsys.readouterr()
    rd.metrics_path.unlink()  # as if killed during the probe, after the last checkpoint
    assert attempt(2) == 2  # this attempt's count
    err = capsys.readouterr().err.replace("\n", "")
    assert err.count("warning:") == 1
    assert f"{spec.run_id()} started with 1 torch thread(s) and resumes from step 20 with 2" in err
    assert "--executor-opt threads=1" in err
    # the checkpoint keeps the count the run started with, not the resumed attempt's
    assert torch.load(rd.checkpoint_path, weights_only=True)["run"]["torch_threads"] == 1
    rd.metrics_path.unlink()
    assert attempt(1) == 1
    assert "warning:" not in capsys.readouterr().err
