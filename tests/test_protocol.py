"""The component contracts: StepBatch, encoder-loss lists, contract errors, the NaN check,
per-family defaults and run identity, the conformance checkers and ``validate --dry-run``."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from pydantic import BaseModel, ConfigDict, Field

from ertrl_bench.backbones.brac import BRAC, BRACOptions
from ertrl_bench.batch import TaskDataset
from ertrl_bench.components import ComponentError, StepBatch
from ertrl_bench.config import Component, MethodSpec
from ertrl_bench.encoders.mlp import MLPEncoder, MLPEncoderOptions
from ertrl_bench.envs.point_robot import PointRobot, PointRobotOptions
from ertrl_bench.errors import ConfigError, TrainingDiverged
from ertrl_bench.plugins import hookimpl
from ertrl_bench.problem import Problem
from ertrl_bench.registry import create
from ertrl_bench.step import train_step
from ertrl_bench.suite_loader import load_suite
from ertrl_bench.testing import (
    ConformanceError,
    check_backbone,
    check_encoder,
    check_encoder_loss,
    check_env_family,
    tiny_problem,
)
from ertrl_bench.training import build_agent, make_encoder_optimizer, meta_train
from tests.helpers import tiny_suite, write_suite

SMALL = {"hidden": [16]}


class Opts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weight: float = Field(1.0, ge=0)


def _data(tasks=4, n=30, seed=0) -> TaskDataset:
    rng = np.random.default_rng(seed)
    per = [
        {
            "obs": rng.normal(size=(n, 2)),
            "actions": rng.uniform(-1, 1, (n, 2)),
            "rewards": rng.normal(size=n),
            "next_obs": rng.normal(size=(n, 2)),
            "dones": np.zeros(n),
        }
        for _ in range(tasks)
    ]
    return TaskDataset(per, torch.device("cpu"))


def _problem() -> Problem:
    return Problem(PointRobot(), 2, 2, 4, torch.device("cpu"))


def _method(*losses, **kw) -> MethodSpec:
    return MethodSpec(
        encoder=Component(type="mlp", params=SMALL),
        encoder_losses=list(losses),
        backbone=Component(type="brac", params=SMALL),
        **kw,
    )


def _step(agent, data=None, step=1):
    data = data or _data()
    rows = torch.arange(4)
    opt = make_encoder_optimizer(agent, 1e-3)
    return train_step(
        agent, opt, data.sample(rows, 6), data.sample(rows, 10), lambda: data.sample(rows, 10), step
    )


class _Plugin:
    """Registers the given encoder losses (name -> class) for one test."""

    def __init__(self, **losses):
        self.losses = losses

    @hookimpl
    def register_encoder_losses(self, register):
        for name, cls in self.losses.items():
            register(name, cls, Opts)


class Recorder:
    """Records what it receives; a two-view contrastive-style loss: encodes the RL batch too."""

    seen: list = []

    def __init__(self, options, problem):
        self.weight = options.weight

    def update(self, batch: StepBatch):
        z_i, z = batch.encode(batch.rl)
        Recorder.seen.append(("update", batch, z))
        return {}

    def encoder_loss(self, batch: StepBatch):
        _, z_rl = batch.encode(batch.rl)  # a second view of each task, with gradient
        Recorder.seen.append(("loss", batch, z_rl))
        loss = self.weight * (batch.z - z_rl).pow(2).sum(-1).mean()
        return loss, {"rec/gap": loss.detach()}

    def joint_parameters(self):
        return []

    def state_dict(self):
        return {}


def test_step_batch_holds_context_rl_batch_and_the_encoder(register_test_plugin):
    register_test_plugin(_Plugin(rec=Recorder), "rec-plugin")
    Recorder.seen = []
    agent = build_agent(_method("rec"), _problem())
    logs = _step(agent)
    (_, upd, z_upd), (_, b, z_rl) = Recorder.seen
    assert b.ctx.obs.shape[:2] == (4, 6) and b.rl.obs.shape[:2] == (4, 10)
    assert torch.equal(b.task_ids, b.rl.task_ids)  # the same task rows
    assert b.z_i.shape == (4, 6, 4) and b.z.shape == (4, 4)
    assert b.z.requires_grad and z_rl.requires_grad  # encoder_loss: with gradient
    assert not upd.z.requires_grad and not upd.z_i.requires_grad and not z_upd.requires_grad
    # the second view's gradient reaches the encoder: its weights moved
    assert float(logs["rec/gap"]) > 0
    grads = [p.grad for p in agent.encoder.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0


def test_losses_are_summed_in_order_and_pearl_has_none():
    agent = build_agent(_method("dml", "csro"), _problem())
    assert list(agent.losses) == ["dml", "csro"]
    logs = _step(agent)
    assert {"dml/neg", "csro/club", "csro/q_nll", "brac/q_loss"} <= set(logs)
    pearl = build_agent(_method(encoder_through_q=True), _problem())
    assert pearl.losses == {}
    before = [p.detach().clone() for p in pearl.encoder.parameters()]
    _step(pearl)  # the critic's loss trains the encoder
    assert any(
        not torch.equal(a, p) for a, p in zip(before, pearl.encoder.parameters(), strict=True)
    )


@pytest.mark.parametrize("key", ["regularizer", "regularizers"])
def test_old_method_keys_are_a_clear_error(tmp_path, key):
    suite = tiny_suite(methods=[{"name": "x", key: ["csro"]}])
    with pytest.raises(ConfigError, match="replaced by one list, `encoder_losses`"):
        load_suite(write_suite(tmp_path / "s.yaml", suite))
    suite = tiny_suite(methods=[{"name": "x", "encoder_losses": ["dml", "dml"]}])
    with pytest.raises(ConfigError, match="lists dml more than once"):
        load_suite(write_suite(tmp_path / "s.yaml", suite))


# --- contract errors name the component ---------------------------------------------------------


class ReturnsNone(Recorder):
    def update(self, batch):
        return None


class WrongShape(Recorder):
    def encoder_loss(self, batch):
        return batch.z_i.pow(2), {}  # [M, C, L], not a scalar


class NoUpdate:
    def __init__(self, options, problem):
        pass

    def encoder_loss(self, batch):
        return batch.z.sum(), {}


def test_contract_errors_name_component_and_plugin(register_test_plugin):
    register_test_plugin(
        _Plugin(none_up=ReturnsNone, shape=WrongShape, noup=NoUpdate), "broken-plugin"
    )
    with pytest.raises(ComponentError) as exc:
        _step(build_agent(_method("none_up"), _problem()))
    msg = str(exc.value)
    assert "encoder loss 'none_up' (plugin broken-plugin)" in msg and "got NoneType" in msg
    with pytest.raises(
        ComponentError, match=r"'shape' \(plugin broken-plugin\).*0-dim.*\(4, 6, 4\)"
    ):
        _step(build_agent(_method("shape"), _problem()))
    with pytest.raises(ComponentError, match=r"'noup' \(plugin broken-plugin\).*has no update"):
        build_agent(_method("noup"), _problem())  # at build time


def test_factory_errors_name_the_component(register_test_plugin):
    class OldEncoderPlugin:
        @hookimpl
        def register_encoders(self, register):
            # the old (options, input_dim, latent_dim) signature
            register("old-mlp", lambda o, input_dim, latent_dim: None, MLPEncoderOptions)

    register_test_plugin(OldEncoderPlugin(), "old-plugin")
    with pytest.raises(ComponentError) as exc:
        create("encoders", Component(type="old-mlp"), _problem())
    msg = str(exc.value)
    assert "encoder 'old-mlp' (plugin old-plugin)" in msg and "factory(options, problem)" in msg


# --- NaN / inf: every step, the component named ---------------------------------------------------


class NaNAtStep3(Recorder):
    calls = 0

    def encoder_loss(self, batch):
        NaNAtStep3.calls += 1
        bad = float("nan") if NaNAtStep3.calls == 3 else 0.0
        return batch.z.sum() * 0 + bad, {}


class InfInUpdate(Recorder):
    def update(self, batch):
        return {"inf/estimate": torch.tensor(float("inf"))}


def test_nan_is_caught_on_the_step_it_happens(register_test_plugin):
    register_test_plugin(_Plugin(nan3=NaNAtStep3, infup=InfInUpdate), "nan-plugin")
    NaNAtStep3.calls = 0
    agent = build_agent(_method("dml", "nan3"), _problem())
    data = _data()
    records = []
    from ertrl_bench.config import ResolvedTrainConfig

    train_cfg = ResolvedTrainConfig(
        iterations=1, steps_per_iteration=10, meta_batch=4, rl_batch=8, context_size=6, latent_dim=4
    )
    with pytest.raises(TrainingDiverged) as exc:
        meta_train(
            agent,
            data,
            torch.arange(4),
            train_cfg,
            records.append,
            lambda *a: None,
            torch.Generator().manual_seed(0),
        )
    msg = str(exc.value)
    assert "at train step 3" in msg and "encoder loss 'nan3' (plugin nan-plugin)" in msg
    assert "'dml'" not in msg  # the finite loss is not blamed
    assert records[-1] == {"iteration": 0, "step": 3, "diverged": True}
    json.dumps(records, allow_nan=False)  # valid JSON: no bare NaN
    # the encoder did not take the NaN step
    assert all(torch.isfinite(p).all() for p in agent.encoder.parameters())
    inf_agent = build_agent(_method("infup"), _problem())
    with pytest.raises(TrainingDiverged, match=r"'infup'.*update\(\) logged inf/estimate=inf"):
        _step(inf_agent)


def test_log_values_are_json_safe():
    from ertrl_bench.training import json_number

    assert json_number(torch.tensor(1.5)) == 1.5
    assert json_number(float("nan")) == "nan" and json_number(float("-inf")) == "-inf"


# --- sample_rl for backbones that take it ---------------------------------------------------------


def test_backbone_receives_sample_rl_for_the_same_rows(register_test_plugin):
    got = {}

    class Fresh(BRAC):
        def update(self, batch, z_q, z, sample_rl=None):
            got["fresh"] = sample_rl()
            got["batch"] = batch
            return super().update(batch, z_q, z)

    class P:
        @hookimpl
        def register_backbones(self, register):
            register("fresh-brac", Fresh, BRACOptions)

    register_test_plugin(P(), "fresh-plugin")
    m = _method("dml").model_copy(update={"backbone": Component(type="fresh-brac", params=SMALL)})
    _step(build_agent(m, _problem()))
    fresh, batch = got["fresh"], got["batch"]
    assert torch.equal(fresh.task_ids, batch.task_ids) and fresh.obs.shape == batch.obs.shape
    assert not torch.equal(fresh.obs, batch.obs)  # a new draw


# --- per-family defaults, resolved into the run spec ---------------------------------------------


class HeavyCSRO(PointRobot):
    name = "heavy-point-robot"
    component_defaults = {"csro": {"weight": 25.0}, "brac": {"alpha_init": 7.0}}


class HeavyPlugin:
    def __init__(self, weight=25.0):
        self.weight = weight

    @hookimpl
    def register_envs(self, register):
        weight = self.weight

        class Fam(HeavyCSRO):
            component_defaults = {"csro": {"weight": weight}, "brac": {"alpha_init": 7.0}}

        register("heavy-point-robot", lambda o: Fam(o), PointRobotOptions)


def _csro_spec(tmp_path, methods=("csro",), **extra):
    suite = tiny_suite(methods=list(methods), **extra)
    suite["grid"]["envs"] = ["heavy-point-robot", "point-robot"]
    return {s.env.type: s for s in load_suite(write_suite(tmp_path / "s.yaml", suite))[1]}


def test_family_defaults_precedence_and_run_id(tmp_path, register_test_plugin):
    register_test_plugin(HeavyPlugin(), "heavy")
    specs = _csro_spec(tmp_path)
    heavy, plain = specs["heavy-point-robot"], specs["point-robot"]
    csro = {c.type: c.params for c in heavy.method.encoder_losses}["csro"]
    assert csro["weight"] == 25.0 and csro["hidden"] == [200, 200, 200]  # resolved, all options
    assert {c.type: c.params for c in plain.method.encoder_losses}["csro"]["weight"] == 10.0
    assert heavy.method.backbone.params["alpha_init"] == 7.0
    assert heavy.method.backbone.params["hidden"] == [16]  # suite component_params kept
    assert heavy.versions["encoder_losses/csro"].startswith("ertrl-bench ")
    # suite component_params beat the family's; the method's own params beat both
    params = {"mlp": SMALL, "brac": SMALL, "csro": {"weight": 3.0}}
    specs = _csro_spec(tmp_path, component_params=params)
    assert specs["heavy-point-robot"].method.encoder_losses[1].params["weight"] == 3.0
    own = {"name": "own", "encoder_losses": ["dml", {"type": "csro", "params": {"weight": 1.0}}]}
    specs = _csro_spec(tmp_path, methods=[own], component_params=params)
    assert specs["heavy-point-robot"].method.encoder_losses[1].params["weight"] == 1.0


def test_changing_a_family_default_changes_the_run_id(tmp_path, register_test_plugin):
    register_test_plugin(HeavyPlugin(25.0), "heavy")
    a = _csro_spec(tmp_path)["heavy-point-robot"]
    from ertrl_bench.plugins import unregister_plugin

    unregister_plugin("heavy")
    register_test_plugin(HeavyPlugin(50.0), "heavy2")
    b = _csro_spec(tmp_path)["heavy-point-robot"]
    assert a.run_id() != b.run_id()
    assert b.method.encoder_losses[1].params["weight"] == 50.0


def test_bad_family_default_is_reported_with_the_run(tmp_path, register_test_plugin):
    class Bad(PointRobot):
        name = "bad-point-robot"
        component_defaults = {"csro": {"wieght": 1.0}}

    class P:
        @hookimpl
        def register_envs(self, register):
            register("bad-point-robot", lambda o: Bad(o), PointRobotOptions)

    register_test_plugin(P(), "bad-env")
    suite = tiny_suite(methods=["csro"])
    suite["grid"]["envs"] = ["bad-point-robot"]
    with pytest.raises(ConfigError, match=r"grid.methods\[0\].encoder_losses\[1\].params.wieght"):
        load_suite(write_suite(tmp_path / "s.yaml", suite))


# --- conformance checkers ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["dml", "csro", "gan_entropy", "unicorn", "none"])
def test_builtin_losses_pass_the_checker(name):
    from ertrl_bench.plugins import get_registry

    opts = get_registry().get("encoder_losses", name).options
    small = {
        "csro": {"hidden": [8]},
        "gan_entropy": {"generator_hidden": [8], "discriminator_hidden": [8], "gan_steps": 1},
        "unicorn": {"hidden": [8]},
    }.get(name, {})
    check_encoder_loss(name, opts.model_validate(small))


def test_checker_reports_broken_losses_in_plain_words():
    class IgnoresMask:
        def __init__(self, options, problem):
            pass

        def update(self, batch):
            return None

        def encoder_loss(self, batch):
            return batch.z_i.pow(2).mean(), {"x": batch.z_i.pow(2).mean()}  # not detached

        def joint_parameters(self):
            return []

        def state_dict(self):
            return {}

    with pytest.raises(ConformanceError) as exc:
        check_encoder_loss(IgnoresMask, Opts())
    msg = str(exc.value)
    assert "update(batch) must return a dict of logs" in msg
    assert "masked (padding) context transitions" in msg
    assert "log 'x' carries gradient" in msg


def test_encoder_checker():
    check_encoder("mlp", MLPEncoderOptions(hidden=(8,)))

    class SumEncoder(torch.nn.Module):  # pools with a sum that ignores the mask
        def __init__(self, options, problem):
            super().__init__()
            self.lin = torch.nn.Linear(problem.context_dim, problem.latent_dim)

        def forward(self, x, mask=None):
            z_i = self.lin(x)
            return z_i, z_i.sum(1)

    with pytest.raises(ConformanceError, match="masked"):
        check_encoder(SumEncoder, MLPEncoderOptions())


def test_backbone_and_env_family_checkers():
    check_backbone("brac", BRACOptions(hidden=(8,)))
    check_env_family("point-robot", registered_name="point-robot")

    class Misnamed(PointRobot):
        name = "point-robot"

    with pytest.raises(ConformanceError, match="differs from its registered name 'my-robot'"):
        check_env_family(Misnamed, PointRobotOptions(), registered_name="my-robot")


def test_tiny_problem_builds_every_builtin_component():
    p = tiny_problem()
    assert isinstance(create("encoders", Component(type="mlp", params=SMALL), p), MLPEncoder)


# --- validate --dry-run ---------------------------------------------------------------------------


def test_validate_dry_run_fails_fast_on_a_broken_plugin(tmp_path):
    plugin = tmp_path / "brokenplug.py"
    plugin.write_text(
        "from ertrl_bench.plugins import hookimpl\n"
        "from ertrl_bench.options import Strict\n"
        "class O(Strict):\n    pass\n"
        "class L:\n"
        "    def __init__(self, o, p): pass\n"
        "    def update(self, batch): return {}\n"
        "    def encoder_loss(self, batch): return batch.z, {}\n"  # [M, L], not a scalar
        "    def joint_parameters(self): return []\n"
        "    def state_dict(self): return {}\n"
        "@hookimpl\n"
        "def register_encoder_losses(register):\n    register('vec_loss', L, O)\n"
    )
    suite = tiny_suite(methods=["focal", {"name": "vec", "encoder_losses": ["dml", "vec_loss"]}])
    path = write_suite(tmp_path / "s.yaml", suite)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import brokenplug; from ertrl_bench.plugins import register_plugin;"
        "register_plugin(brokenplug, 'brokenplug');"
        "from ertrl_bench.cli import app; app(sys.argv[2:])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path), "validate", str(path), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = " ".join((proc.stdout + proc.stderr).split())  # rich wraps long lines
    assert proc.returncode == 1, out
    assert "ok focal on point-robot" in out
    assert "FAILED vec on point-robot" in out
    assert "encoder loss 'vec_loss' (plugin brokenplug)" in out and "0-dim" in out


def test_no_import_cycle_through_methods():
    """config -> plugins -> methods must not lead back to config (methods register dicts)."""
    code = (
        "import sys; import ertrl_bench.methods, ertrl_bench.encoder_losses, ertrl_bench.encoders;"
        "print('ertrl_bench.config' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_dry_run_every_named_method(tmp_path):
    from ertrl_bench.dryrun import dry_run

    methods = ["focal", "csro", "ertrl", "unicorn", "offline_pearl"]
    params = {
        "mlp": SMALL,
        "brac": SMALL,
        "csro": SMALL,
        "unicorn": SMALL,
        "gan_entropy": {"generator_hidden": [16], "discriminator_hidden": [16]},
    }
    suite = tiny_suite(methods=methods, component_params=params)
    _, specs = load_suite(write_suite(tmp_path / "s.yaml", suite))
    results = dry_run(specs)
    assert [r.run for r in results] == [f"{m} on point-robot" for m in methods]
    assert all(r.ok for r in results), [r.message for r in results if not r.ok]


def test_meta_batches_drawn_per_iteration_are_the_per_step_stream():
    """An iteration's meta-batches come in one host->device copy; the seeded stream is the one
    the per-step draws gave (so results made before the change reproduce), without replacement
    while the meta-batch fits the train tasks and with replacement beyond."""
    from ertrl_bench.training import _draw_meta_batches

    g = torch.Generator().manual_seed(7)
    picks = _draw_meta_batches(20, 16, 5, g)
    ref = torch.Generator().manual_seed(7)
    per_step = [torch.randperm(20, generator=ref)[:16] for _ in range(5)]
    assert picks.shape == (5, 16) and torch.equal(picks, torch.stack(per_step))
    assert all(len(set(row.tolist())) == 16 for row in picks)
    many = _draw_meta_batches(4, 16, 3, g)
    assert many.shape == (3, 16) and set(many.flatten().tolist()) <= set(range(4))
