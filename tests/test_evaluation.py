"""The evaluation protocols, tested directly with a scripted agent on real environments.

The scripted agent records what it is given (the contexts it encodes, the z it acts with) and
acts so that its actions reveal what produced them: column 0 is +0.5 for a deterministic
action and -0.5 for a stochastic one; column 1 is +0.5 while z = 0 and -0.5 once z was inferred.
A uniform random exploration action is neither. A recording ``BatchEnv`` wrapper logs what
was stepped. Point-Robot with horizon 200 gives the paper's numbers exactly (600 = 3 x 200).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ertrl_bench.batch import TaskDataset
from ertrl_bench.config import EvalConfig, TrainConfig, resolve_schedule
from ertrl_bench.envs.base import BatchEnv, StepResult
from ertrl_bench.envs.mujoco import FAMILIES
from ertrl_bench.envs.point_robot import PointRobot, PointRobotOptions
from ertrl_bench.evaluation import Budget, run_protocol

LATENT = 3


class ScriptedAgent:
    """Acts by script; z = (number of valid context transitions, their mean reward, 1)."""

    def __init__(self, act_dim: int = 2, rest: float = 0.0):
        self.problem = SimpleNamespace(device=torch.device("cpu"), latent_dim=LATENT)
        self.backbone = self
        self.act_dim, self.rest = act_dim, rest  # ``rest``: the action's further columns
        self.contexts = []  # every Transitions given to infer

    def act(self, obs, z, deterministic=True):
        a = torch.full((len(obs), self.act_dim), self.rest)
        a[:, 0] = 0.5 if deterministic else -0.5
        a[:, 1] = torch.where(z.abs().sum(1) == 0, 0.5, -0.5)
        return a

    def infer(self, ctx):
        self.contexts.append(ctx)
        m = ctx.mask.float()
        n = m.sum(1)
        mean_r = (ctx.rewards[..., 0] * m).sum(1) / n.clamp(min=1)
        return None, torch.stack([n, mean_r, torch.ones_like(n)], -1)


class Recording(BatchEnv):
    """A real BatchEnv that logs every step and reset."""

    def __init__(self, env: BatchEnv):
        self.env = env
        self.num_envs, self.obs_dim, self.act_dim = env.num_envs, env.obs_dim, env.act_dim
        self.obs, self.actions, self.rewards, self.next_obs, self.terminated = [], [], [], [], []
        self.resets = []  # (step index, mask)
        self._obs = None

    def reset(self, seed=None, mask=None):
        self.resets.append(
            (len(self.actions), np.ones(self.num_envs, bool) if mask is None else mask)
        )
        self._obs = self.env.reset(seed=seed, mask=mask)
        return self._obs

    def step(self, actions):
        res = self.env.step(actions)
        self.obs.append(self._obs.copy())
        self.actions.append(np.array(actions, copy=True))
        self.rewards.append(res.reward.copy())
        self.next_obs.append(res.next_obs.copy())
        self.terminated.append(res.terminated.copy())
        self._obs = res.next_obs
        return res

    def arrays(self):
        return {
            k: np.stack(getattr(self, k), 1)  # [E, steps, ...]
            for k in ("obs", "actions", "rewards", "next_obs", "terminated")
        }


def point_robot(n_tasks: int = 3, horizon: int = 200):
    fam = PointRobot(PointRobotOptions(horizon=horizon))
    tasks = fam.tasks("train")[:n_tasks]
    return fam, Recording(fam.make_batch(tasks))


def budget(fam, **cfg) -> Budget:
    """The budget of a run on ``fam`` whose suite sets ``cfg`` (the rest: the family's)."""
    _, resolved = resolve_schedule(TrainConfig(), EvalConfig(**cfg), fam.schedule_defaults(), False)
    return Budget.resolve(resolved, fam)


def is_random(a: np.ndarray) -> np.ndarray:
    """True where neither action column is one of the script's values."""
    return ~np.isin(a, [0.5, -0.5]).any(-1)


def test_budgets_resolve_to_the_paper_values():
    b = budget(FAMILIES["cheetah-vel"]())
    assert (b.transitions, b.online_min, b.non_prior_min, b.exploration, b.random_until) == (
        600,
        400,
        400,
        200,
        300,
    )
    b = budget(FAMILIES["ant-dir"]())
    assert (b.transitions, b.online_min, b.random_until) == (800, 400, 400)
    b = budget(PointRobot())  # horizon 20 (ours): the same numbers in episodes
    assert (b.transitions, b.online_min, b.exploration, b.random_until) == (60, 40, 20, 30)
    assert EvalConfig().protocols == ["offline", "online", "non_prior"]


def test_online_prior_until_400_own_transitions_then_all_of_them():
    fam, env = point_robot()
    agent = ScriptedAgent()
    out = run_protocol(agent, env, "online", budget(fam), seed=0)
    rec = env.arrays()
    steps = rec["actions"].shape[1]
    assert steps == 600 and (out.transitions == 600).all() and (out.episodes == 3).all()
    # every action deterministic; z = 0 for the first 400 steps, inferred from then on
    assert (rec["actions"][:, :, 0] == 0.5).all()
    assert (rec["actions"][:, :400, 1] == 0.5).all() and (rec["actions"][:, 400:, 1] == -0.5).all()
    # one inference, before the third episode, from exactly the agent's own 400 transitions
    (ctx,) = agent.contexts
    assert ctx.mask.all() and ctx.obs.shape[1] == 400
    np.testing.assert_array_equal(ctx.obs.numpy(), rec["obs"][:, :400])
    np.testing.assert_array_equal(ctx.actions.numpy(), rec["actions"][:, :400])
    np.testing.assert_array_equal(ctx.rewards[..., 0].numpy(), rec["rewards"][:, :400])
    np.testing.assert_array_equal(ctx.next_obs.numpy(), rec["next_obs"][:, :400])
    # the score is the last episode's return, which differs from the first's (other z)
    last, first = rec["rewards"][:, 400:].sum(1), rec["rewards"][:, :200].sum(1)
    np.testing.assert_allclose(out.returns, last, rtol=1e-5)
    assert np.abs(last - first).min() > 1.0
    np.testing.assert_allclose(out.z[:, 0], 400)  # the z that played the scored episode


def test_non_prior_explores_randomly_then_infers_from_exploration_only():
    fam, env = point_robot()
    agent = ScriptedAgent()
    out = run_protocol(agent, env, "non_prior", budget(fam), seed=0)
    rec = env.arrays()
    a = rec["actions"]
    # explore 200 | eval 200 | explore 200 | eval 200 | explore 200 | eval 200
    assert a.shape[1] == 1200 and (out.transitions == 600).all() and (out.episodes == 3).all()
    explore = np.r_[0:200, 400:600, 800:1000]
    evaluate = np.r_[200:400, 600:800, 1000:1200]
    # the first 300 exploration steps are uniform random, the rest the stochastic policy
    rand = is_random(a[:, explore])
    assert rand[:, :300].all() and not rand[:, 300:].any()
    assert (a[:, explore[300:], 0] == -0.5).all()
    r = a[:, explore[:300]]
    assert r.min() < -0.95 and r.max() > 0.95 and abs(r.mean()) < 0.1
    # evaluation episodes are deterministic; z = 0 until 400 evaluation transitions are counted
    assert (a[:, evaluate, 0] == 0.5).all()
    assert (a[:, :800, 1][~is_random(a[:, :800])] == 0.5).all()
    assert (a[:, 800:, 1] == -0.5).all()
    # one inference (after the second evaluation episode) from the exploration transitions only
    (ctx,) = agent.contexts
    seen = explore[:400]
    assert ctx.mask.all() and ctx.obs.shape[1] == 400
    np.testing.assert_array_equal(ctx.obs.numpy(), rec["obs"][:, seen])
    np.testing.assert_array_equal(ctx.actions.numpy(), a[:, seen])
    np.testing.assert_array_equal(ctx.rewards[..., 0].numpy(), rec["rewards"][:, seen])
    # the score is the last evaluation episode's return
    np.testing.assert_allclose(out.returns, rec["rewards"][:, 1000:].sum(1), rtol=1e-5)


def test_offline_context_grows_by_200_task_transitions_per_episode():
    fam, env = point_robot(n_tasks=3, horizon=50)
    # distinguishable per-task datasets: each task's rewards equal its row
    per_task = [
        {
            "obs": np.zeros((30, 2)),
            "actions": np.zeros((30, 2)),
            "rewards": np.full(30, float(row)),
            "next_obs": np.zeros((30, 2)),
            "dones": np.zeros(30),
        }
        for row in range(5)
    ]
    data = TaskDataset(per_task, torch.device("cpu"))
    task_rows = torch.tensor([4, 0, 2])  # env i plays the task of dataset row task_rows[i]
    agent = ScriptedAgent()
    out = run_protocol(
        agent,
        env,
        "offline",
        budget(fam),
        offline_sample=lambda rows, n: data.sample(task_rows[torch.as_tensor(rows)], n),
    )
    assert (out.episodes == 3).all() and (out.transitions == 150).all()
    assert [c.mask.sum(1).tolist() for c in agent.contexts] == [[200] * 3, [400] * 3, [600] * 3]
    for c in agent.contexts:
        r = c.rewards[..., 0].numpy()
        np.testing.assert_array_equal(r, np.broadcast_to(task_rows[:, None].numpy(), r.shape))
    # z inferred before the very first episode: every action sees an inferred z
    assert (env.arrays()["actions"][:, :, 1] == -0.5).all()


@pytest.mark.parametrize("protocol", ["online", "non_prior"])
def test_whole_episodes_on_a_real_env_that_ends_early(protocol):
    fam = FAMILIES["hopper-mass"]()
    tasks = fam.tasks("train")[:2]
    env = Recording(fam.make_batch([t for t in tasks for _ in range(2)]))
    agent = ScriptedAgent(act_dim=env.act_dim, rest=-0.5)  # Hopper falls in 8-22 steps
    # (the authors' 200 exploration transitions per evaluation episode would make this test
    # step ~12k times with episodes of ~10 steps; 20 keeps it fast and changes no bookkeeping)
    explore = {"non_prior_exploration_transitions": 20} if protocol == "non_prior" else {}
    out = run_protocol(agent, env, protocol, budget(fam, **explore), seed=1)
    rec = env.arrays()
    assert (out.episodes >= 20).all()  # far more than 3 episodes of 200
    counted = rec["actions"][..., 0] == 0.5  # the deterministic (evaluation) steps
    np.testing.assert_array_equal(counted.sum(1), out.transitions)
    for i in range(env.num_envs):
        steps = np.flatnonzero(counted[i])
        # the scored episode: counted steps since env i's last reset before its last step
        first = max(t for t, m in env.resets if m[i] and t <= steps[-1])
        scored = steps[steps >= first]
        assert 0 < len(scored) < 200 and rec["terminated"][i, scored[-1]]  # whole: it fell
        # it started below the budget and was not cut at it
        assert out.transitions[i] - len(scored) < 600 <= out.transitions[i]
        np.testing.assert_allclose(out.returns[i], rec["rewards"][i, scored].sum(), rtol=1e-5)
    if protocol == "non_prior":
        # no evaluation transition ever joins the non-prior context
        for ctx in agent.contexts:
            acts = ctx.actions[ctx.mask][:, 0].numpy()
            assert not (acts == 0.5).any() and len(acts) >= 20


def test_a_threshold_at_or_above_the_budget_is_rejected():
    with pytest.raises(ValueError, match="never inferred"):
        EvalConfig(transitions=400, online_min_transitions=400)
    EvalConfig(transitions=600, online_min_transitions=400, non_prior_min_transitions=400)


# --- whole episodes: early termination at the authors' budgets ----------------------------------


class FixedLengthEnv(BatchEnv):
    """Env i terminates after exactly ``lengths[i]`` steps (horizon 200). Its reward is the
    episode's number (1 for the env's first episode, 2 for its second, ...), so a return names
    the episode it came from; every episode is logged as its list of action columns."""

    def __init__(self, lengths):
        self.lengths = np.asarray(lengths)
        self.num_envs, self.obs_dim, self.act_dim = len(lengths), 2, 2
        self.t = np.zeros(self.num_envs, np.int64)
        self.ep = np.zeros(self.num_envs, np.int64)
        self.episodes = [[] for _ in lengths]  # per env: per episode, its [steps, 2] actions

    def _obs(self):
        return np.stack([self.t / 200.0, self.ep], 1).astype(np.float32)

    def reset(self, seed=None, mask=None):
        mask = np.ones(self.num_envs, bool) if mask is None else mask
        self.t[mask] = 0
        self.ep[mask] += 1
        for i in np.flatnonzero(mask):
            self.episodes[i].append([])
        return self._obs()

    def step(self, actions):
        for i, a in enumerate(actions):
            self.episodes[i][-1].append(np.array(a, copy=True))
        self.t += 1
        term = self.t >= self.lengths
        return StepResult(self._obs(), self.ep.astype(np.float32), term, self.t >= 200)

    def played(self, i):
        """Env i's episodes as (length, kind): 'eval' (deterministic), 'explore', or 'idle'."""
        out = []
        for ep in self.episodes[i]:
            if not ep:
                continue
            a = np.stack(ep)
            kind = "eval" if (a[:, 0] == 0.5).all() else "idle" if (a == 0).all() else "explore"
            out.append((len(a), kind, a))
        return out


LENGTHS = (180, 150, 69)  # Hopper/Walker-like early falls; 200 divides the budget, these don't


def _budget(transitions: int) -> Budget:
    return Budget(
        transitions=transitions,
        horizon=200,
        offline_per_episode=200,
        online_min=400,
        non_prior_min=400,
        exploration=200,
        random_until=transitions // 2,
    )


def _ceil(a, b):
    return -(-a // b)


def _offline_sample(n_tasks):
    per_task = [
        {
            "obs": np.zeros((10, 2)),
            "actions": np.zeros((10, 2)),
            "rewards": np.full(10, 7.0),
            "next_obs": np.zeros((10, 2)),
            "dones": np.zeros(10),
        }
    ] * n_tasks
    data = TaskDataset(per_task, torch.device("cpu"))
    return lambda rows, n: data.sample(torch.as_tensor(rows), n)


class SizeAgent(ScriptedAgent):
    """ScriptedAgent whose action column 1 is -(context size of its z) / 10^4 (0 while z = 0):
    every logged action says which context its z came from."""

    def act(self, obs, z, deterministic=True):
        a = super().act(obs, z, deterministic)
        a[:, 1] = -z[:, 0] / 1e4
        return a


def z_size(a: np.ndarray) -> int:
    """The context size an episode's actions were played with (one z per episode)."""
    sizes = np.unique(np.round(-a[:, 1] * 1e4).astype(int))
    assert len(sizes) == 1, sizes
    return int(sizes[0])


@pytest.mark.parametrize("transitions", [600, 800])
@pytest.mark.parametrize("protocol", ["offline", "online"])
def test_counted_episodes_run_whole_past_the_budget(protocol, transitions):
    """A new episode starts while fewer than the budget are counted and runs to its own end:
    180-step episodes at 600 play 4 (720 counted), 69-step ones at 800 play 12 (828)."""
    env, agent = FixedLengthEnv(LENGTHS), SizeAgent()
    out = run_protocol(
        agent, env, protocol, _budget(transitions), _offline_sample(len(LENGTHS)), seed=0
    )
    n = np.array([_ceil(transitions, L) for L in LENGTHS])
    assert n.tolist() == ([4, 4, 9] if transitions == 600 else [5, 6, 12])
    np.testing.assert_array_equal(out.episodes, n)
    np.testing.assert_array_equal(out.transitions, n * np.array(LENGTHS))
    # the score is the last episode's, whole: its L steps, each rewarded with its number n
    np.testing.assert_allclose(out.returns, n * np.array(LENGTHS))
    for i, L in enumerate(LENGTHS):
        played = [p for p in env.played(i) if p[1] != "idle"]
        assert [(length, kind) for length, kind, _ in played] == [(L, "eval")] * n[i]
        if protocol == "offline":  # 200 dataset transitions join before every episode
            want = [200 * (k + 1) for k in range(n[i])]
        else:  # all own transitions, inferred before each episode once >= 400 exist
            want = [k * L if k * L >= 400 else 0 for k in range(n[i])]
        assert [z_size(a) for _, _, a in played] == want
        assert out.z[i, 0] == want[-1]  # the scored episode's z
    final = 200 * n if protocol == "offline" else n * np.array(LENGTHS)
    np.testing.assert_array_equal(out.context.len, final)


@pytest.mark.parametrize("transitions", [600, 800])
def test_non_prior_rollouts_and_evaluation_episodes_run_whole(transitions):
    """Exploration rollouts are whole episodes until >= 200 explored (180: 2 episodes = 360;
    69: 3 = 207); each evaluation episode runs to its end; random exploration actions while
    (count at the rollout's start + step in the episode) < budget / 2; z inferred after each
    evaluation episode that leaves >= 400 counted, from every exploration transition so far."""
    env, agent = FixedLengthEnv(LENGTHS), SizeAgent()
    out = run_protocol(agent, env, "non_prior", _budget(transitions), seed=0)
    for i, L in enumerate(LENGTHS):
        n_eval = _ceil(transitions, L)
        per_rollout = _ceil(200, L)  # exploration episodes before each evaluation episode
        played = [p for p in env.played(i) if p[1] != "idle"]
        cycle = [(L, "explore")] * per_rollout + [(L, "eval")]
        assert [(length, kind) for length, kind, _ in played] == cycle * n_eval
        assert out.episodes[i] == n_eval and out.transitions[i] == n_eval * L
        assert out.context.len[i] == n_eval * per_rollout * L  # every exploration transition
        # the scored episode is the env's last (whole) one: reward = its number, L steps
        assert out.returns[i] == pytest.approx(L * n_eval * (per_rollout + 1))
        z = 0
        for k in range(n_eval):  # cycle k: rollout, then evaluation episode k
            c = k * L  # evaluation transitions counted when rollout k started
            rollout = played[k * (per_rollout + 1) : (k + 1) * (per_rollout + 1) - 1]
            for _, _, a in rollout:
                random = c + np.arange(L) < transitions // 2  # t restarts every episode
                np.testing.assert_array_equal(is_random(a), random)
                assert (a[~random, 0] == -0.5).all()  # else the stochastic policy
                assert z_size(a[~random]) == z if (~random).any() else True
            assert z_size(played[(k + 1) * (per_rollout + 1) - 1][2]) == z
            if (k + 1) * L >= 400:  # inferred after this evaluation episode
                z = (k + 1) * per_rollout * L
        assert out.z[i, 0] == z_size(played[-1][2]) and out.z[i, 0] > 0
