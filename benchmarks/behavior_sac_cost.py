"""CPU cost of one behavior-SAC step for Cheetah-Vel's 30 train + moderate tasks trained together.

Process time (CPU seconds of this process, so other jobs' load distorts it little, unlike wall
time) of one batched SAC update on a filled buffer, and of one batched action + env step, with
one torch thread, for three network / batch sizes::

    nice -n 10 python benchmarks/behavior_sac_cost.py

A build of N SAC steps costs about N x (update + act/env step); collection adds about a minute.
"""

from __future__ import annotations

import json
import os
import time

import torch

from ertrl_bench.data.rng import TaskStreams
from ertrl_bench.data.sac import BatchedSAC, TaskReplay
from ertrl_bench.data.tiers import resolve_tier
from ertrl_bench.envs.base import make_checked_batch
from ertrl_bench.envs.mujoco.cheetah import CheetahVel

SIZES = [(128, 128), (256, 128), (256, 256)]  # (width of both hidden layers, batch)


def main(n: int = 60) -> None:
    torch.set_num_threads(1)
    fam = CheetahVel()
    tasks = [t for t in fam.all_tasks(0) if t.split in ("train", "moderate")]
    T, cpu = len(tasks), torch.device("cpu")
    env = make_checked_batch(fam, tasks)
    obs = env.reset()
    out: dict = {"tasks": T}
    for width, batch in SIZES:
        tier = resolve_tier("small", fam, {"sac_hidden": (width, width), "sac_batch": batch})
        sac = BatchedSAC(T, 17, 6, tier, cpu, TaskStreams(0, [t.index for t in tasks], cpu))
        replay = TaskReplay(T, 3000, 17, 6, cpu)
        for _ in range(2000):
            replay.add(
                torch.randn(T, 17), torch.rand(T, 6), torch.randn(T), torch.randn(T, 17),
                torch.zeros(T),
            )  # fmt: skip
        for i in range(5):
            sac.update(replay, i)
        c, w = time.process_time(), time.perf_counter()
        for i in range(n):
            sac.update(replay, i)
        update, wall = (time.process_time() - c) / n, (time.perf_counter() - w) / n
        c = time.process_time()
        for _ in range(n):
            obs = env.step(sac.act(obs)).next_obs
        step = (time.process_time() - c) / n
        out[f"{width}x{width}/batch{batch}"] = {
            "update_cpu_ms": round(1e3 * update, 1),
            "update_wall_ms": round(1e3 * wall, 1),
            "act_env_cpu_ms": round(1e3 * step, 1),
        }
    out["loadavg"] = os.getloadavg()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
