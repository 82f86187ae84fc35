"""The GPU figures of benchmarks/measured/h200-*, in one script sized for a short GPU lease.

Run on a machine with a CUDA GPU (``python benchmarks/gpu_figures.py OUT_DIR [BUDGET_S]``); each
stage appends to ``OUT_DIR/gpu_figures.json`` as it finishes, so a stage that runs out of time
loses nothing before it. Stages (``GPU_FIGURES_STAGES=graph,step`` runs a subset):

0. ``graph``: the step captured as one CUDA graph (``ertrl_bench/cuda_graph.py``), float32
   and TF32 matmuls, FOCAL and ER-TRL.
1. ``step``: one paper-size meta-training step on CUDA (``benchmarks/test_bench_step.py``'s
   setting: Cheetah-Vel dims, 16 tasks, context 100, RL batch 256, encoder 3 x 200, BRAC 3 x 256),
   FOCAL and ER-TRL, the fused step against the unfused computation of the same numbers; mean
   seconds per step over ``REPS`` steps after a warm-up, measured twice (the spread is noise).
2. ``anatomy``: the same step split by component (synchronised around each part).
3. ``sac``: the paper tier's behavior-policy SAC (1024 x 1024, batch 1024) for 40 Cheetah-Vel
   tasks as one batched computation, env stepping included. Two lengths are run and the
   difference gives seconds per learning step (setup and the random-action phase cancel), which
   is extrapolated to the paper's 1M steps -- an extrapolation, not a run, and said so. Measured
   with float32 matmuls and with TF32 (``torch.backends.cuda.matmul.allow_tf32``).
3b. ``sac_parts``: where that SAC step's time goes (env stepping on the host, acting, replay
   writes, the per-task random draws, the update; the update includes its own draws).
4. ``compile``: the step with ``BRAC.compile()`` (``train: {compile: true}``): compile seconds
   and seconds per step afterwards.
5. ``sac_graph``: the paper tier's SAC update alone (40 Cheetah-Vel tasks, draws included),
   eager vs graphed (``--sac-cuda-graph``), each at float32, TF32 and ``sac_autocast: bf16``.
6. ``kseed``: the K-seed train step (#27 item 1) for K = 1, 5, 10, through
   ``benchmarks/test_bench_step.py``'s ``kseed_step_time(method, k, reps)`` where it exists.
7. ``graph_more``: the graphed step (float32) of CSRO, UNICORN and Offline PEARL (``graph``
   measures FOCAL and ER-TRL).
8. ``eval``: one paper-size evaluation of Cheetah-Vel (every split, 2 runs per task, every
   protocol) by a paper-size FOCAL agent (untrained: its episodes run full length) on the GPU,
   MuJoCo on the host: the figure docs/cost.md's model takes from a 2-core CPU until measured.

The end-to-end check (``ertrl-bench run smoke`` with ``device: auto`` on the GPU) is run by the
calling shell command, not here.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("ERTRL_BENCH_QUIET", "1")

# ``GPU_FIGURES_DRY=1`` runs every stage on the CPU at toy sizes: a check of this script, not a
# measurement
DRY = bool(os.environ.get("GPU_FIGURES_DRY"))
DEVICE = torch.device("cpu" if DRY else "cuda")
REPS = 2 if DRY else 50
SAC_TASKS = 2 if DRY else 40
SAC_RANDOM = 100
SAC_LENGTHS = (102, 104) if DRY else (300, 700)  # env steps per task


def _record(out: Path, key: str, value) -> None:
    path = out / "gpu_figures.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = value
    path.write_text(json.dumps(data, indent=1))
    print(f"[{key}] {json.dumps(value)}", flush=True)


def _sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def stage_info() -> dict:
    if DRY:
        return {"device": "cpu (dry run)", "torch": torch.__version__}
    props = torch.cuda.get_device_properties(0)
    return {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "sms": props.multi_processor_count,
        "memory_gib": round(props.total_memory / 2**30, 1),
        "cpu_threads": torch.get_num_threads(),
    }


def stage_step() -> dict:
    from test_bench_step import step_time

    out = {}
    for method in ("focal", "ertrl"):
        for variant in ("fused", "reference"):
            out[f"{method}/{variant}_ms"] = [
                round(step_time(method, variant, REPS, DEVICE.type) * 1e3, 3) for _ in range(2)
            ]
    return out


def stage_anatomy() -> dict:
    from test_bench_step import anatomy

    return {
        m: {k: round(v * 1e3, 3) for k, v in anatomy(m, DEVICE, 2 if DRY else 20).items()}
        for m in ("focal", "ertrl")
    }


def _sac_seconds(steps: int):
    """Wall seconds of a SAC run of ``steps`` env steps per task, the task count, the config."""
    from ertrl_bench.data.sac import train_behavior_policies
    from ertrl_bench.data.tiers import resolve_tier
    from ertrl_bench.envs.mujoco import CheetahVel

    fam = CheetahVel()
    tasks = [t for s in ("train", "moderate", "extreme", "iid") for t in fam.tasks(s)]
    tasks = tasks[:SAC_TASKS]
    schedule = dict(
        sac_steps=steps,
        random_steps=SAC_RANDOM,
        checkpoints=[steps],
        trajectories_per_checkpoint=1,
        buffer_size=steps,
    )
    cfg = resolve_tier("paper", fam, schedule)
    obs_dim, act_dim = fam.spaces()
    _sync()
    t0 = time.perf_counter()
    train_behavior_policies(fam.make_batch(tasks), obs_dim, act_dim, cfg, DEVICE)
    _sync()
    return time.perf_counter() - t0, len(tasks), cfg


def stage_sac() -> dict:
    out = {}
    for precision, tf32 in (("float32", False), ("tf32", True)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        _sac_seconds(SAC_RANDOM + 20)  # warm-up: cuBLAS handles, kernel selection
        (short, n, cfg), (long, _, _) = (_sac_seconds(s) for s in SAC_LENGTHS)
        per_step = (long - short) / (SAC_LENGTHS[1] - SAC_LENGTHS[0])
        out[precision] = {
            "tasks": n,
            "hidden": list(cfg.sac_hidden),
            "batch": cfg.sac_batch,
            "wall_s": {str(SAC_LENGTHS[0]): round(short, 2), str(SAC_LENGTHS[1]): round(long, 2)},
            "ms_per_learning_step": round(per_step * 1e3, 3),
            "extrapolated_1M_steps_h": round(per_step * 1_000_000 / 3600, 2),
        }
    torch.backends.cuda.matmul.allow_tf32 = False
    return out


def stage_sac_parts() -> dict:
    """Where one paper-tier SAC step (40 tasks) goes: ms per step of each part, synchronised
    around each (host env stepping, acting, replay writes, the per-task random draws, update)."""
    from ertrl_bench.data.rng import TaskStreams, reset_with_seeds
    from ertrl_bench.data.sac import BatchedSAC, TaskReplay
    from ertrl_bench.data.tiers import resolve_tier
    from ertrl_bench.envs.mujoco import CheetahVel

    fam = CheetahVel()
    tasks = [t for s in ("train", "moderate", "extreme", "iid") for t in fam.tasks(s)]
    tasks = tasks[:SAC_TASKS]
    n, fill, reps = len(tasks), 1100 if not DRY else 10, 100 if not DRY else 2
    cfg = resolve_tier("paper", fam, dict(sac_steps=fill, random_steps=fill, checkpoints=[fill]))
    obs_dim, act_dim = fam.spaces()
    env = fam.make_batch(tasks)
    streams = TaskStreams(cfg.seed, list(range(n)), DEVICE)
    sac = BatchedSAC(n, obs_dim, act_dim, cfg, DEVICE, streams)
    replay = TaskReplay(n, fill, obs_dim, act_dim, DEVICE)
    obs = reset_with_seeds(env, list(range(n)))
    t = {k: 0.0 for k in ("env step", "act", "replay add", "per-task draws", "update")}

    def timed(key, fn, *args):
        _sync()
        t0 = time.perf_counter()
        out = fn(*args)
        _sync()
        t[key] += time.perf_counter() - t0
        return out

    def add(o, a, res):
        replay.add(
            *(
                torch.as_tensor(x, device=DEVICE, dtype=torch.float32)
                for x in (o, a, res.reward, res.next_obs, res.terminated)
            )
        )

    for _ in range(fill):  # fill the replay with random actions (timed: the env's own cost)
        a = streams.uniform_np(-1, 1, act_dim)
        res = timed("env step", env.step, a)
        add(obs, a, res)
        obs = res.next_obs
    env_ms = t["env step"] / fill * 1e3
    out = {"tasks": n, "env step (random phase)": round(env_ms, 3)}
    for precision, tf32 in (("float32", False), ("tf32", True)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        sac.update(replay, 0)  # warm-up
        t = dict.fromkeys(t, 0.0)
        for k in range(reps):
            a = timed("act", sac.act, obs)
            res = timed("env step", env.step, a)
            timed("replay add", add, obs, a, res)
            obs = res.next_obs
            timed(
                "per-task draws",
                lambda: (
                    streams.randint(fill, cfg.sac_batch),
                    streams.normal(cfg.sac_batch, act_dim),
                    streams.normal(cfg.sac_batch, act_dim),
                ),
            )
            timed("update", sac.update, replay, k)
        out[precision] = {k: round(v / reps * 1e3, 3) for k, v in t.items()}
    torch.backends.cuda.matmul.allow_tf32 = False
    return out


def stage_compile() -> dict:
    from test_bench_step import _setup, _step

    out = {}
    for method in ("focal", "ertrl"):
        agent, opt, data = _setup(method, DEVICE)
        agent.backbone.compile()
        t0 = time.perf_counter()
        for _ in range(3):  # the first calls compile (and may recompile once for new shapes)
            _step(agent, opt, data)
        _sync()
        compile_s = time.perf_counter() - t0
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            for _ in range(REPS):
                _step(agent, opt, data)
            _sync()
            times.append(round((time.perf_counter() - t0) / REPS * 1e3, 3))
        out[method] = {"compile_s": round(compile_s, 1), "step_ms": times}
    return out


def stage_graph() -> dict:
    """The step captured as one CUDA graph (``train: {cuda_graph: true}``), float32 and TF32."""
    from test_bench_step import graphed_step_time

    if DRY:
        return {"skipped": "CUDA graphs need a CUDA device"}
    out = {}
    for precision, tf32 in (("float32", False), ("tf32", True)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        for method in ("focal", "ertrl"):
            out[f"{method}/{precision}_ms"] = [
                round(graphed_step_time(method, REPS) * 1e3, 3) for _ in range(2)
            ]
    torch.backends.cuda.matmul.allow_tf32 = False
    return out


def _sac_update_ms(variant: str, precision: str) -> float:
    """ms per ``BatchedSAC.update`` at paper sizes (``SAC_TASKS`` Cheetah-Vel tasks, replay
    filled with random transitions), ``variant`` eager or graph."""
    from ertrl_bench.data.rng import TaskStreams
    from ertrl_bench.data.sac import BatchedSAC, TaskReplay
    from ertrl_bench.data.tiers import resolve_tier
    from ertrl_bench.envs.mujoco import CheetahVel

    fam = CheetahVel()
    fill = 10 if DRY else 2000
    bf16 = {"sac_autocast": "bf16"} if precision == "bf16" else {}
    cfg = resolve_tier("paper", fam, dict(sac_steps=fill, checkpoints=[fill], **bf16))
    if DRY:
        cfg = cfg.model_copy(update={"sac_hidden": (32, 32), "sac_batch": 16})
    obs_dim, act_dim = fam.spaces()
    n = SAC_TASKS
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    streams = TaskStreams(cfg.seed, list(range(n)), DEVICE)
    sac = BatchedSAC(n, obs_dim, act_dim, cfg, DEVICE, streams, cuda_graph=variant == "graph")
    replay = TaskReplay(n, fill, obs_dim, act_dim, DEVICE)
    g = torch.Generator(DEVICE).manual_seed(0)
    for f, width in (("obs", obs_dim), ("act", act_dim), ("next_obs", obs_dim)):
        getattr(replay, f).copy_(torch.randn(n, fill, width, generator=g, device=DEVICE))
    replay.rew.copy_(torch.randn(n, fill, generator=g, device=DEVICE))
    replay.size = fill
    for k in range(1 if DRY else 5):  # warm-up (and, graphed, the capture)
        sac.update(replay, k)
    _sync()
    t0 = time.perf_counter()
    for k in range(REPS):
        sac.update(replay, k)
    _sync()
    torch.backends.cuda.matmul.allow_tf32 = False
    return (time.perf_counter() - t0) / REPS * 1e3


def stage_sac_graph() -> dict:
    out: dict = {"tasks": SAC_TASKS, "update_ms": {}}
    for variant in ("eager", "graph"):
        for precision in ("float32", "tf32", "bf16"):
            ms = [round(_sac_update_ms(variant, precision), 3) for _ in range(1 if DRY else 2)]
            out["update_ms"][f"{variant}/{precision}"] = ms
    return out


def stage_graph_more() -> dict:
    from test_bench_step import graphed_step_time

    if DRY:
        return {"skipped": "CUDA graphs need a CUDA device"}
    return {
        f"{m}/float32_ms": [round(graphed_step_time(m, REPS) * 1e3, 3) for _ in range(2)]
        for m in ("csro", "unicorn", "offline_pearl")
    }


def stage_kseed() -> dict:
    import test_bench_step

    fn = getattr(test_bench_step, "kseed_step_time", None)
    if fn is None:
        return {"skipped": "benchmarks/test_bench_step.py has no kseed_step_time yet (#27 item 1)"}
    out = {}
    for method in ("focal", "ertrl"):
        for k in (1, 5, 10):
            out[f"{method}/k{k}_ms"] = [round(fn(method, k, REPS) * 1e3, 3) for _ in range(2)]
        out[f"{method}/runs_per_hour_ratio_k5"] = round(
            5 * out[f"{method}/k1_ms"][0] / out[f"{method}/k5_ms"][0], 2
        )
    return out


def stage_eval() -> dict:
    """Seconds of one paper-size evaluation of Cheetah-Vel's splits, per protocol."""
    import numpy as np

    from ertrl_bench.conformance import random_task_data
    from ertrl_bench.envs.base import make_checked_batch
    from ertrl_bench.evaluation import Budget, run_protocol
    from ertrl_bench.problem import Problem, reference_stats
    from ertrl_bench.suite_loader import load_suite
    from ertrl_bench.training import build_agent

    _, specs = load_suite("paper")
    spec = next(s for s in specs if s.env.type == "cheetah-vel" and s.method.name == "focal")
    from ertrl_bench.registry import create

    family = create("envs", spec.env)
    tasks = [t for split in spec.eval.splits for t in family.tasks(split)]
    if DRY:
        tasks = tasks[:2]
    from ertrl_bench.batch import FIELDS, TaskDataset

    host = random_task_data(family, tasks, steps=64, seed=0)  # stand-in context data
    data = TaskDataset(
        [{f: host.data[f][i].squeeze(-1).numpy() for f in FIELDS} for i in range(len(tasks))],
        DEVICE,
    )
    obs_dim, act_dim = data.data["obs"].shape[-1], data.data["actions"].shape[-1]
    problem = Problem(
        family, obs_dim, act_dim, spec.train.latent_dim, DEVICE, reference_stats(data, 0)
    )
    agent = build_agent(spec.method, problem)
    runs = spec.eval.runs_per_task
    rep = [t for t in tasks for _ in range(runs)]
    env = make_checked_batch(family, rep)
    rows = torch.tensor([i for i in range(len(tasks)) for _ in range(runs)], device=DEVICE)
    budget = Budget.resolve(spec.eval, family)
    if DRY:
        budget = Budget(**{**budget.__dict__, "transitions": 2 * family.horizon})

    def offline_sample(env_rows, n):
        return data.sample(rows[torch.as_tensor(np.asarray(env_rows), device=DEVICE)], n)

    out = {"tasks": len(tasks), "runs_per_task": runs, "protocol_s": {}}
    for protocol in ["offline"] if DRY else spec.eval.protocols:
        _sync()
        t0 = time.perf_counter()
        run_protocol(agent, env, protocol, budget, offline_sample, seed=0)
        _sync()
        out["protocol_s"][protocol] = round(time.perf_counter() - t0, 2)
    out["evaluation_s"] = round(sum(out["protocol_s"].values()), 2)
    return out


def main() -> None:
    out = Path(sys.argv[1])
    budget = float(sys.argv[2]) if len(sys.argv) > 2 else 420.0
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    if not DRY and not torch.cuda.is_available():
        sys.exit("no CUDA device: this script measures the GPU figures only")
    _record(out, "info", stage_info())
    # the share of the budget each stage may start within (compile last: slowest, least sure)
    stages = [
        ("graph", stage_graph, 0.0),
        ("step", stage_step, 0.0),
        ("anatomy", stage_anatomy, 0.5),
        ("sac", stage_sac, 0.6),
        ("sac_parts", stage_sac_parts, 0.7),
        ("compile", stage_compile, 0.75),
        ("sac_graph", stage_sac_graph, 0.0),
        ("kseed", stage_kseed, 0.0),
        ("graph_more", stage_graph_more, 0.0),
        ("eval", stage_eval, 0.0),
    ]
    only = os.environ.get("GPU_FIGURES_STAGES")  # e.g. "graph,step": run these alone
    for name, fn, latest in stages:
        if only and name not in only.split(","):
            continue
        elapsed = time.monotonic() - start
        if elapsed > latest * budget and latest > 0:
            _record(out, name, {"skipped": f"{elapsed:.0f} s of {budget:.0f} s used"})
            continue
        t0 = time.monotonic()
        try:
            result = fn()
        except Exception as exc:  # record and go on: later stages are independent
            traceback.print_exc()
            result = {"error": f"{type(exc).__name__}: {exc}"}
        result["stage_s"] = round(time.monotonic() - t0, 1)
        _record(out, name, result)


if __name__ == "__main__":
    main()
