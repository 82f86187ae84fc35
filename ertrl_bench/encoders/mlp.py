"""The paper's context encoder: an MLP on single transitions, tanh output, mean over the context.

Deterministic (no information bottleneck), docs/paper.md: 200-200-200, latent 20 (40 for Walker).
Built by ``MLPEncoder(options, problem)``: input ``problem.context_dim``, output
``problem.latent_dim``.
"""

from __future__ import annotations

import torch
from torch import nn

from ertrl_bench.encoders.options import MLPEncoderOptions
from ertrl_bench.ensemble import EnsembleMLP
from ertrl_bench.nn import mlp
from ertrl_bench.problem import Problem


class MLPEncoder(nn.Module):
    """``forward(x [M, N, K], mask [M, N] | None) -> (z_i [M, N, L], z [M, L])``."""

    def __init__(self, options: MLPEncoderOptions, problem: Problem):
        super().__init__()
        self.net = mlp(problem.context_dim, options.hidden, problem.latent_dim, init=problem.init)
        self.latent_dim = problem.latent_dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None):
        z_i = torch.tanh(self.net(x))
        if mask is None:
            z = z_i.mean(dim=1)
        else:  # permutation-invariant mean over the valid transitions only
            w = mask.to(z_i.dtype).unsqueeze(-1)
            z = (z_i * w).sum(1) / w.sum(1).clamp_min(1.0)
        return z_i, z

    @classmethod
    def ensemble(cls, members: list[MLPEncoder], rng) -> MLPEncoderEnsemble:
        """K seeds' encoders as one (``ertrl_bench.ensemble``)."""
        return MLPEncoderEnsemble(members)


class MLPEncoderEnsemble(nn.Module):
    """K seeds' ``MLPEncoder``: ``forward(x [K, M, N, K_in], mask [K, M, N] | None)``."""

    def __init__(self, members: list[MLPEncoder]):
        super().__init__()
        self.net = EnsembleMLP([m.net for m in members])
        self.links = self.net.links

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None):
        z_i = torch.tanh(self.net(x))
        if mask is None:
            z = z_i.mean(dim=2)
        else:
            w = mask.to(z_i.dtype).unsqueeze(-1)
            z = (z_i * w).sum(2) / w.sum(2).clamp_min(1.0)
        return z_i, z

    def write_back(self) -> None:
        self.net.write_back()
