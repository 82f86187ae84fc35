"""``csro``: CSRO's CLUB upper bound on I(z_i; x_i), x_i = the transition's (s, a).

A worked example of an encoder loss that owns an *estimator network with its own optimizer*:

* ``update`` fits a variational Gaussian q(z | x) = N(mu(x), diag var(x)) (an MLP shaped like
  the encoder, 200-200-200) to the **detached** per-transition encodings z_i by maximum
  likelihood, with its own Adam (lr 3e-4). docs/paper.md: loss weight 10. As in the authors'
  code, **tanh is applied to all of q's outputs** before they are split into mu (first half) and
  var = softplus(second half), so mu is in [-1, 1] and var in [softplus(-1), softplus(1)] =
  [0.313, 1.313]. Without it (``bounded=False``, for comparison only) q can shrink var towards 0
  wherever z_i is nearly a function of x, and the CLUB estimate and its gradient grow 30-1000x
  (``tests/test_csro_club.py`` measures both forms on the same data).
* ``encoder_loss`` returns ``weight * (positive - negative)``: the CLUB estimate (Cheng et al.
  2020) with mu and var held fixed, so its gradient reaches the encoder through z_i only::

      positive = -mean_{i, l} (z_il - mu_il)^2 / var_il            matched pairs (x_i, z_i)
      negative = -mean_{i, j, l} (z_jl - mu_il)^2 / var_il         all pairs within a task's batch

  Matched pairs score higher than shuffled ones exactly when z_i carries information about x_i,
  so minimising the gap removes what z_i knows about (s, a) -- in offline meta-RL, mostly the
  behavior policy -- while the distance-metric loss keeps what it knows about the task.

The all-pairs term is computed in closed form, ``mean_j (z_j - mu_i)^2 = (zbar - mu_i)^2 +
var_j(z)`` per task and latent dimension, so memory is O(M C L) instead of the authors'
O(M C^2 L) expansion (numerically the same quantity; ``tests/test_encoder_losses.py`` checks it
against the explicit pairwise sum). Means are over latent dimensions too, as in the authors' code
(``.mean()`` over every element), so ``weight`` has the paper's scale.

q is fitted, and CLUB computed, on the *context* batch (``batch.ctx``): z_i exists only for
context transitions, and the authors do the same (``club_model(context)``). Per-family weights
(10 / 25 / 50) and inputs ((s, a) for Hopper/Walker) are ``component_defaults["csro"]`` on the
family (docs/paper.md, CSRO).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ertrl_bench.batch import Transitions, masked_mean
from ertrl_bench.components import StepBatch
from ertrl_bench.encoder_losses.options import INPUT_FIELDS, CSROOptions
from ertrl_bench.ensemble import EnsembleMLP, StackedAdam, per_member_mean
from ertrl_bench.errors import ErtrlError
from ertrl_bench.nn import mlp
from ertrl_bench.problem import Problem


def club_terms(
    z_i: torch.Tensor, mu: torch.Tensor, var: torch.Tensor, w: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """CLUB's (positive, negative) on ``[M, C, L]`` tensors; ``w`` ``[M, C, 1]`` masks transitions.

    positive = -mean over valid i and l of (z_i - mu_i)^2 / var_i; negative = the same over all
    valid pairs (i, j) of one task, z_j against mu_i, var_i (closed form, no C x C tensor).
    """
    inv = 1.0 / var
    if w is None:
        positive = -((z_i - mu).pow(2) * inv).mean()
        zbar = z_i.mean(1, keepdim=True)  # [M, 1, L]
        zvar = (z_i - zbar).pow(2).mean(1, keepdim=True)  # biased: mean over j, j = i included
        negative = -(((zbar - mu).pow(2) + zvar) * inv).mean()
        return positive, negative
    n = w.sum(1, keepdim=True).clamp_min(1.0)  # [M, 1, 1] valid transitions per task
    total = (w.sum() * z_i.shape[-1]).clamp_min(1.0)
    positive = -((z_i - mu).pow(2) * inv * w).sum() / total
    zbar = (z_i * w).sum(1, keepdim=True) / n
    zvar = ((z_i - zbar).pow(2) * w).sum(1, keepdim=True) / n
    # each valid i contributes the mean over its task's valid j; then the mean over valid i
    negative = -((((zbar - mu).pow(2) + zvar) * inv) * w).sum() / total
    return positive, negative


class CSROLoss:
    """CLUB mutual-information upper bound between z_i and (s, a) (CSRO, Gao et al. 2023)."""

    def __init__(self, options: CSROOptions, problem: Problem):
        self.options = options
        self.device = problem.device
        self.weight = options.weight
        self.inputs = tuple(options.inputs)
        unknown = [name for name in self.inputs if name not in INPUT_FIELDS]
        if unknown or not self.inputs:
            raise ErtrlError(
                f"csro inputs {list(self.inputs)}: unknown {unknown}; choose from"
                f" {sorted(INPUT_FIELDS)}"
            )
        dims = {
            "obs": problem.obs_dim,
            "actions": problem.act_dim,
            "rewards": 1,
            "next_obs": problem.obs_dim,
        }
        in_dim = sum(dims[INPUT_FIELDS[name]] for name in self.inputs)
        self.latent_dim = problem.latent_dim
        # one MLP, two heads: [mu | pre-softplus variance], as the authors' club_model, whose
        # output activation is tanh on *all* outputs (appended: parameter names unchanged)
        q = mlp(in_dim, options.hidden, 2 * problem.latent_dim, init=problem.init)
        if options.bounded:
            q.append(torch.nn.Tanh())
        self.q = q.to(self.device)
        self.optimizer = torch.optim.Adam(self.q.parameters(), lr=options.lr)

    # --- helpers --------------------------------------------------------------------------------
    def q_inputs(self, ctx: Transitions) -> torch.Tensor:
        """x_i: the configured fields of each transition, ``[M, C, K]``."""
        return torch.cat([getattr(ctx, INPUT_FIELDS[name]) for name in self.inputs], dim=-1)

    def q_params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.q(x)  # bounded: tanh already applied to every output
        mu, pre = out.split(self.latent_dim, dim=-1)
        return mu, F.softplus(pre) + 1e-6  # floor: var never exactly 0 (inverted below)

    # --- the protocol -------------------------------------------------------------------------
    def update(self, batch: StepBatch) -> dict:
        """One Adam step of q's Gaussian negative log-likelihood on the detached z_i."""
        ctx = batch.ctx
        mu, var = self.q_params(self.q_inputs(ctx))
        nll = (batch.z_i.detach() - mu).pow(2) / (2 * var) + 0.5 * torch.log(var)  # [M, C, L]
        nll = masked_mean(nll, ctx.weights())
        self.optimizer.zero_grad(set_to_none=True)
        (self.options.model_loss_weight * nll).backward()
        self.optimizer.step()
        return {"csro/q_nll": nll.detach()}

    def encoder_loss(self, batch: StepBatch):
        ctx = batch.ctx
        with torch.no_grad():  # q is fixed here: the gradient reaches the encoder through z_i
            mu, var = self.q_params(self.q_inputs(ctx))
        positive, negative = club_terms(batch.z_i, mu, var, ctx.weights())
        club = positive - negative
        return self.weight * club, {"csro/club": club.detach()}

    def joint_parameters(self) -> list[torch.nn.Parameter]:
        return []

    def state_dict(self) -> dict:
        return {"q": self.q.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.q.load_state_dict(state["q"])
        self.optimizer.load_state_dict(state["optimizer"])

    @classmethod
    def ensemble(cls, members: list[CSROLoss], rng) -> CSROLossEnsemble:
        return CSROLossEnsemble(members)


class CSROLossEnsemble(CSROLoss):
    """K seeds' ``CSROLoss`` (``ertrl_bench.ensemble``): q is an ``EnsembleMLP``."""

    def __init__(self, members: list[CSROLoss]):
        first = members[0]
        self.options, self.weight = first.options, first.weight
        self.inputs, self.latent_dim = first.inputs, first.latent_dim
        self.q = EnsembleMLP([m.q for m in members])
        self.optimizer = StackedAdam([m.optimizer for m in members], self.q.links)

    def update(self, batch: StepBatch) -> dict:
        ctx = batch.ctx
        mu, var = self.q_params(self.q_inputs(ctx))
        nll = (batch.z_i.detach() - mu).pow(2) / (2 * var) + 0.5 * torch.log(var)
        nll = per_member_mean(nll, ctx.weights())  # [K]
        self.optimizer.zero_grad(set_to_none=True)
        (self.options.model_loss_weight * nll).sum().backward()
        self.optimizer.step()
        return {"csro/q_nll": nll.detach()}

    def encoder_loss(self, batch: StepBatch):
        ctx = batch.ctx
        with torch.no_grad():
            mu, var = self.q_params(self.q_inputs(ctx))
        w = ctx.weights()
        terms = [
            club_terms(batch.z_i[k], mu[k], var[k], None if w is None else w[k])
            for k in range(mu.shape[0])
        ]
        club = torch.stack([pos - neg for pos, neg in terms])
        return self.weight * club, {"csro/club": club.detach()}

    def joint_links(self) -> list:
        return []

    def write_back(self) -> None:
        self.q.write_back()
        self.optimizer.write_back()
