"""Tests of the template encoder; copy them along with ``plugin.py``.

``register_test_plugin`` is a fixture ertrl-bench installs as a pytest plugin: it registers a
plugin for one test, on top of the built-ins only, and unregisters it afterwards.
"""

from __future__ import annotations

import pytest
import torch
import yaml
from ertrl_bench_attention import plugin
from ertrl_bench_attention.plugin import AttentionEncoder, AttentionEncoderOptions
from pydantic import ValidationError

from ertrl_bench.envs.point_robot import PointRobot
from ertrl_bench.plugins import get_registry
from ertrl_bench.problem import Problem
from ertrl_bench.suite_loader import load_suite

PROBLEM = Problem(PointRobot(), obs_dim=2, act_dim=2, latent_dim=3, device=torch.device("cpu"))
K = PROBLEM.context_dim  # 2 + 2 + 1


def _encoder(**options):
    torch.manual_seed(0)
    return AttentionEncoder(AttentionEncoderOptions(hidden=[16], **options), PROBLEM)


def test_shapes_and_range():
    z_i, z = _encoder()(torch.randn(4, 7, K))
    assert z_i.shape == (4, 7, 3) and z.shape == (4, 3)
    assert z_i.abs().max() < 1 and z.abs().max() < 1  # a convex combination of tanh outputs


def test_pooled_z_is_permutation_invariant():
    enc, x = _encoder(), torch.randn(2, 9, K)
    perm = torch.randperm(9)
    assert torch.allclose(enc(x)[1], enc(x[:, perm])[1], atol=1e-6)


def test_padded_transitions_do_not_count():
    enc, x = _encoder(), torch.randn(2, 6, K, requires_grad=True)
    mask = torch.tensor([[True] * 4 + [False] * 2, [True] * 6])
    _, z = enc(x, mask)
    _, z_valid = enc(x[:1, :4])
    assert torch.allclose(z[0], z_valid[0], atol=1e-6)
    z.sum().backward()
    assert x.grad[0, 4:].abs().max() == 0  # no gradient through padding
    _, z_none = enc(x.detach(), torch.zeros(2, 6, dtype=torch.bool))
    assert torch.equal(z_none, torch.zeros(2, 3))  # nothing valid: z = 0, not NaN


def test_options_are_strict():
    with pytest.raises(ValidationError):
        AttentionEncoderOptions(temprature=2.0)
    with pytest.raises(ValidationError):
        AttentionEncoderOptions(temperature=0)


def test_a_suite_can_use_it(tmp_path, register_test_plugin):
    register_test_plugin(plugin, "attention")
    assert get_registry().get("encoders", "attention").options is AttentionEncoderOptions
    suite = {
        "name": "attn",
        "grid": {
            "envs": ["point-robot"],
            "methods": [{"name": "focal-attn", "encoder": {"type": "attention"}}],
        },
    }
    path = tmp_path / "attn.yaml"
    path.write_text(yaml.safe_dump(suite))
    (spec,) = load_suite(path)[1]
    assert spec.method.encoder.type == "attention"
