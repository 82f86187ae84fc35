"""What a component is built for: the task family, the dimensions, the device.

Every encoder, regularizer and backbone factory receives its validated options and a
``Problem``; per-family paper values come from ``problem.hparams``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ertrl_bench.envs.base import EnvFamily, FamilyHParams


@dataclass(frozen=True)
class Problem:
    family: EnvFamily
    obs_dim: int
    act_dim: int
    latent_dim: int
    device: torch.device

    @property
    def hparams(self) -> FamilyHParams:
        return self.family.hparams

    @property
    def uses_next_obs(self) -> bool:
        return self.family.context_uses_next_obs

    @property
    def context_dim(self) -> int:
        """Features of one context transition: (s, a, r[, s'])."""
        return self.obs_dim + self.act_dim + 1 + (self.obs_dim if self.uses_next_obs else 0)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
