"""Bad inputs: each gets its specific message, exit code 2, and no traceback."""

from pathlib import Path

import pytest

from ertrl_bench.errors import ConfigError
from ertrl_bench.suite_loader import load_suite
from tests.helpers import tiny_suite, write_suite


def test_valid_suite_expands_grid(tmp_path):
    _, specs = load_suite(
        write_suite(
            tmp_path / "s.yaml", tiny_suite(methods=["focal", "offline_pearl"], seeds=[0, 1])
        )
    )
    assert len(specs) == 4
    assert len({s.run_id() for s in specs}) == 4
    assert specs[0].method.backbone.params["hidden"] == [16]  # component_params applied


def test_every_error_reported_at_once_with_yaml_paths(tmp_path):
    suite = tiny_suite()
    suite["runs"] = [
        {"env": "point-robot", "method": "focal"},
        {"env": "point-robot", "method": "focal", "seed": 1},
        {"env": "point-robot", "method": {"encoder_losses": ["dml", "csr0"]}},
        {"env": "point-robbot", "method": "focal"},
    ]
    suite["train"]["steps_per_iteration"] = -5
    suite["eval"]["runs_per_tsk"] = 2
    path = write_suite(tmp_path / "bad.yaml", suite)
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    text = str(info.value)
    assert "train.steps_per_iteration: Input should be greater than 0" in text
    assert "eval.runs_per_tsk: unknown field" in text
    # unknown names are reported with the structural errors, not after they are fixed
    assert "runs[2].method.encoder_losses[1]: unknown encoder loss 'csr0'; available: " in text
    assert "none" in text.split("'csr0'")[1].splitlines()[0]
    assert "runs[3].env: unknown env family 'point-robbot'" in text
    assert len(info.value.problems) == 4
    # with the structure fixed, the same name errors come from the full expansion
    suite["train"]["steps_per_iteration"] = 5
    del suite["eval"]["runs_per_tsk"]
    write_suite(path, suite)
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    text = str(info.value)
    assert "runs[2].method.encoder_losses[1]: unknown encoder loss 'csr0'; available: " in text
    assert "none" in text.split("'csr0'")[1].splitlines()[0]
    assert "runs[3].env: unknown env family 'point-robbot'" in text
    assert len(info.value.problems) == 2


def test_component_option_errors_have_paths(tmp_path):
    suite = tiny_suite()
    suite["grid"]["methods"] = [{"backbone": {"type": "brac", "params": {"discont": 0.9}}}]
    with pytest.raises(ConfigError) as info:
        load_suite(write_suite(tmp_path / "s.yaml", suite))
    assert "grid.methods[0].backbone.params.discont: unknown field" in str(info.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("name: x\ngrid: [unclosed\n", "malformed YAML at line"),
        ("- just\n- a list\n", "a suite must be a YAML mapping"),
        (
            "name: x\ntrain: {iterations: many}\ngrid: {envs: [point-robot], methods: [focal]}\n",
            "train.iterations: Input should be a valid integer",
        ),
        (
            "name: x\ntrain: {iterations: -1}\ngrid: {envs: [point-robot], methods: [focal]}\n",
            "train.iterations: Input should be greater than 0",
        ),
        (
            "name: x\ngrid: {envs: [point-robot], methods: [foccal]}\n",
            "grid.methods[0]: unknown method 'foccal'",
        ),
        ("name: x\n", "a suite needs a `grid:` or a non-empty `runs:` list"),
    ],
)
def test_cli_validate_bad_inputs_exit_2_without_traceback(cli, tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    proc = cli("validate", str(path))
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert str(path) in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_missing_file_and_unknown_executor(cli, tmp_path):
    proc = cli("validate", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 2 and "no such suite file" in proc.stderr
    assert "Traceback" not in proc.stderr
    path = write_suite(tmp_path / "s.yaml", tiny_suite())
    proc = cli("run", str(path), "--executor", "slurm", "--results-dir", str(tmp_path / "r"))
    assert proc.returncode == 2 and "unknown executor 'slurm'; available: local, ray" in proc.stderr


def test_run_does_no_work_on_invalid_suite(cli, tmp_path):
    suite = tiny_suite()
    suite["grid"]["methods"] = ["focal", "nope"]
    path = write_suite(tmp_path / "s.yaml", suite)
    proc = cli("run", str(path), "--results-dir", str(tmp_path / "r"))
    assert proc.returncode == 2
    assert not (tmp_path / "r").exists()


BUILTIN_SUITES = sorted(
    p.stem for p in (Path(__file__).parents[1] / "ertrl_bench" / "suites").glob("*.yaml")
)


@pytest.mark.parametrize("name", BUILTIN_SUITES)
def test_builtin_suites_validate(cli, name):
    """Every suite shipped in the package validates (by name, as a user would call it)."""
    proc = cli("validate", name)
    assert proc.returncode == 0, proc.stderr
    assert "valid" in proc.stdout


def test_run_help_names_every_builtin_suite():
    """`--help` lists the shipped suites from the package folder, so a new suite is never missing."""
    from ertrl_bench.cli import SUITE_HELP
    from ertrl_bench.suite_loader import builtin_suite_names

    assert builtin_suite_names() == BUILTIN_SUITES
    for name in BUILTIN_SUITES:
        assert name in SUITE_HELP
