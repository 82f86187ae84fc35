"""Run one RunSpec end to end, and a suite of them through an executor (resumable)."""

from __future__ import annotations

import json
import os
import random
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from ertrl_bench.batch import TaskDataset
from ertrl_bench.checkpoint import (
    Checkpointer,
    CheckpointError,
    capture_rng,
    read_checkpoint,
)
from ertrl_bench.config import RunSpec
from ertrl_bench.data import get_datasets
from ertrl_bench.data.quality import split_data_options
from ertrl_bench.data.store import clean_stale_tmp
from ertrl_bench.data.tiers import resolve_tier
from ertrl_bench.errors import ErtrlError
from ertrl_bench.evaluation import evaluate_tasks
from ertrl_bench.extend import extend_unfinished
from ertrl_bench.measures.probe import probe_encodings, probe_fits
from ertrl_bench.problem import Problem, reference_stats, reference_task_index, resolve_device
from ertrl_bench.progress import console
from ertrl_bench.registry import create
from ertrl_bench.seed_batch import ensemble_problems, meta_train_group
from ertrl_bench.store import RunDir
from ertrl_bench.training import (
    build_agent,
    checkpoint_problems,
    load_agent_state,
    make_encoder_optimizer,
    meta_train,
)

PROBE_SPLITS = ("train", "moderate")  # the probe's tasks (docs/paper.md "Probe")


@dataclass
class Outcome:
    run_id: str
    status: str  # done | skipped | failed (| locked: another process is running it)
    message: str = ""
    metrics: dict | None = None


def set_seed(seed: int, deterministic: bool = True) -> None:
    """One place for every RNG; CPU runs with the same seed repeat bit for bit."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


def make_family(spec: RunSpec):
    return create("envs", spec.env)


SCORES = ("return", "normalized", "success")  # what a task's score may hold ("success": only
# for families that report it, ertrl_bench.evaluation)


def _metrics_of(scores: list[dict]) -> list[str]:
    """The score keys every one of ``scores`` has, in ``SCORES`` order."""
    return [m for m in SCORES if all(m in v for v in scores)]


def _final_scores(history: list[dict], last: int) -> dict:
    """Mean over the last ``last`` evaluations, per split x protocol x task."""
    window = history[-last:]
    out: dict = {}
    for split, by_protocol in window[-1]["per_task"].items():
        for protocol, tasks in by_protocol.items():
            for key in tasks:
                vals = [h["per_task"][split][protocol][key] for h in window]
                out.setdefault(split, {}).setdefault(protocol, {})[key] = {
                    m: float(np.mean([v[m] for v in vals])) for m in _metrics_of(vals)
                }
    return out


def _finite_mean(values) -> float:
    """Mean of the finite values (a task without a normalized score, R_min = R_max, would
    otherwise blank its split's mean and curve); NaN if none. The report names such tasks."""
    arr = np.array([np.nan if v is None else v for v in values], dtype=float)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else float("nan")


def _summarise(per_task: dict) -> dict:
    """Per split x protocol, the mean over tasks of each score (``success``: the success rate)."""
    return {
        split: {
            protocol: {
                m: _finite_mean([v[m] for v in tasks.values()])
                for m in _metrics_of(list(tasks.values()))
            }
            for protocol, tasks in by_protocol.items()
        }
        for split, by_protocol in per_task.items()
    }


def run_task_indices(family, spec: RunSpec) -> list[int]:
    """The tasks whose data a run reads, the only ones it builds: the training tasks, the
    evaluated splits' (``eval.splits``), the probe's (train + moderate, when it runs) and
    UNICORN's reference task. A split nobody evaluates is never built."""
    splits = {"train", *spec.eval.splits}
    if spec.eval.probe.enabled:
        splits |= set(PROBE_SPLITS)
    seed = resolve_tier(spec.tier, family, split_data_options(spec.data)[0]).task_seed
    indices = {t.index for s in splits for t in family.tasks(s, seed)}
    return sorted(indices | {reference_task_index(family)})


def prepare_datasets(specs: list[RunSpec], results_root: Path, force: bool = False) -> None:
    """Build (or check) every dataset the unfinished runs need, each once, in this process.

    On each run's device (a GPU where there is one: the paper tier's SAC is GPU work). For
    parallel executors, and the overlapped one (whose runs would build it on the CPU, one at a
    time). Without it, concurrent runs of one family would each build the same
    dataset. A dataset that fails here is left to its runs, which record the error as theirs.
    """
    groups: dict[str, tuple[RunSpec, dict, set[int]]] = {}
    for spec in specs:
        if force or not RunDir(results_root, spec).is_done():
            # a quality selects from the one collection built without it: not part of the key
            tier_overrides, _ = split_data_options(spec.data)
            key = json.dumps(
                [spec.env.model_dump(mode="json"), spec.tier, tier_overrides], sort_keys=True
            )
            _, _, indices = groups.setdefault(key, (spec, tier_overrides, set()))
            try:
                indices.update(run_task_indices(make_family(spec), spec))
            except ErtrlError:
                continue
    for spec, tier_overrides, indices in groups.values():
        try:
            get_datasets(
                make_family(spec),
                spec.tier,
                tier_overrides,
                device=resolve_device(spec.device),
                tasks=sorted(indices),
            )
        except ErtrlError:
            continue


def _skipped(rd: RunDir, spec: RunSpec) -> Outcome:
    """A finished run, kept; flagged stale when its components' package versions changed.

    Versions are not part of the run id (a patch release must not discard finished work), so a
    changed version is reported, not silently reused: "rerun with --force" if it matters.
    """
    message = "already done"
    try:
        recorded = json.loads((rd.path / "spec.json").read_text()).get("versions", {})
    except (OSError, ValueError, AttributeError):
        recorded = {}
    changed = {
        k: (recorded.get(k), v)
        for k, v in spec.versions.items()
        if recorded and recorded.get(k) != v
    }
    if changed:
        what = ", ".join(f"{k} {old} -> {new}" for k, (old, new) in sorted(changed.items()))
        message = f"already done, but stale ({what}): rerun with --force to redo it"
    return Outcome(spec.run_id(), "skipped", message, rd.read_metrics())


def _record_failure(rd: RunDir, error: str, tb: str = "") -> None:
    """``failed.json``, best effort: the outcome says it too, and a folder that refuses the file
    (e.g. ``failed.json`` is a folder) must not stop the suite's other runs."""
    try:
        rd.write_failed(error, tb)
    except OSError:
        pass


def execute(
    spec: RunSpec, results_root: Path, force: bool = False, cpu_pool=None
) -> Outcome | Deferred:
    """Run one spec (or skip it if done); failures are recorded, never raised.

    The run's lock is held while it runs: a run another process holds is not touched and comes
    back as ``locked`` (``run_suite`` waits for it at the end). ``cpu_pool`` (a
    ``multiprocessing`` pool; the overlapped local executor's): the run's probe regressions go
    to it once training is done and a ``Deferred`` comes back, which holds the lock until its
    ``outcome()``.
    """
    rd = RunDir(results_root, spec)
    if (claimed := _claim(rd, spec, force)) is not None:
        return claimed
    outcome = None
    try:
        outcome = _guarded(rd, spec.run_id(), partial(_run_alone, spec, rd, force, cpu_pool))
        return outcome
    finally:
        if not isinstance(outcome, Deferred):  # a Deferred releases it at its outcome()
            rd.lock.release()


def _claim(rd: RunDir, spec: RunSpec, force: bool) -> Outcome | None:
    """Take the run's lock to run it: None when taken (the caller releases it), else the run's
    outcome without running it: ``skipped`` (done, perhaps by another process while we
    looked), ``locked`` (another process holds it) or ``failed`` (a run folder or ``.lock``
    that is not what it must be; a broken ``.lock`` is also recorded beside the run)."""
    rid = spec.run_id()
    if rd.is_done() and not force:
        return _skipped(rd, spec)
    try:
        rd.check_real_folders()
        try:
            taken = rd.lock.acquire()
        except ErtrlError as exc:  # a broken .lock fails this run only, recorded beside it
            _record_failure(rd, str(exc))
            raise
    except ErtrlError as exc:
        return Outcome(rid, "failed", str(exc))
    if not taken:
        return Outcome(rid, "locked", f"running in {rd.lock.owner()}")
    if rd.is_done() and not force:  # finished by another process while we looked
        rd.lock.release()
        return _skipped(rd, spec)
    return None


def _run_alone(spec: RunSpec, rd: RunDir, force: bool, cpu_pool=None) -> Outcome | Deferred:
    """Run ``spec`` by itself (resuming its checkpoint): ``done``, or a ``Deferred`` when its
    probe regressions went to ``cpu_pool``. Raises what the run raises (see ``_guarded``)."""
    result, message = _run_resuming(spec, rd, resolve_device(spec.device), force, cpu_pool)
    if isinstance(result, _ProbeInWorker):
        return Deferred(spec.run_id(), rd, result, message)
    return Outcome(spec.run_id(), "done", message, metrics=result)


@dataclass
class _ProbeInWorker:
    """A trained run whose probe regressions run in a worker; the rest of ``_run``'s ending."""

    job: object  # the pool's AsyncResult of ``_timed_probe_fits``
    finish: Callable[[dict, dict, float], dict]  # (probe, protocol, seconds) -> metrics


def _timed_probe_fits(encodings: list, params, config, seed: int) -> tuple[dict, dict, float]:
    """``probe_fits`` and its seconds (a worker's job: picklable, CPU only)."""
    t0 = time.perf_counter()
    probe, protocol = probe_fits(encodings, params, config, seed)
    return probe, protocol, time.perf_counter() - t0


class Deferred:
    """A run trained in this process whose probe regressions run in a worker of the overlapped
    executor's CPU pool. It holds the run's lock until ``outcome()`` (which waits for the
    worker, writes the metrics, releases the lock) or ``interrupt()`` (Ctrl-C: the run records
    "interrupted", as a run stopped in training does; its checkpoint, taken after its last
    evaluation, lets a rerun redo only the probe)."""

    def __init__(self, run_id: str, rd: RunDir, pending: _ProbeInWorker, message: str):
        self.run_id, self.rd, self.pending, self.message = run_id, rd, pending, message
        self.settled = False

    def ready(self) -> bool:
        return self.pending.job.ready()

    def outcome(self) -> Outcome:
        rid, rd = self.run_id, self.rd
        try:
            try:
                probe, protocol, seconds = self.pending.job.get()
                metrics = self.pending.finish(probe, protocol, seconds)
                return Outcome(rid, "done", self.message, metrics=metrics)
            except ErtrlError as exc:
                _record_failure(rd, str(exc), traceback.format_exc())
                return Outcome(rid, "failed", str(exc))
            except Exception as exc:  # the worker's error: this run fails, the others go on
                error = f"{type(exc).__name__} in the probe's worker: {exc}"
                _record_failure(rd, error, traceback.format_exc())
                return Outcome(rid, "failed", error)
        finally:
            self._settle()

    def interrupt(self) -> None:
        if not self.settled:
            _record_failure(self.rd, "interrupted")
            self._settle()

    def _settle(self) -> None:
        if not self.settled:
            self.settled = True
            self.rd.lock.release()


def run_suite(
    specs: list[RunSpec],
    results_root: Path,
    executor,
    force: bool = False,
    on_outcome: Callable[[Outcome], None] | None = None,
    poll_s: float = 1.0,
    extend: bool = True,
    extend_from: Sequence[Path] = (),
) -> list[Outcome]:
    """Every run of a suite through ``executor``; resumable, safe beside another process.

    Runs another process holds (same results folder) are waited for after ours, then skipped
    if that process finished them, or run here if it died first. ``on_outcome`` sees each
    final outcome as it arrives (for printing). ``extend`` (not with ``force``): an unfinished
    run that a finished run in ``results_root`` or ``extend_from`` computes the first steps of
    (the same spec with fewer iterations, its checkpoint kept) continues from there
    (``ertrl_bench.extend``).
    """
    results_root = Path(results_root)
    if extend and not force:
        extend_unfinished(specs, results_root, extend_from)
    if data_first(executor):
        prepare_datasets(specs, results_root, force)
    outcomes: dict[str, Outcome] = {}
    todo, first = list(specs), True
    seeds_per_step = getattr(executor, "seeds_per_step", 1)
    while todo:
        if seeds_per_step > 1:  # K seeds of one run as one computation (execute_group)
            fn = partial(execute_group, results_root=results_root, force=force and first)
            groups = seed_groups(todo, seeds_per_step)
            results = (o for outs in executor.map(fn, groups) for o in outs)
        else:
            fn = partial(execute, results_root=results_root, force=force and first)
            results = executor.map(fn, todo)
        locked = []
        for o in results:
            if o.status == "locked":
                locked.append(o.run_id)
                if on_outcome is not None and first:
                    on_outcome(Outcome(o.run_id, "waiting", o.message))
                continue
            outcomes[o.run_id] = o
            if on_outcome is not None:
                on_outcome(o)
        todo = [s for s in specs if s.run_id() in set(locked)]
        while todo and all(RunDir(results_root, s).lock.is_held_elsewhere() for s in todo):
            time.sleep(poll_s)  # wait until at least one of them is released
        first = False
    return [outcomes[s.run_id()] for s in specs if s.run_id() in outcomes]


def data_first(executor) -> bool:
    """Whether ``run_suite`` builds the runs' datasets before dispatching them."""
    return getattr(executor, "parallel", False) or getattr(executor, "builds_data_first", False)


def _guarded(rd: RunDir, rid: str, attempt: Callable[[], Outcome | Deferred]) -> Outcome | Deferred:
    """``attempt()``, the run's outcome; a failure is recorded beside the run and comes back as
    ``failed``, so that a bug in one run does not lose the others' results (Ctrl-C: recorded
    as ``interrupted``, re-raised)."""
    _clear_what_an_interrupt_left()
    try:
        return attempt()
    except KeyboardInterrupt:
        _record_failure(rd, "interrupted", traceback.format_exc())
        raise
    except Exception as exc:
        error = _failure_message(exc)
        _record_failure(rd, error, traceback.format_exc())
        return Outcome(rid, "failed", error)


def _clear_what_an_interrupt_left() -> None:
    """Called where every run attempt starts (``_guarded``, ``_run_group``): a KeyboardInterrupt
    that lands inside ``torch.no_grad``'s enter or exit leaves gradients off for the process, and
    the next run in it (a notebook, a resume in the same process) failed with "element 0 of
    tensors does not require grad" (grad mode is per thread: set where the run runs)."""
    torch.set_grad_enabled(True)


def _failure_message(exc: Exception) -> str:
    """A run's error as its outcome and ``failed.json`` say it: our own errors as written
    (they name the fix), any other with its type (a bug: the type says which)."""
    return str(exc) if isinstance(exc, ErtrlError) else f"{type(exc).__name__}: {exc}"


def seed_groups(specs: list[RunSpec], k: int) -> list[list[RunSpec]]:
    """The runs that differ only in seed, in groups of at most ``k`` (suite order kept)."""
    by_run: dict[str, list[RunSpec]] = {}
    for spec in specs:
        rest = spec.model_dump(mode="json", exclude={"seed", "versions"})
        by_run.setdefault(json.dumps(rest, sort_keys=True), []).append(spec)
    return [g[i : i + k] for g in by_run.values() for i in range(0, len(g), k)]


def execute_group(specs: list[RunSpec], results_root: Path, force: bool = False) -> list[Outcome]:
    """``execute`` for runs that differ only in seed: those not done train as one seed group
    (``ertrl_bench.seed_batch``), each writing its own run folder, as if run alone.

    Each run's lock is held while the group runs. Seeds train one at a time instead, with a
    message, where a group cannot: a component that is not ensemble-aware, a CUDA-graphed run
    (``train.cuda_graph``: the graphed K-seed step is not built yet). Seeds whose checkpoints
    are at different steps resume in smaller groups, one per step.
    """
    outcomes: dict[str, Outcome] = {}
    held: list[tuple[RunSpec, RunDir]] = []
    try:
        for spec in specs:
            rd = RunDir(results_root, spec)
            if (claimed := _claim(rd, spec, force)) is not None:
                outcomes[spec.run_id()] = claimed
            else:
                held.append((spec, rd))
        if held:
            outcomes.update(_run_group(held, force))
    finally:
        for _, rd in held:
            rd.lock.release()
    return [outcomes[s.run_id()] for s in specs]


def _one_at_a_time(held: list[tuple[RunSpec, RunDir]], force: bool) -> dict[str, Outcome]:
    return {
        spec.run_id(): _guarded(rd, spec.run_id(), partial(_run_alone, spec, rd, force))
        for spec, rd in held
    }


def _group_checkpoints(held: list[tuple[RunSpec, RunDir]]) -> list[dict | None]:
    """Each member's checkpoint (None: none, or unusable: reported and removed)."""
    states = []
    for spec, rd in held:
        clean_stale_tmp(rd.path)
        try:
            states.append(read_checkpoint(rd.checkpoint_path, spec.run_id()))
        except CheckpointError as exc:
            _note(f"{spec.run_id()}: checkpoint {exc}; starting this run over from step 0")
            rd.checkpoint_path.unlink(missing_ok=True)
            states.append(None)
    return states


def _run_group(held: list[tuple[RunSpec, RunDir]], force: bool) -> dict[str, Outcome]:
    """Train the held runs (one run's seeds) as one seed group; their outcomes by run id."""
    first = held[0][0]
    names = ", ".join(spec.run_id() for spec, _ in held)
    device = resolve_device(first.device)
    if len(held) == 1:
        return _one_at_a_time(held, force)
    if first.train.cuda_graph and device.type == "cuda":
        _note(f"{names}: cuda_graph runs train one seed at a time (no graphed K-seed step yet)")
        return _one_at_a_time(held, force)
    if force:
        for _, rd in held:
            rd.checkpoint_path.unlink(missing_ok=True)
    states = _group_checkpoints(held)
    parts: dict[tuple | None, list[tuple[RunSpec, RunDir]]] = {}
    for member, state in zip(held, states, strict=True):
        at = None if state is None else (state["loop"]["iteration"], state["loop"]["step"])
        parts.setdefault(at, []).append(member)
    if len(parts) > 1:
        # a group stopped in its evaluation leaves some seeds' checkpoints a step behind: the
        # seeds of one step resume together (alone, a seed pays a whole evaluation by itself)
        steps = ", ".join(
            f"{len(part)} from step {0 if at is None else at[1]}" for at, part in parts.items()
        )
        _note(f"{names}: checkpoints at different steps; the seeds resume by step ({steps})")
        out: dict[str, Outcome] = {}
        for part in parts.values():
            out.update(_run_group(part, False))
        return out
    resumes = None if states[0] is None else states
    _clear_what_an_interrupt_left()
    try:
        loaded = _load(first, device)
        prepared, rng_states = [], []
        for (spec, rd), state in zip(held, states, strict=True):
            rd.start(str(device))
            prepared.append(_prepare(spec, rd, device, state, loaded))
            rng_states.append(capture_rng())  # the seed's streams as training starts
    except Exception:  # setting up failed: each run, alone, records its own error
        return _one_at_a_time(held, False)
    if problems := ensemble_problems(prepared[0].agent):
        _note(
            f"{names}: {'; '.join(problems)} cannot be stacked over seeds (no ensemble(members,"
            " rng), docs/plugins.md); its seeds train one at a time"
        )
        return _one_at_a_time(held, False)
    for p in prepared:
        p.seed_group = len(held)
    checkpointers = [p.checkpointer for p in prepared]
    try:
        failed = meta_train_group(
            [p.agent for p in prepared],
            loaded[2],
            prepared[0].train_rows,
            first.train,
            [p.rd.log for p in prepared],
            [p.evaluate for p in prepared],
            [p.generator for p in prepared],
            rng_states,
            None if None in checkpointers else checkpointers,
            None if resumes is None else [s["loop"] for s in resumes],
        )
    except CheckpointError as exc:
        _note(f"{names}: checkpoints {exc}; the seeds start over, one at a time")
        for _, rd in held:
            rd.checkpoint_path.unlink(missing_ok=True)
        return _one_at_a_time(held, False)
    except KeyboardInterrupt:
        for _, rd in held:
            _record_failure(rd, "interrupted", traceback.format_exc())
        raise
    except Exception as exc:  # a bug in the group: every member fails with it, recorded
        tb, what = traceback.format_exc(), _failure_message(exc)
        for _, rd in held:
            _record_failure(rd, what, tb)
        return {spec.run_id(): Outcome(spec.run_id(), "failed", what) for spec, _ in held}
    out = {}
    for run, exc, state in zip(prepared, failed, states, strict=True):
        rid = run.spec.run_id()
        resumed = f", {_resumed(state)}" if state is not None else ""
        message = f"trained in a seed group of {len(held)}{resumed}"
        if exc is not None:
            _record_failure(run.rd, str(exc))
            out[rid] = Outcome(rid, "failed", str(exc))
        else:
            out[rid] = _guarded(
                run.rd,
                rid,
                lambda run=run, rid=rid, message=message: Outcome(
                    rid, "done", message, metrics=_finish(run)
                ),
            )
    return out


def _reference_row(family, data, rows: dict[str, int]) -> int:
    """The dataset row of the task whose statistics scale UNICORN's targets (task 19)."""
    index = reference_task_index(family)
    for t in data.tasks:
        if t.index == index:
            return rows[t.key]
    raise ErtrlError(
        f"family {family.name!r}: no dataset for task {index} (n_grid // 2 - 1), whose data"
        " statistics every run needs (UNICORN's normalisation, docs/paper.md); build the"
        " family's datasets with all of its grid tasks"
    )


def _note(message: str) -> None:
    console.print(message, markup=False, highlight=False)


def _check_threads(spec: RunSpec, started: int, resume: dict) -> int:
    """Warn when a run resumes with another torch thread count than it started with: on CPU
    a sum split over N threads rounds differently, and training amplifies that, so the
    resumed numbers may differ in the last bits from an uninterrupted run's. Returns
    ``started`` (what the next checkpoint keeps)."""
    now = torch.get_num_threads()
    if started != now:
        _note(
            f"warning: {spec.run_id()} started with {started} torch thread(s) and resumes from"
            f" step {resume['loop']['step']} with {now}: its numbers may differ in the last bits"
            " from an uninterrupted run's. To avoid it, resume with the same count:"
            f" ertrl-bench run ... --executor-opt threads={started}"
        )
    return started


def _resumed(state: dict | None) -> str:
    """The outcome's message for a run started from the checkpoint ``state`` (or none)."""
    if state is None:
        return ""
    origin = state["run"].get("extended_from")
    extending = f" (extends {origin['run']}, finished at step {origin['step']})" if origin else ""
    return f"resumed from step {state['loop']['step']}{extending}"


def _run_resuming(
    spec: RunSpec, rd: RunDir, device: torch.device, force: bool, cpu_pool=None
) -> tuple[dict | _ProbeInWorker, str]:
    """Run ``spec`` from its last checkpoint if it has one (``--force``: from step 0).

    A checkpoint that cannot be used is reported once and the run starts over from step 0.
    Returns the metrics and the outcome's message ("resumed from step N", or "").
    """
    if force:
        rd.checkpoint_path.unlink(missing_ok=True)
    clean_stale_tmp(rd.path)  # half-written files of a killed attempt (a checkpoint, say)
    try:
        state = read_checkpoint(rd.checkpoint_path, spec.run_id())
        rd.start(str(device))
        metrics = _run(spec, rd, device, state, cpu_pool)
        return metrics, _resumed(state)
    except CheckpointError as exc:
        _note(f"{spec.run_id()}: checkpoint {exc}; starting this run over from step 0")
        rd.checkpoint_path.unlink(missing_ok=True)
        rd.start(str(device))
        return _run(spec, rd, device, None, cpu_pool), "checkpoint unusable: started over"


def _run(
    spec: RunSpec, rd: RunDir, device: torch.device, resume: dict | None = None, cpu_pool=None
) -> dict | _ProbeInWorker:
    """One attempt at a run: from step 0, or from the checkpoint ``resume``. With ``cpu_pool``
    the probe's regressions go to a worker: a ``_ProbeInWorker`` comes back instead of the
    metrics (the same numbers: the regressions use no state of this process)."""
    run = _prepare(spec, rd, device, resume)
    try:
        meta_train(
            run.agent,
            run.task_data,
            run.train_rows,
            spec.train,
            rd.log,
            run.evaluate,
            run.generator,
            run.checkpointer,
            None if resume is None else resume["loop"],
        )
    except CheckpointError as exc:
        raise CheckpointError(f"{rd.checkpoint_path}: {exc}") from None
    return _finish(run, cpu_pool)


@dataclass
class _Prepared:
    """A run set up to train (``_prepare``) and what its ending (``_finish``) needs."""

    spec: RunSpec
    rd: RunDir
    device: torch.device
    family: object
    data: object
    task_data: TaskDataset
    rows: dict
    train_rows: torch.Tensor
    agent: object
    by_split: dict
    evaluate: Callable[[int, int], None]
    generator: torch.Generator
    checkpointer: Checkpointer | None
    history: list
    last_z: dict
    extended_from: dict | None  # the finished shorter run it continues (ertrl_bench.extend)
    timing: dict
    before: dict
    t0: float
    trained_s: Callable[[], float]
    # runs trained together as one seed group (``execute_group``): their train seconds are the
    # group's, shared by all of them
    seed_group: int = 1


def _load(spec: RunSpec, device: torch.device):
    """The run's env family, its datasets and their ``TaskDataset`` on ``device``."""
    family = make_family(spec)
    data = get_datasets(
        family,
        spec.tier,
        spec.data,
        device=torch.device("cpu"),
        tasks=run_task_indices(family, spec),
    )
    task_data = TaskDataset(
        [data.task_arrays(t) for t in data.tasks], device, terminals=spec.train.terminals
    )
    return family, data, task_data


def _build_run_agent(spec: RunSpec, family, data, task_data: TaskDataset, device: torch.device):
    """The run's (untrained) agent on its data's problem, the dataset row of each task key and
    the training tasks' rows. Call after ``set_seed``: the networks' initial weights draw from it."""
    rows = {t.key: i for i, t in enumerate(data.tasks)}
    obs_dim, act_dim = (
        data.arrays[data.tasks[0].key]["obs"].shape[1],
        data.arrays[data.tasks[0].key]["actions"].shape[1],
    )
    latent = spec.train.latent_dim
    train_rows = torch.tensor([rows[t.key] for t in family.tasks("train")], device=device)
    stats = reference_stats(task_data, _reference_row(family, data, rows))
    problem = Problem(family, obs_dim, act_dim, latent, device, stats, init=spec.train.init)
    return build_agent(spec.method, problem), rows, train_rows


@dataclass
class TrainedRun:
    """A run's agent as its checkpoint left it, with the data it trained on (``load_trained``)."""

    spec: RunSpec
    family: object
    data: object  # FamilyData
    task_data: TaskDataset
    rows: dict[str, int]  # task key -> row in data / task_data
    agent: object  # step.Agent
    step: int  # train steps the checkpoint had done


def load_trained(run_dir: Path, device: str | torch.device = "cpu") -> TrainedRun:
    """Rebuild a run's agent from ``<run_dir>/spec.json`` and its ``checkpoint.pt`` (kept with
    ``--keep-checkpoints``, or a running run's latest), for measures on a trained agent.

    The data comes from the dataset cache (built if missing, as a run would). Reads nothing but
    the two files and the data; writes nothing into ``run_dir``.
    """
    run_dir = Path(run_dir)
    spec_path, ck_path = run_dir / "spec.json", run_dir / "checkpoint.pt"
    try:
        spec = RunSpec.model_validate(json.loads(spec_path.read_text()))
    except (OSError, ValueError) as exc:
        raise ErtrlError(f"{spec_path}: not a readable run spec ({exc})"[:400]) from None
    state = read_checkpoint(ck_path, spec.run_id())
    if state is None:
        raise ErtrlError(
            f"{ck_path}: no checkpoint; a finished run keeps its last one only when run with"
            " --keep-checkpoints"
        )
    device = torch.device(device)
    family, data, task_data = _load(spec, device)
    set_seed(spec.seed, spec.train.deterministic)
    agent, rows, _ = _build_run_agent(spec, family, data, task_data, device)
    enc_opt = make_encoder_optimizer(agent, spec.train.encoder_lr)
    load_agent_state(agent, enc_opt, state["loop"]["agent"])
    return TrainedRun(spec, family, data, task_data, rows, agent, int(state["loop"]["step"]))


def _prepare(
    spec: RunSpec, rd: RunDir, device: torch.device, resume: dict | None, loaded=None
) -> _Prepared:
    """Everything of a run up to its training: the agent built under the run's seed, its
    evaluation, generator and checkpointer. ``loaded``: ``_load``'s result, shared by the
    members of a seed group (their data is the same)."""
    t0 = time.perf_counter()
    family, data, task_data = loaded if loaded is not None else _load(spec, device)
    # where the run's time goes (docs/cost.md): data, setup, train, eval, probe
    timing = {"data": time.perf_counter() - t0, "eval": 0.0, "probe": 0.0}
    set_seed(spec.seed, spec.train.deterministic)
    agent, rows, train_rows = _build_run_agent(spec, family, data, task_data, device)
    by_split = {s: family.tasks(s, data.tier.task_seed) for s in spec.eval.splits}
    history: list[dict] = []
    last_z: dict = {}
    extended_from = None
    # time of earlier attempts up to their checkpoint (the time after it was lost, not counted)
    before = {"train": 0.0, "eval": 0.0, "wall": 0.0}
    threads = torch.get_num_threads()  # the count the run started with (checkpoints keep it)
    if resume is not None:
        run_part = resume["run"]
        threads = _check_threads(spec, run_part.get("torch_threads", threads), resume)
        history = json.loads(run_part["history"])
        last_z = {
            split: {p: z.numpy() for p, z in by_protocol.items()}
            for split, by_protocol in run_part["last_z"].items()
        }
        before = dict(run_part["timing"])
        timing["eval"] = before["eval"]
        extended_from = run_part.get("extended_from")
        rd.restore_log(run_part["log"])  # drops what was logged after the checkpoint
        rd.log({"resumed_at_step": resume["loop"]["step"]})
    timing["setup"] = time.perf_counter() - t0 - timing["data"]

    def evaluate(iteration: int, step: int) -> None:
        t_eval = time.perf_counter()
        per_task: dict = {}
        for split, tasks in by_split.items():
            per_task[split], last_z[split] = evaluate_tasks(
                agent, data, task_data, rows, tasks, spec.eval
            )
        history.append({"iteration": iteration, "step": step, "per_task": per_task})
        summary = _summarise(per_task)
        timing["eval"] += time.perf_counter() - t_eval
        rd.log({"iteration": iteration, "step": step, "eval": summary})

    generator = torch.Generator().manual_seed(spec.seed)
    t_train = time.perf_counter()

    def trained_s() -> float:
        return before["train"] + time.perf_counter() - t_train - (timing["eval"] - before["eval"])

    def run_state() -> dict:
        """The runner's part of a checkpoint (``ertrl_bench.checkpoint``)."""
        return {
            **({"extended_from": extended_from} if extended_from else {}),
            "history": json.dumps(history),
            "last_z": {
                split: {p: torch.from_numpy(np.ascontiguousarray(z)) for p, z in zs.items()}
                for split, zs in last_z.items()
            },
            "log": rd.read_log(),
            "torch_threads": threads,
            "timing": {
                "train": trained_s(),
                "eval": timing["eval"],
                "wall": before["wall"] + time.perf_counter() - t0,
            },
        }

    checkpointer = None
    if spec.checkpoint.enabled:
        if problems := checkpoint_problems(agent):
            _note(
                f"{spec.run_id()}: no checkpoints ({'; '.join(problems)}): if it is killed it"
                " starts over from step 0. A component saves and restores its whole state"
                " with state_dict() / load_state_dict(state) (docs/plugins.md)"
            )
        else:
            checkpointer = Checkpointer(
                rd.checkpoint_path, spec.run_id(), 60 * spec.checkpoint.every_minutes, run_state
            )
    return _Prepared(
        spec,
        rd,
        device,
        family,
        data,
        task_data,
        rows,
        train_rows,
        agent,
        by_split,
        evaluate,
        generator,
        checkpointer,
        history,
        last_z,
        extended_from,
        timing,
        before,
        t0,
        trained_s,
    )


def _finish(run: _Prepared, cpu_pool=None) -> dict | _ProbeInWorker:
    """A trained run's ending: final scores, encodings, the probe, ``metrics.json`` (with
    ``cpu_pool``: the probe's regressions in a worker, ``_run``)."""
    spec, rd, device, family, data = run.spec, run.rd, run.device, run.family, run.data
    task_data, rows, agent, by_split = run.task_data, run.rows, run.agent, run.by_split
    checkpointer, history, last_z = run.checkpointer, run.history, run.last_z
    timing, before, t0 = run.timing, run.before, run.t0
    timing["train"] = run.trained_s()
    if checkpointer is not None:  # their cost (part of train and eval time), this attempt's
        rd.log({"checkpoints": checkpointer.saved, "checkpoint_s": round(checkpointer.seconds, 3)})

    per_task = _final_scores(history, spec.train.final_evals)
    curve = [
        {
            "step": h["step"],
            **{
                f"{s}/{p}/{m}": v[m]
                for s, bp in _summarise(h["per_task"]).items()
                for p, v in bp.items()
                for m in ("normalized", "success")
                if m in v
            },
        }
        for h in history
    ]
    all_eval = [t for ts in by_split.values() for t in ts]
    # the final z's per task and run (the z map); the probe's per-transition z_i are not kept
    encodings = {
        "task_index": np.array([t.index for t in all_eval]),
        "task_split": np.array([t.split for t in all_eval]),
        "task_param": np.stack([family.task_param(t) for t in all_eval]),
    }
    for protocol in spec.eval.protocols:
        encodings[f"z_{protocol}"] = np.concatenate([last_z[s][protocol] for s in by_split])
    rd.write_encodings(encodings)
    metrics = {
        "run_id": spec.run_id(),
        "method": spec.method.name,
        "env": spec.env.type,
        "seed": spec.seed,
        "final": _summarise(per_task),
        "per_task": per_task,
        "curve": curve,
        "wall_s": before["wall"] + time.perf_counter() - t0,
        "dataset": data.path,
        "train_tasks": len(family.tasks("train")),
    }
    if data.diversity is not None:  # the data's behavior diversity, as its build measured it
        metrics["diversity"] = data.diversity
    if run.extended_from:  # the finished shorter run whose checkpoint it continued
        metrics["extended_from"] = run.extended_from
    if run.seed_group > 1:  # its timing is the group's wall clock (the report divides it)
        metrics["seed_group"] = run.seed_group
    probe_tasks = [t for s in PROBE_SPLITS for t in family.tasks(s, data.tier.task_seed)]
    t_probe = time.perf_counter()

    def finish(probe: dict | None, protocol: dict | None, fits_s: float) -> dict:
        """The run's ending once the probe is known: log, timing, metrics.json."""
        if probe is not None:
            metrics["probe"], metrics["probe_protocol"] = probe, protocol
            timing["probe"] = encode_s + fits_s
            rd.log({"probe": metrics["probe"], "probe_s": timing["probe"]})
        # the run's own time: with the fits in a worker, their seconds, not the wait for them
        timing["total"] = before["wall"] + t_probe - t0 + timing["probe"]
        metrics["timing_s"] = {k: round(v, 3) for k, v in timing.items()}
        rd.write_metrics(metrics)
        if not spec.checkpoint.keep:  # after the metrics: a finished run never depends on it
            rd.checkpoint_path.unlink(missing_ok=True)
        return metrics

    if not (spec.eval.probe.enabled and probe_tasks):
        return finish(None, None, 0.0)
    encodings = probe_encodings(
        agent,
        task_data,
        torch.tensor([rows[t.key] for t in probe_tasks], device=device),
        spec.eval.probe,
        seed=spec.seed,
    )
    params = np.stack([family.task_param(t) for t in probe_tasks])
    encode_s = time.perf_counter() - t_probe
    args = (encodings, params, spec.eval.probe, spec.seed)
    if cpu_pool is not None:
        return _ProbeInWorker(cpu_pool.apply_async(_timed_probe_fits, args), finish)
    return finish(*_timed_probe_fits(*args))
