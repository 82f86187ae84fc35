"""IQL, the second built-in backbone (``ertrl_bench/backbones/iql.py``), tested directly.

* it passes the backbone conformance checker, by name as a suite uses it;
* its three losses equal the IQL formulas written out here, element by element, on tiny tensors;
* only Q's loss reaches the encoder (through ``z_q``: Offline PEARL), and V's expectile
  regression finds the expectile;
* ``state_dict`` / ``load_state_dict`` restore it exactly (a resumed run repeats its numbers);
* IQL-backed FOCAL runs end to end on a tiny suite, and on the smoke budget beats a random
  policy on unseen Point-Robot tasks (slow);
* the built-in ``backbones`` suite pairs ER-TRL, FOCAL and CSRO each with BRAC and IQL.
"""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch
import yaml

from ertrl_bench.backbones.iql import IQL, IQLOptions, expectile_loss
from ertrl_bench.batch import Transitions
from ertrl_bench.envs.point_robot import PointRobot
from ertrl_bench.nn import EnsembleLinear
from ertrl_bench.problem import Problem
from ertrl_bench.runner import execute
from ertrl_bench.suite_loader import builtin_suite_path, load_suite
from ertrl_bench.testing import check_backbone
from tests.helpers import tiny_suite, write_suite

M, B, DS, DA, L = 2, 3, 4, 2, 3
FOCAL_IQL = {"name": "focal-iql", "encoder_losses": ["dml"], "backbone": "iql"}


def _problem(init: str = "torch") -> Problem:
    return Problem(PointRobot(), DS, DA, L, torch.device("cpu"), init=init)


def _batch(seed: int = 0) -> Transitions:
    g = torch.Generator().manual_seed(seed)
    return Transitions(
        torch.randn(M, B, DS, generator=g),
        torch.rand(M, B, DA, generator=g) * 2 - 1,
        torch.randn(M, B, 1, generator=g),
        torch.randn(M, B, DS, generator=g),
        (torch.rand(M, B, 1, generator=g) < 0.3).float(),
        torch.arange(M),
    )


def test_iql_passes_the_backbone_checker_by_name():
    check_backbone("iql")
    check_backbone(IQL, IQLOptions(hidden=(8,)))


def _member(net: torch.nn.Sequential, j: int, x: torch.Tensor) -> torch.Tensor:
    """Member ``j`` of an ensemble MLP applied to one input vector, layer by layer."""
    for layer in net:
        x = (
            x @ layer.weight[j] + layer.bias[j, 0]
            if isinstance(layer, EnsembleLinear)
            else layer(x)
        )
    return x.squeeze(-1)


def test_iql_losses_equal_the_formulas_element_by_element():
    o = IQLOptions(hidden=(5,), expectile=0.7, temperature=3.0, discount=0.9, reward_scale=2.0)
    torch.manual_seed(0)
    agent = IQL(o, _problem())
    with torch.no_grad():  # a target Q apart from Q, and a policy spread, as after training
        for p in agent.q_target.parameters():
            p.add_(0.3 * torch.randn_like(p))
        agent.log_std.copy_(torch.tensor([-0.5, 0.3]))
    batch, z = _batch(), torch.randn(M, L)
    rows = [(i, k) for i in range(M) for k in range(B)]
    s = torch.stack([batch.obs[i, k] for i, k in rows])
    a = torch.stack([batch.actions[i, k] for i, k in rows])
    s2 = torch.stack([batch.next_obs[i, k] for i, k in rows])
    r = torch.stack([batch.rewards[i, k, 0] for i, k in rows])
    d = torch.stack([batch.dones[i, k, 0] for i, k in rows])
    zz = torch.stack([z[i] for i, _ in rows])
    v_loss, q_loss, policy_loss, weights = agent.losses(s, a, s2, r, d, zz, zz)

    v_ref = q_ref = pi_ref = 0.0
    w_ref = []
    with torch.no_grad():
        for n in range(len(rows)):
            sa_z = torch.cat([s[n], a[n], zz[n]])
            q_min = min(float(_member(agent.q_target, j, sa_z)) for j in (0, 1))
            u = q_min - float(agent.v(torch.cat([s[n], zz[n]])))
            v_ref += (0.7 if u >= 0 else 0.3) * u**2
            target = 2.0 * float(r[n]) + 0.9 * (1 - float(d[n])) * float(
                agent.v(torch.cat([s2[n], zz[n]]))
            )
            q_ref += sum((float(_member(agent.q, j, sa_z)) - target) ** 2 for j in (0, 1)) / 2
            mean = torch.tanh(agent.policy(torch.cat([s[n], zz[n]])))
            logp = 0.0
            for k in range(DA):
                std = math.exp(float(agent.log_std[k]))
                logp += -0.5 * ((float(a[n, k]) - float(mean[k])) / std) ** 2
                logp += -math.log(std) - 0.5 * math.log(2 * math.pi)
            w = min(math.exp(3.0 * u), 100.0)
            w_ref.append(w)
            pi_ref += w * -logp
    n = len(rows)
    assert v_loss.item() == pytest.approx(v_ref / n, rel=1e-5)
    assert q_loss.item() == pytest.approx(q_ref / n, rel=1e-5)
    assert policy_loss.item() == pytest.approx(pi_ref / n, rel=1e-5)
    assert weights.tolist() == pytest.approx(w_ref, rel=1e-5)


def test_the_actors_weights_are_clipped_at_max_weight():
    u = torch.tensor([-1.0, 0.0, 1.0, 10.0])
    o = IQLOptions()
    assert torch.exp(o.temperature * u).clamp(max=o.max_weight)[-1] == 100.0
    agent = IQL(IQLOptions(hidden=(4,), temperature=50.0), _problem())
    with torch.no_grad():  # target Q far above V: every weight would be exp(50 * 100)
        agent.q_target[-1].bias.fill_(100.0)
    *_, weights = agent.losses(*_flat_rows(_batch(), torch.zeros(M, L)))
    assert torch.equal(weights, torch.full_like(weights, 100.0))


def _flat_rows(batch: Transitions, z: torch.Tensor):
    f = lambda x: x.reshape(-1, x.shape[-1])  # noqa: E731
    zz = z[:, None].expand(M, B, L).reshape(-1, L)
    return (
        f(batch.obs),
        f(batch.actions),
        f(batch.next_obs),
        batch.rewards.reshape(-1),
        batch.dones.reshape(-1),
        zz,
        zz,
    )


def test_expectile_loss_regresses_to_the_expectile():
    """Minimised over a constant v, the loss on samples q gives q's 0.9-expectile (> mean)."""
    q = torch.tensor([0.0, 1.0, 2.0, 10.0])
    v = torch.zeros((), requires_grad=True)
    opt = torch.optim.Adam([v], lr=0.1)
    for _ in range(2000):
        opt.zero_grad()
        expectile_loss(q - v, 0.9).backward()
        opt.step()
    # the 0.9-expectile solves sum_q w(q - v) (q - v) = 0 with w = 0.9 above v, 0.1 below
    v = v.detach()
    above, below = q[q > v], q[q <= v]
    balance = 0.9 * (above - v).sum() + 0.1 * (below - v).sum()
    assert abs(float(balance)) < 1e-3
    assert float(v) > float(q.mean())


def test_only_q_loss_reaches_the_encoder_through_z_q():
    torch.manual_seed(0)
    agent = IQL(IQLOptions(hidden=(8,)), _problem())
    batch, z = _batch(), torch.randn(M, L)
    zq = z.clone().requires_grad_(True)
    expected_agent = IQL(IQLOptions(hidden=(8,)), _problem())
    expected_agent.load_state_dict(copy.deepcopy(agent.state_dict()))
    zq2 = z.clone().requires_grad_(True)
    rows = list(_flat_rows(batch, z))
    rows[-1] = zq2[:, None].expand(M, B, L).reshape(-1, L)
    _, q_loss, _, _ = expected_agent.losses(*rows)
    (expected,) = torch.autograd.grad(q_loss, zq2)
    agent.update(batch, zq, z)
    assert zq.grad is not None and zq.grad.abs().sum() > 0
    torch.testing.assert_close(zq.grad, expected)


def test_state_dict_round_trip_resumes_exactly():
    torch.manual_seed(0)
    a = IQL(IQLOptions(hidden=(8,)), _problem("rlkit"))
    z = torch.randn(M, L)
    for seed in range(3):
        a.update(_batch(seed), z, z)
    buf = io.BytesIO()  # through bytes, as a checkpoint file goes
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = IQL(IQLOptions(hidden=(8,)), _problem("rlkit"))
    b.load_state_dict(torch.load(buf))
    for seed in range(3, 6):  # the optimizers' moments came along: the same next steps
        la, lb = a.update(_batch(seed), z, z), b.update(_batch(seed), z, z)
        assert {k: float(v) for k, v in la.items()} == {k: float(v) for k, v in lb.items()}
    obs = torch.randn(5, DS)
    ze = torch.randn(5, L)
    assert torch.equal(a.act(obs, ze), b.act(obs, ze))
    for k, v in a.state_dict()["q_target"].items():
        assert torch.equal(v, b.state_dict()["q_target"][k])


def test_focal_with_iql_runs_end_to_end_on_a_tiny_suite(tmp_path):
    suite = tiny_suite("tiny-iql", methods=[FOCAL_IQL])
    suite["component_params"] = {**suite["component_params"], "iql": {"hidden": [16]}}
    (spec,) = load_suite(write_suite(tmp_path / "s.yaml", suite))[1]
    assert spec.method.backbone.type == "iql"
    out = execute(spec, tmp_path / "results")
    assert out.status == "done", out.message
    score = out.metrics["final"]["train"]["offline"]["normalized"]
    assert math.isfinite(score)


@pytest.mark.slow  # the smoke suite's FOCAL budget (4 x 250 steps, 64-unit networks)
def test_focal_with_iql_beats_random_on_iid_tasks(tmp_path):
    from tests.test_learning import MARGIN, random_policy_normalized

    raw = yaml.safe_load(builtin_suite_path("smoke").read_text())
    raw["grid"]["methods"] = [FOCAL_IQL]
    raw["component_params"]["iql"] = {"hidden": [64, 64]}
    raw["device"] = "cpu"
    raw["eval"]["splits"] = ["iid"]
    (spec,) = load_suite(write_suite(tmp_path / "smoke.yaml", raw))[1]
    out = execute(spec, tmp_path / "results")
    assert out.status == "done", out.message
    score = out.metrics["final"]["iid"]["offline"]["normalized"]
    random = random_policy_normalized("iid")
    print(f"FOCAL+IQL iid offline-context normalized {score:.1f} vs random {random:.1f}")
    assert score > random + MARGIN


def test_the_backbones_suite_pairs_each_method_with_brac_and_iql():
    _, specs = load_suite("backbones")
    pairs = {
        (tuple(c.type for c in s.method.encoder_losses), s.method.backbone.type) for s in specs
    }
    losses = {("dml",), ("dml", "csro"), ("dml", "gan_entropy")}
    assert pairs == {(x, b) for x in losses for b in ("brac", "iql")}
    assert len(specs) == 30
