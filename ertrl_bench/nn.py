"""Small network building blocks shared by every component.

``EnsembleLinear`` carries a leading ensemble axis (weights ``[E, in, out]``), so E independent
networks (one SAC agent per task) train as one batched matmul instead of a Python loop over tasks,
as CORL's SAC-N/EDAC do for critic ensembles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, act=nn.ReLU) -> nn.Sequential:
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers += [nn.Linear(d, h), act()]
        d = h
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


class EnsembleLinear(nn.Module):
    """E independent linear layers applied to ``x [E, batch, in]`` in one ``baddbmm``."""

    def __init__(self, ensemble: int, in_dim: int, out_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(ensemble, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(ensemble, 1, out_dim))
        bound = 1.0 / math.sqrt(in_dim)  # nn.Linear's default init, per member
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


def ensemble_mlp(ensemble: int, in_dim: int, hidden: Sequence[int], out_dim: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers += [EnsembleLinear(ensemble, d, h), nn.ReLU()]
        d = h
    layers.append(EnsembleLinear(ensemble, d, out_dim))
    return nn.Sequential(*layers)


LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


def tanh_gaussian_sample(mean: torch.Tensor, log_std: torch.Tensor, deterministic: bool = False):
    """Reparameterised tanh-Gaussian action and its log-probability (summed over action dims)."""
    log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
    std = log_std.exp()
    if deterministic:
        pre = mean
    else:
        pre = mean + std * torch.randn_like(mean)
    action = torch.tanh(pre)
    normal_logp = (-0.5 * ((pre - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    # log|d tanh/dx| = 2 * (log 2 - x - softplus(-2x)), numerically stable
    correction = (2 * (math.log(2) - pre - nn.functional.softplus(-2 * pre))).sum(-1)
    return action, normal_logp - correction


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters(), strict=True):
            t.lerp_(s, tau)
