"""Evaluation protocols (docs/paper.md "Evaluation"): offline, online and non-prior context.

**Budget.** A run's budget is counted in *transitions*: ``EvalConfig.transitions`` (None = the
family's ``FamilyHParams.eval_transitions``: 600, 800 for Ant families; Point-Robot, ours, uses
3 x its horizon). As in the authors' sampler, which checks the count only *between* episodes, a
new counted episode starts while fewer transitions than the budget have been counted, and every
episode that starts runs to its own end (termination or the horizon): none is cut at the
budget. So a family whose episodes end early (Hopper, Walker, Ant-Dir, Humanoid) plays more of
them, and the counted total can exceed the budget (three 180-step episodes leave 540 < 600, so
a fourth runs whole: 720). The score is the return of the run's **last** counted episode (a
whole one), with deterministic actions; a task's score is the mean over its ``runs_per_task``
runs.

**Resolved numbers.** Every number below that a suite leaves out (None) takes the family's
value when the suite is expanded (``EnvFamily.schedule_defaults``) and is written in the run's
spec; this module reads the run's ``ResolvedEvalConfig`` and looks no default up.

**Protocols** (the authors' evaluation code, precisely):

- ``offline``: before each episode, ``offline_context_per_episode`` (200) transitions drawn
  uniformly (with replacement) from the task's own dataset join the run's context, and z is
  inferred from the whole context (all draws so far).
- ``online``: z = 0 (the prior) while fewer than ``online_min_transitions`` (None = 2 x
  horizon = 400) of the run's own transitions exist; from then on, before each episode, z is
  inferred from *all* of the run's own transitions (every episode's, the z = 0 ones included).
  Only the agent's own transitions are ever in the context.
- ``non_prior`` (CSRO's; the paper's headline protocol): while fewer evaluation transitions
  than the budget are counted, the run alternates
  (a) an **exploration rollout** with the *stochastic* policy and the current z: whole
  episodes while fewer than ``non_prior_exploration_transitions`` (None = horizon = 200)
  exploration transitions have been collected in this rollout (so 180-step episodes explore
  360 transitions a rollout, 69-step ones 207); all of them join the context. An exploration
  action is replaced by a uniform random one in [-1, 1]^d while
  ``c + t < non_prior_random_transitions`` (None = half the budget: 300, 400 for Ant), where
  ``c`` is the number of evaluation transitions counted when the rollout started and ``t`` the
  step inside the current exploration episode (the authors' ``np_online_rollout`` with
  ``epsilon_decay``: ``t`` restarts with every exploration episode). With 200-step episodes
  this makes the first 300 exploration steps random (the whole first rollout and half the
  second);
  (b) one deterministic **evaluation episode** with the current z, run to its end; it does
  *not* join the context and only these transitions count against the budget.
  z = 0 until ``non_prior_min_transitions`` (None = 2 x horizon = 400) evaluation transitions
  are counted; after each evaluation episode that leaves the count at or above it (and below
  the budget), z is inferred from the whole exploration context and used by the next rollout
  and episode (the authors infer after the evaluation episode, not after the exploration
  rollout: with 200-step episodes the scored third episode uses z from the first two
  exploration rollouts).

z = 0 before inference is the authors' value too (their agent's z is the prior's mean, 0, and
after inference the mean of the per-transition encodings: no sample is drawn either time).

**Batching.** All tasks x runs are stepped together in one ``BatchEnv``; every run keeps its
own clock (episode step, budget count, phase), so episode boundaries that differ between runs
(early termination) are handled by vectorised bookkeeping and per-env ``reset(mask=...)``. z is
inferred, batched over the runs that need it at that step, from masked variable-size contexts
(``Transitions.mask``). A run that has spent its budget idles: it is still stepped with zero
actions (the ``BatchEnv`` steps every env) but its transitions are discarded.

Normalised return = 100 * (R - R_min) / (R_max - R_min), with the task's lowest and highest
behavior-policy returns seen in data collection (``FamilyData.r_min/r_max``).

**Success** (families whose env reports it, ``StepResult.success``: Meta-World): the scored
episode -- the same one whose return is the score -- succeeds if its success flag is true at
any of its steps (Meta-World's convention); a task's success is the fraction of its runs whose
scored episode succeeded. Families without a notion of success record none (absent, not 0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ertrl_bench.batch import TaskDataset, Transitions
from ertrl_bench.config import ResolvedEvalConfig
from ertrl_bench.data import FamilyData
from ertrl_bench.envs.base import BatchEnv, EnvFamily, Task, make_checked_batch
from ertrl_bench.step import Agent

PROTOCOLS = ("offline", "online", "non_prior")


@dataclass(frozen=True)
class Budget:
    """The numbers of one evaluation: the run's resolved eval config and the family's horizon."""

    transitions: int
    horizon: int
    offline_per_episode: int
    online_min: int
    non_prior_min: int
    exploration: int
    random_until: int

    @classmethod
    def resolve(cls, cfg: ResolvedEvalConfig, family: EnvFamily) -> Budget:
        return cls(
            transitions=cfg.transitions,
            horizon=family.horizon,
            offline_per_episode=cfg.offline_context_per_episode,
            online_min=cfg.online_min_transitions,
            non_prior_min=cfg.non_prior_min_transitions,
            exploration=cfg.non_prior_exploration_transitions,
            random_until=cfg.non_prior_random_transitions,
        )


class ContextBuffer:
    """Per-run contexts of different lengths: padded numpy arrays ``[E, cap, ...]`` + lengths."""

    KEYS = ("obs", "actions", "rewards", "next_obs", "dones")

    def __init__(self, n: int, obs_dim: int, act_dim: int, cap: int = 256):
        self.dims = {"obs": obs_dim, "actions": act_dim, "rewards": 1, "next_obs": obs_dim}
        self.dims["dones"] = 1
        self.len = np.zeros(n, np.int64)
        self.buf = {k: np.zeros((n, cap, d), np.float32) for k, d in self.dims.items()}

    def _reserve(self, need: int) -> None:
        cap = self.buf["obs"].shape[1]
        if need <= cap:
            return
        new = max(need, 2 * cap)
        for k, b in self.buf.items():
            grown = np.zeros((b.shape[0], new, b.shape[2]), np.float32)
            grown[:, :cap] = b
            self.buf[k] = grown

    def append(self, rows: np.ndarray, values: dict[str, np.ndarray]) -> None:
        """Append ``values[k] [len(rows), m, d]`` to the contexts of ``rows``."""
        m = values["obs"].shape[1]
        self._reserve(int(self.len[rows].max()) + m)
        pos = self.len[rows, None] + np.arange(m)
        for k in self.KEYS:
            self.buf[k][rows[:, None], pos] = values[k].reshape(len(rows), m, -1)
        self.len[rows] += m

    def transitions(self, rows: np.ndarray, device) -> Transitions:
        """The contexts of ``rows`` as one masked ``Transitions [len(rows), max_len, ...]``."""
        n = max(int(self.len[rows].max()), 1)
        t = lambda k: torch.as_tensor(self.buf[k][rows, :n], device=device)  # noqa: E731
        mask = np.arange(n)[None, :] < self.len[rows, None]
        return Transitions(
            *(t(k) for k in self.KEYS),
            task_ids=torch.zeros(len(rows), dtype=torch.long, device=device),
            mask=torch.as_tensor(mask, device=device),
        )


@dataclass
class ProtocolResult:
    """What one protocol produced for every run (env) of the batch."""

    returns: np.ndarray  # [E] the last counted episode's return
    z: np.ndarray  # [E, L] the z of that episode
    episodes: np.ndarray  # [E] counted episodes played
    transitions: np.ndarray  # [E] counted transitions (>= the budget: episodes are never cut)
    context: ContextBuffer  # the final context (offline draws / own / exploration transitions)
    # [E] bool: the last counted episode succeeded (its success flag was true at some step,
    # Meta-World's convention); None when the family reports no success (StepResult.success)
    success: np.ndarray | None = None


@torch.no_grad()
def run_protocol(
    agent: Agent,
    env: BatchEnv,
    protocol: str,
    budget: Budget,
    offline_sample: Callable[[np.ndarray, int], Transitions] | None = None,
    seed: int = 0,
) -> ProtocolResult:
    """Play one protocol in every env of ``env`` at once (one run per env).

    ``offline_sample(rows, n)`` returns ``n`` dataset transitions of the tasks of env ``rows``
    (offline protocol only). ``seed`` drives env resets and the random exploration actions.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; available: {', '.join(PROTOCOLS)}")
    if protocol == "offline" and offline_sample is None:
        raise ValueError("the offline protocol needs offline_sample")
    dev, latent = agent.problem.device, agent.problem.latent_dim
    E, act_dim = env.num_envs, env.act_dim
    rng = np.random.default_rng(seed)
    ctx = ContextBuffer(E, env.obs_dim, act_dim)
    z = torch.zeros(E, latent, device=dev)
    count = np.zeros(E, np.int64)  # transitions counted against the budget
    episodes = np.zeros(E, np.int64)  # counted (scored-kind) episodes
    t_ep = np.zeros(E, np.int64)  # step inside the current episode
    ep_ret = np.zeros(E, np.float64)
    last_ret = np.zeros(E, np.float64)
    last_z = np.zeros((E, latent), np.float32)
    ep_success = np.zeros(E, bool)  # the current episode's success flag was true at some step
    last_success = np.zeros(E, bool)
    reports_success = False
    done = np.zeros(E, bool)
    non_prior = protocol == "non_prior"
    explore = np.full(E, non_prior)  # the current episode is an exploration one
    explored = np.zeros(E, np.int64)  # exploration transitions of the current rollout
    rollout_start = np.zeros(E, np.int64)  # ``count`` when the current rollout started
    starting = np.ones(E, bool)
    all_rows = np.arange(E)

    def infer(m: np.ndarray) -> None:
        rows = all_rows[m]
        if len(rows):
            _, zr = agent.infer(ctx.transitions(rows, dev))
            z[torch.as_tensor(rows, device=dev)] = zr

    obs = env.reset(seed=seed)
    while not done.all():
        if starting.any():  # what happens before an episode starts
            if protocol == "offline":
                rows = all_rows[starting]
                new = offline_sample(rows, budget.offline_per_episode)
                ctx.append(rows, {k: getattr(new, k).cpu().numpy() for k in ContextBuffer.KEYS})
                infer(starting)
            elif protocol == "online":
                infer(starting & (count >= budget.online_min))
            starting[:] = False
        active = ~done
        o = torch.as_tensor(obs, dtype=torch.float32, device=dev)
        actions = np.zeros((E, act_dim), np.float32)  # idle runs step with zero actions
        det, sto = active & ~explore, active & explore
        for m, deterministic in ((det, True), (sto, False)):
            if m.all():
                actions[:] = agent.backbone.act(o, z, deterministic).cpu().numpy()
            elif m.any():
                i = torch.as_tensor(all_rows[m], device=dev)
                actions[m] = agent.backbone.act(o[i], z[i], deterministic).cpu().numpy()
        if sto.any():  # exploration: uniform random while too little is counted
            rand = sto & (rollout_start + t_ep < budget.random_until)
            actions[rand] = rng.uniform(-1.0, 1.0, (int(rand.sum()), act_dim))
        res = env.step(actions)
        rec = active & explore if non_prior else active & (protocol == "online")
        if rec.any():
            rows = all_rows[rec]
            ctx.append(
                rows,
                {
                    "obs": obs[rows, None],
                    "actions": actions[rows, None],
                    "rewards": res.reward[rows, None],
                    "next_obs": res.next_obs[rows, None],
                    "dones": res.terminated[rows, None].astype(np.float32),
                },
            )
        counted = active & ~explore
        ep_ret += np.where(active, res.reward, 0.0)
        if res.success is not None:
            reports_success = True
            ep_success |= active & np.asarray(res.success, bool)
        t_ep += active
        count += counted
        explored += active & explore
        # an episode ends only by termination or the horizon, never at the budget (whole
        # episodes, as the authors' sampler: it checks the count between episodes)
        ended = active & (res.terminated | (t_ep >= budget.horizon))
        scored_end = ended & ~explore
        if scored_end.any():
            last_ret[scored_end] = ep_ret[scored_end]
            last_z[scored_end] = z.cpu().numpy()[scored_end]
            last_success[scored_end] = ep_success[scored_end]
            episodes += scored_end
            done |= scored_end & (count >= budget.transitions)
            if non_prior:
                infer(scored_end & ~done & (count >= budget.non_prior_min))
                nxt = scored_end & ~done  # an exploration rollout comes next
                explore[nxt], explored[nxt], rollout_start[nxt] = True, 0, count[nxt]
        if non_prior:
            explore[ended & explore & (explored >= budget.exploration)] = False
        ep_ret[ended], t_ep[ended], ep_success[ended] = 0.0, 0, False
        starting = ended & ~done
        # finished episodes restart; idle runs are reset too so their physics stays sane
        reset = ended | (done & (res.terminated | res.truncated))
        obs = env.reset(mask=reset) if reset.any() else res.next_obs
    success = last_success if reports_success else None
    return ProtocolResult(last_ret, last_z, episodes, count, ctx, success)


@torch.no_grad()
def evaluate_tasks(
    agent: Agent,
    data: FamilyData,
    task_data: TaskDataset,
    rows: dict[str, int],
    tasks: list[Task],
    cfg: ResolvedEvalConfig,
) -> tuple[dict, dict[str, np.ndarray]]:
    """Scores ``{protocol: {task_key: {"return", "normalized"}}}`` and the final z per protocol
    ``[tasks, runs, L]`` (the z of each run's scored episode). For a family that reports
    success, a task's scores also hold ``"success"``: the fraction of its runs whose scored
    episode succeeded (at any step); families without success have no such key."""
    family, dev = data.family, agent.problem.device
    budget = Budget.resolve(cfg, family)
    runs = cfg.runs_per_task
    rep = [t for t in tasks for _ in range(runs)]  # task-major
    env = make_checked_batch(family, rep)
    task_rows = torch.tensor([rows[t.key] for t in rep], device=dev)

    def offline_sample(env_rows: np.ndarray, n: int) -> Transitions:
        return task_data.sample(task_rows[torch.as_tensor(env_rows, device=dev)], n)

    scores: dict[str, dict] = {}
    final_z: dict[str, np.ndarray] = {}
    for protocol in cfg.protocols:
        seed = int(torch.randint(0, 2**31 - 1, (1,)))  # reproducible under the run's seed
        out = run_protocol(agent, env, protocol, budget, offline_sample, seed)
        returns = out.returns.reshape(len(tasks), runs)
        success = None if out.success is None else out.success.reshape(len(tasks), runs)
        final_z[protocol] = out.z.reshape(len(tasks), runs, -1)
        per_task = {}
        for i, t in enumerate(tasks):
            r = float(returns[i].mean())
            per_task[t.key] = {"return": r, "normalized": data.normalized(t, r)}  # NaN: R_min=R_max
            if success is not None:
                per_task[t.key]["success"] = float(success[i].mean())
        scores[protocol] = per_task
    if hasattr(env, "close"):
        env.close()
    return scores, final_z


@torch.no_grad()
def transition_encodings(
    agent: Agent, task_data: TaskDataset, task_rows: torch.Tensor, n: int
) -> np.ndarray:
    """Per-transition encodings z_i ``[T, n, L]`` of ``n`` dataset transitions per task (the probe's input)."""
    ctx = task_data.sample(task_rows, n)
    z_i, _ = agent.infer(ctx)
    return z_i.cpu().numpy()
