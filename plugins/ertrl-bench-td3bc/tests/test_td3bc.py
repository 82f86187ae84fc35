"""Tests of the template backbone; copy them along with ``plugin.py``."""

from __future__ import annotations

import pytest
import torch
import yaml
from ertrl_bench_td3bc import plugin
from ertrl_bench_td3bc.plugin import TD3BC, TD3BCOptions
from pydantic import ValidationError

from ertrl_bench.batch import Transitions
from ertrl_bench.envs.point_robot import PointRobot
from ertrl_bench.problem import Problem
from ertrl_bench.suite_loader import load_suite

PROBLEM = Problem(PointRobot(), obs_dim=2, act_dim=2, latent_dim=3, device=torch.device("cpu"))


def _batch(m=4, b=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    obs, nxt = torch.randn(m, b, 2, generator=g), torch.randn(m, b, 2, generator=g)
    actions = torch.tanh(obs.flip(-1))  # the behavior policy: a function of the state
    return Transitions(
        obs, actions, torch.randn(m, b, 1, generator=g), nxt, torch.zeros(m, b, 1), torch.arange(m)
    )


def _backbone(**options):
    torch.manual_seed(0)
    return TD3BC(TD3BCOptions(hidden=[16], **options), PROBLEM)


def test_act_shapes_and_bounds():
    a = _backbone().act(torch.randn(5, 2), torch.randn(5, 3), deterministic=False)
    assert a.shape == (5, 2) and a.abs().max() <= 1


def test_critic_gradient_reaches_z_q_only():
    bb, batch = _backbone(), _batch()
    z_q = torch.randn(4, 3, requires_grad=True)
    logs = bb.update(batch, z_q, z_q.detach())
    assert {"td3bc/critic_loss", "td3bc/actor_loss", "td3bc/bc"} <= set(logs)
    assert z_q.grad is not None and z_q.grad.abs().sum() > 0  # Offline PEARL's path


def test_behaviour_cloning_learns_the_data_actions():
    bb, batch = _backbone(alpha=1e-3, lr=3e-3), _batch(m=2, b=32)  # almost pure BC
    z = torch.zeros(2, 3)
    first = float(bb.update(batch, z, z)["td3bc/bc"])
    for _ in range(200):
        last = float(bb.update(batch, z, z)["td3bc/bc"])
    assert last < 0.2 * first


def test_update_does_the_same_work_every_step():
    """What ``train: {cuda_graph: true}`` needs: every step updates the critics, the actor and
    the targets (no branch on a step counter), and returns the same logs."""
    bb = _backbone()
    z = torch.zeros(4, 3)
    for step in range(3):
        before = [p.clone() for net in (bb.actor, *bb.targets) for p in net.parameters()]
        logs = bb.update(_batch(seed=step), z, z)
        after = [p for net in (bb.actor, *bb.targets) for p in net.parameters()]
        assert set(logs) == {"td3bc/critic_loss", "td3bc/actor_loss", "td3bc/bc"}, step
        assert all(not torch.equal(b, a) for b, a in zip(before, after, strict=True)), step


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_update_can_be_captured_as_a_cuda_graph():
    """The update captured once and replayed gives the eager update's numbers."""
    dev = torch.device("cuda")
    problem = Problem(PointRobot(), obs_dim=2, act_dim=2, latent_dim=3, device=dev)
    batch = _batch()
    batch = Transitions(
        *(x.to(dev) for x in (batch.obs, batch.actions, batch.rewards, batch.next_obs)),
        batch.dones.to(dev),
        batch.task_ids.to(dev),
    )
    z = torch.zeros(4, 3, device=dev)

    def fresh():
        torch.manual_seed(0)
        bb = TD3BC(TD3BCOptions(hidden=[16]), problem)
        for opt in (bb.opt_actor, bb.opt_q):
            for group in opt.param_groups:
                group["capturable"] = True
        return bb

    eager, graphed = fresh(), fresh()
    torch.cuda.manual_seed(1)
    want = [float(eager.update(batch, z, z)["td3bc/bc"]) for _ in range(6)]
    torch.cuda.manual_seed(1)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up steps before capture, as ertrl_bench.cuda_graph
        got = [float(graphed.update(batch, z, z)["td3bc/bc"]) for _ in range(3)]
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static = graphed.update(batch, z, z)
    for _ in range(3):
        graph.replay()
        got.append(float(static["td3bc/bc"]))
    assert got == pytest.approx(want, rel=1e-3, abs=1e-5)


def test_options_are_strict():
    with pytest.raises(ValidationError):
        TD3BCOptions(alhpa=1.0)
    with pytest.raises(ValidationError):
        TD3BCOptions(discount=1.5)


def test_a_suite_can_use_it(tmp_path, register_test_plugin):
    register_test_plugin(plugin, "td3bc")
    suite = {
        "name": "td3bc",
        "grid": {
            "envs": ["point-robot"],
            "methods": [{"name": "focal-td3bc", "backbone": "td3bc"}],
        },
    }
    path = tmp_path / "td3bc.yaml"
    path.write_text(yaml.safe_dump(suite))
    (spec,) = load_suite(path)[1]
    assert spec.method.backbone.type == "td3bc"


def test_passes_the_backbone_checker():  # includes the checkpoint round trip (state_dict)
    from ertrl_bench.testing import check_backbone

    check_backbone(TD3BC, TD3BCOptions(hidden=[8]))
