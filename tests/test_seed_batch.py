"""Seeds as a batch dimension: a seed group trains K runs as one computation, with the numbers
of the K runs trained alone.

Tolerance: ``RTOL``/``ATOL`` below. Why not bit for bit: the group's networks multiply with one
batched matmul (``baddbmm``) where a run alone uses ``nn.Linear`` (``addmm``), which sums the
same products in another order, about 1 ulp (1e-7 relative) per layer; training carries the
difference forward and amplifies it slowly. Everything else (random draws, Adam, losses) is
the same arithmetic per member. A real mismatch (a member's random draw, its optimizer state,
a loss mixing members) differs at the 1e-2..1 level at once.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ertrl_bench.batch import TaskDataset
from ertrl_bench.checkpoint import capture_rng
from ertrl_bench.config import Component, MethodSpec, ResolvedTrainConfig
from ertrl_bench.ensemble import EnsembleMLP, MemberRNG, StackedAdam
from ertrl_bench.envs.point_robot import PointRobot
from ertrl_bench.methods import METHODS
from ertrl_bench.nn import ensemble_mlp, mlp
from ertrl_bench.problem import Problem
from ertrl_bench.runner import set_seed
from ertrl_bench.seed_batch import meta_train_group
from ertrl_bench.training import build_agent, meta_train

RTOL, ATOL = 1e-4, 1e-5
SMALL = {"hidden": [16]}
SEEDS = (0, 1, 2)


def _close(a, b, what: str) -> None:
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=RTOL, atol=ATOL, err_msg=what)


# --- (a) networks and optimizers -------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [lambda: mlp(5, (8, 8), 3, init="rlkit"), lambda: ensemble_mlp(2, 5, (8,), 1, init="torch")],
)
def test_ensemble_mlp_trains_each_member_as_alone(make):
    """Forward, backward and Adam of a stacked network equal each member's own, member by
    member; ``write_back`` leaves each member as its own training would."""
    members = [make() for _ in range(3)]
    alone = [make() for _ in range(3)]
    for a, m in zip(alone, members, strict=True):
        a.load_state_dict(m.state_dict())
    opts = [torch.optim.Adam(m.parameters(), lr=1e-2) for m in members]
    alone_opts = [torch.optim.Adam(a.parameters(), lr=1e-2) for a in alone]
    ens = EnsembleMLP(members)
    ens_opt = StackedAdam(opts, ens.links)
    e = members[0][0].weight.shape[0] if members[0][0].weight.dim() == 3 else None
    shape = (e, 7, 5) if e else (4, 7, 5)
    xs = torch.randn(3, *shape)
    for _ in range(3):
        out = ens(xs)
        for k, a in enumerate(alone):
            _close(out[k].detach(), a(xs[k]).detach(), f"member {k} forward")
        ens_opt.zero_grad()
        out.pow(2).mean(tuple(range(1, out.dim()))).sum().backward()
        ens_opt.step()
        for a, opt in zip(alone, alone_opts, strict=True):
            opt.zero_grad()
            a(xs[alone.index(a)]).pow(2).mean().backward()
            opt.step()
    ens.write_back()
    ens_opt.write_back()
    for k, (m, a) in enumerate(zip(members, alone, strict=True)):
        for p, q in zip(m.parameters(), a.parameters(), strict=True):
            _close(p.detach(), q.detach(), f"member {k} weights")
        for p, q in zip(m.parameters(), a.parameters(), strict=True):
            s, t = opts[k].state[p], alone_opts[k].state[q]
            assert float(s["step"]) == float(t["step"]) == 3
            _close(s["exp_avg_sq"], t["exp_avg_sq"], f"member {k} Adam moments")


def test_member_rng_draws_each_seeds_stream():
    """Member k draws what its run alone draws from the global RNG, and its evaluation sees
    its own streams (torch, numpy)."""
    states = []
    for seed in SEEDS:
        set_seed(seed)
        states.append(capture_rng())
    rng = MemberRNG(states, torch.device("cpu"))
    drawn = rng.draw(lambda g: torch.rand(4, generator=g))
    with rng.member(1):
        later = (torch.rand(2), np.random.rand())
    for k, seed in enumerate(SEEDS):
        set_seed(seed)
        _close(drawn[k], torch.rand(4), "first draw")
        if k == 1:
            assert torch.equal(later[0], torch.rand(2)) and later[1] == np.random.rand()


# --- (b) the K-seed training loop ------------------------------------------------------------


def _data() -> TaskDataset:
    rng = np.random.default_rng(0)
    per = [
        {
            "obs": rng.normal(size=(n, 2)),
            "actions": rng.uniform(-1, 1, (n, 2)),
            "rewards": rng.normal(size=n),
            "next_obs": rng.normal(size=(n, 2)),
            "dones": (rng.uniform(size=n) < 0.1).astype(float),
        }
        for n in (30, 24, 40, 33, 28)
    ]
    return TaskDataset(per, torch.device("cpu"))


def _method(name: str) -> MethodSpec:
    spec = METHODS[name]
    return MethodSpec(
        name=name,
        encoder=Component(type="mlp", params=SMALL),
        encoder_losses=[
            Component(type=t, params=SMALL if t == "unicorn" else {})
            for t in spec["encoder_losses"]
        ],
        backbone=Component(type="brac", params=SMALL),
        encoder_through_q=spec.get("encoder_through_q", False),
    )


CFG = ResolvedTrainConfig(
    iterations=2,
    steps_per_iteration=4,
    meta_batch=3,
    rl_batch=8,
    context_size=6,
    latent_dim=4,
    eval_every=1,
)


def _setup(method: MethodSpec, seed: int):
    """What ``runner._run`` does before training, for one seed."""
    set_seed(seed)
    problem = Problem(PointRobot(), 2, 2, 4, torch.device("cpu"))
    agent = build_agent(method, problem)
    return agent, torch.Generator().manual_seed(seed)


def _probe(agent, records: list):
    """An 'evaluation': the agent's z and actions on fixed data, and a draw from the global
    RNG (the evaluation's own random numbers come from the run's streams)."""
    data = _data()

    def evaluate(it: int, step: int) -> None:
        ctx = data.sample(torch.arange(3), 5, generator=torch.Generator().manual_seed(9))
        with torch.no_grad():
            _, z = agent.infer(ctx)
            act = agent.backbone.act(ctx.obs[:, 0], z)
        records.append(
            {
                "eval": (it, step),
                "z": z.tolist(),
                "act": act.tolist(),
                "draw": torch.rand(2).tolist(),
            }
        )

    return evaluate


def _compare(alone: list, together: list) -> None:
    assert len(alone) == len(together)
    for a, b in zip(alone, together, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(a[key], (int, str, bool, tuple)):
                assert a[key] == b[key], key
            else:
                _close(b[key], a[key], key)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_group_equals_runs_alone(name, monkeypatch):
    """Logs (every step), evaluations and the final networks of a K=3 group equal the three
    runs trained alone, for every built-in method."""
    monkeypatch.setattr("ertrl_bench.training.LOG_EVERY", 1)
    monkeypatch.setattr("ertrl_bench.seed_batch.LOG_EVERY", 1)
    method = _method(name)
    data = _data()
    rows = torch.tensor([0, 1, 2, 3])
    alone_logs, alone_agents = [], []
    for seed in SEEDS:
        agent, gen = _setup(method, seed)
        records: list = []
        meta_train(agent, data, rows, CFG, records.append, _probe(agent, records), gen)
        alone_logs.append(records)
        alone_agents.append(agent)

    agents, gens, states, group_logs = [], [], [], []
    for seed in SEEDS:
        agent, gen = _setup(method, seed)
        agents.append(agent)
        gens.append(gen)
        states.append(capture_rng())
        group_logs.append([])
    failed = meta_train_group(
        agents,
        data,
        rows,
        CFG,
        [r.append for r in group_logs],
        [_probe(a, r) for a, r in zip(agents, group_logs, strict=True)],
        gens,
        states,
    )
    assert failed == [None] * len(SEEDS)
    for k in range(len(SEEDS)):
        _compare(alone_logs[k], group_logs[k])
        for (n, p), (_, q) in zip(
            agents[k].backbone.policy.named_parameters(),
            alone_agents[k].backbone.policy.named_parameters(),
            strict=True,
        ):
            _close(p.detach(), q.detach(), f"seed {SEEDS[k]} policy {n}")
