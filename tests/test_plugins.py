"""The plugin system: every hook end to end, clashes, typos, the allowlist, the CLI, a real package.

Test plugins are registered with the ``register_test_plugin`` fixture (``ertrl_bench.testing``),
which unregisters them afterwards, so every other test sees the built-ins only.
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Literal

import pytest
import torch
import typer
import yaml
from pydantic import BaseModel, ConfigDict, Field
from typer.testing import CliRunner

from ertrl_bench import hookspecs, plugins
from ertrl_bench.backbones.brac import BRAC, BRACOptions
from ertrl_bench.config import Component, MethodSpec, Strict
from ertrl_bench.encoders.mlp import MLPEncoder, MLPEncoderOptions
from ertrl_bench.envs.point_robot import PointRobot, PointRobotOptions
from ertrl_bench.errors import ConfigError, ErtrlError
from ertrl_bench.executors import LocalExecutor, LocalOptions
from ertrl_bench.plugins import PluginError, get_registry, hookimpl
from ertrl_bench.runner import execute
from ertrl_bench.suite_loader import builtin_suite_path, load_suite
from tests.helpers import tiny_suite

REPO = Path(__file__).resolve().parents[1]
L2REG = REPO / "plugins" / "ertrl-bench-l2reg"
TESTS = Path(__file__).resolve().parent

TINY_NETS = {"hidden": [16]}  # one component's params (tests.helpers.TINY_NETS: by component)


def _suite(methods, envs=("point-robot",), name="plugins", iterations=1, **extra) -> dict:
    """``tests.helpers.tiny_suite`` on the train split only, 20 steps an iteration."""
    suite = copy.deepcopy(tiny_suite(name, methods=methods))  # its own dicts: tests edit them
    suite["train"].update(iterations=iterations, steps_per_iteration=20)
    suite["eval"]["splits"] = ["train"]
    suite["grid"]["envs"] = list(envs)
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


class CountingLoss:
    """A real (tiny) encoder loss: ``weight * mean(z^2)``, counting every call it gets."""

    def __init__(self, options: CountingOptions, problem, calls: Counter):
        self.weight = options.weight
        self.calls = calls
        calls["regularizer/init"] += 1

    def update(self, batch):
        assert not batch.z_i.requires_grad and not batch.z.requires_grad  # detached, as documented
        self.calls["regularizer/update"] += 1
        return {}

    def encoder_loss(self, batch):
        self.calls["regularizer/encoder_loss"] += 1
        loss = self.weight * batch.z.pow(2).mean()
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
        class CountedPointRobot(PointRobot):
            name = "counted-point-robot"  # its own name: its own dataset cache

        def family(options):
            self.calls["env"] += 1
            return CountedPointRobot(options)

        register("counted-point-robot", family, PointRobotOptions)

    @hookimpl
    def register_encoders(self, register):
        def encoder(options, problem):
            self.calls["encoder"] += 1
            return MLPEncoder(options, problem)

        register("counted-mlp", encoder, MLPEncoderOptions)

    @hookimpl
    def register_encoder_losses(self, register):
        register(
            "counting",
            lambda options, problem: CountingLoss(options, problem, self.calls),
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
                encoder_losses=[Component(type="counting", params={"weight": 0.05})],
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

    @hookimpl
    def register_suites(self, register):
        register("counted-smoke", builtin_suite_path("smoke"))


def test_every_hook_end_to_end(tmp_path, data_dir, monkeypatch, register_test_plugin):
    monkeypatch.setenv("ERTRL_BENCH_DATA", str(data_dir))
    plugin = register_test_plugin(EveryHookPlugin(), "every-hook")
    reg = get_registry()
    assert reg.get("encoder_losses", "counting").plugin == "every-hook"
    suite = _suite(["counted"], envs=["counted-point-robot"], name="every-hook")
    suite["component_params"].update({"counted-mlp": TINY_NETS, "counted-brac": TINY_NETS})
    _, specs = load_suite(_write(tmp_path, suite))
    (spec,) = specs
    assert spec.method.encoder_losses[0].params == {"weight": 0.05}
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
    assert "counting" not in reg.names("encoder_losses")
    assert "counted" not in reg.names("methods")
    assert "every-hook" not in [
        plugins.get_plugin_manager().get_name(p) for p in plugins.get_plugin_manager().get_plugins()
    ]


def test_unknown_plugin_component_is_a_config_error(tmp_path):
    path = _write(tmp_path, _suite([{"name": "x", "encoder_losses": ["counting"]}]))
    with pytest.raises(ConfigError) as exc:
        load_suite(path)
    assert "grid.methods[0].encoder_losses[0]: unknown encoder loss 'counting'" in str(exc.value)


# ---------------------------------------------------------------------------------------------
# Clashes and typos


class DuplicateNonePlugin:
    @hookimpl
    def register_encoder_losses(self, register):
        register("none", CountingLoss, CountingOptions)


def test_duplicate_name_names_both_plugins(register_test_plugin):
    with pytest.raises(PluginError) as exc:
        register_test_plugin(DuplicateNonePlugin(), "dup-plugin")
    msg = str(exc.value)
    assert "encoder loss 'none' is registered twice" in msg
    assert "ertrl_bench.encoder_losses" in msg and "dup-plugin" in msg
    assert "ERTRL_BENCH_LOAD_PLUGINS" in msg


class MisspeltHookPlugin:
    @hookimpl
    def register_encoder_loss(self, register):  # missing "es": not a hook of ertrl_bench
        register("never", CountingLoss, CountingOptions)


def test_register_plugin_rejects_a_misspelt_hook_and_leaves_nothing(register_test_plugin):
    with pytest.raises(PluginError) as exc:
        register_test_plugin(MisspeltHookPlugin(), "typo")
    msg = str(exc.value)
    assert "plugin 'typo'" in msg
    assert "'register_encoder_loss' is not an ertrl_bench hook" in msg
    assert "did you mean 'register_encoder_losses'?" in msg
    pm = plugins.get_plugin_manager()
    assert pm.get_plugin("typo") is None
    pm.check_pending()  # the rejected plugin does not poison later registrations


# ---------------------------------------------------------------------------------------------
# No shadowing: names are compared ignoring case, "-" and "_", commands included


def _one_component_plugin(kind: str, name: str):
    """A plugin registering one real component of ``kind`` under ``name``."""
    factories = {
        "envs": (PointRobot, PointRobotOptions),
        "encoders": (MLPEncoder, MLPEncoderOptions),
        "encoder_losses": (CountingLoss, CountingOptions),
        "backbones": (BRAC, BRACOptions),
        "executors": (LocalExecutor, LocalOptions),
    }

    class OnePlugin:
        pass

    def hook(register):
        if kind == "methods":
            register(name, {"encoder_losses": ["dml"]})
        elif kind == "suites":
            register(name, builtin_suite_path("smoke"))
        else:
            register(name, *factories[kind])

    setattr(OnePlugin, f"register_{kind}", staticmethod(hookimpl(hook)))
    return OnePlugin()


CONFUSABLE = [
    ("encoder_losses", "CSRO", "csro"),
    ("encoder_losses", "gan-entropy", "gan_entropy"),
    ("methods", "ER-TRL", "ertrl"),
    ("methods", "Offline-PEARL", "offline_pearl"),
    ("encoders", "MLP", "mlp"),
    ("backbones", "b_r_a_c", "brac"),
    ("envs", "Point_Robot", "point-robot"),
    ("executors", "LOCAL", "local"),
    ("suites", "Smoke", "smoke"),
]


@pytest.mark.parametrize(("kind", "name", "builtin"), CONFUSABLE)
def test_a_name_that_differs_from_a_builtin_only_by_case_dash_or_underscore_is_refused(
    register_test_plugin, kind, name, builtin
):
    with pytest.raises(PluginError) as exc:
        register_test_plugin(_one_component_plugin(kind, name), "lookalike")
    msg = str(exc.value)
    what = plugins.SINGULAR[kind]
    assert f"{what} {name!r} of plugin 'lookalike' clashes with {what} {builtin!r}" in msg
    module = "suite_loader" if kind == "suites" else kind  # the built-in suites' registrar
    assert f"built-in plugin ertrl_bench.{module} (package ertrl-bench)" in msg
    assert "ignoring case, '-' and '_'" in msg and "rename one" in msg
    assert name not in get_registry().names(kind)  # the plugin was not kept
    assert builtin in get_registry().names(kind)


def test_two_plugins_with_confusable_names_are_one_error_naming_both(register_test_plugin):
    register_test_plugin(_one_component_plugin("encoder_losses", "my_loss"), "first")
    with pytest.raises(PluginError) as exc:
        register_test_plugin(_one_component_plugin("encoder_losses", "My-Loss"), "second")
    msg = str(exc.value)
    assert "encoder loss 'My-Loss' of plugin 'second' clashes with encoder loss 'my_loss' of" in msg
    assert "plugin 'first'" in msg and "plugin 'second'" in msg


class StudyPlugin:
    """A plugin shipping one suite file, as a package ships it: ``register(name, path)``."""

    def __init__(self, path):
        self.path = path

    @hookimpl
    def register_suites(self, register):
        register("my-study", self.path)


def test_a_plugins_suite_runs_by_name(tmp_path, register_test_plugin):
    shipped = tmp_path / "pkg" / "suites" / "my-study.yaml"
    shipped.parent.mkdir(parents=True)
    shipped.write_text(yaml.safe_dump(tiny_suite("my-study")))
    register_test_plugin(StudyPlugin(shipped), "studies")
    suite, specs = load_suite("my-study")
    assert suite.name == "my-study" and [s.method.name for s in specs] == ["focal"]
    from ertrl_bench.cli import app

    result = CliRunner().invoke(app, ["validate", "my-study"])
    assert result.exit_code == 0, result.output
    lines = plugins.component_lines(plugins.describe_plugins())
    assert any(line.split()[:3] == ["suite", "my-study", "studies"] for line in lines)
    (record,) = plugins.describe_component("my-study")
    assert plugins.component_text(record)[1] == f"  the file {shipped}: `ertrl-bench run my-study`"
    # a path that is not there, but names a registered suite: the error says which name to use
    with pytest.raises(ErtrlError) as exc:
        load_suite("suites/my-study.yaml")
    msg = str(exc.value)
    assert "from plugin studies: my-study" in msg and "built-in suites: backbones," in msg
    assert msg.endswith("Did you mean the suite 'my-study' (`ertrl-bench run my-study`)?")


@pytest.mark.parametrize("shipped", ["missing.yaml", "notes.md", 42])
def test_a_suite_that_is_not_a_yaml_file_is_the_plugins_error(
    tmp_path, register_test_plugin, shipped
):
    if shipped == "notes.md":
        (tmp_path / shipped).write_text("# not a suite")
    path = tmp_path / shipped if isinstance(shipped, str) else shipped
    with pytest.raises(PluginError) as exc:
        register_test_plugin(StudyPlugin(path), "studies")
    msg = str(exc.value)
    assert "plugin 'studies'" in msg and "suite 'my-study'" in msg
    assert ("package-data" in msg) if isinstance(shipped, str) else ("register(name, path)" in msg)
    assert "my-study" not in get_registry().names("suites")


def test_the_same_name_in_two_kinds_is_allowed(register_test_plugin):
    register_test_plugin(_one_component_plugin("encoder_losses", "mlp"), "reg-named-mlp")
    assert "mlp" in get_registry().names("encoder_losses") and "mlp" in get_registry().names(
        "encoders"
    )


def _cli(capsys, *argv) -> tuple[int, str]:
    """The real command line, in this process: (exit code, stderr + stdout)."""
    from ertrl_bench.cli import main

    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
    captured = capsys.readouterr()
    return info.value.code, captured.err + captured.out


def _command_plugin(name: str):
    class CommandPlugin:
        @hookimpl
        def register_commands(self, cli):
            @cli.command(name)
            def hijack(suite: str = typer.Argument("x")):
                typer.echo(f"HIJACKED {suite}: valid")

    return CommandPlugin()


@pytest.mark.parametrize(
    ("command", "builtin"), [("validate", "validate"), ("Run", "run"), ("data_sets", "datasets")]
)
def test_a_plugin_cannot_replace_a_builtin_command(
    register_test_plugin, capsys, tmp_path, command, builtin
):
    register_test_plugin(_command_plugin(command), "hijack")
    suite = _write(tmp_path, _suite(["focal"]))
    code, text = _cli(capsys, "validate", suite)
    assert code == 2, text
    assert "HIJACKED" not in text and "Traceback" not in text
    (line,) = text.strip().splitlines()
    assert f"error: plugin 'hijack' adds the command {command!r}" in line
    assert f"ertrl-bench's own `ertrl-bench {builtin}`" in line
    assert "a plugin cannot replace a built-in command" in line
    code, text = _cli(capsys, "plugins")  # every command fails the same way, `plugins` too
    assert code == 2 and "plugin 'hijack' adds the command" in text


def test_two_plugins_adding_one_command_is_one_error_naming_both(register_test_plugin, capsys):
    register_test_plugin(_command_plugin("hello"), "hello-one")
    register_test_plugin(_command_plugin("HELLO"), "hello-two")
    code, text = _cli(capsys, "plugins")
    assert code == 2, text
    (line,) = text.strip().splitlines()
    assert "command 'HELLO' of plugin 'hello-two' clashes with command 'hello' of plugin" in line
    assert "'hello-one'" in line


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
    assert "l2_context" not in get_registry().names("encoder_losses")


def test_unset_allowlist_loads_installed_plugins(installed_l2reg, fresh_manager):
    pm = fresh_manager(None)
    assert "l2reg" in _loaded_names(pm)
    entry = get_registry().get("encoder_losses", "l2_context")
    assert entry.plugin == "ertrl-bench-l2reg (l2reg)"
    (record,) = [r for r in plugins.describe_plugins() if r["name"] == "l2reg"]
    assert record["package"] == "ertrl-bench-l2reg" and record["version"] == "0.1.0"
    assert record["encoder_losses"] == ["l2_context"] and record["methods"] == ["focal_l2"]


@pytest.mark.parametrize("allow", ["l2reg", " l2reg , "])
def test_allowlist_names_entry_points(installed_l2reg, fresh_manager, allow):
    pm = fresh_manager(allow)
    assert "l2reg" in _loaded_names(pm)
    assert "focal_l2" in get_registry().names("methods")


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
    assert {"none", "csro", "gan_entropy"} <= found["encoder_losses"]
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
    strong = {"type": "l2_context", "params": {"weight": 1}}
    custom = {"name": "l2-strong", "encoder_losses": ["dml", strong]}
    _, specs = load_suite(_write(tmp_path, _suite(["focal_l2", custom])))
    by_name = {s.method.name: s for s in specs}
    losses = by_name["focal_l2"].method.encoder_losses
    assert [c.type for c in losses] == ["dml", "l2_context"]
    assert by_name["l2-strong"].method.encoder_losses[1].params == {"weight": 1}

    bad = {"name": "typo", "encoder_losses": [{"type": "l2_context", "params": {"weigth": 1}}]}
    with pytest.raises(ConfigError) as exc:
        load_suite(_write(tmp_path, _suite([bad], name="bad")))
    assert "grid.methods[0].encoder_losses[0].params.weigth: unknown field" in str(exc.value)

    outcome = execute(by_name["focal_l2"], tmp_path / "results")
    assert outcome.status == "done", outcome.message
    log = tmp_path / "results" / "plugins" / outcome.run_id / "log.jsonl"
    assert "l2_context/sq_norm" in log.read_text()


def test_example_plugin_penalty_masks_padding(monkeypatch):
    monkeypatch.syspath_prepend(str(L2REG))
    from ertrl_bench_l2reg.plugin import L2ContextLoss, L2ContextOptions

    class P:
        device = torch.device("cpu")

    from ertrl_bench.components import StepBatch
    from ertrl_bench.testing import tiny_problem, tiny_transitions

    ctx = tiny_transitions(tiny_problem(), 1, 2, mask=torch.tensor([[True, False]]))
    reg = L2ContextLoss(L2ContextOptions(weight=2.0), P())
    z_i = torch.tensor([[[3.0, 4.0], [100.0, 0.0]]], requires_grad=True)
    batch = StepBatch(ctx, ctx, z_i, z_i.mean(1), encode=lambda t: (None, None))
    loss, logs = reg.encoder_loss(batch)
    assert loss.item() == pytest.approx(2.0 * 25.0)  # the padded transition does not count
    loss.backward()
    assert z_i.grad[0, 1].abs().sum() == 0


INSTALLABLE = {
    "l2reg": ("ertrl-bench-l2reg", {"encoder_losses": ["l2_context"], "methods": ["focal_l2"]}),
    "attention": ("ertrl-bench-attention", {"encoders": ["attention"]}),
    "td3bc": ("ertrl-bench-td3bc", {"backbones": ["td3bc"]}),
    "linegoal": ("ertrl-bench-linegoal", {"envs": ["line-goal"]}),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(INSTALLABLE))
def test_plugin_packages_install_for_real(tmp_path, name):
    """pip-installs each package under plugins/ into a venv; its entry point is then found."""
    # pip, setuptools and ertrl-bench itself come from this environment (a .pth file adds its
    # site-packages to the venv; --without-pip, --no-build-isolation): nothing needs the network.
    # (--system-site-packages would see the *base* interpreter's packages when this environment
    # is itself a venv, with no torch and maybe an old setuptools.)
    folder, registers = INSTALLABLE[name]
    venv = tmp_path / "venv"
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", str(venv)],
            check=True,
            capture_output=True,
        )
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot create a venv: {exc.stderr.decode()[-300:]}")
    py = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    site_dir = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    parent = [p for p in sys.path if p.endswith("site-packages")]
    Path(site_dir, "_parent_env.pth").write_text("\n".join(parent) + "\n")
    src = tmp_path / folder  # build from a copy: no build/ in the repo
    shutil.copytree(
        REPO / "plugins" / folder,
        src,
        ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"),
    )
    pip = subprocess.run(
        [str(py), "-m", "pip", "install", "--no-index", "--no-build-isolation", "--no-deps", "-q"]
        + [str(src)],
        capture_output=True,
        text=True,
    )
    if pip.returncode != 0:
        pytest.skip(f"pip could not install {folder}: {pip.stderr[-500:]}")
    env = {k: v for k, v in os.environ.items() if k != "ERTRL_BENCH_LOAD_PLUGINS"}
    out = subprocess.run(
        [str(py), "-m", "ertrl_bench.cli", "plugins", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    )
    (record,) = [r for r in json.loads(out.stdout) if r["name"] == name]
    assert record["package"] == folder and record["version"] == "0.1.0"
    assert {k: record[k] for k in registers} == registers
    # ...and the allowlist turns it off again
    off = subprocess.run(
        [str(py), "-m", "ertrl_bench.cli", "plugins", "--json"],
        capture_output=True,
        text=True,
        env={**env, "ERTRL_BENCH_LOAD_PLUGINS": ""},
        cwd=tmp_path,
        check=True,
    )
    assert name not in {r["name"] for r in json.loads(off.stdout)}


# ---------------------------------------------------------------------------------------------
# Load-time mistakes: each is ONE PluginError naming the plugin (package + entry point) and fix


def _install(site: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]):
    """A fake installed distribution: a dist-info with ``ertrl_bench`` entry points, plus
    modules (source text) on sys.path."""
    info = site / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[ertrl_bench]\n{lines}")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(source)


@pytest.fixture
def site(tmp_path, monkeypatch):
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    return path


HEADER = "from ertrl_bench.plugins import hookimpl\n\n"
CASES = {
    "misspelt": (
        HEADER + "@hookimpl\ndef register_encoder_loss(register):\n    pass\n",
        [
            "'register_encoder_loss' is not an ertrl_bench hook",
            "did you mean 'register_encoder_losses'",
        ],
    ),
    "old-hook-name": (
        HEADER + "@hookimpl\ndef register_regularizers(register):\n    pass\n",
        [
            "'register_regularizers' is not an ertrl_bench hook",
            "it is now called 'register_encoder_losses'",
        ],
    ),
    "undecorated": (
        HEADER + "def register_encoder_losses(register):\n    pass\n",
        ["'register_encoder_losses' is not decorated with @hookimpl", "put `@hookimpl` above it"],
    ),
    "empty": ("X = 1\n", ["registers nothing: it has no @hookimpl function", "register_envs"]),
    "undecorated-typo": (
        "def register_encoder_loss(register):\n    pass\n",
        ["registers nothing", "'register_encoder_loss' looks like a hook: did you mean"],
    ),
    "helper": (  # a helper named like a hook is fine next to a real hook
        HEADER + "def register_my_envs(register):\n    pass\n\n"
        "@hookimpl\ndef register_envs(register):\n    register_my_envs(register)\n",
        None,
    ),
    "wrong-arg": (
        HEADER + "@hookimpl\ndef register_encoder_losses(reg):\n    pass\n",
        ["register_encoder_losses", "one argument named `register`"],
    ),
    "broken-import": (
        "import not_a_module_anywhere\n",
        ["failed to import: ModuleNotFoundError", "ERTRL_BENCH_LOAD_PLUGINS"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_installed_plugin_is_one_message_naming_it(site, fresh_manager, case):
    source, expected = CASES[case]
    module = f"bad_{case.replace('-', '_')}"
    _install(site, f"ertrl-bench-{case}", {case: module}, {module: source})
    if expected is None:
        assert case in _loaded_names(fresh_manager(case))
        return
    with pytest.raises(PluginError) as exc:
        fresh_manager(case)
    msg = str(exc.value)
    assert (
        f"plugin {case!r} (package ertrl-bench-{case} 0.1.0, entry point `{case} = {module}`)"
        in msg
    )
    for part in expected:
        assert part in msg, msg


def test_broken_plugin_on_the_command_line_is_one_line_exit_2(site):
    _install(site, "ertrl-bench-typo", {"typo": "bad_typo"}, {"bad_typo": CASES["misspelt"][0]})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]), "COLUMNS": "400"}
    env.pop("ERTRL_BENCH_LOAD_PLUGINS")
    proc = subprocess.run(
        [sys.executable, "-m", "ertrl_bench.cli", "plugins"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: plugin 'typo' (package ertrl-bench-typo 0.1.0")
    assert "did you mean 'register_encoder_losses'" in line


LENIENT_OPTIONS = (  # registers fine with pluggy; fails the registry's options check
    HEADER + "from pydantic import BaseModel\n"
    "from ertrl_bench.encoder_losses.none import NoLoss\n\n"
    "class Loose(BaseModel):\n    weight: float = 1.0\n\n"
    "@hookimpl\ndef register_encoder_losses(register):\n"
    "    register('loose', NoLoss, Loose)\n"
)


def test_cli_plugins_runs_the_load_time_checks_of_validate(site, fresh_manager, capsys, tmp_path):
    """`plugins` used to call the hooks with a dummy `register`: a plugin that every `validate`
    rejected was listed, exit 0. Now both give the same one-line error, exit 2."""
    _install(site, "ertrl-bench-loose", {"loose": "bad_loose"}, {"bad_loose": LENIENT_OPTIONS})
    fresh_manager("loose")
    messages = []
    for argv in (
        ["plugins"],
        ["plugins", "--json"],
        ["validate", _write(tmp_path, _suite(["focal"]))],
    ):
        code, text = _cli(capsys, *argv)
        assert code == 2, text
        (line,) = text.strip().splitlines()
        messages.append(line)
    assert len(set(messages)) == 1, messages
    assert "plugin 'loose' (package ertrl-bench-loose 0.1.0" in messages[0]
    assert "accept unknown keys" in messages[0]


def test_unknown_name_in_the_allowlist_is_an_error(installed_l2reg, fresh_manager):
    with pytest.raises(PluginError) as exc:
        fresh_manager("l2rge,l2reg")
    msg = str(exc.value)
    assert "ERTRL_BENCH_LOAD_PLUGINS names 'l2rge'" in msg
    assert "installed: l2reg (ertrl-bench-l2reg)" in msg


class _NotPydantic:
    weight: float = 1.0


class _Lenient(BaseModel):  # pydantic's default: unknown keys are ignored
    weight: float = 1.0


def _registering(options):
    class Plugin:
        @hookimpl
        def register_encoder_losses(self, register):
            register("mine", CountingLoss, options)

    return Plugin()


@pytest.mark.parametrize(
    "options, expected",
    [
        (_NotPydantic, "must be a pydantic model class"),
        ({"weight": 1.0}, "must be a pydantic model class"),
        (_Lenient, "(_Lenient) accept unknown keys"),
        (None, "are missing"),
    ],
)
def test_bad_options_model_is_rejected_at_registration(register_test_plugin, options, expected):
    with pytest.raises(PluginError) as exc:
        register_test_plugin(_registering(options), "opts-plugin")
    msg = str(exc.value)
    assert "plugin 'opts-plugin': the options of encoder loss 'mine'" in msg
    assert expected in msg and "ertrl_bench.options.Strict" in msg
    assert "mine" not in get_registry().names("encoder_losses")  # nothing half-registered


class _CopiedName(PointRobot):  # forgot to set `name`: would share point-robot's datasets
    pass


class _EnvNamePlugin:
    @hookimpl
    def register_envs(self, register):
        register("my-robot", _CopiedName, PointRobotOptions)


class _EnvFunctionPlugin:
    @hookimpl
    def register_envs(self, register):
        register("my-robot", lambda options: _CopiedName(options), PointRobotOptions)


def test_env_family_name_must_be_its_registered_name(register_test_plugin):
    with pytest.raises(PluginError) as exc:
        register_test_plugin(_EnvNamePlugin(), "env-plugin")
    msg = str(exc.value)
    assert "env family registered as 'my-robot' has name = 'point-robot'" in msg
    assert "`name = 'my-robot'`" in msg and "dataset cache" in msg
    # a factory function is checked when it makes the family
    register_test_plugin(_EnvFunctionPlugin(), "env-fn-plugin")
    entry = get_registry().get("envs", "my-robot")
    with pytest.raises(PluginError, match="has name = 'point-robot'"):
        entry.factory(entry.options())


def test_builtin_options_models_share_the_strict_base():
    from ertrl_bench.options import Strict

    reg = get_registry()
    for kind in plugins.KINDS:
        for name in reg.names(kind):
            options = reg.get(kind, name).options
            if kind not in ("methods", "suites"):
                assert issubclass(options, Strict), f"{kind} {name}: {options}"


# ---------------------------------------------------------------------------------------------
# register_test_plugin starts from the built-ins only


@pytest.fixture
def l2reg_installed_and_allowed(installed_l2reg, monkeypatch):
    """The situation of a plugin author: their package is installed, nothing limits loading."""
    monkeypatch.delenv("ERTRL_BENCH_LOAD_PLUGINS")
    monkeypatch.setattr(plugins, "_PM", None)
    monkeypatch.setattr(plugins, "_REGISTRY", None)


def test_register_test_plugin_ignores_installed_plugins(
    l2reg_installed_and_allowed, register_test_plugin
):
    from ertrl_bench_l2reg import plugin as l2reg

    pm = plugins.get_plugin_manager()
    assert _loaded_names(pm) == set(plugins.DEFAULT_PLUGINS)  # the installed copy is not loaded
    register_test_plugin(l2reg, "l2reg")  # so registering the module again does not clash
    assert get_registry().get("encoder_losses", "l2_context").plugin == "l2reg"


def test_builtins_only_restores_the_previous_manager():
    before = plugins.get_plugin_manager()
    with plugins.builtins_only() as pm:
        assert plugins.get_plugin_manager() is pm is not before
    assert plugins.get_plugin_manager() is before


# ---------------------------------------------------------------------------------------------
# `ertrl-bench plugins` piped, and --options


def test_cli_plugins_piped_is_plain_lines_in_a_stable_order(register_test_plugin):
    from ertrl_bench.cli import app

    register_test_plugin(EveryHookPlugin(), "every-hook")
    register_test_plugin(HelloCommandPlugin(), "hello-plugin")
    result = CliRunner().invoke(app, ["plugins"], env={"COLUMNS": "60"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "…" not in result.output and "│" not in result.output and "┃" not in result.output
    kinds = [plugins.SINGULAR[k] for k in plugins.KINDS] + ["command"]

    def row(line: str) -> list:  # [kind, name, plugin, ...]; a kind may be two words
        kind = max((k for k in kinds if line.startswith(k + " ")), key=len)
        return [kind, *line[len(kind) :].split()]

    rows = [row(line) for line in lines]
    assert ["encoder loss", "gan_entropy", "ertrl_bench.encoder_losses", "ertrl-bench"] == rows[
        [r[1] for r in rows].index("gan_entropy")
    ][:4]
    assert ["encoder loss", "counting", "every-hook"] in [r[:3] for r in rows]
    assert ["env family", "counted-point-robot", "every-hook"] in [r[:3] for r in rows]
    assert ["command", "hello", "hello-plugin"] in [r[:3] for r in rows]
    keys = [(kinds.index(r[0]), r[1]) for r in rows]
    assert keys == sorted(keys)  # by kind, then by name
    assert CliRunner().invoke(app, ["plugins"]).output == result.output


class DescribedOptions(Strict):
    temperature: float = Field(0.5, gt=0, description="Softmax temperature of the contrast.")
    views: tuple[int, ...] = (1, 2)
    mode: Literal["a", "b"] = "a"


class DescribedPlugin:
    @hookimpl
    def register_encoder_losses(self, register):
        register("described", CountingLoss, DescribedOptions)


def test_cli_plugins_options_lists_defaults_and_descriptions(register_test_plugin):
    from ertrl_bench.cli import app

    register_test_plugin(DescribedPlugin(), "described-plugin")
    result = CliRunner().invoke(app, ["plugins", "--options", "described"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "encoder loss described (plugin described-plugin)"
    assert "    temperature: float (> 0), default 0.5" in lines
    assert "      Softmax temperature of the contrast." in lines
    assert "    views: tuple[int, ...], default [1, 2]" in lines
    assert "    mode: 'a' | 'b', default \"a\"" in lines

    as_json = CliRunner().invoke(app, ["plugins", "--options", "gan_entropy", "--json"])
    (record,) = json.loads(as_json.output)
    from ertrl_bench.encoder_losses.gan_entropy import GANEntropyOptions

    defaults = GANEntropyOptions().model_dump(mode="json")
    assert {o["name"]: o["default"] for o in record["options"]} == defaults
    by_name = {o["name"]: o for o in record["options"]}
    assert by_name["gan_steps"]["description"]  # a built-in's `# comment` is its description
    assert by_name["weight"]["constraints"] == [">= 0"]

    method = CliRunner().invoke(app, ["plugins", "--options", "ertrl"])
    assert "encoder: mlp, encoder_losses: [dml, gan_entropy], backbone: brac" in method.output

    unknown = CliRunner().invoke(app, ["plugins", "--options", "gan_entropi"])
    assert isinstance(unknown.exception, ErtrlError)
    assert "no component is named 'gan_entropi'" in str(unknown.exception)


# ---------------------------------------------------------------------------------------------
# gymnasium ids on `import ertrl_bench`


def test_import_ertrl_bench_registers_gymnasium_ids_cheaply():
    code = (
        "import sys, gymnasium as gym, ertrl_bench\n"
        "assert 'mujoco' not in sys.modules and 'ertrl_bench.envs' not in sys.modules\n"
        "env = gym.make('ertrl_bench/CheetahVel-v0', task=3)\n"
        "print(env.spec.max_episode_steps, env.unwrapped.task_param)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    from ertrl_bench.envs.mujoco import FAMILIES

    assert proc.stdout.split(maxsplit=1) == ["200", f"{FAMILIES['cheetah-vel']().grid_param(3)}\n"]


@pytest.mark.parametrize("task", [3.7, "3", True, 3.0])
def test_gym_task_must_be_an_integer(task):
    import gymnasium as gym

    with pytest.raises(TypeError, match="task must be an integer grid index 0..39"):
        gym.make("ertrl_bench/CheetahVel-v0", task=task)


def test_gym_ids_match_the_families():
    import gymnasium as gym
    import numpy as np

    from ertrl_bench.envs.mujoco import FAMILIES
    from ertrl_bench.gym_ids import GYM_IDS

    reg = get_registry()
    assert set(GYM_IDS) == set(reg.names("envs"))
    for name, (gid, steps) in GYM_IDS.items():
        family = reg.get("envs", name).factory()
        assert family.horizon == steps
        if name in FAMILIES:
            assert FAMILIES[name].gym_id == gid
    env = gym.make("ertrl_bench/PointRobot-v0", task=np.int64(39))
    env.reset(seed=0)
    _, reward, *_ = env.step(np.zeros(2, np.float32))
    assert reward == pytest.approx(-1.0)  # the goal is on the unit circle, the start at 0


# ---------------------------------------------------------------------------------------------
# The template packages under plugins/: each one's plugin module, registered with
# register_test_plugin, runs in a tiny suite (their own unit tests: `pytest plugins/<name>`)

TEMPLATES = {
    "attention": ("ertrl-bench-attention", "ertrl_bench_attention.plugin"),
    "td3bc": ("ertrl-bench-td3bc", "ertrl_bench_td3bc.plugin"),
    "linegoal": ("ertrl-bench-linegoal", "ertrl_bench_linegoal.plugin"),
}


def _template(name, monkeypatch):
    import importlib

    folder, module = TEMPLATES[name]
    monkeypatch.syspath_prepend(str(REPO / "plugins" / folder))
    return importlib.import_module(module)


def _run_template(tmp_path, suite) -> tuple:
    _, specs = load_suite(_write(tmp_path, suite))
    (spec,) = specs
    outcome = execute(spec, tmp_path / "results")
    assert outcome.status == "done", outcome.message
    log = tmp_path / "results" / suite["name"] / outcome.run_id / "log.jsonl"
    return outcome, [json.loads(line) for line in log.read_text().splitlines()]


def test_template_encoder_runs(tmp_path, data_dir, monkeypatch, register_test_plugin):
    pytest.importorskip(
        "ertrl_bench.components", reason="the template is built as factory(options, problem)"
    )
    monkeypatch.setenv("ERTRL_BENCH_DATA", str(data_dir))
    register_test_plugin(_template("attention", monkeypatch), "attention")
    method = {"name": "focal-attn", "encoder": {"type": "attention", "params": TINY_NETS}}
    outcome, records = _run_template(tmp_path, _suite([method], name="tmpl-attention"))
    assert outcome.metrics["method"] == "focal-attn"
    assert any("encoder/loss" in r for r in records)


def test_template_backbone_runs(tmp_path, data_dir, monkeypatch, register_test_plugin):
    monkeypatch.setenv("ERTRL_BENCH_DATA", str(data_dir))
    register_test_plugin(_template("td3bc", monkeypatch), "td3bc")
    method = {"name": "focal-td3bc", "backbone": {"type": "td3bc", "params": TINY_NETS}}
    _, records = _run_template(tmp_path, _suite([method], name="tmpl-td3bc"))
    assert any("td3bc/critic_loss" in r for r in records)
    assert any("td3bc/actor_loss" in r for r in records)


def test_template_env_family_runs(tmp_path, data_dir, monkeypatch, register_test_plugin):
    monkeypatch.setenv("ERTRL_BENCH_DATA", str(data_dir))
    register_test_plugin(_template("linegoal", monkeypatch), "linegoal")
    outcome, _ = _run_template(tmp_path, _suite(["focal"], envs=["line-goal"], name="tmpl-line"))
    assert outcome.metrics["env"] == "line-goal"
    assert list((data_dir / "line-goal").glob("*/manifest.json"))  # its own dataset cache


def test_templates_declare_their_entry_point():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    for name, (folder, module) in TEMPLATES.items():
        meta = tomllib.loads((REPO / "plugins" / folder / "pyproject.toml").read_text())
        assert meta["project"]["entry-points"]["ertrl_bench"] == {name: module}
        assert (REPO / "plugins" / folder / "tests").is_dir()
