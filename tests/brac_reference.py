"""The straightforward (unfused) computation of the BRAC step, kept as a reference.

Same algorithm, options and random draws as ``brac.py`` (docs/paper.md "Meta-training"), written
the way the step was first written: two separate Q networks, one forward pass of the dual critic
per set of actions, every loss back-propagated into every network it touches. It is what the
fused step is tested against (``tests/test_brac.py``: equal within float tolerance, same weights)
and the naive baseline of the step benchmark (``benchmarks/test_bench_step.py``). Not registered
as a component.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from ertrl_bench.backbones.brac import BRAC, _broadcast, _flat, kl_dual, output_penalty
from ertrl_bench.nn import soft_update, tanh_gaussian_from_noise
from ertrl_bench.problem import Problem


class ReferenceBRAC:
    """Unfused BRAC. ``from_fused`` copies a ``BRAC``'s weights (its ensemble Q split in two)."""

    def __init__(self, fused: BRAC):
        o = self.o = fused.o
        self.alpha_max = fused.alpha_max
        self.policy = copy.deepcopy(fused.policy)
        self.q1, self.q2 = _split_ensemble(fused.q)
        self.v = copy.deepcopy(fused.v)
        self.v_target = copy.deepcopy(fused.v_target)
        self.c = copy.deepcopy(fused.c)
        self.raw_alpha = fused.raw_alpha.clone()
        self.opt_policy = torch.optim.Adam(self.policy.parameters(), lr=o.lr)
        self.opt_q = torch.optim.Adam([*self.q1.parameters(), *self.q2.parameters()], lr=o.lr)
        self.opt_v = torch.optim.Adam(self.v.parameters(), lr=o.lr)
        self.opt_c = torch.optim.Adam(self.c.parameters(), lr=o.c_lr)

    @classmethod
    def build(cls, options, problem: Problem) -> ReferenceBRAC:
        return cls(BRAC(options, problem))

    def _pi(self, s, z, noise=None):
        mean, log_std = self.policy(torch.cat([s, z], -1)).chunk(2, -1)
        log_std = log_std.clamp(self.o.log_std_min, self.o.log_std_max)
        noise = torch.randn_like(mean) if noise is None else noise
        a, logp = tanh_gaussian_from_noise(mean, log_std, noise)
        return a, logp, mean, log_std

    def _c(self, s, a, z):
        return self.c(torch.cat([s, a, z], -1)).squeeze(-1)

    def update(self, batch, z_q, z, sample_rl=None) -> dict:
        o = self.o
        m, b = batch.obs.shape[:2]
        s, a, s2 = _flat(batch.obs), _flat(batch.actions), _flat(batch.next_obs)
        r, d = batch.rewards.reshape(-1), batch.dones.reshape(-1)
        zr, zq = _broadcast(z, b), _broadcast(z_q, b)

        for _ in range(o.c_steps):
            cb = batch if sample_rl is None else sample_rl()
            zc = _broadcast(z, cb.obs.shape[1])
            sc, ac = _flat(cb.obs), _flat(cb.actions)
            with torch.no_grad():
                a_pi, _, _, _ = self._pi(sc, zc)
            u = torch.rand(a_pi.shape[0], 1, device=a_pi.device, dtype=a_pi.dtype)
            a_intpl = u * a_pi + (1 - u) * ac
            est = kl_dual(self._c(sc, a_pi, zc), self._c(sc, ac, zc)).mean()
            if o.penalty == "output":
                penalty = output_penalty(self._c(sc, a_intpl, zc))
            else:
                a_intpl = a_intpl.requires_grad_(True)
                (g,) = torch.autograd.grad(
                    self._c(sc, a_intpl, zc).sum(), a_intpl, create_graph=True
                )
                penalty = F.relu(torch.sqrt(1e-8 + g.pow(2).sum(-1)) - 1.0).pow(2).mean()
            c_loss = -est + o.gp_weight * penalty
            self.opt_c.zero_grad(set_to_none=True)
            c_loss.backward()
            self.opt_c.step()

        with torch.no_grad():
            v_next = self.v_target(torch.cat([s2, zr], -1)).squeeze(-1)
            target = o.reward_scale * r + o.discount * (1 - d) * v_next
        sa_z = torch.cat([s, a, zq], -1)
        q_loss = F.mse_loss(self.q1(sa_z).squeeze(-1), target) + F.mse_loss(
            self.q2(sa_z).squeeze(-1), target
        )
        self.opt_q.zero_grad(set_to_none=True)
        q_loss.backward()
        self.opt_q.step()

        alpha = self.raw_alpha.clamp(0.0, self.alpha_max)
        a_new, logp, mean, log_std = self._pi(s, zr)
        with torch.no_grad():  # the share of raw log-stds the clamp cuts (logged only)
            raw = self.policy(torch.cat([s, zr], -1)).chunk(2, -1)[1]
            at_clamp = ((raw < o.log_std_min) | (raw > o.log_std_max)).float().mean()
        sa_new = torch.cat([s, a_new, zr], -1)
        q_new = torch.min(self.q1(sa_new), self.q2(sa_new)).squeeze(-1)
        v_loss = F.mse_loss(self.v(torch.cat([s, zr], -1)).squeeze(-1), (q_new - logp).detach())
        self.opt_v.zero_grad(set_to_none=True)
        v_loss.backward()
        self.opt_v.step()

        div = kl_dual(self._c(s, a_new, zr), self._c(s, a, zr))
        reg = o.policy_reg * (mean.pow(2).mean() + log_std.pow(2).mean())
        policy_loss = (logp - q_new + alpha * div).mean() + reg
        self.opt_policy.zero_grad(set_to_none=True)
        policy_loss.backward()
        self.opt_policy.step()

        div_mean = div.detach().mean()
        self.raw_alpha.add_(o.alpha_lr * (div_mean - o.target_divergence))
        soft_update(self.v_target, self.v, o.tau)
        return {
            "brac/q_loss": q_loss.detach(),
            "brac/v_loss": v_loss.detach(),
            "brac/policy_loss": policy_loss.detach(),
            "brac/c_loss": c_loss.detach(),
            "brac/divergence": div_mean,
            "brac/alpha": alpha,
            "brac/log_std_at_clamp": at_clamp,
        }


def _split_ensemble(ens: torch.nn.Sequential) -> tuple[torch.nn.Sequential, torch.nn.Sequential]:
    """Two ``nn.Linear`` MLPs holding members 0 and 1 of an ``ensemble_mlp``'s weights."""
    nets = []
    for e in range(2):
        layers = []
        for layer in ens:
            if isinstance(layer, torch.nn.ReLU):
                layers.append(torch.nn.ReLU())
                continue
            w, bias = layer.weight[e], layer.bias[e, 0]
            lin = torch.nn.Linear(w.shape[0], w.shape[1]).to(w.device)
            with torch.no_grad():
                lin.weight.copy_(w.T)
                lin.bias.copy_(bias)
            layers.append(lin)
        nets.append(torch.nn.Sequential(*layers))
    return nets[0], nets[1]
