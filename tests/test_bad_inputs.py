"""The bad-input matrix: every user mistake is one message naming the file / field /
option, exit code 2, no traceback, and nothing written outside the results folder.

Most cases call the CLI's real ``main()`` in this process (fast); ``test_real_entry_point_*``
run the installed ``ertrl-bench`` script as a subprocess, as a user would.
"""

from __future__ import annotations

import copy
import os
import signal
import subprocess
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml

from ertrl_bench.backbones.brac import BRAC, BRACOptions
from ertrl_bench.cli import main
from ertrl_bench.encoder_losses.none import NoLoss, NoneOptions
from ertrl_bench.encoders.mlp import MLPEncoder, MLPEncoderOptions
from ertrl_bench.envs.base import EnvFamily
from ertrl_bench.envs.point_robot import PointRobot, PointRobotOptions
from ertrl_bench.plugins import hookimpl
from tests.helpers import (
    TINY_DATA,
    TINY_NETS,
    build_datasets,
    entry_point,
    tiny_suite,
    wait_for,
    write_suite,
)

ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False
needs_non_root = pytest.mark.skipif(ROOT, reason="root ignores file permissions")
no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")


def run_main(capsys, *argv) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
    captured = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 1), captured.err + captured.out


def assert_user_error(code: int, text: str, *needles: str) -> None:
    assert code == 2, text
    assert "Traceback" not in text, text
    flat = " ".join(text.split())
    for needle in needles:
        assert needle in flat, f"{needle!r} not in {flat!r}"


# --- command-line usage -------------------------------------------------------------------------

USAGE = [
    (["run"], "Missing argument 'suite'"),
    (["run", "smoke", "--forse"], "No such option: --forse"),
    (["runn"], "No such command 'runn'"),
    (["datasets", "build", "point-robot", "--save-every", "-1"], "--save-every"),
    (["run", "smoke", "--jobs", "0"], "--jobs"),
    (["run", "smoke", "--jobs", "two"], "--jobs"),
    (["validate"], "Missing argument 'suite'"),
    (["report"], "Missing argument"),
    (["analyze", "wasserstein"], "Missing argument"),
    (["analyze", "wasserstein", "point-robot", "--states", "many"], "--states"),
    (["analyze", "wasserstein", "point-robot", "--checkpoint", "bogus"], "--checkpoint 'bogus'"),
    (["analyze", "wasserstein", "point-robot", "--states", "0"], "--states"),
    (["analyze", "wasserstein", "point-robot", "--samples", "-1"], "--samples"),
    (["analyze", "wasserstein", "point-robot", "--seed", "-1"], "--seed"),
    (["analyze", "wasserstein", "point-robot", "--method", "wide"], "--method 'wide'"),
    (["datasets", "build", "point-robot", "--env-opt", "horizon=0"], "--env-opt.horizon"),
    (["datasets", "build", "cheetah-vel", "--env-opt", "horizon=-5"], "--env-opt.horizon"),
    (["analyze", "nope"], "No such command 'nope'"),
    (["datasets", "biuld"], "No such command 'biuld'"),
    (["plugins", "--bogus"], "No such option: --bogus"),
    (["run", "smoke", "--executor", "slurm"], "unknown executor 'slurm'"),
    (["run", "smoke", "--device", "banana"], "--device: unknown device 'banana'"),
    (["run", "smoke", "--jobs", "2", "--executor", "ray"], "--jobs is for the local executor"),
    (["run", "smoke", "--executor-opt", "jobs"], "expected KEY=VALUE"),
    (["run", "smoke", "--executor-opt", "jobs=0"], "--executor-opt.jobs"),
    (["run", "smoke", "--executor-opt", "threads=x"], "--executor-opt.threads"),
    (["run", "smoke", "--executor-opt", "jobz=2"], "--executor-opt.jobz: unknown field"),
]


@pytest.mark.parametrize(("argv", "message"), USAGE, ids=[" ".join(a) for a, _ in USAGE])
def test_usage_errors_are_one_line_exit_2(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)  # `run` must not leave a results/ folder on a usage error
    code, text = run_main(capsys, *argv)
    assert_user_error(code, text, message)
    assert len(text.strip().splitlines()) == 1, text
    assert not (tmp_path / "results").exists()


@no_gpu
def test_device_cuda_without_gpu(capsys, tmp_path):
    code, text = run_main(capsys, "run", "smoke", "--device", "cuda", "--results-dir", tmp_path)
    assert_user_error(code, text, "--device", "no CUDA GPU", "auto")


# --- files and folders --------------------------------------------------------------------------


def _suite(tmp_path: Path) -> Path:
    return write_suite(tmp_path / "s.yaml", tiny_suite())


def test_results_dir_is_a_file(capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    code, text = run_main(capsys, "run", _suite(tmp_path), "--results-dir", tmp_path / "file")
    assert_user_error(code, text, f"{tmp_path / 'file'}: is a file, not a folder")


def test_results_dir_under_proc(capsys, tmp_path):
    code, text = run_main(capsys, "run", _suite(tmp_path), "--results-dir", "/proc/ertrl-results")
    assert_user_error(code, text, "/proc/ertrl-results: cannot write there")


def test_results_dir_below_a_file(capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    target = tmp_path / "file" / "results"
    code, text = run_main(capsys, "run", _suite(tmp_path), "--results-dir", target)
    assert_user_error(code, text, str(target), "cannot write there")


@needs_non_root
def test_results_dir_read_only(capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    code, text = run_main(capsys, "run", _suite(tmp_path), "--results-dir", ro)
    assert_user_error(code, text, f"{ro}: cannot write there")


@needs_non_root
def test_report_on_read_only_folder(capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    code, text = run_main(capsys, "report", ro)
    assert_user_error(code, text, f"{ro}: cannot write")


def test_report_on_missing_folder_and_on_a_file(capsys, tmp_path):
    code, text = run_main(capsys, "report", tmp_path / "none")
    assert_user_error(code, text, f"{tmp_path / 'none'}: no such results folder")
    (tmp_path / "f").write_text("x")
    code, text = run_main(capsys, "report", tmp_path / "f")
    assert_user_error(code, text, f"{tmp_path / 'f'}: a file, not a results folder")


SUITE_FILES = {
    "binary": (b"\x00\x01\x02\xffELF", "a binary file, not a YAML suite"),
    "latin-1": ("name: caf\u00e9\n".encode("latin-1"), "not UTF-8 text (byte 0xe9"),
    "empty": (b"", "a suite must be a YAML mapping"),
    "scalar": (b"42\n", "a suite must be a YAML mapping"),
    "list": (b"- a\n- b\n", "a suite must be a YAML mapping"),
    "malformed": (b"name: x\ngrid: [unclosed\n", "malformed YAML at line"),
    "tab-indent": (b"name: x\ngrid:\n\tenvs: [a]\n", "malformed YAML at line 3"),
    "duplicate-top-key": (
        b"name: x\ntier: smoke\ntier: small\ngrid: {envs: [point-robot], methods: [focal]}\n",
        "duplicate key 'tier' (first given at line 2)",
    ),
    "duplicate-nested-key": (
        b"name: x\ntrain:\n  iterations: 2\n  iterations: 3\n"
        b"grid: {envs: [point-robot], methods: [focal]}\n",
        "line 4",
    ),
    # bounded reads: ten lines that expand to 9**10 values, a self-reference, a huge file
    "alias-bomb": (
        b'a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]\n'
        + b"".join(
            f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n".encode() for i in range(1, 10)
        )
        + b"name: bomb\ngrid: {envs: [point-robot], methods: [focal]}\n",
        "YAML aliases expand to more than 100,000 values",
    ),
    "alias-cycle": (b"name: x\ngrid: &g {envs: *g}\n", "error"),
    "too-large": (b"name: x\n" + b"# padding\n" * 200_000, "larger than 1 MiB: not a suite"),
}


@pytest.mark.parametrize("case", list(SUITE_FILES))
def test_bad_suite_files(capsys, tmp_path, case):
    content, message = SUITE_FILES[case]
    path = tmp_path / f"{case}.yaml"
    path.write_bytes(content)
    code, text = run_main(capsys, "validate", path)
    assert_user_error(code, text, str(path), message)


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero"])
def test_suite_that_is_not_a_regular_file_is_refused_at_once(capsys, tmp_path, kind):
    """Never blocks on a FIFO without a writer, never reads a device without end."""
    path = tmp_path / "s.yaml"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path = Path("/dev/zero")
    code, text = run_main(capsys, "validate", path)
    assert_user_error(code, text, f"{path}: not a regular file (a FIFO, device or socket)")
    assert len(text.strip().splitlines()) == 1, text


def test_suite_is_a_folder_or_missing_or_unreadable(capsys, tmp_path):
    code, text = run_main(capsys, "validate", tmp_path)
    assert_user_error(code, text, f"{tmp_path}: is a folder, not a suite file")
    code, text = run_main(capsys, "validate", tmp_path / "nope.yaml")
    assert_user_error(code, text, f"{tmp_path / 'nope.yaml'}: no such suite file")
    code, text = run_main(capsys, "validate", "/proc/self/mem")  # exists, reading fails (EIO)
    assert_user_error(code, text, "/proc/self/mem: cannot read the suite file")


@needs_non_root
def test_suite_without_read_permission(capsys, tmp_path):
    path = _suite(tmp_path)
    path.chmod(0)
    code, text = run_main(capsys, "validate", path)
    assert_user_error(code, text, f"{path}: cannot read the suite file")


# --- suite contents: values, names, bounds ------------------------------------------------------


def _grid_suite(**changes) -> dict:
    suite = tiny_suite()
    for dotted, value in changes.items():
        node = suite
        *parents, leaf = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return suite


SUITES = {
    # names that would become paths
    "name-dotdot": (_grid_suite(name=".."), "name: '..' is not a safe name (letters, digits"),
    "name-dot": (_grid_suite(name="."), "name: '.' is not a safe name (letters, digits"),
    "name-slash": (_grid_suite(name="a/b"), "name: 'a/b' is not a safe name (letters, digits"),
    "name-parent-path": (
        _grid_suite(name="../x"),
        "name: '../x' is not a safe name (letters, digits",
    ),
    "name-empty": (_grid_suite(name=""), "name: '' is not a safe name (letters, digits"),
    "name-absolute": (
        _grid_suite(name="/tmp/x"),
        "name: '/tmp/x' is not a safe name (letters, digits",
    ),
    "name-too-long": (_grid_suite(name="a" * 101), "name: too long (101 characters, max 100)"),
    "method-name-too-long": (
        _grid_suite(grid__methods=[{"name": "m" * 101}]),
        "grid.methods[0].name: too long (101 characters, max 100)",
    ),
    "method-name-traversal": (
        _grid_suite(grid__methods=[{"name": "../../x"}]),
        "grid.methods[0].name: '../../x' is not a safe name",
    ),
    "method-name-slash": (
        _grid_suite(grid__methods=[{"name": "a/b", "encoder_losses": ["dml", "csro"]}]),
        "grid.methods[0].name: 'a/b' is not a safe name",
    ),
    "method-name-hidden": (
        _grid_suite(grid__methods=[{"name": ".x"}]),
        "grid.methods[0].name: '.x' is not a safe name",
    ),
    "method-name-two-definitions": (
        _grid_suite(
            grid__methods=[
                {"name": "mine", "encoder_losses": ["dml"]},
                {"name": "mine", "encoder_losses": ["csro"]},
            ]
        ),
        "grid.methods[1].name: 'mine' already names a different method (grid.methods[0])",
    ),
    "method-default-name-two-definitions": (
        _grid_suite(
            grid__methods=[
                {"encoder_losses": ["dml"], "backbone": {"type": "brac"}},
                {
                    "encoder_losses": ["dml"],
                    "backbone": {"type": "brac", "params": {"hidden": [8]}},
                },
            ]
        ),
        "grid.methods[1].name: 'dml-brac' already names a different method (grid.methods[0])",
    ),
    "method-inline-named-like-builtin": (
        _grid_suite(grid__methods=["focal", {"name": "focal", "encoder_losses": ["csro"]}]),
        "grid.methods[1].name: 'focal' already names a different method (grid.methods[0])",
    ),
    # values that would crash or run for ever
    "iterations-1e12-float": (
        _grid_suite(train__iterations=1.0e12),
        "train.iterations: Input should be less than or equal to 1000000",
    ),
    "iterations-1e12-string": (
        _grid_suite(train__iterations="1e12"),
        "train.iterations: Input should be a valid integer",
    ),
    "total-steps": (
        _grid_suite(train__iterations=10**6, train__steps_per_iteration=10**5),
        "train: iterations x steps_per_iteration = 100,000,000,000 train steps; at most",
    ),
    "iterations-zero": (_grid_suite(train__iterations=0), "train.iterations: Input should be"),
    "steps-huge": (
        _grid_suite(train__steps_per_iteration=10**9),
        "train.steps_per_iteration: Input should be less than or equal to",
    ),
    "meta-batch-zero": (_grid_suite(train__meta_batch=0), "train.meta_batch"),
    "rl-batch-huge": (_grid_suite(train__rl_batch=10**8), "train.rl_batch"),
    "latent-dim-negative": (_grid_suite(train__latent_dim=-2), "train.latent_dim"),
    "eval-every-zero": (_grid_suite(train__eval_every=0), "train.eval_every"),
    "final-evals-huge": (_grid_suite(train__final_evals=10**7), "train.final_evals"),
    "encoder-lr-inf": (_grid_suite(train__encoder_lr=float("inf")), "train.encoder_lr"),
    "encoder-lr-nan": (_grid_suite(train__encoder_lr=float("nan")), "train.encoder_lr"),
    "encoder-lr-negative": (_grid_suite(train__encoder_lr=-1e-3), "train.encoder_lr"),
    "brac-param-inf": (
        _grid_suite(component_params={"brac": {"hidden": [16], "discount": float("inf")}}),
        "component_params.brac.discount: inf is not a finite number",
    ),
    "runs-per-task-huge": (_grid_suite(eval__runs_per_task=10**6), "eval.runs_per_task"),
    "episodes-zero": (_grid_suite(eval__episodes=0), "eval.episodes"),
    "seed-2**32": (_grid_suite(grid__seeds=[2**32]), "grid.seeds[0]: Input should be less than"),
    "seed-negative": (_grid_suite(grid__seeds=[-1]), "grid.seeds[0]"),
    "seed-string": (_grid_suite(grid__seeds=["zero"]), "grid.seeds[0]"),
    "hidden-zero-negative": (
        _grid_suite(component_params={"brac": {"hidden": [0, -3]}}),
        "component_params.brac.hidden[0]: Input should be greater than 0",
    ),
    "encoder-hidden-negative": (
        _grid_suite(component_params={"mlp": {"hidden": [-3]}, "brac": {"hidden": [16]}}),
        "component_params.mlp.hidden[0]: Input should be greater than 0",
    ),
    "csro-unknown-input": (
        _grid_suite(
            grid__methods=[
                {"encoder_losses": ["dml", {"type": "csro", "params": {"inputs": ["x"]}}]}
            ]
        ),
        "grid.methods[0].encoder_losses[1].params.inputs: unknown 'x'; choose from obs",
    ),
    "csro-no-input": (
        _grid_suite(
            grid__methods=[{"encoder_losses": ["dml", {"type": "csro", "params": {"inputs": []}}]}]
        ),
        "grid.methods[0].encoder_losses[1].params.inputs: empty",
    ),
    "device-banana": (_grid_suite(device="banana"), "device: unknown device 'banana'"),
    # names
    "unknown-env": (_grid_suite(grid__envs=["point-robbot"]), "unknown env family 'point-robbot'"),
    "unknown-method": (_grid_suite(grid__methods=["foccal"]), "unknown method 'foccal'"),
    "unknown-regularizer": (
        _grid_suite(grid__methods=[{"encoder_losses": ["csr0"]}]),
        "grid.methods[0].encoder_losses[0]: unknown encoder loss 'csr0'",
    ),
    "unknown-backbone": (
        _grid_suite(grid__methods=[{"backbone": "td3"}]),
        "grid.methods[0].backbone: unknown backbone 'td3'",
    ),
    "unknown-tier": (_grid_suite(tier="huge"), "tier: unknown tier 'huge'"),
    "unknown-component-params": (
        _grid_suite(component_params={"brak": {"hidden": [16]}}),
        "component_params.brak: no encoder, encoder loss or backbone is named 'brak'",
    ),
    "unknown-top-key": (_grid_suite(tierr="smoke"), "tierr: unknown field; did you mean 'tier'?"),
    "unknown-train-key": (_grid_suite(train__iteratons=2), "train.iteratons: unknown field"),
    "unknown-option": (
        _grid_suite(component_params={"brac": {"hidden": [16], "discont": 0.9}}),
        "component_params.brac.discont: unknown field; did you mean 'discount'?",
    ),
    # structure
    "no-runs": ({"name": "x"}, "a suite needs a `grid:` or a non-empty `runs:` list"),
    "grid-not-mapping": ({"name": "x", "grid": "all"}, "grid: Input should be a valid dictionary"),
    "grid-no-envs": (_grid_suite(grid__envs=[]), "grid.envs: List should have at least 1 item"),
    "grid-no-methods": (_grid_suite(grid__methods=[]), "grid.methods: List should have at least"),
    "runs-not-list": ({"name": "x", "runs": "all"}, "runs: Input should be a valid list"),
    "run-missing-env": (
        {"name": "x", "runs": [{"method": "focal"}]},
        "runs[0].env: Field required",
    ),
    "train-not-mapping": (_grid_suite(train=5), "train: Input should be a valid dictionary"),
    "probe-not-a-switch": (  # false / true are short for {enabled: ...}
        _grid_suite(eval__probe="no"),
        "eval.probe: expected false, true or options such as {svr_max_train_rows: 6000}, got 'no'",
    ),
}


@pytest.mark.parametrize("case", list(SUITES))
def test_bad_suites(capsys, tmp_path, case):
    suite, message = SUITES[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    code, text = run_main(capsys, "validate", path)
    assert_user_error(code, text, str(path), message)


@pytest.mark.parametrize(
    "option, value, message",
    [
        (
            "log_std_init_bias",
            0.5,
            "log_std_init_bias: 0.5 is not inside the log-std clamp (-20.0, 0.0): a head that"
            " starts at or beyond the clamp gets no gradient there; use e.g. -1.0",
        ),
        ("log_std_init_bias", -20.0, "log_std_init_bias: -20.0 is not inside the log-std clamp"),
        ("log_std_init_bias", float("nan"), "log_std_init_bias: nan is not a finite number"),
        ("lr", float("nan"), "lr: nan is not a finite number"),  # not also "greater than 0"
    ],
)
def test_a_bad_brac_option_is_one_line_naming_it(capsys, tmp_path, option, value, message):
    """A .nan is said once (as not finite), not again by the option's own check."""
    suite = _grid_suite(component_params={"brac": {"hidden": [16], option: value}})
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    code, text = run_main(capsys, "validate", path)
    assert_user_error(code, text, f"component_params.brac.{message}")
    assert "1 error(s)" in text and text.count(f"component_params.brac.{option}") == 1


def _runs_suite(run: dict) -> dict:
    suite = tiny_suite()
    del suite["grid"]
    suite["runs"] = [{"env": "point-robot", "method": "focal", **run}]
    return suite


RUN_LEVEL = {
    "train-value": ({"train": {"iterations": 0}}, ["runs[0].train.iterations"]),
    "train-unknown": ({"train": {"iteratons": 3}}, ["runs[0].train.iteratons: unknown field"]),
    "eval-value": ({"eval": {"runs_per_task": 0}}, ["runs[0].eval.runs_per_task"]),
    "eval-unknown": ({"eval": {"split": ["train"]}}, ["runs[0].eval.split: unknown field"]),
    "both": (
        {"train": {"rl_batch": -1}, "eval": {"splits": ["nowhere"]}},
        ["runs[0].train.rl_batch", "runs[0].eval.splits[0]"],
    ),
    "seed": ({"seed": 2**40}, ["runs[0].seed: Input should be less than"]),
    "inline-method-traversal": (
        {"method": {"name": "../../../x"}},
        ["runs[0].method.name: '../../../x' is not a safe name"],
    ),
}


@pytest.mark.parametrize("case", list(RUN_LEVEL))
def test_run_level_errors_keep_their_path(capsys, tmp_path, case):
    run, messages = RUN_LEVEL[case]
    path = write_suite(tmp_path / "s.yaml", _runs_suite(run))
    code, text = run_main(capsys, "validate", path)
    assert_user_error(code, text, *messages)


def test_every_mistake_at_once(capsys, tmp_path):
    """Structure, values and unknown names in one report (the names used to wait for a fix)."""
    suite = tiny_suite()
    suite["train"]["steps_per_iteration"] = -5
    suite["train"]["encoder_lr"] = float("inf")
    suite["eval"]["runs_per_tsk"] = 2
    suite["tier"] = "medium"
    suite["grid"]["envs"] = ["point-robbot"]
    suite["grid"]["methods"] = ["foccal", {"encoder_losses": ["csr0"]}, {"name": "../x"}]
    suite["grid"]["seeds"] = [2**32]
    path = write_suite(tmp_path / "s.yaml", suite)
    code, text = run_main(capsys, "validate", path)
    assert_user_error(
        code,
        text,
        "train.steps_per_iteration: Input should be greater than 0",
        "train.encoder_lr",
        "eval.runs_per_tsk: unknown field",
        "grid.seeds[0]",
        "tier: unknown tier 'medium'",
        "grid.envs[0]: unknown env family 'point-robbot'",
        "grid.methods[0]: unknown method 'foccal'",
        "grid.methods[1].encoder_losses[0]: unknown encoder loss 'csr0'",
        "grid.methods[2].name: '../x' is not a safe name",
    )
    assert "9 error(s)" in text


def test_one_error_never_hides_another_nor_misleads(capsys, tmp_path):
    """An unknown encoder does not hide the backbone's bad option, and an inline method's
    mistake is not paired with "Input should be a valid string" (the union's other branch)."""
    suite = tiny_suite()
    suite["grid"]["methods"] = [
        {"encoder": "mlpx", "backbone": {"type": "brac", "params": {"discont": 0.9}}},
        {"encoder_losses": ["dml"], "bogus": 1},
    ]
    path = write_suite(tmp_path / "s.yaml", suite)
    code, text = run_main(capsys, "validate", path)
    assert_user_error(code, text, "grid.methods[0].encoder: unknown encoder 'mlpx'")
    suite["grid"]["methods"] = suite["grid"]["methods"][:1]
    code, text = run_main(capsys, "validate", write_suite(path, suite))
    assert_user_error(
        code,
        text,
        "grid.methods[0].encoder: unknown encoder 'mlpx'",
        "grid.methods[0].backbone.params.discont: unknown field",
    )
    suite["grid"]["methods"] = [{"encoder_losses": ["dml"], "bogus": 1}]
    code, text = run_main(capsys, "validate", write_suite(path, suite))
    assert_user_error(code, text, "1 error(s)", "grid.methods[0].bogus: unknown field")
    assert "valid string" not in text


def test_a_misspelt_key_is_named_where_it_was_written_with_the_key_meant(capsys, tmp_path):
    """An unknown key gets the closest known one (or the known ones); one in component_params
    is named there, not at each method that uses the component; a data typo is not hidden by
    another mistake."""
    suite = copy.deepcopy(tiny_suite(methods=("focal", "csro"), seeds=(0, 1)))  # own dicts
    suite["trian"] = suite.pop("train")
    suite["eval"]["probe"]["tset"] = 5
    path = write_suite(tmp_path / "s.yaml", suite)
    code, text = run_main(capsys, "validate", path)
    assert_user_error(
        code,
        text,
        "2 error(s)",
        "trian: unknown field; did you mean 'train'?",
        "eval.probe.tset: unknown field; did you mean 'test'?",
    )
    suite = copy.deepcopy(tiny_suite(methods=("focal", "csro"), seeds=(0, 1)))  # own dicts
    suite["component_params"]["mlp"]["hiden"] = [4]
    suite["component_params"]["brac"]["hidden"] = "big"
    suite["data"]["sac_stepz"] = 100
    code, text = run_main(capsys, "validate", write_suite(path, suite))
    assert_user_error(
        code,
        text,
        "3 error(s)",
        "component_params.mlp.hiden: unknown field; did you mean 'hidden'?",
        "component_params.brac.hidden: Input should be a valid tuple",
        "data: sac_stepz: unknown field; did you mean 'sac_steps'?",
    )
    assert "grid.methods" not in text  # no method wrote them
    code, text = run_main(capsys, "plugins", "--options", "brack")
    assert_user_error(code, text, "no component is named 'brack'", ". Did you mean 'brac'?")
    suite = copy.deepcopy(tiny_suite(methods=("focall",)))
    code, text = run_main(capsys, "validate", write_suite(path, suite))
    assert_user_error(code, text, "unknown method 'focall'", ". Did you mean 'focal'?")
    code, text = run_main(capsys, "run", "smoke", "--executor-opt", "cpu_worker=1")
    assert_user_error(
        code, text, "--executor-opt.cpu_worker: unknown field; did you mean 'cpu_workers'?"
    )
    code, text = run_main(capsys, "run", "smoke", "--executor-opt", "nodes=1")
    assert_user_error(
        code,
        text,
        "--executor-opt.nodes: unknown field (check its spelling); known: cpu_workers, jobs,"
        " overlap, seeds_per_step, threads",
    )


@no_gpu
def test_suite_device_cuda_without_gpu(capsys, tmp_path):
    path = write_suite(tmp_path / "s.yaml", _grid_suite(device="cuda"))
    code, text = run_main(capsys, "validate", path)
    assert_user_error(code, text, "device: device 'cuda': torch sees no CUDA GPU", "auto")


def test_nothing_written_outside_results(capsys, tmp_path):
    """A traversal name is refused before anything is written, by validation and by the store."""
    from ertrl_bench.errors import ErtrlError
    from ertrl_bench.store import RunDir, write_suite_index
    from ertrl_bench.suite_loader import load_suite

    results = tmp_path / "a" / "b" / "results"
    for name in ("..", "../../x"):
        path = write_suite(tmp_path / "s.yaml", tiny_suite(name=name))
        code, text = run_main(capsys, "run", path, "--results-dir", results)
        assert_user_error(code, text, "name")
    # the store's own check, should a bad name get past validation (e.g. a plugin's method)
    (spec,) = load_suite(write_suite(tmp_path / "s.yaml", tiny_suite()))[1]
    evil = spec.model_copy(update={"suite": "../.."})
    with pytest.raises(ErtrlError, match="outside the results folder"):
        RunDir(results, evil)
    with pytest.raises(ErtrlError, match="outside the results folder"):
        write_suite_index(results, "..", [spec])
    named = spec.model_copy(update={"method": spec.method.model_copy(update={"name": "../../y"})})
    with pytest.raises(ErtrlError, match="outside the results folder"):
        RunDir(results, named)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["s.yaml"]  # results never created


# --- through the real entry point ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run"], "Missing argument 'suite'"),
        (["runn"], "No such command 'runn'"),
    ],
)  # the others go through the same main() in-process (test_usage_errors_are_one_line_exit_2)
def test_real_entry_point_usage_errors(cli, tmp_path, argv, message):
    proc = cli(*argv, cwd=tmp_path)
    assert_user_error(proc.returncode, proc.stderr, message)
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stdout == ""


def test_real_entry_point_bad_suite(cli, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    proc = cli("validate", path)
    assert_user_error(proc.returncode, proc.stderr, str(path), "not UTF-8 text")


def test_ctrl_c_exits_130_and_says_what_is_kept(tmp_path):
    suite = tiny_suite(name="ctrlc")
    suite["train"].update(iterations=200, steps_per_iteration=50)
    path = write_suite(tmp_path / "s.yaml", suite)
    results = tmp_path / "results"
    build_datasets(path)  # so the run is training when it is interrupted
    proc = subprocess.Popen(
        [*entry_point(), "run", str(path), "--results-dir", str(results), "--jobs", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a test run started in the background of a non-interactive shell (`cmd &`) inherits
        # SIGINT ignored, and Python then keeps ignoring it: give the child the default back
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        wait_for(
            lambda: list(results.glob("ctrlc/*/log.jsonl")),
            "the run never started logging",
            timeout=300,
        )
    except AssertionError:
        proc.kill()
        raise
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted; finished runs are kept, rerun to resume" in stderr
    assert "Traceback" not in stderr


def test_suite_folder_in_results_is_a_file(capsys, tmp_path):
    results = tmp_path / "r"
    results.mkdir()
    (results / "tiny").write_text("not a folder")
    code, text = run_main(capsys, "run", _suite(tmp_path), "--results-dir", results)
    assert_user_error(code, text, str(results / "tiny"))
    assert (results / "tiny").read_text() == "not a folder"


# --- broken results files -----------------------------------------------------------------------

BROKEN_METRICS = {
    "no-per-task": lambda m: {k: v for k, v in m.items() if k != "per_task"},
    "empty-list": lambda m: [],
    "final-oops": lambda m: {"final": "oops"},
    "string-nan": lambda m: {
        **m,
        "final": {**m["final"], "train": {**m["final"]["train"], "offline": {"normalized": "NaN"}}},
    },
}


def test_a_run_with_broken_metrics_is_reported_as_such_and_redone(capsys, tmp_path):
    """One check of metrics.json (results_schema.read_metrics) for run's "done" test, its resume
    summary and the report: a broken file is named, never counted as done, and the run redone."""
    import json

    from ertrl_bench.analysis.report import write_report
    from ertrl_bench.store import RunDir
    from ertrl_bench.suite_loader import load_suite

    path = write_suite(tmp_path / "s.yaml", tiny_suite(seeds=[0, 1]))
    results = tmp_path / "results"
    code, text = run_main(capsys, "run", path, "--results-dir", results, "--jobs", "1")
    assert code == 0, text
    a, b = (RunDir(results, s) for s in load_suite(path)[1])
    good = json.loads(a.metrics_path.read_text())
    for case, breaks in BROKEN_METRICS.items():
        a.metrics_path.write_text(json.dumps(breaks(good)))
        assert not a.is_done(), case
        assert str(a.metrics_path) in a.metrics_problem(), case
        report = write_report(results / "tiny", reps=20, figures=False)
        assert report.n_done == 1, case  # the header does not claim every run finished
        assert [p.run_id for p in report.problems] == [a.spec.run_id()], case
        assert report.problems[0].status == "invalid", case
        md = report.path.read_text()
        assert "1 of 2 runs finished" in md and a.spec.run_id() in md, case
        assert {r["method"] for r in report.rows} == {"focal"}, case  # the method stays
    # the CLI's report names the unreadable file and the fix (and still writes the report)
    code, text = run_main(capsys, "report", results / "tiny")
    flat = " ".join(text.split())
    assert code == 0 and "Traceback" not in text, text
    assert f"1 run(s) with an unreadable metrics.json: {a.metrics_path}: " in flat, flat
    assert f"Rerun the suite (ertrl-bench run SUITE --results-dir {results}) to redo them" in flat
    # `run` redoes it (keeping the broken file aside); the resume summary never tracebacks
    code, text = run_main(capsys, "run", path, "--results-dir", results, "--jobs", "1")
    assert code == 0 and "Traceback" not in text, text
    assert a.is_done() and b.is_done()
    assert json.loads((a.path / "metrics.invalid.json").read_text())["final"]["train"]
    assert "skipped" in text and "done" in text


# --- plugins that break their contract: one message naming the plugin, the component, the fix ---


class _MasklessEncoder(MLPEncoder):
    def forward(self, x):  # the contract is forward(x, mask)
        return super().forward(x, None)


class _OldStyleRegularizer(NoLoss):
    def update(self, ctx, z_i, z):  # the signature before StepBatch
        return {}


class _NumpyActBRAC(BRAC):
    def act(self, obs, z, deterministic=True):
        return super().act(obs, z, deterministic).cpu().numpy()


class _BrokenComponents:
    @hookimpl
    def register_encoders(self, register):
        register("maskless", _MasklessEncoder, MLPEncoderOptions)

    @hookimpl
    def register_encoder_losses(self, register):
        register("old_style", _OldStyleRegularizer, NoneOptions)

    @hookimpl
    def register_backbones(self, register):
        register("numpy_act", _NumpyActBRAC, BRACOptions)


BROKEN_COMPONENTS = {
    "encoder-without-mask": (
        {"encoder": "maskless"},
        [
            "encoder 'maskless' (plugin broken)",
            "forward(x) does not take a `mask`",
            "mask [M, N] bool (True = a real transition)",  # printed verbatim, not as markup
            "Add `mask=None` to forward",
        ],
    ),
    "old-style-update": (
        {"encoder_losses": ["old_style"]},
        [
            "encoder loss 'old_style' (plugin broken)",
            "update(ctx, z_i, z) is the old signature",
            "update(batch) -> logs",
        ],
    ),
    "act-returns-numpy": (
        {"backbone": "numpy_act"},
        [
            "backbone 'numpy_act' (plugin broken)",
            "act() returned a numpy.ndarray, not a torch.Tensor",
            "torch.as_tensor(actions, device=obs.device)",
        ],
    ),
}


@pytest.mark.parametrize("case", list(BROKEN_COMPONENTS))
def test_a_component_that_breaks_its_contract_fails_when_built(
    capsys, tmp_path, register_test_plugin, case
):
    """Each used to surface as a raw TypeError / AttributeError (the numpy `act` only after a
    whole training iteration); now building the component says what to change."""
    parts, needles = BROKEN_COMPONENTS[case]
    register_test_plugin(_BrokenComponents(), "broken")
    suite = tiny_suite(methods=[{"name": "broken-method", **parts}])
    suite["component_params"] = {
        **TINY_NETS,
        "maskless": {"hidden": [16]},
        "numpy_act": {"hidden": [16]},
    }
    path = write_suite(tmp_path / "s.yaml", suite)
    code, text = run_main(capsys, "validate", path, "--dry-run")
    assert code == 1, text  # the dry run's own failure status
    assert "Traceback" not in text
    (line,) = [x for x in text.splitlines() if "FAILED" in x]
    flat = " ".join(line.split())
    for needle in needles:
        assert needle in flat, flat


class _ObsSizeEnv(gym.ObservationWrapper):
    """Point-Robot with one extra observation feature (a task of another size)."""

    def __init__(self, env):
        super().__init__(env)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)

    def observation(self, obs):
        return np.append(obs, 0.0).astype(np.float32)


class _UnevenFamily(PointRobot):
    name = "uneven"
    make_batch = EnvFamily.make_batch  # the generic batch: one env per task

    def make(self, task):
        env = super().make(task)
        return _ObsSizeEnv(env) if task.index == 11 else env


class _CrashingEnv(gym.Wrapper):
    def step(self, action):
        if self.env.unwrapped._t >= 5:
            raise RuntimeError("simulation unstable at t=5")
        return self.env.step(action)


class _CrashingFamily(PointRobot):
    name = "crashing"
    make_batch = EnvFamily.make_batch

    def make(self, task):
        return _CrashingEnv(super().make(task))


class _CrashesOnOneTaskFamily(PointRobot):
    """Point-Robot whose simulator raises for task 45 only, with a smoke tier of seconds."""

    name = "crashes-on-one"
    make_batch = EnvFamily.make_batch
    data_tiers = {
        "smoke": {
            **TINY_DATA,
            "sac_steps": 40,
            "random_steps": 20,
            "checkpoints": [20, 40],
            "trajectories_per_checkpoint": 1,
            "sac_hidden": [8, 8],
            "sac_batch": 8,
        }
    }
    broken = True  # a test sets it False: the fixed simulator

    def make(self, task):
        env = super().make(task)
        return _CrashingEnv(env) if self.broken and task.index == 45 else env


class _BrokenFamilies:
    @hookimpl
    def register_envs(self, register):
        register("uneven", _UnevenFamily, PointRobotOptions)
        register("crashing", _CrashingFamily, PointRobotOptions)
        register("crashes-on-one", _CrashesOnOneTaskFamily, PointRobotOptions)


@pytest.mark.parametrize(
    ("family", "needles"),
    [
        (
            "uneven",
            [
                "env family 'uneven' (plugin broken-envs)",
                "its tasks differ in observation size",
                "task-010: (2,), task-011: (3,)",
                "Make make(task) return the same shape for every task",
            ],
        ),
        (
            "crashing",
            [
                "env family 'crashing' (plugin broken-envs)",
                "its simulator raised RuntimeError: simulation unstable at t=5 (step, tasks",
                "Fix the family's make(task) / reset / step",
            ],
        ),
    ],
)
def test_a_family_that_fails_in_a_dataset_build_is_one_message_and_never_ok(
    capsys, tmp_path, monkeypatch, register_test_plugin, family, needles
):
    monkeypatch.setenv("ERTRL_BENCH_DATA", str(tmp_path / "data"))
    register_test_plugin(_BrokenFamilies(), "broken-envs")
    code, text = run_main(capsys, "datasets", "build", family, "--save-every", "0")
    assert_user_error(code, text, *needles)
    assert len(text.strip().splitlines()) == 1, text  # not a ~50-line traceback
    code, text = run_main(capsys, "datasets", "verify")
    assert code == 2 and "no task is built" in text and " ok " not in f" {text} ", text
    code, text = run_main(capsys, "datasets", "list")
    assert code == 0 and "no task is built" in text, text
    assert " ok " not in text, text


def test_a_build_that_fails_after_some_task_groups_stays_incomplete_until_resumed(
    capsys, tmp_path, monkeypatch, register_test_plugin
):
    """Two groups of 25 tasks: the first is written, the second (task 45) raises. The folder
    holds 25 valid tasks, yet it is "incomplete: 25 of 50" until a rerun builds the other 25."""
    from ertrl_bench.data.memory import task_bytes
    from ertrl_bench.data.tiers import resolve_tier

    monkeypatch.setenv("ERTRL_BENCH_DATA", str(tmp_path / "data"))
    register_test_plugin(_BrokenFamilies(), "broken-envs")
    fam = _CrashesOnOneTaskFamily()
    per_task = task_bytes(resolve_tier("smoke", fam, None), 2, 2, fam.horizon)
    build = ("datasets", "build", "crashes-on-one", "--save-every", "0")
    code, text = run_main(capsys, *build, "--max-memory", str(25 * per_task))
    assert code == 2 and "50 tasks in 2 groups" in text, text
    assert "its simulator raised RuntimeError: simulation unstable at t=5" in text, text
    for command, want_code in (("verify", 2), ("list", 0)):
        code, text = run_main(capsys, "datasets", command)
        flat = " ".join(text.split())
        assert code == want_code, text
        assert "incomplete: 25 of 50 tasks built, task-025, task-026, task-027, ... missing" in flat
        assert " ok " not in f" {flat} ", flat
    monkeypatch.setattr(_CrashesOnOneTaskFamily, "broken", False)
    code, text = run_main(capsys, *build)
    assert code == 0 and "50 tasks" in text and "last build: 25 tasks" in text, text
    code, text = run_main(capsys, "datasets", "verify")
    assert code == 0 and "(50 tasks)" in text and "incomplete" not in text, text


def test_run_prints_a_failed_runs_message_verbatim_on_one_line(
    capsys, tmp_path, register_test_plugin
):
    """`run`'s outcome lines used to go through rich markup: "[M, N]" vanished."""
    register_test_plugin(_BrokenComponents(), "broken")
    suite = tiny_suite(methods=[{"name": "broken-method", "encoder": "maskless"}])
    suite["component_params"] = {**TINY_NETS, "maskless": {"hidden": [16]}}
    path = write_suite(tmp_path / "s.yaml", suite)
    code, text = run_main(capsys, "run", path, "--results-dir", tmp_path / "r", "--jobs", "1")
    assert code == 1, text
    (line,) = [x for x in text.splitlines() if x.lstrip().startswith("failed")]
    assert "encoder 'maskless' (plugin broken): forward(x) does not take a `mask`" in line
    assert "mask [M, N] bool (True = a real transition)" in line
