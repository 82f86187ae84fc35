"""An interrupted behavior-policy build resumes where it stopped and equals an uninterrupted one."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch

from ertrl_bench.data import TRAINING_STATE_FILE, dataset_dir, get_datasets
from ertrl_bench.data.sac import TrainingState, train_behavior_policies
from ertrl_bench.data.tiers import resolve_tier
from ertrl_bench.envs.base import ListBatchEnv
from ertrl_bench.envs.mujoco import HopperMass
from ertrl_bench.envs.point_robot import PointRobot, PointRobotBatch
from tests.helpers import TINY_DATA

SMALL_SAC = {"sac_hidden": (16, 16), "sac_batch": 16}


class Interrupted(BaseException):
    """A stand-in for Ctrl-C: like ``KeyboardInterrupt`` it is no ``Exception``, so the
    simulator-error wrapper (``envs.base.CheckedBatchEnv``) lets it through unchanged."""


def interrupt_after(env, steps: int):
    """Make ``env.step`` raise on its ``steps + 1``-th call (as a Ctrl-C would)."""
    real_step, calls = env.step, [0]

    def step(actions):
        calls[0] += 1
        if calls[0] > steps:
            raise Interrupted
        return real_step(actions)

    env.step = step
    return env


def interrupt_point_robot_builds_after(monkeypatch, steps: int):
    """Make every Point-Robot batch env raise on its ``steps + 1``-th step (as a Ctrl-C would
    mid-build); returns the real ``step`` to restore with ``monkeypatch.setattr``."""
    real_step, calls = PointRobotBatch.step, [0]

    def flaky_step(self, actions):
        calls[0] += 1
        if calls[0] > steps:
            raise Interrupted
        return real_step(self, actions)

    monkeypatch.setattr(PointRobotBatch, "step", flaky_step)
    return real_step


def assert_same_training(a, b):
    (sac_a, snaps_a, _), (sac_b, snaps_b, _) = a, b
    assert snaps_a.keys() == snaps_b.keys()
    for step in snaps_a:
        for name in snaps_a[step]:
            torch.testing.assert_close(snaps_a[step][name], snaps_b[step][name], rtol=0, atol=0)
    for p, q in zip(sac_a.critic.parameters(), sac_b.critic.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


@pytest.mark.parametrize(
    "make_env",
    [
        pytest.param(lambda: PointRobot().make_batch(PointRobot().tasks("train")[:4]), id="point"),
        # Hopper terminates early, so resets (and their reset-noise RNGs) happen mid-training
        pytest.param(lambda: HopperMass().make_batch(HopperMass().tasks("train")[:3]), id="hopper"),
    ],
)
def test_resumed_training_is_bit_identical(make_env, tmp_path):
    cfg = resolve_tier(
        "smoke",
        PointRobot,
        {**TINY_DATA, "sac_steps": 240, "checkpoints": [120, 240], **SMALL_SAC},
    )
    env = make_env()
    dims = (env.obs_dim, env.act_dim)
    reference = train_behavior_policies(env, *dims, cfg, "cpu")

    state = TrainingState(tmp_path / "state.pt", "tasks", every_s=0.0)  # save after every step
    with pytest.raises(Interrupted):
        train_behavior_policies(interrupt_after(make_env(), 170), *dims, cfg, "cpu", resume=state)
    assert torch.load(state.path, weights_only=False)["step"] == 170
    resumed = train_behavior_policies(make_env(), *dims, cfg, "cpu", resume=state)
    assert resumed[2]["resumed_at_step"] == 170
    assert_same_training(reference, resumed)


@pytest.mark.usefixtures("ctrl_c_delivered")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_saves_the_step_it_stopped_at_and_resumes_bit_identical(sig, tmp_path):
    """SIGTERM or Ctrl-C mid-build: the step in progress ends, the training state is saved at
    that step (no timed save was due) and the build stops; resumed, it equals an uninterrupted one."""
    cfg = resolve_tier(
        "smoke", PointRobot, {**TINY_DATA, "sac_steps": 240, "checkpoints": [120, 240], **SMALL_SAC}
    )
    make_env = lambda: PointRobot().make_batch(PointRobot().tasks("train")[:4])  # noqa: E731
    env = make_env()
    dims = (env.obs_dim, env.act_dim)
    reference = train_behavior_policies(env, *dims, cfg, "cpu")

    stopped = make_env()
    real_step, calls = stopped.step, [0]

    def step(actions):  # the signal arrives during the 170th step
        calls[0] += 1
        if calls[0] == 170:
            os.kill(os.getpid(), sig)
        return real_step(actions)

    stopped.step = step
    state = TrainingState(tmp_path / "state.pt", "tasks", every_s=1e9)  # no timed save
    with pytest.raises(KeyboardInterrupt):
        train_behavior_policies(stopped, *dims, cfg, "cpu", resume=state)
    assert torch.load(state.path, weights_only=False)["step"] == 170
    resumed = train_behavior_policies(make_env(), *dims, cfg, "cpu", resume=state)
    assert resumed[2]["resumed_at_step"] == 170
    assert_same_training(reference, resumed)


def test_interrupted_build_resumes_and_cleans_up(tmp_path, monkeypatch):
    fam = PointRobot()
    monkeypatch.setenv("ERTRL_BENCH_DATA", str(tmp_path / "uninterrupted"))
    reference = get_datasets(fam, "smoke", TINY_DATA)

    monkeypatch.setenv("ERTRL_BENCH_DATA", str(tmp_path / "interrupted"))
    real_step = interrupt_point_robot_builds_after(monkeypatch, 200)
    with pytest.raises(Interrupted):
        get_datasets(fam, "smoke", TINY_DATA, save_every_s=0.0)
    folder = dataset_dir(fam, "smoke", resolve_tier("smoke", fam, TINY_DATA))
    state_file = folder.path / TRAINING_STATE_FILE
    assert state_file.exists()
    # pretend the interrupted session trained for 11 days: the resumed build's rate is its own
    saved = torch.load(state_file, weights_only=False)
    saved["elapsed_s"] = 1e6
    torch.save(saved, state_file)
    monkeypatch.setattr(PointRobotBatch, "step", real_step)
    resumed = get_datasets(fam, "smoke", TINY_DATA, save_every_s=0.0)
    assert not state_file.exists()  # removed once every task is written
    last = folder.manifest()["last_build"]
    assert last["sac_wall_s"] > 1e6 > 1e3 * last["sac_wall_since_resume_s"]
    assert last["sac_env_steps_per_s"] > 1.0  # steps since the resume / time since the resume
    for task in reference.tasks:
        for name, array in reference.arrays[task.key].items():
            np.testing.assert_array_equal(resumed.arrays[task.key][name], array, err_msg=name)


def test_stale_or_corrupted_state_is_ignored(tmp_path, capsys):
    cfg = resolve_tier("smoke", PointRobot, {**TINY_DATA, **SMALL_SAC})
    fam = PointRobot()
    make = lambda: fam.make_batch(fam.tasks("train")[:2])  # noqa: E731
    state = TrainingState(tmp_path / "state.pt", "tasks-A", every_s=0.0)
    with pytest.raises(Interrupted):
        train_behavior_policies(interrupt_after(make(), 150), 2, 2, cfg, "cpu", resume=state)

    other = TrainingState(state.path, "tasks-B", every_s=1e9)
    out = train_behavior_policies(make(), 2, 2, cfg, "cpu", resume=other)
    assert out[2]["resumed_at_step"] == 0
    assert "other tasks or settings" in capsys.readouterr().err

    state.path.write_bytes(b"truncated")
    out = train_behavior_policies(make(), 2, 2, cfg, "cpu", resume=state)
    assert out[2]["resumed_at_step"] == 0
    assert "unreadable training state" in capsys.readouterr().err


def test_envs_without_state_still_train(tmp_path, capsys):
    """A generic gymnasium env list cannot save its state: training goes on, without saves."""
    cfg = resolve_tier("smoke", PointRobot, {**TINY_DATA, **SMALL_SAC})
    fam = PointRobot()
    env = ListBatchEnv([fam.make(t) for t in fam.tasks("train")[:2]])
    state = TrainingState(tmp_path / "state.pt", "tasks", every_s=0.0)
    _, snapshots, _ = train_behavior_policies(env, 2, 2, cfg, "cpu", resume=state)
    assert sorted(snapshots) == cfg.checkpoints
    assert not state.path.exists()
    assert "not saving training state" in capsys.readouterr().err


def test_kill_9_while_writing_finished_tasks_resumes_without_retraining(tmp_path, monkeypatch):
    """A real build process is SIGKILLed while the 3rd of 6 finished tasks is being recorded in
    the manifest (its temp file written, not yet renamed): the rerun reuses the saved training
    state (no retraining), removes the dead writer's temp file and writes the same bytes."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    data = {
        **TINY_DATA,
        "sac_steps": 120,
        "random_steps": 60,
        "checkpoints": [60, 120],
        **SMALL_SAC,
    }
    tasks = [0, 1, 2, 20, 33, 41]
    script = (
        "from ertrl_bench.data import get_datasets\n"
        "from ertrl_bench.envs.point_robot import PointRobot\n"
        f"get_datasets(PointRobot(), 'smoke', {data!r}, tasks={tasks!r}, save_every_s=3600.0)\n"
    )
    env = {
        **os.environ,
        "ERTRL_BENCH_DATA": str(tmp_path / "killed"),
        "ERTRL_BENCH_TEST_PAUSE": "manifest-write:3",
        "PYTHONPATH": str(Path(__file__).parent.parent),
    }
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE)
    fam = PointRobot()
    tier = resolve_tier("smoke", fam, data)
    monkeypatch.setenv("ERTRL_BENCH_DATA", str(tmp_path / "killed"))
    folder = dataset_dir(fam, "smoke", tier).path
    deadline = time.monotonic() + 120
    while not (folder / ".paused").exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the build never reached the pause point"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (folder / ".paused").unlink()
    assert list(folder.glob(".manifest.json.*.tmp"))  # what kill -9 leaves behind
    assert (folder / TRAINING_STATE_FILE).exists()
    written = json.loads((folder / "manifest.json").read_text())["tasks"]
    assert len(written) == 2

    resumed = get_datasets(fam, "smoke", data, tasks=tasks, save_every_s=3600.0)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["last_build"]["resumed_at_step"] == data["sac_steps"]  # no retraining
    assert manifest["last_build"]["tasks"] == 4
    assert not list(folder.glob(".*.tmp")) and not (folder / TRAINING_STATE_FILE).exists()

    monkeypatch.setenv("ERTRL_BENCH_DATA", str(tmp_path / "reference"))
    reference = get_datasets(fam, "smoke", data, tasks=tasks, save_every_s=None)
    ref_manifest = json.loads((Path(reference.path) / "manifest.json").read_text())
    for key, entry in ref_manifest["tasks"].items():
        assert manifest["tasks"][key]["sha256"] == entry["sha256"], key
        assert manifest["tasks"][key]["policy_sha256"] == entry["policy_sha256"], key
    assert [t.key for t in resumed.tasks] == sorted(ref_manifest["tasks"])


@pytest.mark.parametrize("state_from_before", [False, True], ids=["recorded", "unrecorded"])
def test_a_resume_with_another_thread_count_warns_and_is_recorded(
    state_from_before, tmp_path, monkeypatch, capsys
):
    """On CPU a build's bytes depend on the torch thread count (docs/data.md, "Same key, same
    bits?"): a build started at one thread and resumed at two says so, names the fix, and each
    task's ``built_with`` keeps both counts. A state saved before the count was kept: the
    count is unknown (None), and the resume says so."""
    fam = PointRobot()
    monkeypatch.setenv("ERTRL_BENCH_DATA", str(tmp_path))
    real_step = interrupt_point_robot_builds_after(monkeypatch, 200)
    with pytest.raises(Interrupted):
        get_datasets(fam, "smoke", TINY_DATA, save_every_s=0.0, threads=1)
    if state_from_before:
        state_file = dataset_dir(fam, "smoke", resolve_tier("smoke", fam, TINY_DATA)).path
        state_file = state_file / TRAINING_STATE_FILE
        saved = torch.load(state_file, weights_only=False)
        del saved["torch_threads"]
        torch.save(saved, state_file)
    monkeypatch.setattr(PointRobotBatch, "step", real_step)
    capsys.readouterr()
    data = get_datasets(fam, "smoke", TINY_DATA, save_every_s=0.0, threads=2)
    out = " ".join(capsys.readouterr().err.split())
    if state_from_before:
        assert "resume at step 200 from a training state that does not record" in out
    else:
        assert "started with 1 torch thread(s) and resume at step 200 with 2" in out
        assert "--threads 1" in out
    for meta in data.meta.values():
        assert meta["built_with"]["torch_threads"] == (None if state_from_before else 1)
        assert meta["built_with"]["resumed_with_torch_threads"] == 2
