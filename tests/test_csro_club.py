"""CSRO's variational net q is bounded as the authors' (tanh on all outputs; docs/paper.md).

With tanh before the split, mu is in [-1, 1] and var = softplus(.) in [0.313, 1.313], so the
CLUB estimate stays O(spread of z / 0.313) even when z_i is a near-exact function of (s, a). The
unbounded net (``bounded=False``) shrinks var towards 0 there and the estimate explodes. Both
forms are fitted and measured here on the same data stream.
"""

from __future__ import annotations

import math

import torch

from ertrl_bench.batch import Transitions
from ertrl_bench.encoder_losses.csro import CSROLoss, CSROOptions, club_terms
from ertrl_bench.envs.base import FamilyHParams
from ertrl_bench.envs.point_robot import PointRobot
from ertrl_bench.problem import Problem

LATENT = 8


class _Family(PointRobot):
    hparams = FamilyHParams(latent_dim=LATENT)


def _ctx(g: torch.Generator, m: int = 8, c: int = 64) -> Transitions:
    s, a = torch.randn(m, c, 2, generator=g), torch.randn(m, c, 2, generator=g)
    r = torch.randn(m, c, 1, generator=g)
    return Transitions(s, a, r, s + a, torch.zeros_like(r), task_ids=torch.arange(m))


PROJ = torch.randn(4, LATENT, generator=torch.Generator().manual_seed(2))


def z_of(ctx: Transitions, g: torch.Generator) -> torch.Tensor:
    """z_i = tanh(W [s, a]) + 1e-3 noise: a near-exact function of (s, a)."""
    z = torch.tanh(torch.cat([ctx.obs, ctx.actions], -1) @ PROJ)
    return z + 1e-3 * torch.randn(z.shape, generator=g)


def fit_and_measure(bounded: bool, steps: int = 300) -> tuple[float, float, float, float]:
    """Fit q by its Gaussian log-likelihood (as ``update``); return CLUB, grad norm, var range."""
    torch.manual_seed(0)
    prob = Problem(_Family(), 2, 2, LATENT, torch.device("cpu"))
    reg = CSROLoss(CSROOptions(hidden=(64, 64), lr=1e-3, bounded=bounded), prob)
    g = torch.Generator().manual_seed(1)  # the same data stream for both forms
    for _ in range(steps):
        ctx = _ctx(g)
        z = z_of(ctx, g)
        mu, var = reg.q_params(reg.q_inputs(ctx))
        nll = ((z - mu).pow(2) / (2 * var) + 0.5 * torch.log(var)).mean()
        reg.optimizer.zero_grad()
        nll.backward()
        reg.optimizer.step()
    ctx = _ctx(torch.Generator().manual_seed(99))
    z = z_of(ctx, torch.Generator().manual_seed(98)).requires_grad_(True)
    with torch.no_grad():
        mu, var = reg.q_params(reg.q_inputs(ctx))
    pos, neg = club_terms(z, mu, var)
    club = pos - neg
    (grad,) = torch.autograd.grad(club, z)
    return float(club.detach()), float(grad.norm()), float(var.min()), float(var.max())


def test_q_outputs_are_bounded_as_the_authors():
    prob = Problem(_Family(), 2, 2, LATENT, torch.device("cpu"))
    reg = CSROLoss(CSROOptions(hidden=(16,)), prob)
    with torch.no_grad():  # push the last layer to saturate: outputs far outside [-1, 1]
        reg.q[-2].weight.mul_(1000.0)
    mu, var = (t.detach() for t in reg.q_params(100.0 * torch.randn(512, 4)))
    assert mu.abs().max() <= 1.0 and mu.abs().max() > 0.99
    lo, hi = math.log1p(math.exp(-1.0)), math.log1p(math.exp(1.0))  # 0.313, 1.313
    assert lo - 1e-5 <= float(var.min()) and float(var.max()) <= hi + 1e-5
    assert float(var.min()) < lo + 0.01 and float(var.max()) > hi - 0.01


def test_club_stays_bounded_when_z_is_a_function_of_s_a():
    club_b, grad_b, vmin_b, _ = fit_and_measure(bounded=True)
    club_u, grad_u, vmin_u, _ = fit_and_measure(bounded=False)
    # bounded: var >= 0.313, z in [-1, 1] -> |CLUB| <= 4 / 0.313 ~ 13; in practice O(1)
    assert 0.0 < club_b < 13.0 and vmin_b >= 0.3
    # unbounded: q learns a tiny variance and the same estimate is 30x larger or more
    assert vmin_u < 0.05
    assert club_u > 30.0 * club_b, (club_u, club_b)
    assert grad_u > 30.0 * grad_b, (grad_u, grad_b)
