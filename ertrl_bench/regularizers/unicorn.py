"""``unicorn``: UNICORN's reconstruction term -- z must predict the task's dynamics and reward.

A decoder MLP (2 x 256) predicts the normalised (s' - s, r) of each context transition from
(s, a, z), z the task's pooled encoding broadcast to its transitions. Its MSE, times ``weight``
(PAPER.md: 1.5 Ant/Cheetah/Humanoid, 15 Hopper, 7 Walker), trains the encoder *and* the decoder:
the decoder's parameters are returned by ``joint_parameters()`` and join the encoder's optimizer,
so ``update`` has no network to train.

Normalisation (**ours**; PAPER.md says only "normalised"): *running* statistics. ``update``
accumulates the exact mean and variance of every (s' - s, r) target seen so far (Chan's parallel
merge, no gradient); ``encoder_loss`` standardises targets with them (std floored at 1e-3). We
prefer them to per-batch statistics because the offline data are stationary: running statistics
converge to the dataset's, so a target's normalised value -- and the loss's scale -- does not
depend on which tasks happen to share the meta-batch (per-batch statistics would rescale a
task's reward by the other tasks'). Before the first ``update`` the batch's own statistics are
used.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from ertrl_bench.batch import Transitions
from ertrl_bench.nn import mlp
from ertrl_bench.problem import Problem


class UnicornOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weight: float | None = Field(None, ge=0)  # None -> problem.hparams.unicorn_weight
    hidden: tuple[PositiveInt, ...] = (256, 256)
    min_std: float = Field(1e-3, gt=0)  # floor of the normalising std


def _weights(ctx: Transitions) -> torch.Tensor | None:
    return None if ctx.mask is None else ctx.mask.to(ctx.obs.dtype).unsqueeze(-1)


class UnicornRegularizer:
    """A (s, a, z) -> (s' - s, r) decoder trained jointly with the encoder."""

    def __init__(self, options: UnicornOptions, problem: Problem):
        self.options = options
        self.device = problem.device
        self.weight = problem.hparams.unicorn_weight if options.weight is None else options.weight
        ds, da, dz = problem.obs_dim, problem.act_dim, problem.latent_dim
        self.decoder = mlp(ds + da + dz, options.hidden, ds + 1).to(self.device)
        # running statistics of the targets (float64 sums: exact over millions of transitions)
        self.count = torch.zeros((), dtype=torch.float64, device=self.device)
        self.mean = torch.zeros(ds + 1, dtype=torch.float64, device=self.device)
        self.m2 = torch.zeros(ds + 1, dtype=torch.float64, device=self.device)
        self._seen = 0  # a Python copy of "count > 0": no device sync to read it

    @staticmethod
    def targets(ctx: Transitions) -> torch.Tensor:
        return torch.cat([ctx.next_obs - ctx.obs, ctx.rewards], dim=-1)  # [M, C, ds + 1]

    def _valid_rows(self, ctx: Transitions) -> torch.Tensor:
        y = self.targets(ctx).reshape(-1, self.mean.shape[0]).to(torch.float64)
        if ctx.mask is not None:
            y = y[ctx.mask.reshape(-1)]
        return y

    def normaliser(self, ctx: Transitions) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) used to standardise the targets: running ones, or the batch's at first."""
        if self._seen:
            mean, var = self.mean, self.m2 / self.count
        else:
            y = self._valid_rows(ctx)
            mean, var = y.mean(0), y.var(0, unbiased=False)
        dtype = ctx.obs.dtype
        return mean.to(dtype), var.sqrt().clamp_min(self.options.min_std).to(dtype)

    def update(self, ctx: Transitions, z_i: torch.Tensor, z: torch.Tensor) -> dict:
        """Merge this batch's targets into the running mean / variance (no network to train)."""
        with torch.no_grad():
            y = self._valid_rows(ctx)
            n_b = float(y.shape[0])
            if n_b == 0:
                return {}
            mean_b = y.mean(0)
            m2_b = (y - mean_b).pow(2).sum(0)
            n = self.count + n_b
            delta = mean_b - self.mean
            self.mean += delta * (n_b / n)
            self.m2 += m2_b + delta.pow(2) * (self.count * n_b / n)
            self.count.copy_(n)
            self._seen += int(n_b)
        return {}

    def predict(self, ctx: Transitions, z: torch.Tensor) -> torch.Tensor:
        z_b = z[:, None, :].expand(-1, ctx.obs.shape[1], -1)
        return self.decoder(torch.cat([ctx.obs, ctx.actions, z_b], dim=-1))

    def encoder_loss(self, ctx: Transitions, z_i: torch.Tensor, z: torch.Tensor):
        mean, std = self.normaliser(ctx)
        target = (self.targets(ctx) - mean) / std
        err = (self.predict(ctx, z) - target).pow(2)  # [M, C, ds + 1]
        w = _weights(ctx)
        mse = err.mean() if w is None else (err * w).sum() / (w.sum() * err.shape[-1]).clamp_min(1)
        return self.weight * mse, {"unicorn/mse": mse.detach()}

    def joint_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.decoder.parameters())

    def state_dict(self) -> dict:
        return {
            "decoder": self.decoder.state_dict(),
            "count": self.count.clone(),
            "mean": self.mean.clone(),
            "m2": self.m2.clone(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.decoder.load_state_dict(state["decoder"])
        self.count.copy_(state["count"])
        self.mean.copy_(state["mean"])
        self.m2.copy_(state["m2"])
        self._seen = int(state["count"])
