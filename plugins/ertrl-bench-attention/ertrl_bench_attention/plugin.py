"""The plugin module named by the ``ertrl_bench`` entry point in ``pyproject.toml``.

``attention`` encodes each context transition like the paper's MLP encoder, but pools them with
learned attention weights instead of a plain mean::

    h_i = MLP(x_i)                     x_i = (s, a, r[, s']) of transition i
    z_i = tanh(W h_i)                  per-transition encoding   [M, N, L]
    w_i = softmax_i(v . h_i / T)       over the valid transitions of a task only
    z   = sum_i w_i z_i                the task representation   [M, L]

so a few informative transitions (a reward near the goal) can outweigh many uninformative ones.
It stays permutation invariant, and padded transitions (``mask`` False) get weight 0.

Copy this file to write your own encoder (docs/plugins.md, "Encoder"): an options model
(``Strict``: a misspelt option in a suite is an error), a ``torch.nn.Module`` built as
``factory(options, problem)`` whose ``forward(x, mask)`` returns ``(z_i, z)``, and the
``register_encoders`` hook at the bottom.
"""

from __future__ import annotations

import torch
from pydantic import Field, PositiveFloat, PositiveInt
from torch import nn

from ertrl_bench.options import Strict
from ertrl_bench.plugins import hookimpl


class AttentionEncoderOptions(Strict):
    """Options of ``encoder: {type: attention, params: {...}}`` in a suite."""

    hidden: tuple[PositiveInt, ...] = Field(
        (200, 200), min_length=1, description="Hidden layers of the per-transition MLP."
    )
    temperature: PositiveFloat = Field(
        1.0, description="Softmax temperature of the attention weights (large: a plain mean)."
    )


class AttentionEncoder(nn.Module):
    """``forward(x [M, N, K], mask [M, N] | None) -> (z_i [M, N, L], z [M, L])``."""

    def __init__(self, options: AttentionEncoderOptions, problem):
        super().__init__()
        layers: list[nn.Module] = []
        d = problem.context_dim  # K: features of one transition, (s, a, r[, s'])
        for h in options.hidden:
            layers += [nn.Linear(d, h), nn.ReLU()]
            d = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(d, problem.latent_dim)  # L
        self.score = nn.Linear(d, 1)
        self.temperature = options.temperature

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None):
        h = self.body(x)  # [M, N, H]
        z_i = torch.tanh(self.head(h))  # [M, N, L]
        scores = self.score(h).squeeze(-1) / self.temperature  # [M, N]
        if mask is None:
            w = torch.softmax(scores, dim=1)
        else:  # padded transitions get weight exactly 0; a task with none valid gets z = 0
            m = mask.to(scores.dtype)
            w = torch.softmax(scores.masked_fill(~mask, -1e9), dim=1) * m
            w = w / w.sum(1, keepdim=True).clamp_min(1e-12)
        z = (w.unsqueeze(-1) * z_i).sum(1)  # [M, L]
        return z_i, z


@hookimpl
def register_encoders(register):
    register("attention", AttentionEncoder, AttentionEncoderOptions)
