"""``none``: no regularizer (FOCAL, Offline PEARL). The smallest complete regularizer."""

from __future__ import annotations

import torch

from ertrl_bench.config import Strict
from ertrl_bench.problem import Problem


class NoneOptions(Strict):
    """No options."""


class NoRegularizer:
    def __init__(self, options: NoneOptions, problem: Problem):
        self.device = problem.device

    def update(self, ctx, z_i, z) -> dict:
        return {}

    def encoder_loss(self, ctx, z_i, z):
        return torch.zeros((), device=self.device), {}

    def joint_parameters(self):
        return []

    def state_dict(self):
        return {}
