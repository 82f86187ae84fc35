"""Every named method really learns: on Point-Robot it beats a random policy by a margin.

Budget: the smoke suite's settings (smoke-tier data, 4 x 250 train steps, 64-unit networks),
one seed (0). Measured when written: FOCAL ~60-75 normalized (offline context) vs random ~-5 on
unseen IID tasks. Margin required: 30 normalized points. FOCAL runs in the default test run; the
four other methods (train split, offline context) are slow-marked.
"""

import numpy as np
import pytest
import torch
import yaml

from ertrl_bench.config import Component
from ertrl_bench.data import get_datasets
from ertrl_bench.data.collect import rollout_episodes
from ertrl_bench.envs.point_robot import PointRobot
from ertrl_bench.executors import LocalExecutor
from ertrl_bench.nn import mlp
from ertrl_bench.registry import create
from ertrl_bench.runner import execute, make_family, run_suite
from ertrl_bench.suite_loader import builtin_suite_path, load_suite
from tests.helpers import USER_DATA_ROOT

MARGIN = 30.0


def random_policy_normalized(split: str) -> float:
    fam = PointRobot()
    data = get_datasets(fam, "smoke")
    tasks = fam.tasks(split, data.tier.task_seed)
    rng = np.random.default_rng(0)
    env = fam.make_batch(tasks)
    ep = rollout_episodes(
        env, lambda obs: rng.uniform(-1, 1, obs.shape).astype(np.float32), fam.horizon
    )
    norm = [
        100 * (r - data.r_min(t)) / (data.r_max(t) - data.r_min(t))
        for r, t in zip(ep["returns"], tasks, strict=True)
    ]
    return float(np.mean(norm))


def test_focal_beats_random_on_iid_tasks(tmp_path):
    suite, specs = load_suite("smoke")
    (spec,) = [s for s in specs if s.method.name == "focal"]
    spec = spec.model_copy(
        update={"device": "cpu", "eval": spec.eval.model_copy(update={"splits": ["iid"]})}
    )
    out = execute(spec, tmp_path)
    assert out.status == "done", out.message
    focal = out.metrics["final"]["iid"]["offline"]["normalized"]
    random = random_policy_normalized("iid")
    print(f"FOCAL iid offline-context normalized {focal:.1f} vs random {random:.1f}")
    assert focal > random + MARGIN


def _smoke_spec(tmp_path, method: str, split: str):
    """The smoke suite's run of ``method`` (named methods outside its grid too), one split."""
    raw = yaml.safe_load(builtin_suite_path("smoke").read_text())
    raw["grid"]["methods"] = [method]
    raw["device"] = "cpu"
    raw["eval"]["splits"] = [split]
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(raw))
    (spec,) = load_suite(path)[1]
    return spec


@pytest.mark.slow
@pytest.mark.parametrize("method", ["csro", "ertrl", "unicorn", "offline_pearl"])
def test_every_method_beats_random_on_train_tasks(tmp_path, method):
    out = execute(_smoke_spec(tmp_path, method, "train"), tmp_path / "results")
    assert out.status == "done", out.message
    score = out.metrics["final"]["train"]["offline"]["normalized"]
    random = random_policy_normalized("train")
    print(f"{method} train offline-context normalized {score:.1f} vs random {random:.1f}")
    assert score > random + MARGIN


# --------------------------------------------------------------------------- MuJoCo families

MUJOCO_FAMILIES = [
    "cheetah-vel", "ant-dir", "ant-goal", "humanoid-dir",
    "hopper-mass", "hopper-friction", "walker-mass", "walker-friction",
]  # fmt: skip
MUJOCO_MARGIN = 5.0
# Seeds of the FOCAL run; the criterion is their mean. One seed decided too little: Humanoid-Dir
# scored 3.6, 12.9 and 16.9 on seeds 0-2, a spread wider than the margin (benchmarks/measured/
# cpu-2core-2026-11-26/NOTES.md has every family's per-seed scores; the rule changed from seed 0
# alone to this mean on 2026-11-26, after those seeds were seen, for every family at once:
# CHANGELOG.md).
MUJOCO_SEEDS = [0, 1, 2]


def random_policy_normalized_on(family, data, split: str) -> float:
    """Mean normalized return of a uniform-random policy (actions in [-1, 1]^d) on ``split``."""
    tasks = family.tasks(split, data.tier.task_seed)
    rng = np.random.default_rng(0)
    env = family.make_batch(tasks)
    ep = rollout_episodes(
        env,
        lambda obs: rng.uniform(-1, 1, (obs.shape[0], env.act_dim)).astype(np.float32),
        family.horizon,
        seed=0,
    )
    scores = [data.normalized(t, r) for r, t in zip(ep["returns"], tasks, strict=True)]
    return float(np.mean(scores))


@pytest.mark.slow
@pytest.mark.parametrize("env", MUJOCO_FAMILIES)
def test_focal_learns_every_mujoco_family_from_small_data(tmp_path, env, monkeypatch):
    """Evidence that MuJoCo runs learn: the family's ``small`` data plus a short FOCAL run
    (repro-cheetah-vel's budget: 8 x 400 steps, 3 x 64 networks, RL batch 64; offline context)
    beats a uniform-random policy on the train tasks, on average over seeds 0-2. At this budget
    a policy's return swings by tens of normalized points from one evaluation to the next
    (results/repro-cheetah-vel's curves) and from one seed to the next, so a run's score is the
    mean of the last 3 of 4 evaluations, the test's score the mean over the 3 seeds, and the
    margin is 5.

    Uses the user's data cache (``$ERTRL_BENCH_DATA`` or the default, not the test session's
    temporary one) and builds the family's small data there when it is missing: on 2 CPU cores
    that is about an hour a family or more (benchmarks/measured/cpu-2core-2026-11-25/NOTES.md); build it first
    (``ertrl-bench datasets build <family> --tier small``) or run this on a GPU. The 3 runs run one
    per usable core (the local executor); measured times per family:
    benchmarks/measured/cpu-2core-2026-11-26/NOTES.md.
    """
    monkeypatch.setenv("ERTRL_BENCH_DATA", USER_DATA_ROOT)  # spawned workers inherit it
    raw = {
        "name": "mujoco-learns",
        "tier": "small",
        "device": "cpu",
        "train": {"iterations": 8, "steps_per_iteration": 400, "eval_every": 2, "rl_batch": 64,
                  "final_evals": 3},
        "eval": {"splits": ["train"], "protocols": ["offline"], "runs_per_task": 1,
                 "probe": {"enabled": False}},
        "component_params": {"mlp": {"hidden": [64, 64, 64]}, "brac": {"hidden": [64, 64, 64]}},
        "grid": {"envs": [env], "methods": ["focal"], "seeds": MUJOCO_SEEDS},
    }  # fmt: skip
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(raw))
    specs = load_suite(path)[1]
    outcomes = run_suite(specs, tmp_path / "results", LocalExecutor())
    assert [o.status for o in outcomes] == ["done"] * len(specs), [o.message for o in outcomes]
    by_run = {o.run_id: o.metrics["final"]["train"]["offline"]["normalized"] for o in outcomes}
    scores = [by_run[spec.run_id()] for spec in sorted(specs, key=lambda sp: sp.seed)]
    family = make_family(specs[0])
    random = random_policy_normalized_on(family, get_datasets(family, "small"), "train")
    print(
        f"{env}: FOCAL train offline-context normalized, seeds {MUJOCO_SEEDS}: "
        + ", ".join(f"{x:.1f}" for x in scores)
        + f" (mean {np.mean(scores):.1f}) vs random {random:.1f}"
    )
    assert np.mean(scores) > random + MUJOCO_MARGIN


def behavior_cloning_policy(data, tasks, steps: int = 3200, seed: int = 0):
    """A plain behavior-cloning policy on the tasks' pooled data: a 3 x 64 ReLU MLP with a tanh
    output, fitted to the data's actions by mean squared error (Adam 3e-4, batches of 1024).
    No z, no critic: the control that tells "the data holds a policy better than random" apart
    from "the offline RL backbone extracts it"."""
    obs = torch.from_numpy(np.concatenate([data.task_arrays(t)["obs"] for t in tasks]))
    act = torch.from_numpy(np.concatenate([data.task_arrays(t)["actions"] for t in tasks]))
    torch.manual_seed(seed)
    net = mlp(obs.shape[1], (64, 64, 64), act.shape[1], init="torch")
    opt = torch.optim.Adam(net.parameters(), lr=3e-4)
    draws = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(obs), (1024,), generator=draws)
        loss = (torch.tanh(net(obs[idx].float())) - act[idx].float()).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    def act_fn(o):
        with torch.no_grad():
            return torch.tanh(net(torch.as_tensor(o, dtype=torch.float32))).numpy()

    return act_fn


@pytest.mark.slow
@pytest.mark.parametrize("env", MUJOCO_FAMILIES)
def test_behavior_cloning_beats_random_on_every_mujoco_family(env, monkeypatch):
    """The control for the FOCAL test above: the family's small data holds a policy better than
    random, one a plain behavior-cloning MLP finds in 3.2k steps (the FOCAL test's count).
    Scored as FOCAL is (train split, one episode a task, normalized), same margin. Where this
    passes and FOCAL fails (Humanoid-Dir), the data and the env are not the problem."""
    monkeypatch.setenv("ERTRL_BENCH_DATA", USER_DATA_ROOT)
    family = create("envs", Component(type=env))
    data = get_datasets(family, "small")
    tasks = family.tasks("train", data.tier.task_seed)
    policy = behavior_cloning_policy(data, tasks)
    ep = rollout_episodes(family.make_batch(tasks), policy, family.horizon, seed=0)
    score = float(
        np.mean([data.normalized(t, r) for r, t in zip(ep["returns"], tasks, strict=True)])
    )
    random = random_policy_normalized_on(family, data, "train")
    print(f"{env}: behavior cloning train normalized {score:.1f} vs random {random:.1f}")
    assert score > random + MUJOCO_MARGIN
