"""Mid-run checkpoints: a run's whole training state in ``<run dir>/checkpoint.pt``.

A killed run (kill -9, a lost machine) resumes from its last checkpoint and ends with the same
numbers as an uninterrupted run on CPU. What one holds (``Checkpointer.save``):

* ``loop`` -- where the training loop is (``training.meta_train``): the iteration, the train
  steps done, the meta-batch generator's state at that iteration's start (its meta-batches are
  drawn up front and are redrawn on resume), the global RNG streams (torch CPU and CUDA --
  the data sampler's --, numpy, python ``random``; ``capture_rng``) and the agent: every
  network and optimizer, through the components' ``state_dict`` (``training.agent_state``);
* ``run`` -- what the runner keeps: the training log so far, the evaluation history, the last
  evaluation's z's, the time spent and the torch thread count the run started with (a resume
  with another count is warned about: CPU numbers may then differ in the last bits).

Checkpoints are written every ``checkpoint.every_minutes`` of wall time and after every
evaluation (``config.CheckpointConfig``), atomically (temp file + ``os.replace``), and removed
when the run finishes unless ``checkpoint.keep``. A checkpoint that cannot be read is reported
once and the run starts over from step 0.

Ctrl-C or SIGTERM during the training steps (``stopping.StopAtStepBoundary``) stops a run at the
end of the step in progress, after a checkpoint of that step: a stopped run loses nothing. A
second Ctrl-C, or a signal outside the steps (an evaluation, the probe), stops it at once: it
then resumes from its last checkpoint.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ertrl_bench.data.store import atomic_write_bytes
from ertrl_bench.errors import ErtrlError

FORMAT = 1  # bumped when the layout changes: an older checkpoint is then started over


class CheckpointError(ErtrlError):
    """A checkpoint that cannot be used: unreadable, another format, or not this run's."""


def capture_rng() -> dict:
    """The global RNG streams (torch CPU and CUDA, numpy, python), as tensors and numbers."""
    kind, key, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": (kind, torch.from_numpy(key.astype(np.int64)), pos, has_gauss, gauss),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, key, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, key.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def read_checkpoint(path: Path, run_id: str) -> dict | None:
    """The checkpoint at ``path``, None if there is none; ``CheckpointError`` if unusable.

    Read with ``weights_only=True``: a checkpoint holds tensors, numbers, strings and containers
    of them, never code, so a results folder from elsewhere cannot run anything on load.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, garbage, or a type weights_only refuses
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: unreadable ({reason[:200]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        got = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path}: checkpoint format {got!r}, this version reads {FORMAT}")
    if state.get("run_id") != run_id:
        raise CheckpointError(f"{path}: belongs to run {state.get('run_id')!r}, not {run_id!r}")
    return state


class Checkpointer:
    """Saves a run's training state when due: every ``every_s`` seconds and when asked.

    ``run_state()`` supplies the runner's part (log, evaluation history, timing); the training
    loop supplies its own to ``save``.
    """

    def __init__(
        self,
        path: Path,
        run_id: str,
        every_s: float,
        run_state: Callable[[], dict],
        clock: Callable[[], float] = time.monotonic,
    ):
        self.path, self.run_id, self.every_s = Path(path), run_id, every_s
        self.run_state, self.clock = run_state, clock
        self.last = clock()
        self.saved = 0  # checkpoints written by this process
        self.seconds = 0.0  # time spent writing them

    def due(self) -> bool:
        return self.clock() - self.last >= self.every_s

    def save(self, loop: dict) -> None:
        t = time.perf_counter()
        state = {
            "format": FORMAT,
            "run_id": self.run_id,
            "loop": loop,
            "run": self.run_state(),
        }
        atomic_write_bytes(self.path, lambda f: torch.save(state, f))
        self.last = self.clock()
        self.saved += 1
        self.seconds += time.perf_counter() - t

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
