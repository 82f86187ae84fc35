"""Extending a finished run's budget: a run whose spec is a finished run's with more
``train.iterations`` continues that run's kept checkpoint instead of training from step 0.

Why the numbers are those of the longer run trained uninterrupted: nothing a run computes up to
a step reads its iteration count. The meta-batches are drawn an iteration at a time from the
seeded generator, the components never see the budget, and the last checkpoint of a finished
run is written after its last evaluation, before its ending (the score over the last
``final_evals`` evaluations, the encodings, the probe), which reads the agent but changes no
state a checkpoint holds. The count enters the loop in two places only (``training.meta_train``,
``seed_batch.meta_train_group``; the progress bar aside):

* the last step always writes a training-log record; where the shorter run's step count is not
  a multiple of ``training.LOG_EVERY`` the longer run writes none there, so that record is
  dropped from the log the new run starts with;
* the last iteration is always evaluated: the shorter run's must be one the longer run
  evaluates too (its ``iterations`` a multiple of ``eval_every``), else its history would hold
  an evaluation the longer run's has not, and its RNG streams the draws of that evaluation.
  Such a run is not extended.

A source also needs its checkpoint (``--keep-checkpoints``) at its last step, and the same
component versions (else its steps are another code's). Where none qualifies, one line says why
and the run trains from step 0. The source's folder is only read: its checkpoint is copied into
the new run's folder under the new run id, with ``extended_from`` in its runner part (so
``metrics.json`` records it, also after a resume) and a log line ``{"extended_from": ...}``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch

from ertrl_bench.checkpoint import CheckpointError, read_checkpoint
from ertrl_bench.config import RunSpec
from ertrl_bench.data.store import atomic_write_bytes
from ertrl_bench.errors import ErtrlError
from ertrl_bench.finished import Source, runs_in, suite_folders
from ertrl_bench.progress import console
from ertrl_bench.store import RunDir
from ertrl_bench.training import LOG_EVERY


def _note(message: str) -> None:
    console.print(message, markup=False, highlight=False)


def _steps(spec: RunSpec) -> int:
    return spec.train.iterations * spec.train.steps_per_iteration


def _search_folders(specs: Sequence[RunSpec], results_root: Path, more: Sequence[Path]) -> list:
    """The suite folders to look in: the specs' own, every suite of ``results_root``, then
    those of ``more`` (the ``--reuse`` folders: one that does not exist is an ``ErtrlError``)."""
    folders = [RunDir(results_root, s).path.parent for s in specs]
    try:
        folders += suite_folders(results_root)
    except ErtrlError:  # a fresh results folder: no suite yet
        pass
    for folder in more:
        folders += suite_folders(folder)
    seen: dict[Path, None] = {}
    for folder in folders:
        if folder.is_dir() and not folder.is_symlink():
            seen.setdefault(folder.resolve(), None)
    return list(seen)


def _unusable(source: Source, spec: RunSpec) -> str | None:
    """Why ``source`` cannot start ``spec`` (None: it can, if its checkpoint reads)."""
    train = source.spec.train
    if train.iterations % train.eval_every:
        return (
            f"its last evaluation, after iteration {train.iterations}, is not one this run makes"
            f" (every {train.eval_every} iterations)"
        )
    changed = {
        k: (v, spec.versions.get(k))
        for k, v in source.spec.versions.items()
        if spec.versions.get(k) != v
    }
    if changed:
        what = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in sorted(changed.items()))
        return f"trained with other component versions ({what})"
    if not (source.path / "checkpoint.pt").is_file():
        return "it kept no checkpoint (a finished run keeps its last one with --keep-checkpoints)"
    return None


def _source_state(source: Source) -> dict:
    """The source's checkpoint, checked to be at its last step; ``CheckpointError`` if not."""
    path = source.path / "checkpoint.pt"
    state = read_checkpoint(path, source.spec.run_id())
    loop, end = state["loop"], _steps(source.spec)
    if (int(loop["iteration"]), int(loop["step"])) != (source.spec.train.iterations, end):
        raise CheckpointError(f"{path}: at step {loop['step']}, not at the run's end ({end})")
    return state


def _own_step(rd: RunDir, spec: RunSpec) -> int:
    """The step of the run's own checkpoint (-1: none, or unusable)."""
    try:
        state = read_checkpoint(rd.checkpoint_path, spec.run_id())
    except CheckpointError:
        return -1
    return -1 if state is None else int(state["loop"]["step"])


def _log_at(log: str, end: int) -> str:
    """The shorter run's training log as the longer run has it after step ``end``: without the
    record of the shorter run's last step where ``end`` is not a multiple of ``LOG_EVERY`` (a
    run logs its last step whatever it is; the longer run logs none there)."""
    if end % LOG_EVERY == 0:
        return log

    def last_step_record(line: str) -> bool:
        record = json.loads(line)
        return record.get("step") == end and not {"eval", "diverged"} & set(record)

    return "".join(x for x in log.splitlines(keepends=True) if not last_step_record(x))


def _write_start(rd: RunDir, spec: RunSpec, source: Source, state: dict) -> int:
    """The source's checkpoint as this run's: its id, ``extended_from``, a log line."""
    step = int(state["loop"]["step"])
    origin = {"run": source.label, "step": step}
    state["run_id"] = spec.run_id()
    state["run"]["extended_from"] = origin
    line = json.dumps({"extended_from": source.label, "at_step": step}) + "\n"
    state["run"]["log"] = _log_at(state["run"]["log"], step) + line
    rd.path.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(rd.checkpoint_path, lambda f: torch.save(state, f))
    return step


def _extend_one(rd: RunDir, spec: RunSpec, candidates: list[Source]) -> str | None:
    """Start ``spec``'s run from the first usable candidate (the longest first): what to
    print, or None when its own checkpoint is as far as any candidate."""
    own = _own_step(rd, spec)
    candidates = [c for c in candidates if _steps(c.spec) > own]
    if not candidates:
        return None  # it resumes its own checkpoint
    rid, first_reason = spec.run_id(), None
    for source in candidates:
        reason = _unusable(source, spec)
        if reason is None:
            try:
                state = _source_state(source)
            except CheckpointError as exc:
                reason = str(exc)
        if reason is not None:
            first_reason = first_reason or (source, reason)
            continue
        step = _write_start(rd, spec, source, state)
        was = f" (its own checkpoint was at step {own})" if own >= 0 else ""
        return f"{rid}: extends {source.label} from step {step} to step {_steps(spec)}{was}"
    source, reason = first_reason
    start = f"step {own}, its own checkpoint" if own >= 0 else "step 0"
    return f"{rid}: not extended from {source.label}: {reason}; trains from {start}"


def extend_unfinished(
    specs: Sequence[RunSpec], results_root: Path, more: Sequence[Path] = ()
) -> dict[str, str]:
    """Start each unfinished run of ``specs`` from the checkpoint of a finished run that is the
    same computation with fewer iterations (``RunSpec.computation_key(budget=False)``), found in
    ``results_root`` (its suites) or in ``more``; the longest such run with a kept checkpoint.

    Prints one line per run it extends, or could not (and why); returns them by run id. A run
    another process holds, or whose folder is not a real folder, is left to the normal run.
    The source runs are only read."""
    results_root = Path(results_root)
    todo = [s for s in specs if not RunDir(results_root, s).is_done()]
    if not todo:
        return {}
    keys = {s.computation_key(budget=False) for s in todo}
    by_key: dict[str, list[Source]] = {}
    folders = _search_folders(todo, results_root, more)
    for source in runs_in(folders, lambda s: s.computation_key(budget=False) in keys):
        by_key.setdefault(source.spec.computation_key(budget=False), []).append(source)
    notes: dict[str, str] = {}
    for spec in todo:
        shorter = [
            c
            for c in by_key.get(spec.computation_key(budget=False), [])
            if c.spec.train.iterations < spec.train.iterations
        ]
        if not shorter:
            continue
        shorter.sort(key=lambda c: -c.spec.train.iterations)  # stable: folder order breaks ties
        rd = RunDir(results_root, spec)
        with rd.unfinished_and_free() as held:
            if not held:
                continue
            try:
                message = _extend_one(rd, spec, shorter)
            except (OSError, ValueError) as exc:  # a source log that is not JSON lines, a full disk
                message = f"{spec.run_id()}: not extended ({exc}); trains from step 0"
        if message is not None:
            notes[spec.run_id()] = message
            _note(message)
    return notes
