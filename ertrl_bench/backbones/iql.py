"""IQL (Implicit Q-Learning, Kostrikov et al. 2022) conditioned on z: a second built-in backbone.

Not the paper's: the paper (and every method in it) rides on BRAC. IQL is here to ask whether a
method's gain over FOCAL survives a modern backbone (docs/departures.md). Written from the IQL
paper and CORL's single-file implementation (read, not copied); per train step:

* V(s, z) by expectile regression on the target twin Q's minimum at the data action:
  ``L_V = mean(|expectile - 1[u < 0]| * u^2)``, ``u = min_j Q'_j(s, a, z) - V(s, z)``;
* the twin Q(s, a, z) by TD to the value of the next state (V before its step, as CORL):
  ``L_Q = mean_j mean((Q_j(s, a, z_q) - (reward_scale * r + discount * (1 - d) * V(s', z)))^2)``;
* the actor by advantage-weighted regression: ``L_pi = mean(min(exp(temperature * u), 100) *
  -log pi(a | s, z))`` with the same ``u`` (no gradient through it); pi is a Gaussian with a
  tanh mean and a learned state-independent log-std in [-5, 2] (the IQL paper's MuJoCo actor);
* the target Q moves towards Q by Polyak averaging (``tau``).

z is detached everywhere except in Q's own loss, where ``z_q`` carries the encoder's gradient
when the method trains its encoder through Q (Offline PEARL), as BRAC does. Defaults are the IQL
paper's MuJoCo settings (expectile 0.7, temperature 3, discount 0.99, tau 0.005, lr 3e-4, 2 x 256
networks). Left out, so the step stays the same work every step (``train: {cuda_graph: true}``)
and knows nothing of the schedule: the cosine decay of the actor's learning rate, and the IQL
paper's MuJoCo reward normalisation by the dataset's return range (``reward_scale`` is a fixed
factor, 1 by default). Networks start as every built-in network (``train.init``, rlkit's by
default: ``ertrl_bench.nn``). ``train.compile`` leaves it eager (it has no ``compile()``).

Seed groups (``--executor-opt seeds_per_step=K``, ``ertrl_bench.ensemble``): ``IQL.ensemble``
stacks K seeds' IQL into one ``IQLEnsemble`` (the losses per member, the log-std ``[K, 1, A]``),
whose numbers equal the K runs alone within float rounding (``tests/test_seed_batch.py``).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from ertrl_bench.backbones.options import IQLOptions
from ertrl_bench.batch import Transitions
from ertrl_bench.ensemble import (
    EnsembleMLP,
    ParamLink,
    StackedAdam,
    broadcast_members,
    flat_members,
)
from ertrl_bench.nn import POLICY_HEAD_BOUND, ensemble_mlp, mlp, soft_update
from ertrl_bench.problem import Problem


def expectile_loss(u: torch.Tensor, expectile: float) -> torch.Tensor:
    """``mean(|expectile - 1[u < 0]| * u^2)``: V below Q (u > 0) costs ``expectile``, above it
    ``1 - expectile``, so V tends to an upper expectile of Q over the data's actions."""
    weight = torch.where(u < 0, 1.0 - expectile, expectile)
    return (weight * u.pow(2)).mean()


def _step_logs(v_loss, q_loss, policy_loss, weight) -> dict:
    """One IQL step's log entries (the same keys for a run alone and a seed group)."""
    return {
        "iql/v_loss": v_loss.detach(),
        "iql/q_loss": q_loss.detach(),
        "iql/policy_loss": policy_loss.detach(),
        "iql/weight": weight,
    }


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1, x.shape[-1])


def _broadcast(z: torch.Tensor, b: int) -> torch.Tensor:
    """Task representations ``[M, L]`` repeated for each of a task's ``b`` rows: ``[M * b, L]``."""
    return z[:, None].expand(z.shape[0], b, z.shape[-1]).reshape(-1, z.shape[-1])


class IQL:
    """IQL on z: expectile V, twin Q with a target, advantage-weighted Gaussian actor (ours)."""

    def __init__(self, options: IQLOptions, problem: Problem):
        o = self.o = options
        ds, da, dz = problem.obs_dim, problem.act_dim, problem.latent_dim
        dev = problem.device
        init = problem.init
        self.policy = mlp(ds + dz, o.hidden, da, init=init, out_bound=POLICY_HEAD_BOUND).to(dev)
        self.log_std = nn.Parameter(torch.zeros(da, device=dev))  # state-independent
        self.q = ensemble_mlp(2, ds + da + dz, o.hidden, 1, init=init).to(dev)  # twin Q, fused
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.v = mlp(ds + dz, o.hidden, 1, init=init).to(dev)
        self.opt_policy = torch.optim.Adam([*self.policy.parameters(), self.log_std], lr=o.lr)
        self.opt_q = torch.optim.Adam(self.q.parameters(), lr=o.lr)
        self.opt_v = torch.optim.Adam(self.v.parameters(), lr=o.lr)

    # --- pieces --------------------------------------------------------------------------------
    def _mean_log_std(self, sz: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = torch.tanh(self.policy(sz))
        return mean, self.log_std.clamp(self.o.log_std_min, self.o.log_std_max).expand_as(mean)

    def _q2(self, net: nn.Module, sa_z: torch.Tensor) -> torch.Tensor:
        """Both Q nets of ``net`` in one ensemble pass: ``[2, N]``."""
        return net(sa_z.expand(2, *sa_z.shape)).squeeze(-1)

    def log_prob(self, sz: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """``log pi(a | s, z)`` of the Gaussian actor, summed over action dimensions: ``[N]``."""
        mean, log_std = self._mean_log_std(sz)
        return (
            -0.5 * ((a - mean) / log_std.exp()).pow(2) - log_std - 0.5 * math.log(2 * math.pi)
        ).sum(-1)

    # --- the three losses ----------------------------------------------------------------------
    def losses(self, s, a, s2, r, d, z, zq):
        """``(v_loss, q_loss, policy_loss, weights)`` on flat rows (``z``: detached, ``zq``: the
        critic's z). Each loss reaches only its own network (and the encoder through ``zq``)."""
        o = self.o
        sz = torch.cat([s, z], -1)
        with torch.no_grad():
            q_min = self._q2(self.q_target, torch.cat([s, a, z], -1)).min(0).values
            v_next = self.v(torch.cat([s2, z], -1)).squeeze(-1)
            target = o.reward_scale * r + o.discount * (1.0 - d) * v_next
        u = q_min - self.v(sz).squeeze(-1)
        v_loss = expectile_loss(u, o.expectile)
        q = self._q2(self.q, torch.cat([s, a, zq], -1))
        q_loss = (F.mse_loss(q[0], target) + F.mse_loss(q[1], target)) / 2
        weights = torch.exp(o.temperature * u.detach()).clamp(max=o.max_weight)
        policy_loss = (weights * -self.log_prob(sz, a)).mean()
        return v_loss, q_loss, policy_loss, weights

    # --- protocol ------------------------------------------------------------------------------
    def update(self, batch: Transitions, z_q: torch.Tensor, z: torch.Tensor) -> dict:
        """One IQL step on ``batch`` ``[M, B, ...]``: V, Q and the actor, then the target Q."""
        b = batch.obs.shape[1]
        s, a, s2 = _flat(batch.obs), _flat(batch.actions), _flat(batch.next_obs)
        r, d = batch.rewards.reshape(-1), batch.dones.reshape(-1)
        v_loss, q_loss, policy_loss, weights = self.losses(
            s, a, s2, r, d, _broadcast(z, b), _broadcast(z_q, b)
        )
        self._step(v_loss, q_loss, policy_loss)
        return _step_logs(v_loss, q_loss, policy_loss, weights.mean())

    def _step(self, v_loss, q_loss, policy_loss) -> None:
        """The optimizers' step on the losses (scalars, or ``[K]`` per member: their sum), then
        the target Q."""
        for opt in (self.opt_v, self.opt_q, self.opt_policy):
            opt.zero_grad(set_to_none=True)
        # one backward: the three losses share no network (V's target and the weights are
        # detached), and Q's loss alone reaches the encoder, through z_q
        (v_loss + q_loss + policy_loss).sum().backward()
        for opt in (self.opt_v, self.opt_q, self.opt_policy):
            opt.step()
        soft_update(self.q_target, self.q, self.o.tau)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, z: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """The Gaussian's mean (in [-1, 1]), or a sample of it clipped to [-1, 1]."""
        mean, log_std = self._mean_log_std(torch.cat([obs, z], -1))
        if deterministic:
            return mean
        return (mean + log_std.exp() * torch.randn_like(mean)).clamp(-1.0, 1.0)

    _NETS = ("policy", "q", "q_target", "v")
    _OPTS = ("opt_policy", "opt_q", "opt_v")

    def state_dict(self) -> dict:
        """Networks, the actor's log-std and the optimizers' moments: a run resumes exactly."""
        state = {k: getattr(self, k).state_dict() for k in (*self._NETS, *self._OPTS)}
        return state | {"log_std": self.log_std.detach().clone()}

    def load_state_dict(self, state: dict) -> None:
        for k in (*self._NETS, *self._OPTS):
            getattr(self, k).load_state_dict(state[k])
        with torch.no_grad():
            self.log_std.copy_(state["log_std"])

    @classmethod
    def ensemble(cls, members: list[IQL], rng) -> IQLEnsemble:
        return IQLEnsemble(members, rng)


class IQLEnsemble(IQL):
    """K seeds' ``IQL`` as one (``ertrl_bench.ensemble``): every network an ``EnsembleMLP``
    (the twin Q nets of K members: one ensemble of 2K), the actor's log-std ``[K, 1, A]``,
    every optimizer a ``StackedAdam``. Every loss is computed per member ``[K]`` (the means
    ``IQL`` takes, per member) and the *sum* is back-propagated, so each member's gradient is
    its own. Logs are ``[K]``. The step draws no random numbers (``rng`` is kept for the
    contract). Its state lives in the members: ``write_back`` puts it there (their
    ``state_dict`` / ``act`` are the run's)."""

    def __init__(self, members: list[IQL], rng):
        first = members[0]
        self.o, self.rng, self.members = first.o, rng, members
        for name in self._NETS:
            setattr(self, name, EnsembleMLP([getattr(m, name) for m in members]))
        self.q_target.requires_grad_(False)
        self.log_std = nn.Parameter(
            torch.stack([m.log_std.detach() for m in members])[:, None].clone()
        )
        self._log_std_link = ParamLink(self.log_std, [m.log_std for m in members], "bias")
        links = {
            "opt_policy": [*self.policy.links, self._log_std_link],  # IQL's order: net, log-std
            "opt_q": self.q.links,
            "opt_v": self.v.links,
        }
        for opt in self._OPTS:
            setattr(self, opt, StackedAdam([getattr(m, opt) for m in members], links[opt]))

    def write_back(self) -> None:
        for name in self._NETS:
            getattr(self, name).write_back()
        with torch.no_grad():
            for k, p in enumerate(self._log_std_link.members):
                p.copy_(self._log_std_link.member_view(self.log_std, k))
        for name in self._OPTS:
            getattr(self, name).write_back()

    def _q2(self, net: nn.Module, sa_z: torch.Tensor) -> torch.Tensor:
        """Both Q nets of ``net`` for each member: ``[K, 2, N]``."""
        k = sa_z.shape[0]
        return net(sa_z[:, None].expand(k, 2, *sa_z.shape[1:])).squeeze(-1)

    def losses(self, s, a, s2, r, d, z, zq):
        """``IQL.losses`` on ``[K, N, ...]`` rows: each loss ``[K]``, the weights ``[K, N]``."""
        o = self.o
        sz = torch.cat([s, z], -1)
        with torch.no_grad():
            q_min = self._q2(self.q_target, torch.cat([s, a, z], -1)).min(1).values
            v_next = self.v(torch.cat([s2, z], -1)).squeeze(-1)
            target = o.reward_scale * r + o.discount * (1.0 - d) * v_next
        u = q_min - self.v(sz).squeeze(-1)
        v_loss = (torch.where(u < 0, 1.0 - o.expectile, o.expectile) * u.pow(2)).mean(1)
        q = self._q2(self.q, torch.cat([s, a, zq], -1))
        q_loss = ((q[:, 0] - target).pow(2).mean(1) + (q[:, 1] - target).pow(2).mean(1)) / 2
        weights = torch.exp(o.temperature * u.detach()).clamp(max=o.max_weight)
        policy_loss = (weights * -self.log_prob(sz, a)).mean(1)
        return v_loss, q_loss, policy_loss, weights

    def update(self, batch: Transitions, z_q: torch.Tensor, z: torch.Tensor) -> dict:
        """One IQL step of every member on ``batch`` ``[K, M, B, ...]``; logs ``[K]``."""
        k, b = batch.obs.shape[0], batch.obs.shape[2]
        s, a = flat_members(batch.obs), flat_members(batch.actions)
        s2 = flat_members(batch.next_obs)
        r, d = batch.rewards.reshape(k, -1), batch.dones.reshape(k, -1)
        v_loss, q_loss, policy_loss, weights = self.losses(
            s, a, s2, r, d, broadcast_members(z, b), broadcast_members(z_q, b)
        )
        self._step(v_loss, q_loss, policy_loss)
        return _step_logs(v_loss, q_loss, policy_loss, weights.mean(1))
