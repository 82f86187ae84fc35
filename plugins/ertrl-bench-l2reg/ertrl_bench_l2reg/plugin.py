"""The plugin module named by the ``ertrl_bench`` entry point in ``pyproject.toml``.

``l2_context`` penalises the mean squared norm of the per-transition encodings ``z_i``::

    loss = weight * mean_i ||z_i||^2        (padded transitions of online contexts excluded)

It keeps the latent space from drifting to large norms, where FOCAL's distance-metric loss
(which pushes different tasks' ``z`` apart) can otherwise grow without bound. It has no networks
of its own, so ``update`` does nothing. ``focal_l2`` is FOCAL (DML) plus this penalty.

Copy this file to write your own regularizer: an options model (pydantic, ``extra="forbid"``
so a misspelt option in a suite is an error), a class with the four methods of
``ertrl_bench.regularizers.base.Regularizer``, and the ``register_*`` hooks at the bottom.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from ertrl_bench.config import Component, MethodSpec
from ertrl_bench.plugins import hookimpl
from ertrl_bench.problem import Problem


class L2ContextOptions(BaseModel):
    """Options of ``{type: l2_context, params: {...}}`` in a suite."""

    model_config = ConfigDict(extra="forbid")

    weight: float = Field(0.1, ge=0, description="Multiplier of the mean squared norm of z_i.")


class L2ContextRegularizer:
    """``weight * mean ||z_i||^2`` added to the encoder's loss."""

    def __init__(self, options: L2ContextOptions, problem: Problem):
        self.weight = options.weight
        self.device = problem.device

    def update(self, ctx, z_i: torch.Tensor, z: torch.Tensor) -> dict:
        return {}  # no networks of its own to train

    def encoder_loss(self, ctx, z_i: torch.Tensor, z: torch.Tensor):
        sq = z_i.pow(2).sum(-1)  # [M, C]
        if ctx.mask is not None:
            m = ctx.mask.to(sq.dtype)
            penalty = (sq * m).sum() / m.sum().clamp_min(1.0)
        else:
            penalty = sq.mean()
        return self.weight * penalty, {"l2_context/sq_norm": penalty.detach()}

    def joint_parameters(self) -> list[torch.nn.Parameter]:
        return []

    def state_dict(self) -> dict:
        return {"weight": self.weight}


@hookimpl
def register_regularizers(register):
    register("l2_context", L2ContextRegularizer, L2ContextOptions)


@hookimpl
def register_methods(register):
    register(
        "focal_l2",
        MethodSpec(encoder_loss="dml", regularizer=Component(type="l2_context")),
    )
