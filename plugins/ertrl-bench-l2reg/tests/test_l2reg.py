"""Tests of the example plugin; copy them along with ``plugin.py``.

``register_test_plugin`` is a fixture that ertrl-bench installs as a pytest plugin: it registers
a plugin for one test and unregisters it afterwards.
"""

from __future__ import annotations

import importlib.metadata

import pytest
import torch
import yaml
from ertrl_bench_l2reg import plugin as l2reg
from ertrl_bench_l2reg.plugin import L2ContextLoss, L2ContextOptions
from pydantic import ValidationError

from ertrl_bench import plugins
from ertrl_bench.batch import Transitions
from ertrl_bench.components import StepBatch
from ertrl_bench.config import MethodSpec
from ertrl_bench.errors import ConfigError
from ertrl_bench.suite_loader import load_suite
from ertrl_bench.testing import check_encoder_loss


def _suite(tmp_path, methods, name="l2"):
    suite = {
        "name": name,
        "tier": "smoke",
        "device": "cpu",
        "data": {
            "sac_steps": 300,
            "random_steps": 100,
            "checkpoints": [150, 300],
            "trajectories_per_checkpoint": 2,
            "sac_hidden": [16],
            "sac_batch": 16,
        },
        "train": {
            "iterations": 1,
            "steps_per_iteration": 20,
            "meta_batch": 4,
            "rl_batch": 16,
            "context_size": 8,
            "final_evals": 1,
        },
        "eval": {"runs_per_task": 1, "splits": ["train"]},
        "component_params": {"mlp": {"hidden": [16]}, "brac": {"hidden": [16]}},
        "grid": {"envs": ["point-robot"], "methods": methods, "seeds": [0]},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


class _Problem:
    device = torch.device("cpu")


def _ctx(m, n, mask=None):
    zeros = torch.zeros(m, n, 2)
    return Transitions(zeros, zeros, zeros[..., :1], zeros, zeros[..., :1], torch.arange(m), mask)


def _batch(ctx, z_i):
    return StepBatch(ctx, ctx, z_i, z_i.mean(1), encode=lambda t: (None, None))


def test_registers_regularizer_and_method(register_test_plugin):
    register_test_plugin(l2reg, "l2reg")
    reg = plugins.get_registry()
    assert reg.get("encoder_losses", "l2_context").plugin == "l2reg"
    spec = MethodSpec.model_validate(reg.get("methods", "focal_l2").factory)
    assert [c.type for c in spec.encoder_losses] == ["dml", "l2_context"]


def test_passes_the_conformance_checker():
    check_encoder_loss(L2ContextLoss, L2ContextOptions())


def test_penalty_value_gradient_and_mask():
    reg = L2ContextLoss(L2ContextOptions(weight=0.5), _Problem())
    z_i = torch.tensor([[[3.0, 4.0], [0.0, 1.0]]], requires_grad=True)  # norms^2: 25, 1
    loss, logs = reg.encoder_loss(_batch(_ctx(1, 2), z_i))
    assert loss.item() == pytest.approx(0.5 * 13.0)
    assert float(logs["l2_context/sq_norm"]) == pytest.approx(13.0)
    loss.backward()
    assert torch.allclose(z_i.grad, 0.5 * 2 * z_i.detach() / 2)
    masked, _ = reg.encoder_loss(_batch(_ctx(1, 2, torch.tensor([[True, False]])), z_i))
    assert masked.item() == pytest.approx(0.5 * 25.0)
    assert reg.update(_batch(_ctx(1, 2), z_i).detached()) == {}


def test_options_are_strict():
    with pytest.raises(ValidationError):
        L2ContextOptions(weigth=1.0)
    with pytest.raises(ValidationError):
        L2ContextOptions(weight=-1.0)


def test_suite_using_the_plugin_validates(tmp_path, register_test_plugin):
    register_test_plugin(l2reg, "l2reg")
    strong = {"type": "l2_context", "params": {"weight": 1}}
    custom = {"name": "l2-strong", "encoder_losses": ["dml", strong]}
    _, specs = load_suite(_suite(tmp_path, ["focal_l2", custom]))
    assert {s.method.name for s in specs} == {"focal_l2", "l2-strong"}
    bad = {"name": "bad", "encoder_losses": [{"type": "l2_context", "params": {"weigth": 1}}]}
    with pytest.raises(ConfigError, match=r"encoder_losses\[0\]\.params\.weigth: unknown field"):
        load_suite(_suite(tmp_path, [bad], name="bad"))


def test_installed_entry_point_is_found(monkeypatch):
    try:
        importlib.metadata.distribution("ertrl-bench-l2reg")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("not installed: pip install -e plugins/ertrl-bench-l2reg")
    monkeypatch.setenv("ERTRL_BENCH_LOAD_PLUGINS", "l2reg")
    monkeypatch.setattr(plugins, "_PM", None)  # a fresh manager, loading the entry point
    monkeypatch.setattr(plugins, "_REGISTRY", None)
    assert "l2_context" in plugins.get_registry().names("encoder_losses")
    assert plugins.get_registry().get("methods", "focal_l2").plugin.startswith("ertrl-bench-l2reg")


@pytest.mark.slow
def test_tiny_run(tmp_path, monkeypatch, request, register_test_plugin):
    from ertrl_bench.runner import execute

    monkeypatch.setenv("ERTRL_BENCH_DATA", str(tmp_path / "datasets"))
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: one thread is faster than two
    request.addfinalizer(lambda: torch.set_num_threads(n))
    register_test_plugin(l2reg, "l2reg")
    (spec,) = load_suite(_suite(tmp_path, ["focal_l2"]))[1]
    outcome = execute(spec, tmp_path / "results")
    assert outcome.status == "done", outcome.message
    log = tmp_path / "results" / "l2" / outcome.run_id / "log.jsonl"
    assert "l2_context/sq_norm" in log.read_text()
