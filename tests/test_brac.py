"""BRAC tested directly (docs/paper.md "Meta-training").

* alpha: plain SGD on the raw alpha (lr 1) -- rises by mean(divergence) - 0.05 when the
  divergence is above the target, falls when below; the value used is clipped to [0, alpha_max];
* the two dual-critic penalties as defined (output: the authors'; gradient: BRAC's);
* the fused step (ensemble Q, batched critic passes) equals the unfused reference;
* with an oracle z (one-hot task id) BRAC learns Point-Robot tasks (beats a random policy);
* ``terminals: trajectory_end`` marks every trajectory's last transition terminal;
* the compiled step equals the eager one (slow);
* ``log_std_init_bias`` (ours, off by default) starts no log-std at the clamp, alone and in a
  seed group; unset, it changes no initial weight and no run id.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ertrl_bench.backbones.brac import (
    BRAC,
    BRACOptions,
    gradient_penalty,
    output_penalty,
)
from ertrl_bench.batch import TaskDataset, Transitions
from ertrl_bench.ensemble import EnsembleMLP
from ertrl_bench.envs.point_robot import PointRobot
from ertrl_bench.problem import Problem
from ertrl_bench.suite_loader import builtin_suite_path, load_suite
from tests.brac_reference import ReferenceBRAC

M, B, DS, DA, L = 4, 32, 5, 3, 6


def _problem(ds=DS, da=DA, latent=L) -> Problem:
    return Problem(PointRobot(), ds, da, latent, torch.device("cpu"))


def _batch(g: torch.Generator, actions: float | None = None) -> Transitions:
    a = (
        torch.rand(M, B, DA, generator=g) * 2 - 1
        if actions is None
        else torch.full((M, B, DA), actions)
    )
    return Transitions(
        torch.randn(M, B, DS, generator=g),
        a,
        torch.randn(M, B, 1, generator=g),
        torch.randn(M, B, DS, generator=g),
        (torch.rand(M, B, 1, generator=g) < 0.1).float(),
        torch.arange(M),
    )


def _set_critic(agent: BRAC, action_weight: float, bias: float = 0.0) -> None:
    """c(s, a, z) = action_weight * sum(a) + bias exactly (a linear critic)."""
    lin = nn.Linear(DS + DA + L, 1)
    with torch.no_grad():
        lin.weight.zero_()
        lin.weight[0, DS : DS + DA] = action_weight
        lin.bias.fill_(bias)
    agent.c = nn.Sequential(lin)
    agent.opt_c = torch.optim.Adam(agent.c.parameters(), lr=agent.o.c_lr)


def _policy_mean(agent: BRAC, pre_tanh_mean: float) -> None:
    """A near-deterministic policy with tanh(mean) everywhere: last layer = bias only."""
    last = agent.policy[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias[:DA] = pre_tanh_mean
        last.bias[DA:] = -20.0  # log_std at its lower clamp


# --- alpha ----------------------------------------------------------------------------------


@pytest.mark.parametrize("above", [True, False])
def test_alpha_moves_by_sgd_on_raw_alpha_towards_the_target_divergence(above):
    torch.manual_seed(0)
    # c_lr tiny: the critic stays what we set, so the divergence is known
    # Point-Robot's alpha_init (its component_defaults, resolved into the options by a suite)
    agent = BRAC(BRACOptions(hidden=(16,), c_lr=1e-12, alpha_init=50.0), _problem())
    _policy_mean(agent, 2.0)  # policy actions ~ +0.96; the data's are -0.9
    if above:  # c high on policy actions, low on data ones: divergence ~ log(softplus(17)) + 1
        _set_critic(agent, 3.0)
    else:  # c = 0 everywhere: divergence = log(log 2) - log 2 + 1 ~ -0.06 < 0.05
        _set_critic(agent, 0.0)
    g = torch.Generator().manual_seed(0)
    z = torch.zeros(M, L)
    alpha0 = float(agent.raw_alpha)
    assert alpha0 == 50.0
    logs = agent.update(_batch(g, actions=-0.9), z, z)
    div = float(logs["brac/divergence"])
    step = float(agent.raw_alpha) - alpha0
    assert step == pytest.approx(div - 0.05, abs=1e-4)  # lr 1, target 0.05
    if above:
        assert div > 3.0 and step > 2.9
    else:
        assert div == pytest.approx(math.log(math.log(2)) - math.log(2) + 1, abs=1e-4)
        assert step < -0.1


def test_alpha_used_is_clipped_but_the_raw_alpha_is_not():
    torch.manual_seed(0)
    agent = BRAC(BRACOptions(hidden=(16,), alpha_max=60.0), _problem())
    g, z = torch.Generator().manual_seed(0), torch.zeros(M, L)
    agent.raw_alpha.fill_(75.0)
    logs = agent.update(_batch(g), z, z)
    assert float(logs["brac/alpha"]) == 60.0
    assert float(agent.raw_alpha) != 60.0  # the raw alpha moved on from 75, unclipped
    agent.raw_alpha.fill_(-3.0)
    assert float(agent.update(_batch(g), z, z)["brac/alpha"]) == 0.0


# --- the dual critic's penalties --------------------------------------------------------------


def test_output_penalty_is_on_the_critic_output():
    c = torch.tensor([0.5, -2.0, 3.0, 1.0])
    assert float(output_penalty(c)) == pytest.approx((0 + 1 + 4 + 0) / 4, abs=1e-6)


def test_gradient_penalty_is_on_the_action_gradient():
    torch.manual_seed(0)
    s, z, a = torch.randn(64, DS), torch.randn(64, L), torch.rand(64, DA)
    for w, expected in [
        (0.2, 0.0),
        (1.0, (math.sqrt(3) - 1) ** 2),
        (2.0, (2 * math.sqrt(3) - 1) ** 2),
    ]:
        lin = nn.Linear(DS + DA + L, 1)
        with torch.no_grad():
            lin.weight.normal_()  # s and z weights do not enter the action-gradient
            lin.weight[0, DS : DS + DA] = w
        assert float(gradient_penalty(lin, s, z, a).detach()) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("penalty", ["output", "gradient"])
def test_c_loss_includes_the_chosen_penalty(penalty):
    """c = 3 everywhere: the output penalty is (3 - 1)^2 = 4, the gradient penalty 0."""
    torch.manual_seed(0)
    agent = BRAC(BRACOptions(hidden=(16,), penalty=penalty, c_steps=1), _problem())
    _set_critic(agent, 0.0, bias=3.0)
    g, z = torch.Generator().manual_seed(0), torch.zeros(M, L)
    logs = agent.update(_batch(g), z, z)
    g3 = math.log1p(math.exp(3.0))
    est = math.log(g3) - g3 + 1
    expected = -est + (5.0 * 4.0 if penalty == "output" else 0.0)
    assert float(logs["brac/c_loss"]) == pytest.approx(expected, abs=1e-4)


# --- fused == unfused -------------------------------------------------------------------------


@pytest.mark.parametrize("penalty", ["output", "gradient"])
def test_fused_step_equals_the_unfused_reference(penalty):
    torch.manual_seed(0)
    fused = BRAC(BRACOptions(hidden=(32, 32), penalty=penalty), _problem())
    ref = ReferenceBRAC(fused)  # same weights, Q ensemble split into two nn.Linear MLPs
    g = torch.Generator().manual_seed(1)
    batches = [_batch(g) for _ in range(16)]
    z = torch.randn(M, L)
    for k in range(4):
        logs = []
        for agent in (fused, ref):
            fresh = iter(batches[4 * k + 1 : 4 * k + 4])
            torch.manual_seed(k)  # the same policy noise and interpolation draws
            logs.append(agent.update(batches[4 * k], z, z, sample_rl=lambda it=fresh: next(it)))
        for key in logs[0]:
            assert float(logs[0][key]) == pytest.approx(float(logs[1][key]), rel=1e-4, abs=1e-5)
    pairs = [(fused.policy, ref.policy), (fused.v, ref.v), (fused.c, ref.c)]
    for a, b in pairs:
        for p, q in zip(a.parameters(), b.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
    for e, net in enumerate((ref.q1, ref.q2)):
        lins = [m for m in net if isinstance(m, nn.Linear)]
        ens = [m for m in fused.q if not isinstance(m, nn.ReLU)]
        for lin, el in zip(lins, ens, strict=True):
            torch.testing.assert_close(el.weight[e], lin.weight.T, rtol=1e-4, atol=1e-5)
    assert float(fused.raw_alpha) == pytest.approx(float(ref.raw_alpha), abs=1e-4)


def test_c_steps_draw_fresh_batches():
    torch.manual_seed(0)
    agent = BRAC(BRACOptions(hidden=(16,)), _problem())
    g, z = torch.Generator().manual_seed(0), torch.zeros(M, L)
    calls = []

    def sample_rl():
        calls.append(1)
        return _batch(g)

    agent.update(_batch(g), z, z, sample_rl=sample_rl)
    assert len(calls) == 3


# --- terminals ------------------------------------------------------------------------------


def test_trajectory_end_marks_each_trajectorys_last_transition_terminal():
    n = 7
    task = {
        "obs": np.zeros((n, 2)),
        "actions": np.zeros((n, 2)),
        "rewards": np.zeros(n),
        "next_obs": np.zeros((n, 2)),
        "dones": np.array([0, 0, 0, 1, 0, 0, 0], np.float32),  # a true termination at 3
        "trajectory": np.array([0, 0, 0, 0, 1, 1, 2]),  # 1 ends by time limit, 2 is one step
    }
    env = TaskDataset([task], torch.device("cpu"), terminals="env")
    authors = TaskDataset([task], torch.device("cpu"), terminals="trajectory_end")
    assert env.data["dones"][0, :, 0].tolist() == [0, 0, 0, 1, 0, 0, 0]
    assert authors.data["dones"][0, :, 0].tolist() == [0, 0, 0, 1, 0, 1, 1]


# --- learning with an oracle z ----------------------------------------------------------------


@pytest.mark.slow  # ~60 s on a shared 2-core machine (plus the smoke data build when not cached)
def test_brac_learns_point_robot_tasks_with_an_oracle_z():
    """z = one-hot train-task id: the backbone alone must reach the goals of the training tasks.

    Smoke-tier Point-Robot data; 8 tasks x 64 transitions per step, 64 x 64 networks, 600
    steps. Measured when written: 52-67 normalized vs random -21 (mean over the train tasks).
    """
    from ertrl_bench.data import get_datasets
    from ertrl_bench.data.collect import rollout_episodes

    fam = PointRobot()
    data = get_datasets(fam, "smoke")
    torch.manual_seed(0)
    tasks = fam.tasks("train", data.tier.task_seed)
    td = TaskDataset([data.task_arrays(t) for t in tasks], torch.device("cpu"), "trajectory_end")
    n = len(tasks)
    agent = BRAC(BRACOptions(hidden=(64, 64)), _problem(2, 2, n))
    onehot = torch.eye(n)
    g = torch.Generator().manual_seed(0)
    for _ in range(600):
        rows = torch.randperm(n, generator=g)[:8]
        z = onehot[rows]
        agent.update(td.sample(rows, 64), z, z, sample_rl=lambda r=rows: td.sample(r, 64))

    def normalized(returns):
        return float(
            np.mean(
                [
                    100 * (r - data.r_min(t)) / (data.r_max(t) - data.r_min(t))
                    for r, t in zip(returns, tasks, strict=True)
                ]
            )
        )

    z_all = onehot.numpy()

    def brac_policy(obs):
        a = agent.act(torch.as_tensor(obs, dtype=torch.float32), torch.as_tensor(z_all))
        return a.numpy()

    rng = np.random.default_rng(0)
    learned = normalized(
        rollout_episodes(fam.make_batch(tasks), brac_policy, fam.horizon)["returns"]
    )
    random = normalized(
        rollout_episodes(
            fam.make_batch(tasks),
            lambda obs: rng.uniform(-1, 1, obs.shape).astype(np.float32),
            fam.horizon,
        )["returns"]
    )
    print(f"BRAC oracle-z train normalized {learned:.1f} vs random {random:.1f}")
    assert learned > random + 30


# --- torch.compile ----------------------------------------------------------------------------


@pytest.mark.slow
def test_compiled_step_equals_eager():
    torch.manual_seed(0)
    eager = BRAC(BRACOptions(hidden=(32, 32)), _problem())
    compiled = BRAC(BRACOptions(hidden=(32, 32)), _problem())
    for name in ("policy", "q", "v", "v_target", "c"):
        getattr(compiled, name).load_state_dict(getattr(eager, name).state_dict())
    compiled.compile()
    g = torch.Generator().manual_seed(1)
    batches = [_batch(g) for _ in range(12)]
    z = torch.randn(M, L)
    for k in range(3):
        logs = []
        for agent in (eager, compiled):
            fresh = iter(batches[4 * k + 1 : 4 * k + 4])
            torch.manual_seed(k)
            logs.append(agent.update(batches[4 * k], z, z, sample_rl=lambda it=fresh: next(it)))
        for key in logs[0]:
            assert float(logs[0][key]) == pytest.approx(float(logs[1][key]), rel=1e-4, abs=1e-5)
    for p, q in zip(eager.policy.parameters(), compiled.policy.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("bias, share", [(1.0, 1.0), (-1.0, 0.0)])
def test_the_step_logs_the_share_of_log_stds_the_clamp_cuts(bias, share):
    """Log-stds above log_std_max (0) get no gradient through the clamp: the log says how many."""
    torch.manual_seed(0)
    brac = BRAC(BRACOptions(hidden=(32, 32)), _problem())
    head = [m for m in brac.policy if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        head.weight.zero_()
        head.bias[DA:] = bias  # the second half of the head is the log-std
    g = torch.Generator().manual_seed(1)
    logs = brac.update(_batch(g), torch.zeros(M, L), torch.zeros(M, L))
    assert float(logs["brac/log_std_at_clamp"]) == share


# --- log_std_init_bias: the clamp trap avoided (ours, off by default) ---------------------------

CHEETAH_DS, CHEETAH_DA, CHEETAH_L = 20, 6, 20  # Cheetah-Vel: obs 20, action 6, z 20


def _cheetah_brac(seed: int, **options) -> BRAC:
    """A default-sized BRAC on Cheetah-Vel's dimensions, seeded as a run seeds it."""
    torch.manual_seed(seed)
    problem = Problem(PointRobot(), CHEETAH_DS, CHEETAH_DA, CHEETAH_L, torch.device("cpu"))
    return BRAC(BRACOptions(**options), problem)


def _raw_log_std(policy: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """The log-std half of the policy head's output, before BRAC's clamp."""
    with torch.no_grad():
        return policy(inputs).chunk(2, -1)[1]


def _states(seed: int, *lead: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*lead, 512, CHEETAH_DS + CHEETAH_L, generator=g)


def _digest(brac: BRAC) -> str:
    h = hashlib.sha256()
    for name in ("policy", "q", "v", "v_target", "c"):
        for key, t in getattr(brac, name).state_dict().items():
            h.update(key.encode())
            h.update(t.detach().numpy().tobytes())
    return h.hexdigest()[:16]


def test_default_brac_starts_bit_for_bit_as_before_the_option():
    """Digest of every network at seed 0, taken before ``log_std_init_bias`` existed: unset (or
    None) it changes no initial weight. (A torch upgrade that changes ``uniform_``'s draws would
    change it too: then recompute it on the commit before this test.)"""
    assert _digest(_cheetah_brac(0)) == "6bacdfa371371c3f"
    assert _digest(_cheetah_brac(0, log_std_init_bias=None)) == "6bacdfa371371c3f"


def test_log_std_init_bias_sets_the_log_std_bias_and_nothing_else():
    """It draws nothing: every other parameter (and the nets built after the policy) as without."""
    default, biased = _cheetah_brac(3), _cheetah_brac(3, log_std_init_bias=-1.0)
    head = biased.policy[-1]
    assert torch.equal(head.bias[CHEETAH_DA:], torch.full((CHEETAH_DA,), -1.0))
    for name in ("policy", "q", "v", "v_target", "c"):
        ours, theirs = getattr(biased, name).state_dict(), getattr(default, name).state_dict()
        for key in ours:
            if name == "policy" and key == f"{len(biased.policy) - 1}.bias":
                assert torch.equal(ours[key][:CHEETAH_DA], theirs[key][:CHEETAH_DA])  # mean head
            else:
                assert torch.equal(ours[key], theirs[key]), f"{name}.{key}"


def test_log_std_init_bias_starts_no_log_std_at_the_clamp():
    """The authors' init starts some of Cheetah's 6 log-std dimensions above the clamp's upper
    bound 0 on (nearly) every input (the trap); with the option none is at the clamp."""
    stuck_by_default = []
    for seed in range(3):
        states = _states(seed)
        raw = _raw_log_std(_cheetah_brac(seed).policy, states)
        stuck_by_default.append(float((raw > 0).float().mean(0).max()))
        biased = _raw_log_std(_cheetah_brac(seed, log_std_init_bias=-1.0).policy, states)
        assert float(((biased < -20.0) | (biased > 0.0)).float().mean()) == 0.0
    assert max(stuck_by_default) >= 0.99, stuck_by_default  # a dimension in the trap


def test_log_std_init_bias_holds_in_a_seed_group():
    """``BRACEnsemble`` stacks its members' networks: the members' biased heads are its heads."""
    members = [_cheetah_brac(seed, log_std_init_bias=-1.0) for seed in (0, 1)]
    group = BRAC.ensemble(members, rng=None)
    assert isinstance(group.policy, EnsembleMLP)
    raw = _raw_log_std(group.policy, _states(0, 2))
    assert raw.shape == (2, 512, CHEETAH_DA)
    assert float(((raw < -20.0) | (raw > 0.0)).float().mean()) == 0.0
    for k, member in enumerate(members):
        torch.testing.assert_close(raw[k], _raw_log_std(member.policy, _states(0, 2)[k]))


ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("study", ["repro-point-robot", "converge-point-robot"])
def test_unset_log_std_init_bias_keeps_the_committed_run_ids(study):
    """The resolved BRAC params leave the unset option out, so the built-in suites expand to the
    run ids of their committed results (results/<study>/<run id>/) as before it existed; set,
    it makes new runs."""
    suite, specs = load_suite(builtin_suite_path(study))
    committed = {p.name for p in (ROOT / "results" / study).iterdir() if (p / "spec.json").exists()}
    assert committed and committed <= {s.run_id() for s in specs}
    assert all("log_std_init_bias" not in s.method.backbone.params for s in specs)
    spec = specs[0]
    params = {**spec.method.backbone.params, "log_std_init_bias": -1.0}
    backbone = spec.method.backbone.model_copy(update={"params": params})
    changed = spec.model_copy(
        update={"method": spec.method.model_copy(update={"backbone": backbone})}
    )
    assert changed.run_id() != spec.run_id()
