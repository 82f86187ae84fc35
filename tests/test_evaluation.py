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
from ertrl_bench.config import EvalConfig
from ertrl_bench.envs.base import BatchEnv
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
    return Budget.resolve(EvalConfig(**cfg), fam)


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
def test_budget_met_exactly_when_episodes_end_early(protocol):
    fam = FAMILIES["hopper-mass"]()
    tasks = fam.tasks("train")[:2]
    env = Recording(fam.make_batch([t for t in tasks for _ in range(2)]))
    agent = ScriptedAgent(act_dim=env.act_dim, rest=-0.5)  # Hopper falls in 8-22 steps
    # (the authors' 200 exploration transitions per evaluation episode would make this test
    # step ~12k times with episodes of ~10 steps; 20 keeps it fast and changes no bookkeeping)
    explore = {"non_prior_exploration_transitions": 20} if protocol == "non_prior" else {}
    out = run_protocol(agent, env, protocol, budget(fam, **explore), seed=1)
    rec = env.arrays()
    assert (out.transitions == 600).all()
    assert (out.episodes >= 20).all()  # far more than 3 episodes of 200
    counted = rec["actions"][..., 0] == 0.5  # the deterministic (evaluation) steps
    assert (counted.sum(1) == 600).all()
    for i in range(env.num_envs):
        steps = np.flatnonzero(counted[i])
        # the scored episode: counted steps since env i's last reset before its last step
        first = max(t for t, m in env.resets if m[i] and t <= steps[-1])
        scored = steps[steps >= first]
        assert 0 < len(scored) < 200
        np.testing.assert_allclose(out.returns[i], rec["rewards"][i, scored].sum(), rtol=1e-5)
    if protocol == "online":
        assert rec["actions"].shape[1] == 600  # every run spends its budget in the same steps
    else:
        # no evaluation transition ever joins the non-prior context
        for ctx in agent.contexts:
            acts = ctx.actions[ctx.mask][:, 0].numpy()
            assert not (acts == 0.5).any() and len(acts) >= 20


def test_a_threshold_at_or_above_the_budget_is_rejected():
    with pytest.raises(ValueError, match="never inferred"):
        EvalConfig(transitions=400, online_min_transitions=400)
    EvalConfig(transitions=600, online_min_transitions=400, non_prior_min_transitions=400)
