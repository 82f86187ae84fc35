"""Network initialisation: rlkit's (the authors', the default) against its formulas, per network.

rlkit: hidden weights uniform in +-1/sqrt(fan) with fan = the layer's *output* size, hidden
biases 0.1, output weights and biases uniform in +-3e-3 (a policy's heads +-1e-3). ``torch``:
PyTorch's defaults (weights and biases uniform in +-1/sqrt(input size)).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ertrl_bench.backbones.brac import BRAC, BRACOptions
from ertrl_bench.backbones.iql import IQL, IQLOptions
from ertrl_bench.config import TrainConfig
from ertrl_bench.encoder_losses.csro import CSROLoss, CSROOptions
from ertrl_bench.encoder_losses.gan_entropy import GANEntropyLoss, GANEntropyOptions
from ertrl_bench.encoder_losses.unicorn import UnicornLoss, UnicornOptions
from ertrl_bench.encoders.mlp import MLPEncoder, MLPEncoderOptions
from ertrl_bench.nn import EnsembleLinear, init_mlp_, mlp
from ertrl_bench.suite_loader import load_suite
from ertrl_bench.testing import tiny_problem
from tests.helpers import tiny_suite, write_suite

# wide enough that a uniform draw comes within 5% of its bound on every layer
WIDE = (64, 48)


def linear_layers(net: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight, bias) of every linear layer, as per-member ``[out, in]`` / ``[out]`` tensors."""
    out = []
    for m in net.modules():
        if isinstance(m, nn.Linear):
            out.append((m.weight.detach(), m.bias.detach()))
        elif isinstance(m, EnsembleLinear):  # [E, in, out] -> member 0 as [out, in]
            out.append((m.weight.detach()[0].T, m.bias.detach()[0, 0]))
    return out


def assert_rlkit(net: nn.Module, out_bound: float = 3e-3) -> None:
    layers = linear_layers(net)
    assert len(layers) >= 2
    for w, b in layers[:-1]:
        bound = 1.0 / math.sqrt(w.shape[0])  # the OUTPUT size (rlkit's fanin_init: size[0])
        assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound
        assert torch.equal(b, torch.full_like(b, 0.1))
    w, b = layers[-1]
    assert w.abs().max() <= out_bound and w.abs().max() > 0.5 * out_bound
    assert b.abs().max() <= out_bound and b.abs().max() > 0


def assert_torch(net: nn.Module) -> None:
    for w, b in linear_layers(net):
        bound = 1.0 / math.sqrt(w.shape[1])  # nn.Linear's default: the input size
        assert w.abs().max() <= bound and w.abs().max() > 0.8 * bound
        assert b.abs().max() <= bound and not torch.equal(b, torch.full_like(b, 0.1))


def networks(init: str) -> dict[str, tuple[nn.Module, float]]:
    """Every built-in network, built for a tiny problem: name -> (net, rlkit output bound)."""
    torch.manual_seed(0)
    p = tiny_problem(obs_dim=5, act_dim=3, latent_dim=4)
    p = type(p)(**{**p.__dict__, "init": init})
    brac = BRAC(BRACOptions(hidden=WIDE), p)
    gan = GANEntropyLoss(GANEntropyOptions(generator_hidden=WIDE, discriminator_hidden=WIDE), p)
    iql = IQL(IQLOptions(hidden=WIDE), p)
    return {
        "encoder": (MLPEncoder(MLPEncoderOptions(hidden=WIDE), p).net, 3e-3),
        "iql actor": (iql.policy, 1e-3),
        "iql q (twin, fused)": (iql.q, 3e-3),
        "iql v": (iql.v, 3e-3),
        "actor": (brac.policy, 1e-3),  # mean and log-std heads: rlkit's policy +-1e-3
        "q (twin, fused)": (brac.q, 3e-3),
        "v": (brac.v, 3e-3),
        "v target": (brac.v_target, 3e-3),
        "brac dual critic c": (brac.c, 3e-3),
        "csro q net": (CSROLoss(CSROOptions(hidden=WIDE), p).q, 3e-3),
        "unicorn decoder": (UnicornLoss(UnicornOptions(hidden=WIDE), p).decoder, 3e-3),
        "gan generator": (gan.generator, 3e-3),
        "gan discriminator": (gan.discriminator, 3e-3),
    }


@pytest.mark.parametrize("name", list(networks("rlkit")))
def test_every_builtin_network_starts_as_rlkit_by_default(name):
    net, out_bound = networks("rlkit")[name]
    assert_rlkit(net, out_bound)


@pytest.mark.parametrize("name", list(networks("torch")))
def test_init_torch_keeps_pytorch_defaults(name):
    net, _ = networks("torch")[name]
    assert_torch(net)


def test_rlkit_starts_z_and_the_policy_near_zero():
    p = tiny_problem(obs_dim=5, act_dim=3, latent_dim=4)
    enc = MLPEncoder(MLPEncoderOptions(hidden=(200, 200, 200)), p)
    x = torch.randn(2, 50, p.context_dim)
    _, z = enc(x)
    assert z.abs().max() < 0.05  # tanh of a +-3e-3 output layer
    brac = BRAC(BRACOptions(hidden=(256, 256, 256)), p)
    out = brac.policy(torch.randn(100, p.obs_dim + p.latent_dim))
    assert out.abs().max() < 0.05  # mean and log-std near 0: std near 1


def test_twin_q_members_differ_and_each_follows_the_formula():
    torch.manual_seed(0)
    q = mlp(3, WIDE, 1, init="rlkit")  # a single net, then the fused pair
    assert_rlkit(q)
    from ertrl_bench.nn import ensemble_mlp

    pair = ensemble_mlp(2, 7, WIDE, 1, init="rlkit")
    first = pair[0].weight.detach()
    assert not torch.equal(first[0], first[1])
    assert (first.abs() <= 1 / math.sqrt(WIDE[0])).all()  # fan = output size 64, not input 7


def test_unknown_init_is_an_error():
    with pytest.raises(ValueError, match="unknown init 'xavier'; available: rlkit, torch"):
        init_mlp_(mlp(2, [4], 1, init="torch"), "xavier")


def test_init_is_part_of_the_run_id(tmp_path):
    assert TrainConfig().init == "rlkit"
    ids = {}
    for init in ("rlkit", "torch"):
        suite = tiny_suite()
        suite["train"]["init"] = init
        (spec,) = load_suite(write_suite(tmp_path / f"{init}.yaml", suite))[1]
        assert spec.train.init == init
        ids[init] = spec.run_id()
    assert ids["rlkit"] != ids["torch"]
    suite = tiny_suite()
    suite["train"]["init"] = "xavier"
    from ertrl_bench.errors import ConfigError

    with pytest.raises(ConfigError, match="init"):
        load_suite(write_suite(tmp_path / "bad.yaml", suite))


def test_the_run_builds_its_networks_with_the_specs_init(tmp_path, monkeypatch):
    import ertrl_bench.runner as runner

    seen = []

    def capture(method, problem):
        seen.append(problem.init)
        raise KeyboardInterrupt  # stop the run right after: only the Problem is of interest

    monkeypatch.setattr(runner, "build_agent", capture)
    suite = tiny_suite()
    suite["train"]["init"] = "torch"
    (spec,) = load_suite(write_suite(tmp_path / "s.yaml", suite))[1]
    with pytest.raises(KeyboardInterrupt):
        runner._run(spec, runner.RunDir(tmp_path / "results", spec), torch.device("cpu"))
    assert seen == ["torch"]
