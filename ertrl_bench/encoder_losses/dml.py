"""``dml``: FOCAL's distance-metric loss on the pooled z of a meta-batch, as an encoder loss.

Every named method but Offline PEARL lists it first (``ertrl_bench.methods``). The loss itself
is ``ertrl_bench.losses.dml_loss`` (docs/paper.md, FOCAL): weight 10, eps 1e-3.
"""

from __future__ import annotations

import torch

from ertrl_bench.components import StepBatch
from ertrl_bench.encoder_losses.options import DMLOptions
from ertrl_bench.losses import dml_loss
from ertrl_bench.problem import Problem


class DMLLoss:
    """``weight * (pull same-task z together + push different tasks' z apart)``."""

    def __init__(self, options: DMLOptions, problem: Problem):
        self.weight, self.eps = options.weight, options.eps

    def update(self, batch: StepBatch) -> dict:
        return {}  # no networks of its own

    def encoder_loss(self, batch: StepBatch):
        loss, logs = dml_loss(batch.z, batch.task_ids, self.eps)
        return self.weight * loss, logs

    def joint_parameters(self) -> list:
        return []

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass  # no state of its own (no networks, no optimizer)

    @classmethod
    def ensemble(cls, members: list[DMLLoss], rng) -> DMLLossEnsemble:
        return DMLLossEnsemble(members)


class DMLLossEnsemble:
    """K seeds' ``DMLLoss`` (``ertrl_bench.ensemble``): each member's loss on its own z."""

    def __init__(self, members: list[DMLLoss]):
        self.weight, self.eps = members[0].weight, members[0].eps

    def update(self, batch: StepBatch) -> dict:
        return {}

    def encoder_loss(self, batch: StepBatch):
        per = [dml_loss(z, ids, self.eps) for z, ids in zip(batch.z, batch.task_ids, strict=True)]
        logs = {key: torch.stack([logs[key] for _, logs in per]) for key in per[0][1]}
        return self.weight * torch.stack([loss for loss, _ in per]), logs

    def joint_links(self) -> list:
        return []

    def write_back(self) -> None:
        pass  # no state
