"""Why ER-TRL's divergence floor on Cheetah-Vel is ~5x FOCAL's (issue 26, item 2).

Usage (from the repository root; RUN_DIR a copy of an ER-TRL run folder of the
converge-cheetah-vel study with its ``checkpoint.pt``, kept with ``--keep-checkpoints``)::

    OMP_NUM_THREADS=1 python results/converge-cheetah-vel/ertrl_floor.py RUN_DIR \
        [--steps 250] [--variants VARIANT ...] [--scratch SPEC_JSON ...] [--scratch-steps 100] \
        [--init-seeds N]

The commands and numbers of the study: ``NOTES.md`` beside this file ("ER-TRL is further off").

One process, one load (``runner.load_trained``), then, from the checkpoint each time (every
variant restarts from the same saved backbone state, torch seed 0, encoder frozen):

1. **The actor's log-std per action dimension** on the probe batch of ``alpha_diagnosis.Probe``
   (256 data transitions of each training task, z of a fresh context): the mean raw log-std and
   the share at or above BRAC's clamp (``log_std_max``, where the clamp passes no gradient).
2. **What z says about the task**: z of ``--contexts`` fresh contexts per training task; the
   between-task over the within-task spread and the nearest-task-mean accuracy.
3. **Continuations** of ``--steps`` steps, each printing the mean divergence estimate of every
   250-step window (fewer steps: one window) and ``Probe.measure`` after:

   * ``div``: ``alpha_diagnosis.py``'s ``div`` (c trained as BRAC, the actor on alpha x the
     divergence estimate only): the floor as the checkpoint has it;
   * ``div-unstuck``: the same after moving every log-std dimension that sits at the clamp
     (share above 0.5) back inside it: its output bias is lowered so that its mean raw log-std
     equals the mean of the other dimensions' (its weights, so its dependence on (s, z), are
     kept). Causal test of "a log-std stuck at the clamp holds the floor up";
   * ``asis-unstuck``: BRAC's own ``update`` after the same move (alpha moves): does the
     divergence stay down, and does the dimension go back to the clamp, when Q and the entropy
     term are on?
   * ``div-task-z``: ``div`` with z replaced by the task's mean z over ``--contexts`` contexts
     (a z that identifies the task and carries no context noise). Causal test of "ER-TRL's z
     carries too little task information for the actor to narrow".

4. ``--scratch SPEC_JSON ...``: from step 0, each run spec (its ``spec.json``; the same dataset
   as RUN_DIR) built as the runner builds it (``set_seed``, ``_build_run_agent``) and trained
   alone with ``step.train_step`` for ``--scratch-steps`` steps on meta-batches drawn as training
   draws them; prints the share of each action dimension's log-std at the clamp on the probe
   batch along the way: which dimensions fall into the clamp in the first steps, per method.
   (The study trained its seeds as one group with per-member random streams, so this repeats the
   runs' initialisation exactly, not their random draws after it.) With ``--init-seeds N``, first
   the initialisation lottery: under seeds 0..N-1, how many log-std dimensions of the spec's
   agent start at the clamp on at least 99.9% of the probe inputs (``--scratch-steps 0``: only
   this). ``--variants`` with no name skips the continuations.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ertrl_bench.backbones.brac import _broadcast, _flat
from ertrl_bench.config import RunSpec
from ertrl_bench.errors import ErtrlError
from ertrl_bench.runner import _build_run_agent, load_trained, set_seed
from ertrl_bench.step import train_step
from ertrl_bench.training import make_encoder_optimizer

_spec = importlib.util.spec_from_file_location(
    "alpha_diagnosis", Path(__file__).with_name("alpha_diagnosis.py")
)
ad = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ad)

WINDOW = ad.WINDOW
STUCK = 0.5  # a dimension with more than this share of its raw log-stds at the clamp is stuck


@torch.no_grad()
def raw_log_std(agent, probe) -> torch.Tensor:
    """The policy's raw (unclamped) log-std ``[T * N, A]`` on the probe batch."""
    _, z = agent.infer(probe.ctx)
    b = probe.batch.obs.shape[1]
    sz = torch.cat([_flat(probe.batch.obs), _broadcast(z, b)], -1)
    return agent.backbone.policy(sz).chunk(2, -1)[1]


def log_std_dims(agent, probe) -> dict:
    raw = raw_log_std(agent, probe)
    at = (raw >= agent.backbone.o.log_std_max).float().mean(0)
    return {
        "raw log-std mean": [round(float(v), 3) for v in raw.mean(0)],
        "raw log-std min": [round(float(v), 3) for v in raw.min(0).values],
        "at clamp": [round(float(v), 3) for v in at],
    }


def _last_linear(policy: torch.nn.Module) -> torch.nn.Linear:
    return [m for m in policy.modules() if isinstance(m, torch.nn.Linear)][-1]


@torch.no_grad()
def unstick(agent, probe) -> dict:
    """Lower the output bias of every stuck log-std dimension to the others' mean raw log-std."""
    raw = raw_log_std(agent, probe)
    at = (raw >= agent.backbone.o.log_std_max).float().mean(0)
    stuck = [int(j) for j in torch.nonzero(at > STUCK).flatten()]
    free = [j for j in range(raw.shape[1]) if j not in stuck]
    if not stuck or not free:
        return {"stuck": stuck}
    target = float(raw[:, free].mean())
    head = _last_linear(agent.backbone.policy)
    da = raw.shape[1]
    shifts = {}
    for j in stuck:
        shift = float(raw[:, j].mean()) - target
        head.bias[da + j] -= shift
        shifts[j] = round(shift, 3)
    return {"stuck": stuck, "target raw log-std": round(target, 3), "bias lowered by": shifts}


@torch.no_grad()
def task_z(agent, td, rows: torch.Tensor, contexts: int, context_size: int, seed: int = 2):
    """z of ``contexts`` fresh contexts per task ``[K, T, L]``; their per-task mean ``[T, L]``;
    the between-task / within-task spread and the nearest-task-mean accuracy."""
    g = torch.Generator().manual_seed(seed)
    zs = torch.stack(
        [agent.infer(td.sample(rows, context_size, generator=g))[1] for _ in range(contexts)]
    )
    mean = zs.mean(0)
    within = (zs - mean).pow(2).sum(-1).mean()
    between = (mean - mean.mean(0)).pow(2).sum(-1).mean()
    d = torch.cdist(zs.reshape(-1, zs.shape[-1]), mean)  # [K * T, T]
    truth = torch.arange(len(rows)).repeat(contexts)
    acc = (d.argmin(-1) == truth).float().mean()
    nn = torch.cdist(mean, mean) + torch.eye(len(rows)) * 1e9
    stats = {
        "between / within spread": round(float(between / within), 1),
        "within-task rms": round(float(within.sqrt()), 4),
        "nearest other task mean (median distance)": round(float(nn.min(-1).values.median()), 3),
        "nearest-task-mean accuracy": round(float(acc), 3),
        "|z| rms": round(float(zs.pow(2).sum(-1).mean().sqrt()), 3),
    }
    return mean, stats


def _measure(probe) -> str:
    keep = ("est", "KL own ck", "KL mix", "act gap own ck", "pi std", "beh std", "clamped")
    m = probe.measure()
    return json.dumps({k: round(m[k], 4) for k in keep})


def continuation(trained, probe, variant: str, steps: int, zbar: torch.Tensor) -> None:
    agent, td, cfg = trained.agent, trained.task_data, trained.spec.train
    bb = agent.backbone
    torch.manual_seed(0)
    if variant.endswith("unstuck"):
        print(f"{variant} move", json.dumps(unstick(agent, probe)), flush=True)
        print(f"{variant} dims after the move", json.dumps(log_std_dims(agent, probe)), flush=True)
    pos = {int(r): i for i, r in enumerate(probe.rows)}
    divs, t0 = [], time.perf_counter()
    for step in range(1, steps + 1):
        rows = probe.rows[torch.randperm(len(probe.rows))[: cfg.meta_batch]]
        with torch.no_grad():
            _, z = agent.infer(td.sample(rows, cfg.context_size))
        if variant == "div-task-z":
            z = zbar[[pos[int(r)] for r in rows]]

        def sample_rl(rows=rows):
            return td.sample(rows, cfg.rl_batch)

        batch = sample_rl()
        if variant == "asis-unstuck":
            divs.append(float(bb.update(batch, z, z, sample_rl)["brac/divergence"]))
        else:
            bb._update_c(batch, z, sample_rl)
            s, a, zr = _flat(batch.obs), _flat(batch.actions), _broadcast(z, cfg.rl_batch)
            divs.append(float(ad._actor_only_step(bb, bb.opt_policy, s, a, zr, "div")))
        if step % WINDOW == 0 or step == steps:
            n = step % WINDOW or WINDOW
            print(
                f"{variant} step {trained.step + step} alpha {float(bb.raw_alpha):.1f}"
                f" divergence(last {n}) {np.mean(divs[-n:]):.4f}"
                f" s/step {(time.perf_counter() - t0) / step:.3f}",
                flush=True,
            )
    print(f"{variant} after", _measure(probe), flush=True)
    print(f"{variant} dims after", json.dumps(log_std_dims(agent, probe)), flush=True)


def _read_spec(trained, spec_path: Path) -> RunSpec:
    try:
        spec = RunSpec.model_validate(json.loads(spec_path.read_text()))
    except (OSError, ValueError) as exc:
        raise ErtrlError(f"{spec_path}: not a readable run spec ({exc})"[:400]) from None
    if spec.tier != trained.spec.tier or spec.env != trained.spec.env:
        raise ErtrlError(
            f"{spec_path}: another dataset than the loaded run's; use one of its suite"
        )
    return spec


def scratch(trained, probe, spec_path: Path, steps: int) -> None:
    """A run's first ``steps`` steps alone, from its own initialisation (module doc, 4)."""
    spec = _read_spec(trained, spec_path)
    set_seed(spec.seed, spec.train.deterministic)
    agent, _, train_rows = _build_run_agent(
        spec, trained.family, trained.data, trained.task_data, torch.device("cpu")
    )
    enc_opt = make_encoder_optimizer(agent, spec.train.encoder_lr)
    td, cfg = trained.task_data, spec.train
    name = f"{spec.method.name} s{spec.seed}"
    marks = {0, 10, 25, 50, 100, 200, steps}
    print(f"scratch {name} step 0 at clamp", log_std_dims(agent, probe)["at clamp"], flush=True)
    for step in range(1, steps + 1):
        rows = train_rows[torch.randperm(len(train_rows))[: cfg.meta_batch]]
        ctx, rl = td.sample(rows, cfg.context_size), td.sample(rows, cfg.rl_batch)
        train_step(agent, enc_opt, ctx, rl, lambda rows=rows: td.sample(rows, cfg.rl_batch), step)
        if step in marks:
            dims = log_std_dims(agent, probe)
            print(
                f"scratch {name} step {step} at clamp {dims['at clamp']}"
                f" raw mean {dims['raw log-std mean']}",
                flush=True,
            )


def init_lottery(trained, probe, spec_path: Path, seeds: int) -> None:
    """Under seeds 0..``seeds``-1, the spec's agent as built at step 0: how many log-std
    dimensions are at or above the clamp on at least 99.9% of the probe inputs, and on all of
    them (a dimension there gets no gradient from those inputs)."""
    spec = _read_spec(trained, spec_path)
    most, every = [], []
    for seed in range(seeds):
        set_seed(seed, spec.train.deterministic)
        agent, _, _ = _build_run_agent(
            spec, trained.family, trained.data, trained.task_data, torch.device("cpu")
        )
        at = raw_log_std(agent, probe) >= agent.backbone.o.log_std_max
        most.append(int((at.float().mean(0) >= 0.999).sum()))
        every.append(int(at.all(0).sum()))
        share = [round(float(v), 4) for v in at.float().mean(0)]
        print(f"init {spec.method.name} seed {seed} at clamp {share}", flush=True)
    print(
        f"init {spec.method.name}: {sum(c > 0 for c in most)} of {seeds} seeds have a log-std"
        f" dimension at the clamp on >= 99.9% of probe inputs (dimensions per seed: {most});"
        f" on all of them: {sum(c > 0 for c in every)} (dimensions per seed: {every})",
        flush=True,
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("--steps", type=int, default=250)
    p.add_argument("--contexts", type=int, default=20)
    p.add_argument(
        "--variants", nargs="*", default=["div", "div-unstuck", "asis-unstuck", "div-task-z"]
    )
    p.add_argument("--scratch", type=Path, nargs="*", default=[])
    p.add_argument("--scratch-steps", type=int, default=100)
    p.add_argument("--init-seeds", type=int, default=0, help="init_lottery over these seeds")
    args = p.parse_args(argv)
    try:
        t0 = time.perf_counter()
        trained = load_trained(args.run)
        probe = ad.Probe(trained)
        print(
            f"{args.run.name} step {trained.step}; load {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
        agent, cfg = trained.agent, trained.spec.train
        print("dims", json.dumps(log_std_dims(agent, probe)), flush=True)
        print("before", _measure(probe), flush=True)
        zbar, zstats = task_z(agent, trained.task_data, probe.rows, args.contexts, cfg.context_size)
        print("z", json.dumps(zstats), flush=True)
        saved = copy.deepcopy(agent.backbone.state_dict())
        for variant in args.variants:
            agent.backbone.load_state_dict(copy.deepcopy(saved))
            continuation(trained, probe, variant, args.steps, zbar)
        for spec_path in args.scratch:
            if args.init_seeds:
                init_lottery(trained, probe, spec_path, args.init_seeds)
            if args.scratch_steps:
                scratch(trained, probe, spec_path, args.scratch_steps)
    except ErtrlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
