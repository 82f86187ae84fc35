"""``gan_entropy``: ER-TRL's encoder loss -- maximise the entropy of the behavior policy given z.

The problem. An offline task's dataset is collected by one behavior policy pi_beta, so a context
encoder trained to tell tasks apart can as well recognise *which policy collected the data*
(its action statistics are an easy feature) instead of the task. Such z shift when the context
comes from another policy (online or OOD evaluation). ER-TRL asks z to carry as little
information about pi_beta as possible: minimise I(Z; pi_beta) = H(pi_beta) - H(pi_beta | Z).
H(pi_beta) is fixed by the data, so this is maximising H(pi_beta | Z).

How. A conditional GAN models the behavior policy given the representation: a generator
G(s, z, noise) -> a (MLP 3 x 200, tanh) and a discriminator D(s, a, z) -> [0, 1] (MLP 2 x 256,
sigmoid), trained with binary cross-entropy (Adam, lr 2e-4, ``gan_steps`` = 5 updates per train
step) on the **RL batch**'s (s, a) (``batch.rl``, 256 per task, as the authors; docs/paper.md,
ER-TRL) with the detached task z broadcast to the task's transitions (``update``). At the GAN's optimum G(s, z, .) samples pi_beta(a | s, z), the action distribution
of the data *given what z says*. If z identifies the behavior policy, that distribution is as
narrow as one policy; if z says nothing about it, it is the mixture of all policies that produced
data with that z, which is broader. So ``encoder_loss`` generates actions with fresh noise and
the **non-detached** z (the gradient flows into the encoder through G; G's weights are held
fixed), on the RL batch's states, fits one Gaussian per task (mean and covariance over that task's generated actions; a
Gaussian upper-bounds the entropy of any distribution with that covariance and has it in closed
form, 0.5 logdet(2 pi e Sigma)), and returns ``-weight * mean_tasks H``. Descending it moves z to
where the modelled pi_beta(. | s, z) is broad, i.e. it maximises an estimate of H(pi_beta | Z)
and so minimises I(Z; pi_beta). The distance-metric loss keeps z informative about the task.

A worked example of an encoder loss with *two* networks trained adversarially in ``update`` and a
loss that differentiates through a frozen network into the encoder (``torch.func.functional_call``
with detached weights, so ``encoder_loss`` leaves no gradients in G).

Departure (**ours**): D returns logits and the BCE is ``binary_cross_entropy_with_logits``: the same loss as
  sigmoid + BCE, computed stably. ``discriminator_prob`` gives the [0, 1] output.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.func import functional_call

from ertrl_bench.batch import Transitions, masked_mean
from ertrl_bench.components import StepBatch
from ertrl_bench.encoder_losses.options import GANEntropyOptions
from ertrl_bench.ensemble import EnsembleMLP, StackedAdam, per_member_mean
from ertrl_bench.nn import mlp
from ertrl_bench.problem import Problem


def _bce(logits: torch.Tensor, target: float, w: torch.Tensor | None) -> torch.Tensor:
    t = torch.full_like(logits, target)
    return masked_mean(F.binary_cross_entropy_with_logits(logits, t, reduction="none"), w)


def gaussian_entropy(
    x: torch.Tensor, w: torch.Tensor | None = None, jitter: float = 1e-5
) -> torch.Tensor:
    """Entropy ``[M]`` of the Gaussian fitted to each task's samples ``x [M, C, A]``.

    Mean and unbiased covariance over the C samples (valid ones when ``w [M, C, 1]`` is given);
    H = 0.5 * logdet(2 pi e (Sigma + jitter I)), via a batched Cholesky factor.
    """
    a = x.shape[-1]
    if w is None:
        n = torch.full((x.shape[0], 1, 1), float(x.shape[1]), device=x.device, dtype=x.dtype)
        mean = x.mean(1, keepdim=True)
        diff = x - mean
    else:
        n = w.sum(1, keepdim=True)
        mean = (x * w).sum(1, keepdim=True) / n.clamp_min(1.0)
        diff = (x - mean) * w
    cov = diff.transpose(1, 2) @ diff / (n - 1).clamp_min(1.0)  # [M, A, A]
    cov = cov + jitter * torch.eye(a, device=x.device, dtype=x.dtype)
    # cholesky_ex: no host sync to check for errors (the graphed step captures this); a matrix
    # that is not positive definite gives NaN, which the step's finiteness check reports
    chol, info = torch.linalg.cholesky_ex(cov)
    logdet = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    logdet = torch.where(info == 0, logdet, torch.full_like(logdet, float("nan")))
    return 0.5 * (a * math.log(2 * math.pi * math.e) + logdet)


class GANEntropyLoss:
    """ER-TRL: maximise H(pi_beta | Z) through a conditional GAN of the behavior policy."""

    def __init__(self, options: GANEntropyOptions, problem: Problem):
        self.options = options
        self.device = problem.device
        self.weight = options.weight
        ds, da, dz = problem.obs_dim, problem.act_dim, problem.latent_dim
        self.noise_dim = options.noise_dim
        init = problem.init
        self.generator = mlp(ds + dz + options.noise_dim, options.generator_hidden, da, init=init)
        self.generator = self.generator.to(self.device)
        self.discriminator = mlp(ds + da + dz, options.discriminator_hidden, 1, init=init)
        self.discriminator = self.discriminator.to(self.device)
        self.g_optimizer = torch.optim.Adam(self.generator.parameters(), lr=options.lr)
        self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=options.lr)

    # --- the two networks ---------------------------------------------------------------------
    def generate(self, obs: torch.Tensor, z_b: torch.Tensor, params: dict | None = None):
        """Actions ``[M, C, A]`` for states ``obs`` and per-transition ``z_b``, fresh noise."""
        noise = torch.randn(*obs.shape[:-1], self.noise_dim, device=obs.device, dtype=obs.dtype)
        inp = torch.cat([obs, z_b, noise], dim=-1)
        out = (
            self.generator(inp) if params is None else functional_call(self.generator, params, inp)
        )
        return torch.tanh(out)

    def discriminator_logits(self, obs, actions, z_b) -> torch.Tensor:
        return self.discriminator(torch.cat([obs, actions, z_b], dim=-1))

    def discriminator_prob(self, obs, actions, z_b) -> torch.Tensor:
        """D(s, a, z) in [0, 1]: the probability that (s, a) is a dataset transition."""
        return torch.sigmoid(self.discriminator_logits(obs, actions, z_b))

    @staticmethod
    def broadcast(z: torch.Tensor, t: Transitions) -> torch.Tensor:
        """The task's z ``[M, L]`` repeated for each of its transitions: ``[M, B, L]``."""
        return StepBatch.broadcast(z, t.obs.shape[1])

    # --- the protocol -------------------------------------------------------------------------
    def update(self, batch: StepBatch) -> dict:
        """``gan_steps`` standard GAN updates (D then G, BCE) on the RL batch's (s, a) and z."""
        rl = batch.rl
        obs, real = rl.obs, rl.actions
        z_b = self.broadcast(batch.z.detach(), rl)
        w = rl.weights()
        logs: dict = {}
        for _ in range(self.options.gan_steps):
            fake = self.generate(obs, z_b)
            d_loss = _bce(self.discriminator_logits(obs, real, z_b), 1.0, w) + _bce(
                self.discriminator_logits(obs, fake.detach(), z_b), 0.0, w
            )
            self.d_optimizer.zero_grad(set_to_none=True)
            d_loss.backward()
            self.d_optimizer.step()
            # the generator's loss under the just-updated D, on the same fake actions (authors)
            g_loss = _bce(self.discriminator_logits(obs, fake, z_b), 1.0, w)
            self.g_optimizer.zero_grad(set_to_none=True)
            self.d_optimizer.zero_grad(set_to_none=True)
            g_loss.backward()
            self.g_optimizer.step()
            logs = {"gan/d_loss": d_loss.detach(), "gan/g_loss": g_loss.detach()}
        self.d_optimizer.zero_grad(set_to_none=True)  # leave no stale gradients in D
        return logs

    def encoder_loss(self, batch: StepBatch):
        """-weight * mean over tasks of the entropy of a Gaussian fitted to G(s, z, noise)."""
        rl = batch.rl
        frozen = {k: v.detach() for k, v in self.generator.named_parameters()}
        fake = self.generate(rl.obs, self.broadcast(batch.z, rl), params=frozen)
        entropy = gaussian_entropy(fake, rl.weights(), self.options.jitter)  # [M]
        mean_entropy = entropy.mean()
        return -self.weight * mean_entropy, {"gan/entropy": mean_entropy.detach()}

    def joint_parameters(self) -> list[torch.nn.Parameter]:
        return []

    def state_dict(self) -> dict:
        return {
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "g_optimizer": self.g_optimizer.state_dict(),
            "d_optimizer": self.d_optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.g_optimizer.load_state_dict(state["g_optimizer"])
        self.d_optimizer.load_state_dict(state["d_optimizer"])

    @classmethod
    def ensemble(cls, members: list[GANEntropyLoss], rng) -> GANEntropyLossEnsemble:
        return GANEntropyLossEnsemble(members, rng)


class GANEntropyLossEnsemble:
    """K seeds' ``GANEntropyLoss`` (``ertrl_bench.ensemble``): G and D are ``EnsembleMLP`` networks,
    each member's noise comes from its own stream (``rng``, an ``ensemble.MemberRNG``)."""

    def __init__(self, members: list[GANEntropyLoss], rng):
        first = members[0]
        self.options, self.weight, self.noise_dim = first.options, first.weight, first.noise_dim
        self.rng = rng
        self.generator = EnsembleMLP([m.generator for m in members])
        self.discriminator = EnsembleMLP([m.discriminator for m in members])
        self.g_optimizer = StackedAdam([m.g_optimizer for m in members], self.generator.links)
        self.d_optimizer = StackedAdam([m.d_optimizer for m in members], self.discriminator.links)

    def generate(self, obs: torch.Tensor, z_b: torch.Tensor, frozen: bool = False):
        shape = (*obs.shape[1:-1], self.noise_dim)
        noise = self.rng.draw(
            lambda g: torch.randn(shape, device=obs.device, dtype=obs.dtype, generator=g)
        )
        return torch.tanh(
            self.generator(torch.cat([obs, z_b, noise], dim=-1), detach_weights=frozen)
        )

    def _bce(self, logits: torch.Tensor, target: float, w) -> torch.Tensor:
        t = torch.full_like(logits, target)
        return per_member_mean(F.binary_cross_entropy_with_logits(logits, t, reduction="none"), w)

    def _d(self, obs, actions, z_b) -> torch.Tensor:
        return self.discriminator(torch.cat([obs, actions, z_b], dim=-1))

    def update(self, batch: StepBatch) -> dict:
        rl = batch.rl
        obs, real = rl.obs, rl.actions
        z_b = batch.z.detach()[:, :, None, :].expand(-1, -1, obs.shape[2], -1)
        w = rl.weights()
        logs: dict = {}
        for _ in range(self.options.gan_steps):
            fake = self.generate(obs, z_b)
            d_loss = self._bce(self._d(obs, real, z_b), 1.0, w) + self._bce(
                self._d(obs, fake.detach(), z_b), 0.0, w
            )
            self.d_optimizer.zero_grad(set_to_none=True)
            d_loss.sum().backward()
            self.d_optimizer.step()
            g_loss = self._bce(self._d(obs, fake, z_b), 1.0, w)
            self.g_optimizer.zero_grad(set_to_none=True)
            self.d_optimizer.zero_grad(set_to_none=True)
            g_loss.sum().backward()
            self.g_optimizer.step()
            logs = {"gan/d_loss": d_loss.detach(), "gan/g_loss": g_loss.detach()}
        self.d_optimizer.zero_grad(set_to_none=True)
        return logs

    def encoder_loss(self, batch: StepBatch):
        rl = batch.rl
        k, m, b = rl.obs.shape[:3]
        z_b = batch.z[:, :, None, :].expand(-1, -1, b, -1)
        fake = self.generate(rl.obs, z_b, frozen=True)  # [K, M, B, A]
        w = rl.weights()
        flat_w = None if w is None else w.reshape(k * m, b, 1)
        entropy = gaussian_entropy(fake.reshape(k * m, b, -1), flat_w, self.options.jitter)
        mean_entropy = entropy.reshape(k, m).mean(1)
        return -self.weight * mean_entropy, {"gan/entropy": mean_entropy.detach()}

    def joint_links(self) -> list:
        return []

    def write_back(self) -> None:
        for part in (self.generator, self.discriminator, self.g_optimizer, self.d_optimizer):
            part.write_back()
