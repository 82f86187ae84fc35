"""The behavior SAC as the authors' (denisyarats/pytorch_sac, their cfgs/data_collection.yaml):
log-std tanh-rescaled into [-5, 2], critic target every 2 steps, temperature loss on alpha,
orthogonal init with zero biases, each task's from its own stream."""

from __future__ import annotations

import torch

from ertrl_bench.data.rng import TaskStreams
from ertrl_bench.data.sac import (
    LOG_STD_BOUNDS,
    BatchedSAC,
    EnsembleActor,
    TaskReplay,
    temperature_loss,
)
from ertrl_bench.data.tiers import DataTier
from ertrl_bench.nn import EnsembleLinear

OBS, ACT = 3, 2
CFG = DataTier(sac_steps=100, random_steps=10, checkpoints=[100], sac_hidden=(32, 32), sac_batch=8)


def _sac(indices=(0, 1), cfg=CFG) -> BatchedSAC:
    return BatchedSAC(len(indices), OBS, ACT, cfg, "cpu", TaskStreams(0, indices, "cpu"))


def _replay(tasks: int, n: int = 20) -> TaskReplay:
    g = torch.Generator().manual_seed(0)
    replay = TaskReplay(tasks, n, OBS, ACT, "cpu")
    for _ in range(n):
        replay.add(
            torch.randn(tasks, OBS, generator=g),
            torch.rand(tasks, ACT, generator=g) * 2 - 1,
            torch.randn(tasks, generator=g),
            torch.randn(tasks, OBS, generator=g),
            torch.zeros(tasks),
        )
    return replay


def test_log_std_is_tanh_rescaled_into_minus_5_and_2():
    assert LOG_STD_BOUNDS == (-5.0, 2.0)
    actor = EnsembleActor(2, OBS, ACT, (16,))
    obs = torch.randn(2, 50, OBS) * 10
    raw = actor.net(obs)[..., ACT:]
    mean, log_std = actor.mean_log_std(obs)
    torch.testing.assert_close(log_std, -5 + 0.5 * (2 + 5) * (torch.tanh(raw) + 1))
    torch.testing.assert_close(mean, actor.net(obs)[..., :ACT])
    last = actor.net[-1]
    with torch.no_grad():  # saturate the log-std head both ways: the bounds, not a clamp at -20
        last.bias[0, 0, ACT:] = 100.0
        last.bias[1, 0, ACT:] = -100.0
    _, log_std = actor.mean_log_std(obs)
    assert torch.allclose(log_std[0], torch.tensor(2.0)) and torch.allclose(
        log_std[1], torch.tensor(-5.0)
    )


def test_critic_target_moves_every_second_step():
    sac, replay = _sac(), _replay(2)

    def target():
        return [p.detach().clone() for p in sac.critic_target.parameters()]

    moved = []
    for step in range(5):  # env steps from 0, as the authors' step % 2
        before = target()
        sac.update(replay, step)
        after = target()
        moved.append(any(not torch.equal(a, b) for a, b in zip(before, after, strict=True)))
    assert moved == [True, False, True, False, True]


def test_temperature_loss_is_on_alpha():
    log_alpha = torch.tensor([0.1, -2.0], requires_grad=True)
    logp = torch.tensor([[-1.0, 0.5, 2.0], [3.0, -4.0, 0.0]])
    target_entropy = -2.0
    loss = temperature_loss(log_alpha, logp, target_entropy)
    alpha = log_alpha.detach().exp()
    inner = (-logp - target_entropy).mean(1)
    torch.testing.assert_close(loss, (alpha * inner).sum())
    loss.backward()
    # d/dlog_alpha of alpha * x is alpha * x: log alpha's loss would give x alone
    torch.testing.assert_close(log_alpha.grad, alpha * inner)


def test_networks_start_orthogonal_with_zero_biases_per_task():
    sac = _sac(indices=(3, 5))
    alone = _sac(indices=(5,))  # task 5 built without task 3
    layers = [m for m in sac.actor.modules() if isinstance(m, EnsembleLinear)]
    layers += [m for m in sac.critic.modules() if isinstance(m, EnsembleLinear)]
    assert len(layers) == 3 + 6
    for layer in layers:
        for t in range(2):
            w = layer.weight.detach()[t]  # [in, out]
            small = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
            torch.testing.assert_close(small, torch.eye(min(w.shape)), atol=1e-5, rtol=0)
            assert torch.equal(layer.bias.detach()[t], torch.zeros_like(layer.bias[t]))
        assert not torch.equal(layer.weight[0], layer.weight[1])
    for mine, its in zip(sac.actor.parameters(), alone.actor.parameters(), strict=True):
        torch.testing.assert_close(mine.detach()[1], its.detach()[0], atol=0, rtol=0)
    torch.testing.assert_close(
        sac.critic_target.q1[0].weight, sac.critic.q1[0].weight, atol=0, rtol=0
    )
