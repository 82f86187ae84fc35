"""How expert a behavior-SAC schedule's Cheetah-Vel data gets, on the ER-TRL authors' scale.

Builds a few tasks' datasets with the data protocol unchanged (SAC checkpoints x stochastic
trajectories, ``get_datasets(..., tasks=...)``) for one candidate schedule, and prints per task
and checkpoint the best and mean trajectory return on the authors' scale (100 = the best
trajectory of their data for that task; ``ertrl_bench/analysis/authors_data``). The checkpoints
are the union of the 10-checkpoint protocols of every budget in ``--budgets``: the buffer holds
every step (it never wraps) and nothing else depends on ``sac_steps``, so a shorter budget's
training is exactly a prefix of the longest one and one build measures every budget::

    ERTRL_BENCH_DATA=/tmp/search nice -n 10 python benchmarks/behavior_sac_search.py \\
        --name h128-b128-lr1e-3 --budgets 30000,60000,100000 --out DIR

It is a resumable build (the training state is saved every 5 minutes): the same command
continues where a killed one stopped. ``--curve-from-state`` instead rolls out the snapshots
of an unfinished build's saved training state (the learning curve so far), the same way.
``benchmarks/measured/cpu-2core-2026-12-06/NOTES.md`` has what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import threading
import time
from pathlib import Path

import numpy as np
import torch

from ertrl_bench.analysis.paper_scale import authors_normalized
from ertrl_bench.data import dataset_dir, get_datasets
from ertrl_bench.data.build import TRAINING_STATE_FILE
from ertrl_bench.data.collect import rollout_episodes
from ertrl_bench.data.rng import TaskStreams, env_seed
from ertrl_bench.data.sac import EnsembleActor
from ertrl_bench.data.tiers import resolve_tier
from ertrl_bench.envs.base import make_checked_batch
from ertrl_bench.envs.mujoco.cheetah import CheetahVel

TIER = "small"  # the base the overrides apply to (only its task_seed and init matter)


def overrides(args) -> dict:
    budgets = [int(b) for b in args.budgets.split(",")]
    steps = max(budgets)
    return {
        "sac_steps": steps,
        "random_steps": args.random_steps,
        "checkpoints": sorted({b * k // 10 for b in budgets for k in range(1, 11)}),
        "trajectories_per_checkpoint": 10,
        "sac_hidden": (args.hidden, args.hidden),
        "sac_batch": args.batch,
        "sac_lr": args.lr,
        "buffer_size": steps,
    }


def on_scale(key: str, ret: float) -> float:
    return round(authors_normalized("cheetah-vel", key, ret), 1)


def protocol_rmax(rows: list[dict], budget: int) -> float:
    """R_max of a ``budget``-step build's own 10 checkpoints (budget / 10, ..., budget)."""
    own = {budget * k // 10 for k in range(1, 11)}
    return max(r["max"] for r in rows if r["step"] in own)


def from_dataset(args, over: dict) -> dict:
    """Build (or resume) the search build; per task and checkpoint, best / mean return."""
    loads: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(30):
            loads.append(os.getloadavg()[0])

    threading.Thread(target=sample, daemon=True).start()
    t0, c0 = time.time(), resource.getrusage(resource.RUSAGE_SELF)
    fd = get_datasets(CheetahVel(), TIER, over, tasks=args.tasks, save_every_s=300, max_memory=None)
    stop.set()
    c1 = resource.getrusage(resource.RUSAGE_SELF)
    out = {
        "wall_s": time.time() - t0,
        "cpu_s": c1.ru_utime - c0.ru_utime + c1.ru_stime - c0.ru_stime,
        "load_avg_samples": loads,
        "last_build": json.loads((Path(fd.path) / "manifest.json").read_text()).get("last_build"),
        "curves": {},
    }
    for t in fd.tasks:
        a = fd.arrays[t.key]
        returns = np.bincount(a["trajectory"], weights=a["rewards"])
        step_of = np.zeros(len(returns), np.int64)
        step_of[a["trajectory"]] = a["checkpoint"]
        out["curves"][t.key] = [
            {"step": s, "max": float(returns[step_of == s].max()),
             "mean": float(returns[step_of == s].mean())}
            for s in over["checkpoints"]
        ]  # fmt: skip
    return out


def from_state(args, over: dict) -> dict:
    """The snapshots of an unfinished build's saved training state, rolled out as a build
    collects them (10 stochastic trajectories per task and checkpoint, its random streams)."""
    fam = CheetahVel()
    path = dataset_dir(fam, TIER, resolve_tier(TIER, fam, over)).path / TRAINING_STATE_FILE
    state = torch.load(path, map_location="cpu", weights_only=False)
    by_index = {t.index: t for t in fam.all_tasks(0)}
    tasks = [by_index[i] for i in state["tasks"]]
    k = over["trajectories_per_checkpoint"]
    env = make_checked_batch(fam, [t for t in tasks for _ in range(k)])
    actor = EnsembleActor(len(tasks), 17, 6, over["sac_hidden"])
    out = {"state_step": state["step"], "curves": {t.key: [] for t in tasks}}
    for ci, step in enumerate(over["checkpoints"]):
        if step not in state["snapshots"]:
            continue
        actor.load_state_dict(state["snapshots"][step])
        streams = TaskStreams(0, [t.index for t in tasks], torch.device("cpu"), purpose=1 + ci)

        @torch.no_grad()
        def policy(obs, _streams=streams):
            x = torch.as_tensor(obs, dtype=torch.float32).view(len(tasks), k, -1)
            a, _ = actor(x, noise=_streams.normal(k, 6))
            return a.reshape(len(tasks) * k, -1).numpy()

        seeds = [env_seed(0, t.index, 1 + ci, r) for t in tasks for r in range(k)]
        ep = rollout_episodes(env, policy, fam.horizon, seeds=seeds)
        for ti, t in enumerate(tasks):
            r = ep["returns"][ti * k : (ti + 1) * k]
            out["curves"][t.key].append(
                {"step": step, "max": float(r.max()), "mean": float(r.mean())}
            )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--name", required=True)
    p.add_argument(
        "--tasks", default="5,10,29,34", help="grid indices (train 10-29, moderate 5-9, 30-34)"
    )
    p.add_argument("--budgets", default="30000,60000,100000")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--random-steps", type=int, default=2000)
    p.add_argument("--curve-from-state", action="store_true")
    p.add_argument("--out", default=".")
    args = p.parse_args()
    args.tasks = [int(t) for t in args.tasks.split(",")]
    torch.set_num_threads(1)
    over = overrides(args)
    out = from_state(args, over) if args.curve_from_state else from_dataset(args, over)
    out = {"name": args.name, "overrides": over, **out}
    for key, rows in out["curves"].items():
        for r in rows:
            r["max_authors"], r["mean_authors"] = on_scale(key, r["max"]), on_scale(key, r["mean"])
        done = max(r["step"] for r in rows)
        budgets = [int(b) for b in args.budgets.split(",") if int(b) <= done]
        out.setdefault("r_max_authors", {})[key] = {
            b: on_scale(key, protocol_rmax(rows, b)) for b in budgets
        }
        curve = ", ".join(f"{r['step'] // 1000}k: {r['max_authors']}" for r in rows)
        print(f"{key} best trajectory on the authors' scale per checkpoint: {curve}")
    print("R_max of each budget's 10 checkpoints, authors' scale:", out["r_max_authors"])
    suffix = "-curve" if args.curve_from_state else ""
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / f"{args.name}{suffix}.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
