"""What a mid-run checkpoint costs: seconds to write one, its size, and the same in train steps.

A paper-size agent (the method's default networks, the family's latent size; no dataset needed:
random-action data of the family's dimensions) takes a few train steps so that every optimizer
has its state, then ``Checkpointer.save`` writes its whole state ``--repeats`` times::

    python benchmarks/checkpoint_cost.py --env cheetah-vel --method ertrl --threads 1

Prints one JSON line: seconds per checkpoint (median), file size, seconds per train step
(meta-batch 16 x RL batch 256, the paper's) and the share of a run spent on checkpoints at the
default interval (10 min).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ertrl_bench.checkpoint import Checkpointer
from ertrl_bench.config import Suite
from ertrl_bench.dryrun import random_data_problem
from ertrl_bench.step import train_step
from ertrl_bench.suite_loader import expand_suite
from ertrl_bench.training import agent_state, build_agent, make_encoder_optimizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--env", default="cheetah-vel")
    ap.add_argument("--method", default="ertrl")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3, help="timed train steps")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    suite = {"name": "cost", "grid": {"envs": [args.env], "methods": [args.method], "seeds": [0]}}
    (spec,) = expand_suite(Suite.model_validate(suite))

    _, train, data, problem = random_data_problem(spec, tasks=16, steps=64, seed=0)
    rows = torch.arange(len(train))
    torch.manual_seed(0)
    agent = build_agent(spec.method, problem)
    opt = make_encoder_optimizer(agent, spec.train.encoder_lr)
    context = spec.train.context_size

    def step() -> None:
        ctx, rl = data.sample(rows, context), data.sample(rows, 256)
        train_step(agent, opt, ctx, rl, lambda: data.sample(rows, 256), step=1)

    step()  # every optimizer has its state now
    t = time.perf_counter()
    for _ in range(args.steps):
        step()
    step_s = (time.perf_counter() - t) / args.steps

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkpoint.pt"
        run_part = {"history": "[]", "last_z": {}, "log": "", "timing": {}}
        ck = Checkpointer(path, spec.run_id(), 600.0, lambda: run_part)
        seconds = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            ck.save({"iteration": 0, "step": 1, "agent": agent_state(agent, opt)})
            seconds.append(time.perf_counter() - t)
        size_mb = path.stat().st_size / 2**20
    per_checkpoint = statistics.median(seconds)
    print(
        json.dumps(
            {
                "env": args.env,
                "method": args.method,
                "threads": torch.get_num_threads(),
                "checkpoint_s": round(per_checkpoint, 4),
                "checkpoint_mb": round(size_mb, 2),
                "train_step_s": round(step_s, 4),
                "checkpoint_in_train_steps": round(per_checkpoint / step_s, 2),
                "share_at_10_min": f"{100 * per_checkpoint / 600:.4f}%",
            }
        )
    )


if __name__ == "__main__":
    main()
