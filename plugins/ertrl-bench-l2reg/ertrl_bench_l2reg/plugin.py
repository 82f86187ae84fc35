"""The plugin module named by the ``ertrl_bench`` entry point in ``pyproject.toml``.

``l2_context`` is an encoder loss that penalises the mean squared norm of the per-transition
encodings ``z_i``::

    loss = weight * mean_i ||z_i||^2        (padded transitions of online contexts excluded)

It keeps the latent space from drifting to large norms, where FOCAL's distance-metric loss
(which pushes different tasks' ``z`` apart) can otherwise grow without bound. It has no networks
of its own, so ``update`` does nothing. ``focal_l2`` is FOCAL (``dml``) plus this penalty.

Copy this file to write your own encoder loss (docs/plugins.md, "Encoder losses"): an options
model (pydantic, ``extra="forbid"`` so a misspelt option in a suite is an error), a class with
the five methods of ``ertrl_bench.components.EncoderLoss`` -- ``update`` and ``encoder_loss``
each receive one ``ertrl_bench.components.StepBatch`` -- and the ``register_*`` hooks at the
bottom. Check it with ``ertrl_bench.testing.check_encoder_loss`` (see ``tests/test_l2reg.py``).
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from ertrl_bench.batch import masked_mean
from ertrl_bench.components import StepBatch
from ertrl_bench.plugins import hookimpl
from ertrl_bench.problem import Problem


class L2ContextOptions(BaseModel):
    """Options of ``{type: l2_context, params: {...}}`` in a suite."""

    model_config = ConfigDict(extra="forbid")

    weight: float = Field(0.1, ge=0, description="Multiplier of the mean squared norm of z_i.")


class L2ContextLoss:
    """``weight * mean ||z_i||^2`` added to the encoder's loss."""

    def __init__(self, options: L2ContextOptions, problem: Problem):
        self.weight = options.weight

    def update(self, batch: StepBatch) -> dict:
        return {}  # no networks of its own to train

    def encoder_loss(self, batch: StepBatch):
        sq = batch.z_i.pow(2).sum(-1, keepdim=True)  # [M, C, 1]
        penalty = masked_mean(sq, batch.ctx.weights())  # padded transitions excluded
        return self.weight * penalty, {"l2_context/sq_norm": penalty.detach()}

    def joint_parameters(self) -> list[torch.nn.Parameter]:
        return []

    def state_dict(self) -> dict:
        return {}  # no networks, no optimizer: nothing changes during a run

    def load_state_dict(self, state: dict) -> None:
        pass


@hookimpl
def register_encoder_losses(register):
    register("l2_context", L2ContextLoss, L2ContextOptions)


@hookimpl
def register_methods(register):
    # a method: encoder (default mlp) + encoder losses + backbone (default brac)
    register("focal_l2", {"encoder_losses": ["dml", "l2_context"]})
