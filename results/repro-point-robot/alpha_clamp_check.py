"""Causal check of the alpha climb: continue a run's BRAC from its checkpoint with the log-std
clamp as BRAC has it, or with a clamp of the same value that passes the gradient.

Usage (from the repository root; RUN_DIR holds spec.json and checkpoint.pt)::

    OMP_NUM_THREADS=1 python results/repro-point-robot/alpha_clamp_check.py RUN_DIR {asis,pass} STEPS

BRAC clamps the policy's raw log-std to ``[log_std_min, log_std_max]`` (``[-20, 0]``); where the
raw value is above 0 the clamp's gradient is zero, so no loss term can narrow the policy there
(``alpha_diagnosis.py``'s ``std clamped``). ``pass`` keeps the clamp's values but lets the
gradient through (straight-through). The encoder and the encoder losses are frozen (z of fresh
ordinary contexts, as training draws them); each step is BRAC's own ``update`` on a meta-batch of
the run's training tasks. Prints alpha, the mean divergence of the last 250 steps and the clamped
fraction every 250 steps.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from ertrl_bench.runner import load_trained


def main(run: str, variant: str, steps: int) -> None:
    trained = load_trained(run)
    bb, agent, td, cfg = (
        trained.agent.backbone,
        trained.agent,
        trained.task_data,
        trained.spec.train,
    )
    torch.manual_seed(0)
    if variant == "pass":

        def pi_params(sz):
            mean, log_std = bb.policy(sz).chunk(2, -1)
            clamped = log_std.clamp(bb.o.log_std_min, bb.o.log_std_max)
            return mean, log_std + (clamped - log_std).detach()  # its value, identity gradient

        bb._pi_params = pi_params
    elif variant != "asis":
        sys.exit(f"error: variant {variant!r}: choose asis or pass")
    train_rows = torch.tensor([trained.rows[t.key] for t in trained.family.tasks("train")])
    divs = []
    for step in range(1, steps + 1):
        rows = train_rows[torch.randperm(len(train_rows))[: cfg.meta_batch]]
        with torch.no_grad():
            _, z = agent.infer(td.sample(rows, cfg.context_size))
        logs = bb.update(
            td.sample(rows, cfg.rl_batch), z, z, lambda rows=rows: td.sample(rows, cfg.rl_batch)
        )
        divs.append(float(logs["brac/divergence"]))
        if step % 250 == 0:
            s = td.sample(train_rows, cfg.rl_batch).obs
            with torch.no_grad():
                _, zz = agent.infer(td.sample(train_rows, cfg.context_size))
                zs = zz[:, None].expand(-1, s.shape[1], -1)
                raw = bb.policy(torch.cat([s, zs], -1)).chunk(2, -1)[1]
            clamped = float((raw >= bb.o.log_std_max).float().mean())
            print(
                f"{variant} step {trained.step + step} alpha {float(bb.alpha()):.1f}"
                f" divergence(last 250) {np.mean(divs[-250:]):.4f} clamped {clamped:.3f}",
                flush=True,
            )


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
