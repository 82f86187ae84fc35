"""Building a family's behavior datasets: train SAC per task (batched, in memory-bound groups),
collect checkpoint trajectories, write them with checksums. ``get_datasets`` is the entry point.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Sequence

import numpy as np
import torch
from rich.markup import escape

from ertrl_bench.data.collect import flatten_valid, rollout_episodes, success_meta, task_meta
from ertrl_bench.data.diversity import measure_diversity, mixture_samples
from ertrl_bench.data.family_data import FamilyData
from ertrl_bench.data.memory import default_budget, format_bytes, plan_groups, task_bytes
from ertrl_bench.data.quality import select_quality, split_data_options
from ertrl_bench.data.rng import TaskStreams, env_seed
from ertrl_bench.data.sac import (
    EnsembleActor,
    TrainingState,
    saved_state_info,
    train_behavior_policies,
)
from ertrl_bench.data.scripted import collect_scripted
from ertrl_bench.data.store import FORMAT_VERSION, DatasetDir, data_root
from ertrl_bench.data.tiers import DataTier, key_values, resolve_tier
from ertrl_bench.envs.base import (
    TRAIN_TASKS_OPTION,
    EnvFamily,
    Task,
    checked_spaces,
    make_checked_batch,
)
from ertrl_bench.errors import ErtrlError
from ertrl_bench.nn import torch_threads
from ertrl_bench.progress import bar, console

DEFAULT_SAVE_EVERY_S = 600.0  # how often an unfinished build saves its training state
TRAINING_STATE_FILE = "training-state.pt"


def dataset_key(family: EnvFamily, tier: DataTier, tasks: list[Task]) -> str:
    """The hash naming a dataset's folder. ``train_tasks`` is left out of the options: the task
    list holds the layout it chooses (so the grid's own layout keeps the key it always had)."""
    opts = getattr(family, "options", None)
    options = opts.model_dump(mode="json") if opts is not None else None
    if options is not None:
        options.pop(TRAIN_TASKS_OPTION, None)
    payload = {
        "family": family.name,
        "options": options,
        "tier": key_values(tier),
        "tasks": [[t.index, list(t.param)] for t in tasks],
        "format": FORMAT_VERSION,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def dataset_dir(family: EnvFamily, tier_name: str, tier: DataTier) -> DatasetDir:
    tasks = family.all_tasks(tier.task_seed)
    return DatasetDir(data_root() / family.name / f"{tier_name}-{dataset_key(family, tier, tasks)}")


def _policy_bytes(snapshots: dict[int, dict], member: int, meta: dict) -> bytes:
    one = {step: {k: v[member].clone() for k, v in sd.items()} for step, sd in snapshots.items()}
    buf = io.BytesIO()
    torch.save({**meta, "checkpoints": one}, buf)
    return buf.getvalue()


# torch threads a build uses unless told otherwise: on CPU a task's bytes depend on the count
# (docs/data.md, "Same key, same bits?"); one thread gave the same bytes on every CPU measured
BUILD_THREADS = 1


def build_provenance(
    device: torch.device, trained_together: int, training: dict | None = None
) -> dict:
    """What a task's data depend on beyond the dataset key (docs/data.md, "Same key, same
    bits?"): on CPU the torch thread count -- a sum split over N threads rounds differently and
    SAC's training amplifies it -- and, above one thread, how many tasks trained together (the
    matmuls' shapes); also the device and torch's version. ``training``: the stats of
    ``train_behavior_policies``, whose thread counts (started with, and now) a resume with
    another count makes differ; then both are recorded (the first None if a state saved before
    the count was kept was resumed)."""
    now = torch.get_num_threads()
    training = training or {}
    started = training.get("torch_threads", now)
    out = {
        "device": str(device),
        "torch": torch.__version__,
        "torch_threads": started,
        "tasks_trained_together": trained_together,
    }
    if training.get("torch_threads_now", started) != started:
        out["resumed_with_torch_threads"] = training["torch_threads_now"]
    return out


def _fingerprint(tasks: Sequence[Task]) -> str:
    return hashlib.sha256(",".join(t.key for t in tasks).encode()).hexdigest()[:12]


def train_and_write(
    family: EnvFamily,
    tier_name: str,
    tier: DataTier,
    train: list[Task],
    write: list[Task],
    ddir: DatasetDir,
    device: torch.device,
    save_every_s: float | None = DEFAULT_SAVE_EVERY_S,
    sac_cuda_graph: bool = False,
) -> dict:
    """Train the behavior policies of ``train`` together; collect and write those of ``write``
    (a subset: the others of ``train`` are already written, e.g. after a kill mid-write)."""
    obs_dim, act_dim = checked_spaces(family)
    env = make_checked_batch(family, train)
    resume = None
    if save_every_s is not None:
        resume = TrainingState(ddir.path / TRAINING_STATE_FILE, _fingerprint(train), save_every_s)
    sac, snapshots, stats = train_behavior_policies(
        env,
        obs_dim,
        act_dim,
        tier,
        device,
        label=f"{family.name} [{tier_name}] ",
        resume=resume,
        task_indices=[t.index for t in train],
        cuda_graph=sac_cuda_graph,
    )
    del sac  # its replay is gone with it: collection needs only the snapshots
    if hasattr(env, "close"):
        env.close()
    pos = {t.index: i for i, t in enumerate(train)}
    rows = torch.tensor([pos[t.index] for t in write], device=device)
    k = tier.trajectories_per_checkpoint
    rep_tasks = [t for t in write for _ in range(k)]  # task-major: rows t*k .. t*k+k-1
    collect_env = make_checked_batch(family, rep_tasks)
    actor = EnsembleActor(len(write), obs_dim, act_dim, tier.sac_hidden).to(device)
    per_task: dict[str, list[dict]] = {t.key: [] for t in write}
    t0 = time.perf_counter()
    steps = 0
    with bar(f"collect {family.name} checkpoints", len(tier.checkpoints)) as pbar:
        for ci, step in enumerate(tier.checkpoints):
            actor.load_state_dict({n: v[rows] for n, v in snapshots[step].items()})
            # per (task, checkpoint) streams: what one task collects is its own
            streams = TaskStreams(tier.seed, [t.index for t in write], device, purpose=1 + ci)

            @torch.no_grad()
            def policy(obs, _actor=actor, _streams=streams):
                x = torch.as_tensor(obs, dtype=torch.float32, device=device).view(len(write), k, -1)
                a, _ = _actor(x, noise=_streams.normal(k, act_dim))  # stochastic, as the paper
                return a.reshape(len(write) * k, -1).cpu().numpy()

            seeds = [env_seed(tier.seed, t.index, 1 + ci, r) for t in write for r in range(k)]
            ep = rollout_episodes(collect_env, policy, family.horizon, seeds=seeds)
            steps += int(ep["valid"].sum())
            for ti, task in enumerate(write):
                sel = np.arange(ti * k, ti * k + k)
                flat = flatten_valid(ep, sel)
                flat["checkpoint"] = np.full(len(flat["rewards"]), step, np.int64)
                flat["trajectory"] = flat["trajectory"] + ci * k
                flat["returns"] = ep["returns"][sel]
                if "success" in ep:  # the family reports success (StepResult.success)
                    flat["success"] = ep["success"][sel]
                per_task[task.key].append(flat)
            pbar.advance()
    if hasattr(collect_env, "close"):
        collect_env.close()
    stats["collect_env_steps_per_s"] = steps / max(time.perf_counter() - t0, 1e-9)
    policy_meta = {"obs_dim": obs_dim, "act_dim": act_dim, "hidden": list(tier.sac_hidden)}
    for task in write:
        parts = per_task.pop(task.key)
        arrays = {
            f: np.concatenate([p[f] for p in parts])
            for f in parts[0]
            if f not in ("returns", "success")
        }
        meta = {
            **task_meta(task, np.concatenate([p["returns"] for p in parts])),
            "built_with": build_provenance(device, len(train), stats),
            "checkpoint_returns": {
                str(s): float(p["returns"].mean())
                for s, p in zip(tier.checkpoints, parts, strict=True)
            },
        }
        if "success" in parts[0]:
            flags = np.concatenate([p["success"] for p in parts])
            meta.update(success_meta(flags, tier.checkpoints, k))
        ddir.write_task(
            task.key, arrays, meta, _policy_bytes(snapshots, pos[task.index], policy_meta)
        )
    if resume is not None:
        resume.remove()
    return stats


def plan_build(
    family: EnvFamily,
    tier: DataTier,
    todo: list[Task],
    ddir: DatasetDir,
    max_memory: int | None,
    resumable: bool = True,
) -> list[tuple[list[Task], list[Task]]]:
    """``[(tasks to train, tasks to write)]``: a saved training state that covers some of
    ``todo`` (and otherwise only tasks already written) is resumed first, as it was planned;
    the rest is split into groups within ``max_memory`` bytes (None: one group)."""
    plan: list[tuple[list[Task], list[Task]]] = []
    todo_idx = {t.index for t in todo}
    info = saved_state_info(ddir.path / TRAINING_STATE_FILE) if resumable else None
    if info is not None:
        by_index = {t.index: t for t in family.all_tasks(tier.task_seed)}
        saved = [by_index.get(i) for i in info["tasks"]]
        if all(saved) and todo_idx & set(info["tasks"]):
            others = [t for t in saved if t.index not in todo_idx]
            if all(ddir.check_task(t.key) is None for t in others):
                plan.append((saved, [t for t in saved if t.index in todo_idx]))
                todo = [t for t in todo if t.index not in set(info["tasks"])]
    obs_dim, act_dim = checked_spaces(family)
    per_task = task_bytes(tier, obs_dim, act_dim, family.horizon)
    plan.extend((g, g) for g in plan_groups(todo, per_task, max_memory))
    return plan


def build_tasks(
    family: EnvFamily,
    tier_name: str,
    tier: DataTier,
    tasks: list[Task],
    ddir: DatasetDir,
    device: torch.device,
    save_every_s: float | None = DEFAULT_SAVE_EVERY_S,
    max_memory: int | None = None,
    sac_cuda_graph: bool = False,
) -> dict:
    """Train and write ``tasks``, in groups within ``max_memory`` bytes (None: one group).

    With ``save_every_s``, the training state is saved that often (``TrainingState``), so an
    interrupted build resumes mid-training; the file is removed once its tasks are written.
    A family with scripted experts (``EnvFamily.scripted_behavior``) trains nothing: its
    experts are rolled out at their noise levels instead (``ertrl_bench.data.scripted``).
    """
    behavior = family.scripted_behavior()
    if behavior is not None:
        return collect_scripted(family, tier_name, tier, tasks, ddir, behavior)
    plan = plan_build(family, tier, tasks, ddir, max_memory, save_every_s is not None)
    if len(plan) > 1:
        obs_dim, act_dim = checked_spaces(family)
        per = task_bytes(tier, obs_dim, act_dim, family.horizon)
        console.print(
            f"{family.name} [{tier_name}]: {len(tasks)} tasks in {len(plan)} groups"
            f" (~{format_bytes(per)} per task, budget"
            f" {format_bytes(max_memory) if max_memory else 'none'})",
            markup=False,  # "[smoke]" is not a rich style
        )
    total: dict = {"groups": len(plan), "sac_wall_s": 0.0, "trained_tasks": 0}
    steps = collect_rate = wall_now = 0.0
    for train, write in plan:
        stats = train_and_write(
            family, tier_name, tier, train, write, ddir, device, save_every_s, sac_cuda_graph
        )
        total["sac_wall_s"] += stats["sac_wall_s"]
        wall_now += stats["sac_wall_since_resume_s"]
        total["trained_tasks"] += len(train)
        total.setdefault("resumed_at_step", stats["resumed_at_step"])
        steps += len(train) * (tier.sac_steps - stats["resumed_at_step"])
        collect_rate = stats["collect_env_steps_per_s"]
    # the steps trained by this call over this call's time: after a resume, the earlier
    # sessions' time (in sac_wall_s) would make the rate look slower than it is
    total["sac_env_steps_per_s"] = steps / max(wall_now, 1e-9)
    total["sac_wall_since_resume_s"] = wall_now
    total["collect_env_steps_per_s"] = collect_rate
    return total


def get_datasets(
    family: EnvFamily,
    tier_name: str,
    overrides: dict | None = None,
    device: torch.device | None = None,
    rebuild: bool = False,
    tasks: Sequence[int] | None = None,
    save_every_s: float | None = DEFAULT_SAVE_EVERY_S,
    max_memory: int | str | None = "auto",
    record_diversity: bool = True,
    sac_cuda_graph: bool = False,
    threads: int | None = BUILD_THREADS,
) -> FamilyData:
    """Every task's dataset, building what is missing, corrupted or truncated.

    ``tasks``: optional task indices (``Task.index``: 0-39 grid, 40+ iid) to build / load instead
    of all of them (e.g. a quick look at a few tasks); ``FamilyData.tasks`` then holds only
    those. They live in the same cache folder as the full build. Every task draws from its own
    random streams, so a task has the same bytes whether built alone, in a group, or with all
    others (and a corrupted file is rebuilt identical).

    ``save_every_s``: seconds between saves of an unfinished build's training state (None: never);
    a rerun after an interruption continues from the last save, with identical results.
    ``max_memory``: bytes (or ``"16GiB"``) the build may use: tasks train in groups that fit;
    ``"auto"``: 80% of the device's free memory; None: all tasks in one group.
    ``sac_cuda_graph``: on a CUDA device, each SAC update is replayed as one CUDA graph
    (``GraphedSACUpdate``). Like the device, not part of the dataset key: the same computation,
    scheduled differently (docs/data.md "Building on a GPU").
    ``overrides`` may hold ``quality`` (``ertrl_bench.data.quality``): the full collection is
    built and cached as without it, then only that quality's checkpoints are returned.
    ``record_diversity``: measure the behavior diversity into the manifest when it is missing
    and every training task is loaded (``recorded_diversity``); False only reads it.
    ``threads``: torch threads while building (default 1: on CPU a build's bytes depend on the
    count, so one thread makes them the same on every machine; None: the process's count).
    """
    from ertrl_bench.data.memory import parse_bytes

    overrides, quality = split_data_options(overrides)
    tier = resolve_tier(tier_name, family, overrides)
    device = device or torch.device("cpu")
    all_tasks = family.all_tasks(tier.task_seed)
    if tasks is None:
        tasks = all_tasks
    else:
        by_index = {t.index: t for t in all_tasks}
        unknown = [i for i in tasks if i not in by_index]
        if unknown:
            raise ErtrlError(
                f"{family.name}: no task with index {unknown}; available:"
                f" {min(by_index)}-{max(by_index)}"
            )
        tasks = [by_index[i] for i in sorted(set(tasks))]
    ddir = dataset_dir(family, tier_name, tier)
    ddir.clean_stale_tmp()
    problem = ddir.manifest_problem()
    if problem is not None:
        console.print(
            f"[yellow]dataset {escape(f'{ddir.path}: {problem}')}; rebuilding the tasks it lacks"
        )
    todo = []
    for t in tasks:
        task_problem = "rebuild requested" if rebuild else ddir.check_task(t.key)
        if task_problem is not None:
            if task_problem != "not built":
                console.print(
                    f"[yellow]dataset {escape(f'{ddir.path}/{t.key}: {task_problem}')}; regenerating"
                )
            todo.append(t)
    if todo:
        ddir.set_info(
            {
                "family": family.name,
                "tier": tier_name,
                "tier_values": tier.model_dump(mode="json"),
                "format": FORMAT_VERSION,
            }
        )
        ddir.expect_tasks([t.key for t in tasks])
        if rebuild:
            TrainingState(ddir.path / TRAINING_STATE_FILE, "").remove()
        budget = default_budget(device) if max_memory == "auto" else max_memory
        budget = None if budget is None else parse_bytes(budget)
        with torch_threads(threads):
            stats = build_tasks(
                family, tier_name, tier, todo, ddir, device, save_every_s, budget, sac_cuda_graph
            )
        ddir.set_info({"last_build": {**stats, "tasks": len(todo)}})
    arrays, meta = {}, {}
    for t in tasks:
        arrays[t.key], meta[t.key] = ddir.load_task(t.key)
    data = FamilyData(family, tier, tasks, arrays, meta, str(ddir.path))
    data.diversity = recorded_diversity(data, ddir, record_diversity)
    return select_quality(data, quality)


def recorded_diversity(data: FamilyData, ddir: DatasetDir, measure: bool = True) -> dict | None:
    """The manifest's ``diversity``, measured and written there first when missing (or measured
    with another ``diversity_samples``) and every training task is in ``data``: a build's last
    step, also for a folder built before the field existed. None for scripted experts (no
    policy weights), ``diversity_samples: 0``, ``measure`` False (read only), or when it cannot
    be measured (the reason is printed; the data are fine)."""
    samples = data.tier.diversity_samples
    recorded = ddir.manifest().get("diversity")
    if isinstance(recorded, dict) and recorded.get("samples") == mixture_samples(data, samples):
        return recorded
    family = data.family
    train = {t.key for t in family.tasks("train", data.tier.task_seed)}
    if not measure or not samples or family.scripted_behavior() is not None:
        return None
    if not train <= {t.key for t in data.tasks}:
        return None
    try:
        record = measure_diversity(data, samples=samples)
    except ErtrlError as exc:
        why = escape(f"{ddir.path}: behavior diversity not recorded ({exc})")
        console.print(f"[yellow]dataset {why}")
        return None
    ddir.set_info({"diversity": record})
    return record
