"""BRAC-style offline actor-critic conditioned on z (the backbone of FOCAL, CSRO and ER-TRL).

docs/paper.md ("Meta-training"): tanh-Gaussian actor, two Q nets, V net with a target, and a dual
critic c that estimates KL(pi || pi_beta) (BRAC's dual form); the actor is penalised by
alpha * KL with alpha learned towards a target divergence (value penalty off). All MLPs 3 x 256.
The reward is scaled by 5 and the soft-value targets use temperature 1 (PEARL's SAC convention the
authors build on). As the authors ran it:

* alpha is plain SGD on the *raw* alpha with lr 1: ``alpha += mean(divergence) - 0.05`` every
  step; the raw value is unbounded and the value *used* is clipped to ``[0, alpha_max]``;
* each of the 3 c-steps draws a fresh RL batch of the same tasks (``sample_rl``) and fresh
  policy actions;
* the policy loss adds ``1e-3 * mean(mean^2) + 1e-3 * mean(log_std^2)``; log_std in [-20, 0],
  and the log-std head starts within +-1e-3 of 0 (rlkit's init), i.e. at the clamp's upper
  bound: a log-std dimension that starts above 0 on (nearly) every input gets no gradient and
  stays at std 1 (the "clamp trap", docs/departures.md). ``log_std_init_bias`` (ours, off by
  default) starts the log-std head's bias at that value instead (e.g. -1.0), inside the clamp;
  drawing nothing, it leaves every other initial weight, and a seed group's
  (``BRACEnsemble``, built from its members), as they are;
* ``penalty: output`` (default): the authors' "gradient penalty" on c is a penalty on c's
  *output* at actions interpolated between policy and data, ``mean(relu(|c| - 1)^2)``; it keeps
  |c| near 1 and so bounds the KL estimate (a defect that shaped the paper's numbers, so it is
  the default). ``penalty: gradient`` is BRAC's own penalty on the norm of c's gradient w.r.t.
  the action.

The authors' terminal-at-trajectory-end (every trajectory's last transition marked terminal) is
``train.terminals: trajectory_end``, applied where the training data's ``dones`` are built
(``ertrl_bench.batch.TaskDataset``).

Speed (same numbers as the straightforward computation, ``tests/brac_reference.py``; tested): the
two Q nets are one ensemble (``EnsembleLinear``), the dual critic's forward passes of a c-step
are one batched pass, the actor's loss back-propagates only into the actor (``backward(inputs=)``
skips the critics' weight gradients), and c on the data actions of the actor step runs without a
graph. ``compile()`` wraps the loss computations in ``torch.compile``; random numbers are drawn
outside the compiled functions, so compiled and eager steps agree within float tolerance.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ertrl_bench.backbones.options import BRACOptions
from ertrl_bench.batch import Transitions
from ertrl_bench.ensemble import EnsembleMLP, StackedAdam, broadcast_members, flat_members
from ertrl_bench.nn import (
    POLICY_HEAD_BOUND,
    ensemble_mlp,
    mlp,
    soft_update,
    tanh_gaussian_from_noise,
    tune_allocator,
)
from ertrl_bench.problem import Problem

EPS = 1e-8


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1, x.shape[-1])


def _broadcast(z: torch.Tensor, b: int) -> torch.Tensor:
    """Task representations ``[M, L]`` repeated for each of a task's ``b`` rows: ``[M * b, L]``."""
    return z[:, None].expand(z.shape[0], b, z.shape[-1]).reshape(-1, z.shape[-1])


def kl_dual(c_pi: torch.Tensor, c_data: torch.Tensor) -> torch.Tensor:
    """Per-sample dual estimate of KL(pi || pi_beta): log g(pi) - g(beta) + 1, g = softplus(c)."""
    return torch.log(F.softplus(c_pi) + EPS) - F.softplus(c_data) + 1.0


def output_penalty(c_intpl: torch.Tensor) -> torch.Tensor:
    """The authors' penalty: ``mean(relu(sqrt(eps + c^2) - 1)^2)`` on c's *output*."""
    return F.relu(torch.sqrt(EPS + c_intpl.pow(2)) - 1.0).pow(2).mean()


def gradient_penalty(c: torch.nn.Module, s, z, a_intpl) -> torch.Tensor:
    """BRAC's penalty: ``mean(relu(|d c / d a| - 1)^2)`` at the interpolated actions."""
    a_intpl = a_intpl.detach().requires_grad_(True)
    c_int = c(torch.cat([s, a_intpl, z], -1)).squeeze(-1)
    (grad,) = torch.autograd.grad(c_int.sum(), a_intpl, create_graph=True)
    return F.relu(torch.sqrt(EPS + grad.pow(2).sum(-1)) - 1.0).pow(2).mean()


def _step_logs(q_loss, v_loss, policy_loss, c_loss, div_mean, alpha, at_clamp) -> dict:
    """One BRAC step's log entries (the same keys for a run alone and a seed group).

    ``brac/log_std_at_clamp`` is the fraction of the actor's log-std outputs outside
    ``[log_std_min, log_std_max]``: the clamp passes them no gradient, and a run whose fraction
    stays high cannot narrow its policy, so its divergence stays above the target and alpha
    climbs (results/repro-point-robot/NOTES.md, "Why BRAC's alpha climbs in some runs")."""
    return {
        "brac/q_loss": q_loss.detach(),
        "brac/v_loss": v_loss.detach(),
        "brac/policy_loss": policy_loss.detach(),
        "brac/c_loss": c_loss.detach(),
        "brac/divergence": div_mean,
        "brac/alpha": alpha,
        "brac/log_std_at_clamp": at_clamp,
    }


def _outside(raw: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Whether each raw log-std lies outside the clamp (a float mask: no gradient)."""
    return ((raw < lo) | (raw > hi)).to(raw.dtype)


class BRAC:
    def __init__(self, options: BRACOptions, problem: Problem):
        o = self.o = options
        ds, da, dz = problem.obs_dim, problem.act_dim, problem.latent_dim
        dev = self.device = problem.device
        if dev.type == "cpu":
            tune_allocator()
        init = problem.init  # rlkit's (the authors') or torch's (ertrl_bench.nn.init_mlp_)
        # the policy's one output layer is its mean and log-std heads: rlkit's +-1e-3
        self.policy = mlp(ds + dz, o.hidden, 2 * da, init=init, out_bound=POLICY_HEAD_BOUND)
        if o.log_std_init_bias is not None:  # ours, off by default (module docstring)
            with torch.no_grad():
                self.policy[-1].bias[da:].fill_(o.log_std_init_bias)
        self.policy = self.policy.to(dev)
        # the twin Q nets, fused
        self.q = ensemble_mlp(2, ds + da + dz, o.hidden, 1, init=init).to(dev)
        self.v = mlp(ds + dz, o.hidden, 1, init=init).to(dev)
        self.v_target = copy.deepcopy(self.v).requires_grad_(False)
        self.c = mlp(ds + da + dz, o.hidden, 1, init=init).to(dev)
        self.alpha_max, alpha_init = o.alpha_max, o.alpha_init
        self.raw_alpha = torch.tensor(float(alpha_init), device=dev)  # plain SGD, no optimizer
        self.opt_policy = torch.optim.Adam(self.policy.parameters(), lr=o.lr)
        self.opt_q = torch.optim.Adam(self.q.parameters(), lr=o.lr)
        self.opt_v = torch.optim.Adam(self.v.parameters(), lr=o.lr)
        self.opt_c = torch.optim.Adam(self.c.parameters(), lr=o.c_lr)
        self._c_loss_fn = self._c_loss
        self._q_loss_fn = self._q_loss
        self._actor_fn = self._actor_losses

    def compile(self, **kwargs) -> None:
        """Compile the loss computations with ``torch.compile`` (e.g. ``mode="max-autotune"``)."""
        self._c_loss_fn = torch.compile(self._c_loss, **kwargs)
        self._q_loss_fn = torch.compile(self._q_loss, **kwargs)
        self._actor_fn = torch.compile(self._actor_losses, **kwargs)

    # --- pieces --------------------------------------------------------------------------------
    def _pi_params(self, sz: torch.Tensor):
        mean, log_std = self.policy(sz).chunk(2, -1)
        return mean, log_std.clamp(self.o.log_std_min, self.o.log_std_max)

    def _q2(self, sa_z: torch.Tensor) -> torch.Tensor:
        """Both Q nets in one ensemble pass: ``[2, N]``."""
        return self.q(sa_z.expand(2, *sa_z.shape)).squeeze(-1)

    def alpha(self) -> torch.Tensor:
        """The alpha used by the policy loss: the raw alpha clipped to ``[0, alpha_max]``."""
        return self.raw_alpha.clamp(0.0, self.alpha_max)

    # --- the three losses (pure functions of tensors: random numbers come in as arguments) ----
    def _c_loss(self, s, z, a_pi, a_data, u):
        """Dual critic loss of one c-step: ``-KL estimate + gp_weight * penalty``."""
        a_intpl = u * a_pi + (1 - u) * a_data
        if self.o.penalty == "output":  # c on policy, data and interpolated actions: one pass
            x = torch.cat([s.repeat(3, 1), torch.cat([a_pi, a_data, a_intpl]), z.repeat(3, 1)], -1)
            c_pi, c_data, c_int = self.c(x).squeeze(-1).chunk(3)
            penalty = output_penalty(c_int)
        else:
            x = torch.cat([s.repeat(2, 1), torch.cat([a_pi, a_data]), z.repeat(2, 1)], -1)
            c_pi, c_data = self.c(x).squeeze(-1).chunk(2)
            penalty = gradient_penalty(self.c, s, z, a_intpl)
        return -kl_dual(c_pi, c_data).mean() + self.o.gp_weight * penalty

    def _q_loss(self, s, a, s2, r, d, zr, zq):
        o = self.o
        with torch.no_grad():
            v_next = self.v_target(torch.cat([s2, zr], -1)).squeeze(-1)
            target = o.reward_scale * r + o.discount * (1 - d) * v_next
        q = self._q2(torch.cat([s, a, zq], -1))
        return F.mse_loss(q[0], target) + F.mse_loss(q[1], target)

    def _actor_losses(self, s, a, zr, noise, alpha):
        """V loss, policy loss and the per-sample divergence, from fresh policy actions."""
        sz = torch.cat([s, zr], -1)
        mean, raw_log_std = self.policy(sz).chunk(2, -1)
        log_std = raw_log_std.clamp(self.o.log_std_min, self.o.log_std_max)
        at_clamp = _outside(raw_log_std.detach(), self.o.log_std_min, self.o.log_std_max).mean()
        a_new, logp = tanh_gaussian_from_noise(mean, log_std, noise)
        q_new = self._q2(torch.cat([s, a_new, zr], -1)).min(0).values
        v_loss = F.mse_loss(self.v(sz).squeeze(-1), (q_new - logp).detach())
        c_new = self.c(torch.cat([s, a_new, zr], -1)).squeeze(-1)
        with torch.no_grad():  # c on the data actions: no gradient reaches the actor through it
            c_data = self.c(torch.cat([s, a, zr], -1)).squeeze(-1)
        div = kl_dual(c_new, c_data)
        reg = self.o.policy_reg * (mean.pow(2).mean() + log_std.pow(2).mean())
        policy_loss = (logp - q_new + alpha * div).mean() + reg
        return v_loss, policy_loss, div.detach(), at_clamp

    # --- the three phases of a step (separate methods: the step benchmark times each) ---------
    def _update_c(self, batch: Transitions, z: torch.Tensor, sample_rl) -> torch.Tensor:
        """Dual critic c: maximise the KL estimate (- penalty), each c-step on a fresh batch."""
        for _ in range(self.o.c_steps):
            cb = batch if sample_rl is None else sample_rl()
            sc, ac, zc = _flat(cb.obs), _flat(cb.actions), _broadcast(z, cb.obs.shape[1])
            with torch.no_grad():
                mean, log_std = self._pi_params(torch.cat([sc, zc], -1))
                a_pi, _ = tanh_gaussian_from_noise(mean, log_std, torch.randn_like(mean))
            u = torch.rand(a_pi.shape[0], 1, device=a_pi.device, dtype=a_pi.dtype)
            c_loss = self._c_loss_fn(sc, zc, a_pi, ac, u)
            self.opt_c.zero_grad(set_to_none=True)
            c_loss.backward(inputs=list(self.c.parameters()))
            self.opt_c.step()
        return c_loss

    def _update_q(self, s, a, s2, r, d, zr, zq) -> torch.Tensor:
        """Q: TD to the target V (z_q may train the encoder: Offline PEARL)."""
        q_loss = self._q_loss_fn(s, a, s2, r, d, zr, zq)
        self.opt_q.zero_grad(set_to_none=True)
        q_loss.backward()
        self.opt_q.step()
        return q_loss

    def _update_actor(self, s, a, zr):
        """V and policy from fresh policy actions (the actor's loss trains the actor only), then
        alpha: SGD (lr ``alpha_lr``) on the raw alpha towards the target divergence."""
        o = self.o
        alpha = self.alpha()
        noise = torch.randn(s.shape[0], a.shape[1], device=s.device, dtype=s.dtype)
        v_loss, policy_loss, div, at_clamp = self._actor_fn(s, a, zr, noise, alpha)
        self.opt_v.zero_grad(set_to_none=True)
        self.opt_policy.zero_grad(set_to_none=True)
        # one backward for both (V's loss does not reach the actor, nor the actor's loss V)
        (v_loss + policy_loss).backward(inputs=[*self.v.parameters(), *self.policy.parameters()])
        self.opt_v.step()
        self.opt_policy.step()
        div_mean = div.mean()
        self.raw_alpha.add_(o.alpha_lr * (div_mean - o.target_divergence))
        return v_loss, policy_loss, div_mean, alpha, at_clamp

    # --- protocol ------------------------------------------------------------------------------
    def update(
        self,
        batch: Transitions,
        z_q: torch.Tensor,
        z: torch.Tensor,
        sample_rl: Callable[[], Transitions] | None = None,
    ) -> dict:
        """One BRAC step; ``sample_rl()`` draws a fresh RL batch of the same tasks for each c-step
        (None: the c-steps reuse ``batch``)."""
        o = self.o
        b = batch.obs.shape[1]
        s, a, s2 = _flat(batch.obs), _flat(batch.actions), _flat(batch.next_obs)
        r, d = batch.rewards.reshape(-1), batch.dones.reshape(-1)
        zr = _broadcast(z, b)
        zq = _broadcast(z_q, b)

        c_loss = self._update_c(batch, z, sample_rl)
        q_loss = self._update_q(s, a, s2, r, d, zr, zq)
        v_loss, policy_loss, div_mean, alpha, at_clamp = self._update_actor(s, a, zr)
        soft_update(self.v_target, self.v, o.tau)
        return _step_logs(q_loss, v_loss, policy_loss, c_loss, div_mean, alpha, at_clamp)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, z: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        mean, log_std = self._pi_params(torch.cat([obs, z], -1))
        if deterministic:
            return torch.tanh(mean)
        a, _ = tanh_gaussian_from_noise(mean, log_std, torch.randn_like(mean))
        return a

    _STATEFUL = ("policy", "q", "v", "v_target", "c", "opt_policy", "opt_q", "opt_v", "opt_c")

    def state_dict(self) -> dict:
        """Every network and optimizer, and alpha: all a resumed run needs to continue."""
        return {k: getattr(self, k).state_dict() for k in self._STATEFUL} | {
            "raw_alpha": self.raw_alpha.detach().clone()
        }

    def load_state_dict(self, state: dict) -> None:
        for k in self._STATEFUL:
            getattr(self, k).load_state_dict(state[k])
        self.raw_alpha.copy_(state["raw_alpha"])  # in place: a CUDA graph may hold it

    @classmethod
    def ensemble(cls, members: list[BRAC], rng) -> BRACEnsemble:
        return BRACEnsemble(members, rng)


class BRACEnsemble(BRAC):
    """K seeds' ``BRAC`` as one (``ertrl_bench.ensemble``): every network an ``EnsembleMLP``
    (the twin Q nets of K members: one ensemble of 2K), every optimizer a ``StackedAdam``,
    alpha ``[K]``, each member's random numbers from its own stream (``rng``). Every loss is
    computed per member ``[K]`` (the means ``BRAC`` takes, per member) and the *sum* is
    back-propagated, so each member's gradient is its own. Logs are ``[K]``. Eager only
    (``compile`` is not applied). Its state lives in the members: ``write_back`` puts it there
    (their ``state_dict`` / ``act`` are the run's)."""

    def __init__(self, members: list[BRAC], rng):
        first = members[0]
        self.o, self.device, self.rng = first.o, first.device, rng
        self.members = members
        self.alpha_max = first.alpha_max
        for name in ("policy", "q", "v", "v_target", "c"):
            setattr(self, name, EnsembleMLP([getattr(m, name) for m in members]))
        self.v_target.requires_grad_(False)
        self.raw_alpha = torch.stack([m.raw_alpha for m in members]).clone()
        for opt, net in (("opt_policy", "policy"), ("opt_q", "q"), ("opt_v", "v"), ("opt_c", "c")):
            stacked = StackedAdam([getattr(m, opt) for m in members], getattr(self, net).links)
            setattr(self, opt, stacked)
        self._c_loss_fn = self._c_loss
        self._q_loss_fn = self._q_loss
        self._actor_fn = self._actor_losses

    def compile(self, **kwargs) -> None:
        pass  # eager (docstring)

    def write_back(self) -> None:
        for name in ("policy", "q", "v", "v_target", "c"):
            getattr(self, name).write_back()
        for name in ("opt_policy", "opt_q", "opt_v", "opt_c"):
            getattr(self, name).write_back()
        for k, m in enumerate(self.members):
            m.raw_alpha.copy_(self.raw_alpha[k])

    def _randn(self, shape, like: torch.Tensor) -> torch.Tensor:
        return self.rng.draw(
            lambda g: torch.randn(shape, device=like.device, dtype=like.dtype, generator=g)
        )

    def _rand(self, shape, like: torch.Tensor) -> torch.Tensor:
        return self.rng.draw(
            lambda g: torch.rand(shape, device=like.device, dtype=like.dtype, generator=g)
        )

    def _q2(self, sa_z: torch.Tensor) -> torch.Tensor:
        """Both Q nets of each member: ``[K, 2, N]``."""
        k = sa_z.shape[0]
        return self.q(sa_z[:, None].expand(k, 2, *sa_z.shape[1:])).squeeze(-1)

    def _c_loss(self, s, z, a_pi, a_data, u):
        a_intpl = u * a_pi + (1 - u) * a_data
        if self.o.penalty == "output":
            x = torch.cat(
                [s.repeat(1, 3, 1), torch.cat([a_pi, a_data, a_intpl], 1), z.repeat(1, 3, 1)], -1
            )
            c_pi, c_data, c_int = self.c(x).squeeze(-1).chunk(3, dim=1)
            penalty = F.relu(torch.sqrt(EPS + c_int.pow(2)) - 1.0).pow(2).mean(1)
        else:
            x = torch.cat([s.repeat(1, 2, 1), torch.cat([a_pi, a_data], 1), z.repeat(1, 2, 1)], -1)
            c_pi, c_data = self.c(x).squeeze(-1).chunk(2, dim=1)
            a_req = a_intpl.detach().requires_grad_(True)
            c_int = self.c(torch.cat([s, a_req, z], -1)).squeeze(-1)
            (grad,) = torch.autograd.grad(c_int.sum(), a_req, create_graph=True)
            penalty = F.relu(torch.sqrt(EPS + grad.pow(2).sum(-1)) - 1.0).pow(2).mean(1)
        return -kl_dual(c_pi, c_data).mean(1) + self.o.gp_weight * penalty

    def _q_loss(self, s, a, s2, r, d, zr, zq):
        o = self.o
        with torch.no_grad():
            v_next = self.v_target(torch.cat([s2, zr], -1)).squeeze(-1)
            target = o.reward_scale * r + o.discount * (1 - d) * v_next
        q = self._q2(torch.cat([s, a, zq], -1))
        return (q[:, 0] - target).pow(2).mean(1) + (q[:, 1] - target).pow(2).mean(1)

    def _actor_losses(self, s, a, zr, noise, alpha):
        k = s.shape[0]
        sz = torch.cat([s, zr], -1)
        mean, raw_log_std = self.policy(sz).chunk(2, -1)
        log_std = raw_log_std.clamp(self.o.log_std_min, self.o.log_std_max)
        outside = _outside(raw_log_std.detach(), self.o.log_std_min, self.o.log_std_max)
        at_clamp = outside.reshape(k, -1).mean(1)
        a_new, logp = tanh_gaussian_from_noise(mean, log_std, noise)
        q_new = self._q2(torch.cat([s, a_new, zr], -1)).min(1).values
        v_loss = (self.v(sz).squeeze(-1) - (q_new - logp).detach()).pow(2).mean(1)
        c_new = self.c(torch.cat([s, a_new, zr], -1)).squeeze(-1)
        with torch.no_grad():
            c_data = self.c(torch.cat([s, a, zr], -1)).squeeze(-1)
        div = kl_dual(c_new, c_data)
        reg = self.o.policy_reg * (
            mean.pow(2).reshape(k, -1).mean(1) + log_std.pow(2).reshape(k, -1).mean(1)
        )
        policy_loss = (logp - q_new + alpha[:, None] * div).mean(1) + reg
        return v_loss, policy_loss, div.detach(), at_clamp

    def _update_c(self, batch: Transitions, z: torch.Tensor, sample_rl) -> torch.Tensor:
        for _ in range(self.o.c_steps):
            cb = batch if sample_rl is None else sample_rl()
            sc, ac, zc = (
                flat_members(cb.obs),
                flat_members(cb.actions),
                broadcast_members(z, cb.obs.shape[2]),
            )
            with torch.no_grad():
                mean, log_std = self._pi_params(torch.cat([sc, zc], -1))
                noise = self._randn(mean.shape[1:], mean)
                a_pi, _ = tanh_gaussian_from_noise(mean, log_std, noise)
            u = self._rand((a_pi.shape[1], 1), a_pi)
            c_loss = self._c_loss_fn(sc, zc, a_pi, ac, u)
            self.opt_c.zero_grad(set_to_none=True)
            c_loss.sum().backward(inputs=list(self.c.parameters()))
            self.opt_c.step()
        return c_loss

    def _update_q(self, s, a, s2, r, d, zr, zq) -> torch.Tensor:
        q_loss = self._q_loss_fn(s, a, s2, r, d, zr, zq)
        self.opt_q.zero_grad(set_to_none=True)
        q_loss.sum().backward()
        self.opt_q.step()
        return q_loss

    def _update_actor(self, s, a, zr):
        o = self.o
        alpha = self.alpha()
        noise = self._randn((s.shape[1], a.shape[-1]), s)
        v_loss, policy_loss, div, at_clamp = self._actor_fn(s, a, zr, noise, alpha)
        self.opt_v.zero_grad(set_to_none=True)
        self.opt_policy.zero_grad(set_to_none=True)
        (v_loss + policy_loss).sum().backward(
            inputs=[*self.v.parameters(), *self.policy.parameters()]
        )
        self.opt_v.step()
        self.opt_policy.step()
        div_mean = div.mean(1)
        self.raw_alpha.add_(o.alpha_lr * (div_mean - o.target_divergence))
        return v_loss, policy_loss, div_mean, alpha, at_clamp

    def update(self, batch, z_q, z, sample_rl=None) -> dict:
        o = self.o
        k, b = batch.obs.shape[0], batch.obs.shape[2]
        s, a, s2 = (
            flat_members(batch.obs),
            flat_members(batch.actions),
            flat_members(batch.next_obs),
        )
        r, d = batch.rewards.reshape(k, -1), batch.dones.reshape(k, -1)
        zr, zq = broadcast_members(z, b), broadcast_members(z_q, b)
        c_loss = self._update_c(batch, z, sample_rl)
        q_loss = self._update_q(s, a, s2, r, d, zr, zq)
        v_loss, policy_loss, div_mean, alpha, at_clamp = self._update_actor(s, a, zr)
        soft_update(self.v_target, self.v, o.tau)
        return _step_logs(q_loss, v_loss, policy_loss, c_loss, div_mean, alpha, at_clamp)
