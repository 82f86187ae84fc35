"""The plugin module named by the ``ertrl_bench`` entry point in ``pyproject.toml``.

``td3bc`` is TD3+BC (Fujimoto & Gu, 2021) conditioned on the task representation ``z``: a
deterministic actor ``pi(s, z)``, twin critics ``Q(s, a, z)`` with target networks, and the actor
loss ``-lambda * Q(s, pi(s, z), z) + ||pi(s, z) - a||^2`` with ``lambda = alpha / mean|Q|``.
A small, fast alternative to BRAC for trying an encoder loss.

Copy this file to write your own backbone (docs/plugins.md, "Backbone"): an options model
(``Strict``), a class built as ``factory(options, problem)`` with ``update``, ``act``,
``state_dict`` and ``load_state_dict`` (all ``update`` changes: a killed run resumes from it), and the ``register_backbones`` hook at the bottom. The one rule that matters:
``z_q`` goes into the critic's loss only (it carries the encoder's gradient for Offline PEARL),
``z`` (detached) everywhere else.

``update`` does the same work every step, as ``train: {cuda_graph: true}`` requires
(docs/plugins.md): no branch on a step counter or a tensor's value, no host synchronisation.
So the actor and the target networks step every step, with the critics; TD3's delayed actor
update (every second step) would be such a branch and is left out.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveFloat, PositiveInt
from torch import nn

from ertrl_bench.options import Strict
from ertrl_bench.plugins import hookimpl


class TD3BCOptions(Strict):
    """Options of ``backbone: {type: td3bc, params: {...}}`` in a suite."""

    hidden: tuple[PositiveInt, ...] = Field((256, 256), description="Hidden layers of all nets.")
    lr: PositiveFloat = Field(3e-4, description="Adam learning rate of actor and critics.")
    alpha: PositiveFloat = Field(
        2.5, description="Weight of the RL term against behaviour cloning (lambda = alpha/|Q|)."
    )
    discount: float = Field(0.99, gt=0, le=1, description="Discount factor gamma.")
    tau: PositiveFloat = Field(0.005, le=1, description="Polyak rate of the target networks.")
    policy_noise: float = Field(0.2, ge=0, description="Std of the target policy smoothing noise.")
    noise_clip: float = Field(0.5, ge=0, description="Clip of the target policy smoothing noise.")


def _mlp(inp: int, hidden: tuple[int, ...], out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(inp, h), nn.ReLU()]
        inp = h
    return nn.Sequential(*layers, nn.Linear(inp, out))


class TD3BC:
    """``update(batch, z_q, z, sample_rl=None) -> logs``; ``act(obs, z, deterministic)``."""

    def __init__(self, options: TD3BCOptions, problem):
        o = self.o = options
        ds, da, dz = problem.obs_dim, problem.act_dim, problem.latent_dim
        dev = problem.device
        self.actor = _mlp(ds + dz, o.hidden, da).to(dev)
        self.q1 = _mlp(ds + da + dz, o.hidden, 1).to(dev)
        self.q2 = _mlp(ds + da + dz, o.hidden, 1).to(dev)
        self.targets = [
            copy.deepcopy(n).requires_grad_(False) for n in (self.actor, self.q1, self.q2)
        ]
        self.opt_actor = torch.optim.Adam(self.actor.parameters(), lr=o.lr)
        self.opt_q = torch.optim.Adam([*self.q1.parameters(), *self.q2.parameters()], lr=o.lr)

    def _pi(self, net, s, z):
        return torch.tanh(net(torch.cat([s, z], -1)))

    def update(self, batch, z_q: torch.Tensor, z: torch.Tensor, sample_rl=None) -> dict:
        """One step on ``batch`` (``obs [M, B, ds]``, ``rewards``/``dones [M, B, 1]``).

        ``z [M, L]`` is detached; ``z_q`` has the same values and may carry gradient to the
        encoder: use it in the critic's loss only. ``sample_rl`` (a fresh RL batch of the same
        tasks) is not needed here.
        """
        o, n = self.o, batch.obs.shape[1]
        zq = z_q[:, None, :].expand(-1, n, -1)  # [M, B, L]: each transition gets its task's z
        zd = z[:, None, :].expand(-1, n, -1)
        s, a, r, s2, done = batch.obs, batch.actions, batch.rewards, batch.next_obs, batch.dones
        actor_t, q1_t, q2_t = self.targets
        with torch.no_grad():
            noise = (torch.randn_like(a) * o.policy_noise).clamp(-o.noise_clip, o.noise_clip)
            a2 = (self._pi(actor_t, s2, zd) + noise).clamp(-1.0, 1.0)
            x2 = torch.cat([s2, a2, zd], -1)
            target = r + o.discount * (1.0 - done) * torch.min(q1_t(x2), q2_t(x2))
        x = torch.cat([s, a, zq], -1)
        critic_loss = F.mse_loss(self.q1(x), target) + F.mse_loss(self.q2(x), target)
        self.opt_q.zero_grad(set_to_none=True)
        critic_loss.backward()  # through z_q, this also reaches the encoder (Offline PEARL)
        self.opt_q.step()

        # the actor and the targets step every step: the same work each step (no branch on a
        # step counter), so the whole update can be captured as one CUDA graph
        pi = self._pi(self.actor, s, zd)
        q = self.q1(torch.cat([s, pi, zd], -1))
        lam = o.alpha / q.abs().mean().detach().clamp_min(1e-6)
        bc = F.mse_loss(pi, a)
        actor_loss = -lam * q.mean() + bc
        self.opt_actor.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.opt_actor.step()
        with torch.no_grad():
            for net, tgt in zip((self.actor, self.q1, self.q2), self.targets, strict=True):
                for p, pt in zip(net.parameters(), tgt.parameters(), strict=True):
                    pt.lerp_(p, o.tau)
        return {
            "td3bc/critic_loss": critic_loss.detach(),
            "td3bc/actor_loss": actor_loss.detach(),
            "td3bc/bc": bc.detach(),
        }

    @torch.no_grad()
    def act(self, obs: torch.Tensor, z: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """Actions ``[E, da]`` in [-1, 1]; exploration noise 0.1 when not deterministic."""
        a = self._pi(self.actor, obs, z)
        if not deterministic:
            a = (a + 0.1 * torch.randn_like(a)).clamp(-1.0, 1.0)
        return a

    def _stateful(self) -> dict:
        actor_t, q1_t, q2_t = self.targets
        return {
            "actor": self.actor,
            "q1": self.q1,
            "q2": self.q2,
            "actor_target": actor_t,
            "q1_target": q1_t,
            "q2_target": q2_t,
            "opt_actor": self.opt_actor,
            "opt_q": self.opt_q,
        }

    def state_dict(self) -> dict:
        """Everything ``update`` changes (a checkpoint resumes from it): networks, targets and
        optimizers."""
        return {k: v.state_dict() for k, v in self._stateful().items()}

    def load_state_dict(self, state: dict) -> None:
        for k, v in self._stateful().items():
            v.load_state_dict(state[k])


@hookimpl
def register_backbones(register):
    register("td3bc", TD3BC, TD3BCOptions)
