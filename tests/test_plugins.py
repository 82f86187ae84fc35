"""The plugin system: every hook end to end, clashes, typos, the allowlist, the CLI, a real package.

Test plugins are registered with the ``register_test_plugin`` fixture (``ertrl_bench.testing``),
which unregisters them afterwards, so every other test sees the built-ins only.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pluggy
import pytest
import torch
import typer
import yaml
from pydantic import BaseModel, ConfigDict, Field
from typer.testing import CliRunner

from ertrl_bench import hookspecs, plugins
from ertrl_bench.backbones.brac import BRAC, BRACOptions
from ertrl_bench.config import Component, MethodSpec, load_suite
from ertrl_bench.encoders.mlp import MLPEncoder, MLPEncoderOptions
from ertrl_bench.envs.point_robot import PointRobot, PointRobotOptions
from ertrl_bench.errors import ConfigError, ErtrlError
from ertrl_bench.executors import LocalExecutor, LocalOptions
from ertrl_bench.plugins import get_registry, hookimpl
from ertrl_bench.runner import execute

REPO = Path(__file__).resolve().parents[1]
L2REG = REPO / "plugins" / "ertrl-bench-l2reg"
TESTS = Path(__file__).resolve().parent

TINY_DATA = {
    "sac_steps": 300,
    "random_steps": 100,
    "checkpoints": [150, 300],
    "trajectories_per_checkpoint": 2,
}
TINY_NETS = {"hidden": [16]}
TINY_PROBE = {"transitions": 20, "test": 5, "resamples": 2}  # the end-of-run probe, shrunk


def _suite(methods, envs=("point-robot",), name="plugins", iterations=1, **extra) -> dict:
    suite = {
        "name": name,
        "tier": "smoke",
        "device": "cpu",
        "data": TINY_DATA,
        "train": {
            "iterations": iterations,
            "steps_per_iteration": 20,
            "meta_batch": 4,
            "rl_batch": 16,
            "context_size": 8,
            "final_evals": 1,
        },
        "eval": {"runs_per_task": 1, "splits": ["train"], "probe": TINY_PROBE},
        "component_params": {"mlp": TINY_NETS, "brac": TINY_NETS},
        "grid": {"envs": list(envs), "methods": list(methods), "seeds": [0]},
    }
    suite.update(extra)
    return suite


def _write(tmp_path: Path, suite: dict) -> Path:
    path = tmp_path / f"{suite['name']}.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Tiny networks on a shared 2-core machine: one intra-op thread is several times faster
    (and steadier) than two competing with other processes."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """One dataset cache for this module's runs (built once, by the first run)."""
    return tmp_path_factory.mktemp("plugin-datasets")


# ---------------------------------------------------------------------------------------------
# A plugin that implements every register_* hook, counting what the harness calls.


class CountingOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weight: float = Field(0.01, ge=0)


class CountingRegularizer:
    """A real (tiny) regularizer: ``weight * mean(z^2)``, counting every call it gets."""

    def __init__(self, options: CountingOptions, problem, calls: Counter):
        self.weight = options.weight
        self.calls = calls
        calls["regularizer/init"] += 1

    def update(self, ctx, z_i, z):
        assert not z_i.requires_grad and not z.requires_grad  # detached, as documented
        self.calls["regularizer/update"] += 1
        return {}

    def encoder_loss(self, ctx, z_i, z):
        self.calls["regularizer/encoder_loss"] += 1
        loss = self.weight * z.pow(2).mean()
        return loss, {"counting/calls": float(self.calls["regularizer/encoder_loss"])}

    def joint_parameters(self):
        return []

    def state_dict(self):
        return {}


class EveryHookPlugin:
    """Registers one component through each hook; each wraps a built-in and counts its use."""

    def __init__(self):
        self.calls: Counter = Counter()

    @hookimpl
    def register_envs(self, register):
        def family(options):
            self.calls["env"] += 1
            return PointRobot(options)

        register("counted-point-robot", family, PointRobotOptions)

    @hookimpl
    def register_encoders(self, register):
        def encoder(options, input_dim, latent_dim):
            self.calls["encoder"] += 1
            return MLPEncoder(options, input_dim, latent_dim)

        register("counted-mlp", encoder, MLPEncoderOptions)

    @hookimpl
    def register_regularizers(self, register):
        register(
            "counting",
            lambda options, problem: CountingRegularizer(options, problem, self.calls),
            CountingOptions,
        )

    @hookimpl
    def register_backbones(self, register):
        def backbone(options, problem):
            self.calls["backbone"] += 1
            return BRAC(options, problem)

        register("counted-brac", backbone, BRACOptions)

    @hookimpl
    def register_methods(self, register):
        register(
            "counted",
            MethodSpec(
                encoder=Component(type="counted-mlp"),
                regularizer=Component(type="counting", params={"weight": 0.05}),
                backbone=Component(type="counted-brac"),
            ),
        )

    @hookimpl
    def register_executors(self, register):
        plugin = self

        class CountingExecutor(LocalExecutor):
            def map(self, fn, specs):
                for spec in specs:
                    plugin.calls["executor"] += 1
                    yield fn(spec)

        register("counting-local", CountingExecutor, LocalOptions)


def test_every_hook_end_to_end(tmp_path, data_dir, monkeypatch, register_test_plugin):
    monkeypatch.setenv("ERTRL_BENCH_DATA", str(data_dir))
    plugin = register_test_plugin(EveryHookPlugin(), "every-hook")
    reg = get_registry()
    assert reg.get("regularizers", "counting").plugin == "every-hook"
    suite = _suite(["counted"], envs=["counted-point-robot"], name="every-hook")
    suite["component_params"].update({"counted-mlp": TINY_NETS, "counted-brac": TINY_NETS})
    _, specs = load_suite(_write(tmp_path, suite))
    (spec,) = specs
    assert spec.method.regularizer.params == {"weight": 0.05}
    assert spec.method.encoder.params == TINY_NETS  # component_params reach plugin components
    entry = reg.get("executors", "counting-local")
    executor = entry.factory(entry.options())
    (outcome,) = executor.map(lambda s: execute(s, tmp_path / "results"), specs)
    assert outcome.status == "done", outcome.message
    calls = plugin.calls
    assert calls["executor"] == 1 and calls["env"] >= 1
    assert calls["encoder"] == 1 and calls["backbone"] == 1 and calls["regularizer/init"] == 1
    assert calls["regularizer/update"] == 20 and calls["regularizer/encoder_loss"] == 20
    log = tmp_path / "results" / "every-hook" / outcome.run_id / "log.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(r.get("counting/calls") == 20.0 for r in records)
    assert outcome.metrics["method"] == "counted"
    assert outcome.metrics["env"] == "counted-point-robot"


def test_registration_is_undone_after_a_test():
    reg = get_registry()
    assert "counting" not in reg.names("regularizers")
    assert "counted" not in reg.names("methods")
    assert "every-hook" not in [
        plugins.get_plugin_manager().get_name(p) for p in plugins.get_plugin_manager().get_plugins()
    ]


def test_unknown_plugin_component_is_a_config_error(tmp_path):
    path = _write(tmp_path, _suite([{"name": "x", "regularizer": "counting"}]))
    with pytest.raises(ConfigError) as exc:
        load_suite(path)
    assert "grid.methods[0].regularizer: unknown regularizer 'counting'" in str(exc.value)


# ---------------------------------------------------------------------------------------------
# Clashes and typos


class DuplicateNonePlugin:
    @hookimpl
    def register_regularizers(self, register):
        register("none", CountingRegularizer, CountingOptions)


def test_duplicate_name_names_both_plugins(register_test_plugin):
    register_test_plugin(DuplicateNonePlugin(), "dup-plugin")
    with pytest.raises(ErtrlError) as exc:
        get_registry()
    msg = str(exc.value)
    assert "regularizer 'none' is registered twice" in msg
    assert "ertrl_bench.regularizers" in msg and "dup-plugin" in msg
    assert "ERTRL_BENCH_LOAD_PLUGINS" in msg


class MisspeltHookPlugin:
    @hookimpl
    def register_regularizer(self, register):  # missing "s": not a hook of ertrl_bench
        register("never", CountingRegularizer, CountingOptions)


def test_check_pending_catches_a_misspelt_hook():
    pm = pluggy.PluginManager("ertrl_bench")
    pm.add_hookspecs(hookspecs)
    pm.register(MisspeltHookPlugin(), name="typo")
    with pytest.raises(pluggy.PluginValidationError, match="register_regularizer"):
        pm.check_pending()


def test_register_plugin_rejects_a_misspelt_hook_and_leaves_nothing(register_test_plugin):
    with pytest.raises(pluggy.PluginValidationError, match="register_regularizer"):
        register_test_plugin(MisspeltHookPlugin(), "typo")
    pm = plugins.get_plugin_manager()
    assert pm.get_plugin("typo") is None
    pm.check_pending()  # the rejected plugin does not poison later registrations


# ---------------------------------------------------------------------------------------------
# Entry points and the ERTRL_BENCH_LOAD_PLUGINS allowlist


@pytest.fixture
def installed_l2reg(tmp_path, monkeypatch):
    """Make ``ertrl-bench-l2reg`` look installed: a dist-info with its entry point on sys.path."""
    site = tmp_path / "site"
    info = site / "ertrl_bench_l2reg-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: ertrl-bench-l2reg\nVersion: 0.1.0\n"
    )
    (info / "entry_points.txt").write_text("[ertrl_bench]\nl2reg = ertrl_bench_l2reg.plugin\n")
    monkeypatch.syspath_prepend(str(L2REG))
    monkeypatch.syspath_prepend(str(site))
    return site


@pytest.fixture
def fresh_manager(monkeypatch):
    """Build the plugin manager anew in this test; the cached one comes back afterwards."""
    monkeypatch.setattr(plugins, "_PM", None)
    monkeypatch.setattr(plugins, "_REGISTRY", None)

    def build(allow: str | None):
        if allow is None:
            monkeypatch.delenv("ERTRL_BENCH_LOAD_PLUGINS", raising=False)
        else:
            monkeypatch.setenv("ERTRL_BENCH_LOAD_PLUGINS", allow)
        plugins._PM = plugins._REGISTRY = None
        return plugins.get_plugin_manager()

    return build


def _loaded_names(pm) -> set[str]:
    return {pm.get_name(p) for p in pm.get_plugins()}


def test_empty_allowlist_loads_no_entry_point_plugin(installed_l2reg, fresh_manager):
    pm = fresh_manager("")
    assert _loaded_names(pm) == set(plugins.DEFAULT_PLUGINS)
    assert pm.list_plugin_distinfo() == []
    assert "l2_context" not in get_registry().names("regularizers")


def test_unset_allowlist_loads_installed_plugins(installed_l2reg, fresh_manager):
    pm = fresh_manager(None)
    assert "l2reg" in _loaded_names(pm)
    entry = get_registry().get("regularizers", "l2_context")
    assert entry.plugin == "ertrl-bench-l2reg (l2reg)"
    (record,) = [r for r in plugins.describe_plugins() if r["name"] == "l2reg"]
    assert record["package"] == "ertrl-bench-l2reg" and record["version"] == "0.1.0"
    assert record["regularizers"] == ["l2_context"] and record["methods"] == ["focal_l2"]


@pytest.mark.parametrize(
    "allow, loaded", [("l2reg", True), (" other , l2reg ", True), ("other", False)]
)
def test_allowlist_names_entry_points(installed_l2reg, fresh_manager, allow, loaded):
    pm = fresh_manager(allow)
    assert ("l2reg" in _loaded_names(pm)) is loaded
    assert ("focal_l2" in get_registry().names("methods")) is loaded


# ---------------------------------------------------------------------------------------------
# The hookspecs themselves (datasette's meta-test)


def _hookspec_names() -> list[str]:
    return [
        name
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, "ertrl_bench_spec")
    ]


def test_every_hookspec_is_documented():
    names = _hookspec_names()
    assert set(names) >= {f"register_{k}" for k in plugins.KINDS} | {"register_commands"}
    for name in names:
        doc = inspect.getdoc(getattr(hookspecs, name))
        assert doc and len(doc) > 20, f"hookspec {name} has no docstring"


def test_every_hookspec_is_implemented_by_a_test_plugin():
    text = "\n".join(p.read_text() for p in sorted(TESTS.glob("test_*.py")))
    missing = [n for n in _hookspec_names() if f"def {n}(" not in text]
    assert not missing, f"hooks with no test plugin implementing them: {missing}"


# ---------------------------------------------------------------------------------------------
# The CLI


def _components(records: list[dict]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {k: set() for k in plugins.KINDS}
    for r in records:
        for kind in plugins.KINDS:
            out[kind].update(r.get(kind, []))
    return out


def test_cli_plugins_json_lists_builtins():
    from ertrl_bench.cli import app

    result = CliRunner().invoke(app, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.output)
    found = _components(records)
    assert "point-robot" in found["envs"] and "mlp" in found["encoders"]
    assert {"none", "csro", "gan_entropy"} <= found["regularizers"]
    assert "brac" in found["backbones"] and "local" in found["executors"]
    assert {"focal", "ertrl"} <= found["methods"]
    assert all(r["package"] == "ertrl-bench (built-in)" for r in records)


def test_cli_plugins_table_shows_a_test_plugin(register_test_plugin):
    from ertrl_bench.cli import app

    register_test_plugin(EveryHookPlugin(), "every-hook")
    result = CliRunner().invoke(app, ["plugins"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "every-hook" in result.output and "counting" in result.output


class HelloCommandPlugin:
    @hookimpl
    def register_commands(self, cli):
        @cli.command("hello")
        def hello(name: str = typer.Option("world")):
            """Say hello (added by a plugin)."""
            typer.echo(f"hello {name} from a plugin")


def test_register_commands_adds_a_subcommand(register_test_plugin, monkeypatch, capsys):
    from ertrl_bench import cli

    # main() adds plugin commands to the shared app: give it a list this test can throw away
    monkeypatch.setattr(cli.app, "registered_commands", list(cli.app.registered_commands))
    register_test_plugin(HelloCommandPlugin(), "hello-plugin")
    monkeypatch.setattr(sys, "argv", ["ertrl-bench", "hello", "--name", "tester"])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 0
    assert "hello tester from a plugin" in capsys.readouterr().out
    (record,) = [r for r in plugins.describe_plugins() if r["name"] == "hello-plugin"]
    assert record["hooks"] == ["register_commands"]


# ---------------------------------------------------------------------------------------------
# The example third-party package, plugins/ertrl-bench-l2reg


def test_example_plugin_validates_and_runs(tmp_path, data_dir, monkeypatch, register_test_plugin):
    monkeypatch.setenv("ERTRL_BENCH_DATA", str(data_dir))
    monkeypatch.syspath_prepend(str(L2REG))
    from ertrl_bench_l2reg import plugin as l2reg

    register_test_plugin(l2reg, "l2reg")
    custom = {"name": "l2-strong", "regularizer": {"type": "l2_context", "params": {"weight": 1}}}
    _, specs = load_suite(_write(tmp_path, _suite(["focal_l2", custom])))
    by_name = {s.method.name: s for s in specs}
    assert by_name["focal_l2"].method.regularizer.type == "l2_context"
    assert by_name["focal_l2"].method.encoder_loss == "dml"
    assert by_name["l2-strong"].method.regularizer.params == {"weight": 1}

    bad = {"name": "typo", "regularizer": {"type": "l2_context", "params": {"weigth": 1}}}
    with pytest.raises(ConfigError) as exc:
        load_suite(_write(tmp_path, _suite([bad], name="bad")))
    assert "grid.methods[0].regularizer.params.weigth: unknown field" in str(exc.value)

    outcome = execute(by_name["focal_l2"], tmp_path / "results")
    assert outcome.status == "done", outcome.message
    log = tmp_path / "results" / "plugins" / outcome.run_id / "log.jsonl"
    assert "l2_context/sq_norm" in log.read_text()


def test_example_plugin_penalty_masks_padding(monkeypatch):
    monkeypatch.syspath_prepend(str(L2REG))
    from ertrl_bench_l2reg.plugin import L2ContextOptions, L2ContextRegularizer

    class P:
        device = torch.device("cpu")

    class Ctx:
        mask = torch.tensor([[True, False]])

    reg = L2ContextRegularizer(L2ContextOptions(weight=2.0), P())
    z_i = torch.tensor([[[3.0, 4.0], [100.0, 0.0]]], requires_grad=True)
    loss, logs = reg.encoder_loss(Ctx(), z_i, z_i.mean(1))
    assert loss.item() == pytest.approx(2.0 * 25.0)  # the padded transition does not count
    loss.backward()
    assert z_i.grad[0, 1].abs().sum() == 0


@pytest.mark.slow
def test_example_plugin_installs_for_real(tmp_path):
    # pip, setuptools and ertrl-bench itself come from this environment (--system-site-packages
    # --without-pip, --no-build-isolation): nothing needs the network, and the venv's bundled
    # old setuptools (no bdist_wheel) does not shadow this environment's.
    venv = tmp_path / "venv"
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
            check=True,
            capture_output=True,
        )
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot create a venv: {exc.stderr.decode()[-300:]}")
    py = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    src = tmp_path / "ertrl-bench-l2reg"  # build from a copy: no build/ in the repo
    shutil.copytree(L2REG, src, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
    pip = subprocess.run(
        [
            str(py),
            "-m",
            "pip",
            "install",
            "--no-index",
            "--no-build-isolation",
            "--no-deps",
            "-q",
            str(src),
        ],
        capture_output=True,
        text=True,
    )
    if pip.returncode != 0:
        pytest.skip(f"pip could not install the example plugin: {pip.stderr[-500:]}")
    env = {k: v for k, v in os.environ.items() if k != "ERTRL_BENCH_LOAD_PLUGINS"}
    out = subprocess.run(
        [str(py), "-m", "ertrl_bench.cli", "plugins", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    )
    records = json.loads(out.stdout)
    (record,) = [r for r in records if r["name"] == "l2reg"]
    assert record["package"] == "ertrl-bench-l2reg" and record["version"] == "0.1.0"
    assert record["regularizers"] == ["l2_context"] and record["methods"] == ["focal_l2"]
    # ...and the allowlist turns it off again
    off = subprocess.run(
        [str(py), "-m", "ertrl_bench.cli", "plugins", "--json"],
        capture_output=True,
        text=True,
        env={**env, "ERTRL_BENCH_LOAD_PLUGINS": ""},
        cwd=tmp_path,
        check=True,
    )
    assert "l2reg" not in {r["name"] for r in json.loads(off.stdout)}
