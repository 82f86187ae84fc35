"""The regularizer protocol: how a context regularizer plugs into meta-training.

Each train step the training loop (``ertrl_bench.training``) does, for the sampled meta-batch::

    z_i, z = encoder(ctx.features(...))               # [M, C, L] per transition, [M, L] pooled
    logs  = regularizer.update(ctx, z_i.detach(), z.detach())   # its own nets, own optimizers
    loss, logs2 = regularizer.encoder_loss(ctx, z_i, z)        # added to the encoder objective
    (dml_loss + loss).backward(); encoder_optimizer.step()

``joint_parameters()`` lists parameters trained *with* the encoder by ``encoder_loss`` (UNICORN's
decoder); they join the encoder's optimizer. Logs are dicts of floats or 0-dim tensors; the loop
turns them into numbers only when it writes the training log. Worked examples: ``none.py`` (the
smallest), ``csro.py`` (an estimator network with its own optimizer), ``gan_entropy.py`` (ER-TRL).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from ertrl_bench.batch import Transitions


@runtime_checkable
class Regularizer(Protocol):
    def update(self, ctx: Transitions, z_i: torch.Tensor, z: torch.Tensor) -> dict:
        """Train the regularizer's own networks on detached encodings; return logs."""
        ...

    def encoder_loss(
        self, ctx: Transitions, z_i: torch.Tensor, z: torch.Tensor
    ) -> tuple[torch.Tensor, dict]:
        """A scalar loss (already weighted) whose gradient trains the encoder; and logs."""
        ...

    def joint_parameters(self) -> list[torch.nn.Parameter]:
        """Parameters optimised together with the encoder (usually none)."""
        ...

    def state_dict(self) -> dict: ...
