"""The BRAC step as it was before fusion (verbatim copy of commit d620537).

Kept only as the "today" baseline of ``test_bench_step.py``: a different algorithm (log-alpha
Adam, one batch for the 3 c-steps, BRAC's gradient penalty) and the unfused computation.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, PositiveFloat, PositiveInt

from ertrl_bench.batch import Transitions
from ertrl_bench.nn import mlp, soft_update, tanh_gaussian_sample
from ertrl_bench.problem import Problem


class BRACOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hidden: tuple[PositiveInt, ...] = (256, 256, 256)
    lr: PositiveFloat = 3e-4  # policy, Q, V
    c_lr: PositiveFloat = 1e-4
    c_steps: PositiveInt = 3
    reward_scale: PositiveFloat = 5.0
    discount: float = 0.99
    tau: PositiveFloat = 0.005
    alpha_init: PositiveFloat | None = None  # None -> family value (500; 50 Cheetah/Hopper/Walker)
    alpha_max: PositiveFloat | None = None  # None -> family value (2000; 10000 Hopper/Walker)
    alpha_lr: PositiveFloat = 1e-3  # ours: PAPER.md gives no value
    target_divergence: float = 0.05
    gp_weight: float = 5.0  # BRAC's gradient-penalty weight on the dual critic


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1, x.shape[-1])


class BRAC:
    def __init__(self, options: BRACOptions, problem: Problem):
        o = self.o = options
        ds, da, dz = problem.obs_dim, problem.act_dim, problem.latent_dim
        dev = self.device = problem.device
        self.policy = mlp(ds + dz, o.hidden, 2 * da, init="torch").to(dev)
        self.q1 = mlp(ds + da + dz, o.hidden, 1, init="torch").to(dev)
        self.q2 = mlp(ds + da + dz, o.hidden, 1, init="torch").to(dev)
        self.v = mlp(ds + dz, o.hidden, 1, init="torch").to(dev)
        self.v_target = copy.deepcopy(self.v).requires_grad_(False)
        self.c = mlp(ds + da + dz, o.hidden, 1, init="torch").to(dev)
        hp = {"alpha_init": 500.0, "alpha_max": 2000.0}
        hp.update(getattr(problem.family, "component_defaults", {}).get("brac", {}))
        self.alpha_max = o.alpha_max if o.alpha_max is not None else hp["alpha_max"]
        alpha_init = o.alpha_init if o.alpha_init is not None else hp["alpha_init"]
        self.log_alpha = torch.tensor(math.log(alpha_init), device=dev, requires_grad=True)
        self.opt_policy = torch.optim.Adam(self.policy.parameters(), lr=o.lr)
        self.opt_q = torch.optim.Adam([*self.q1.parameters(), *self.q2.parameters()], lr=o.lr)
        self.opt_v = torch.optim.Adam(self.v.parameters(), lr=o.lr)
        self.opt_c = torch.optim.Adam(self.c.parameters(), lr=o.c_lr)
        self.opt_alpha = torch.optim.Adam([self.log_alpha], lr=o.alpha_lr)

    # --- pieces --------------------------------------------------------------------------------
    def _pi(self, s, z, deterministic=False):
        mean, log_std = self.policy(torch.cat([s, z], -1)).chunk(2, -1)
        return tanh_gaussian_sample(mean, log_std, deterministic)

    def _c(self, s, a, z):
        return self.c(torch.cat([s, a, z], -1)).squeeze(-1)

    def _kl_dual(self, s, a_pi, a_data, z):
        """Per-sample dual estimate of KL(pi || pi_beta): E_pi[log g] - E_beta[g] + 1, g = softplus(c)."""
        return (
            torch.log(F.softplus(self._c(s, a_pi, z)) + 1e-8)
            - F.softplus(self._c(s, a_data, z))
            + 1.0
        )

    def _gradient_penalty(self, s, a_pi, a_data, z):
        eps = torch.rand(a_pi.shape[0], 1, device=a_pi.device)
        a = (eps * a_pi + (1 - eps) * a_data).requires_grad_(True)
        (grad,) = torch.autograd.grad(self._c(s, a, z).sum(), a, create_graph=True)
        return F.relu(grad.norm(dim=-1) - 1.0).pow(2).mean()

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp().clamp(max=self.alpha_max)

    # --- protocol ------------------------------------------------------------------------------
    def update(self, batch: Transitions, z_q: torch.Tensor, z: torch.Tensor) -> dict:
        o = self.o
        m, b = batch.obs.shape[:2]
        s, a, s2 = _flat(batch.obs), _flat(batch.actions), _flat(batch.next_obs)
        r, d = batch.rewards.reshape(-1), batch.dones.reshape(-1)
        zr = z[:, None].expand(m, b, z.shape[-1]).reshape(m * b, -1)
        zq = z_q[:, None].expand(m, b, z_q.shape[-1]).reshape(m * b, -1)

        # 1. dual critic c: maximise the KL estimate (+ gradient penalty)
        with torch.no_grad():
            a_pi_fixed, _ = self._pi(s, zr)
        for _ in range(o.c_steps):
            est = self._kl_dual(s, a_pi_fixed, a, zr).mean()
            c_loss = -est + o.gp_weight * self._gradient_penalty(s, a_pi_fixed, a, zr)
            self.opt_c.zero_grad(set_to_none=True)
            c_loss.backward()
            self.opt_c.step()

        # 2. Q: TD to the target V (z_q may train the encoder: Offline PEARL)
        with torch.no_grad():
            target = o.reward_scale * r + o.discount * (1 - d) * self.v_target(
                torch.cat([s2, zr], -1)
            ).squeeze(-1)
        sa_z = torch.cat([s, a, zq], -1)
        q_loss = F.mse_loss(self.q1(sa_z).squeeze(-1), target) + F.mse_loss(
            self.q2(sa_z).squeeze(-1), target
        )
        self.opt_q.zero_grad(set_to_none=True)
        q_loss.backward()
        self.opt_q.step()

        # 3. V and policy from fresh policy actions
        a_new, logp = self._pi(s, zr)
        sa_new = torch.cat([s, a_new, zr], -1)
        q_new = torch.min(self.q1(sa_new), self.q2(sa_new)).squeeze(-1)
        v_pred = self.v(torch.cat([s, zr], -1)).squeeze(-1)
        v_loss = F.mse_loss(v_pred, (q_new - logp).detach())
        self.opt_v.zero_grad(set_to_none=True)
        v_loss.backward()
        self.opt_v.step()

        div = self._kl_dual(s, a_new, a, zr)
        alpha = self.alpha.detach()
        policy_loss = (logp - q_new + alpha * div).mean()
        self.opt_policy.zero_grad(set_to_none=True)
        policy_loss.backward()
        self.opt_policy.step()

        # 4. alpha towards the target divergence (clipped at alpha_max)
        alpha_loss = -self.log_alpha * (div.detach().mean() - o.target_divergence)
        self.opt_alpha.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.opt_alpha.step()
        soft_update(self.v_target, self.v, o.tau)
        return {
            "brac/q_loss": q_loss.detach(),
            "brac/v_loss": v_loss.detach(),
            "brac/policy_loss": policy_loss.detach(),
            "brac/c_loss": c_loss.detach(),
            "brac/divergence": div.detach().mean(),
            "brac/alpha": alpha,
        }

    @torch.no_grad()
    def act(self, obs: torch.Tensor, z: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        a, _ = self._pi(obs, z, deterministic)
        return a

    def state_dict(self) -> dict:
        return {
            k: getattr(self, k).state_dict() for k in ("policy", "q1", "q2", "v", "v_target", "c")
        } | {"log_alpha": self.log_alpha.detach().clone()}
