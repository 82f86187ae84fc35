"""``none``: an encoder loss that is always zero. The smallest complete encoder loss.

No named method uses it (a method without encoder losses lists none: ``encoder_losses: []``);
it stays as the minimal worked example and for suites written before encoder-loss lists.
"""

from __future__ import annotations

import torch

from ertrl_bench.components import StepBatch
from ertrl_bench.encoder_losses.options import NoneOptions
from ertrl_bench.problem import Problem


class NoLoss:
    def __init__(self, options: NoneOptions, problem: Problem):
        self.device = problem.device

    def update(self, batch: StepBatch) -> dict:
        return {}

    def encoder_loss(self, batch: StepBatch):
        return torch.zeros((), device=self.device), {}

    def joint_parameters(self):
        return []

    def state_dict(self):
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass  # no state of its own (no networks, no optimizer)
