"""Where a suite's runs stand (``ertrl-bench status``), read from its results folder only.

A study runs across sessions: started, stopped (its runs write their checkpoints), resumed. This
reads each expected run's folder (``store`` describes the layout) and never writes, never takes
a lock and never imports torch: a run's lock is seen as held from ``/proc/locks`` (Linux) or,
elsewhere, from the owner its ``.lock`` names; the step a stopped run resumes from is read from
its checkpoint's pickle without building any tensor (``checkpoint_progress``), else the step
reached is the training log's last one. The time an unfinished run has left is estimated from
the same checkpoint: its wall clock per step so far (evaluations and earlier sittings included).
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import time
import zipfile
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

from ertrl_bench.config import RunSpec
from ertrl_bench.data.store import pid_alive
from ertrl_bench.errors import ErtrlError
from ertrl_bench.store import RunDir

STATUSES = ("done", "reused", "running", "stopped", "failed", "not started")
# the error a run stopped by Ctrl-C or SIGTERM records (runner._guarded): stopped, not failed
INTERRUPTED = "interrupted"
_TAIL_BYTES = 65536  # the log's last records (each under a few KiB)


@dataclass
class RunStatus:
    run_id: str
    status: str  # one of STATUSES
    step: int | None  # a finished run's total, a stopped one's checkpoint's, else the log's last
    total: int  # train.iterations x steps_per_iteration
    log_age_s: float | None  # seconds since log.jsonl last changed (None: no log)
    detail: str = ""  # the error of a failed run, the holder of a running one...
    run_seconds: float | None = None  # a finished run's timing_s.total / seed_group
    left_s: float | None = None  # an unfinished run's estimate: steps left x wall s a step so far
    cell: str = ""  # method/env: the runs whose cost predicts this one's (``summary``)


def suite_status(results_dir: Path, specs: list[RunSpec], now: float | None = None):
    """The status of every run of ``specs`` (one suite) in ``results_dir``, in the suite's order.

    ``ErtrlError`` when ``results_dir`` or the suite's folder cannot be read."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        what = "is not a folder" if results_dir.exists() else "no such folder"
        raise ErtrlError(f"{results_dir}: {what}; give the --results-dir the suite was run with")
    if specs:
        suite_dir = results_dir / specs[0].suite
        try:
            if suite_dir.exists():
                os.listdir(suite_dir)
        except OSError as exc:
            raise ErtrlError(f"{suite_dir}: cannot read it ({exc.strerror or exc})") from None
    now = time.time() if now is None else now
    held = _held_lock_inodes()
    return [_run_status(RunDir(results_dir, s), s, now, held) for s in specs]


def _run_status(rd: RunDir, spec: RunSpec, now: float, held: set[int] | None) -> RunStatus:
    total = spec.train.iterations * spec.train.steps_per_iteration
    log = rd.path / "log.jsonl"
    try:
        age = max(0.0, now - log.stat().st_mtime)
    except OSError:
        age = None
    row = RunStatus(spec.run_id(), "not started", None, total, age, cell=_cell(spec))
    if not rd.path.is_dir():
        return row
    if rd.is_done():
        try:
            metrics = json.loads(rd.metrics_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            metrics = {}
        row.step = total
        row.run_seconds = _run_seconds(metrics)
        if metrics.get("reused_from"):
            row.status, row.detail = "reused", f"from {metrics['reused_from']}"
        else:
            row.status = "done"
        return row
    row.step = _last_step(log)
    progress = checkpoint_progress(rd.checkpoint_path, spec.run_id())
    holder = lock_holder(rd.path / ".lock", held)
    failed = rd.path / "failed.json"
    error = _first_error_line(failed) if failed.is_file() else None
    if holder is not None:
        row.status, row.detail = "running", holder
    elif error is not None and error != INTERRUPTED:
        row.status, row.detail = "failed", error
    elif rd.checkpoint_path.is_file():
        row.status = "stopped"
        row.step = progress[0] if progress is not None else row.step
        if age is None:  # no log yet: the checkpoint is the finished shorter run's (extend.py)
            row.detail = "extends a shorter finished run from this step; none trained here yet"
    elif row.step is not None or error == INTERRUPTED:
        row.status, row.detail = "stopped", "no checkpoint: restarts from step 0"
    if progress is not None and row.status in ("running", "stopped"):
        at, wall_s = progress
        if at > 0 and wall_s is not None:
            row.left_s = max(0, total - max(at, row.step or 0)) * wall_s / at
    return row


def _cell(spec: RunSpec) -> str:
    return f"{spec.method.name}/{spec.env.type}"


def _run_seconds(metrics: dict) -> float | None:
    """The run's own share of time: its ``timing_s.total``, divided among a seed group."""
    try:
        total = float(metrics["timing_s"]["total"])
    except (KeyError, TypeError, ValueError):
        return None
    group = metrics.get("seed_group", 1)
    return total / group if isinstance(group, int) and group > 0 else total


def _last_step(log: Path) -> int | None:
    """The last step the training log names (a training or evaluation record, or a resume)."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - _TAIL_BYTES))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut by the tail, or being written
        if not isinstance(record, dict):
            continue
        step = record.get("step", record.get("resumed_at_step"))
        if isinstance(step, int):
            return step
    return None


class _Opaque:
    """Whatever a checkpoint's pickle builds but ``checkpoint_progress`` does not need (tensors,
    torch types): nothing is imported or run for it."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return self

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):  # a dict-like torch type's items
        pass

    def append(self, value):  # a list-like one's
        pass

    def extend(self, values):
        pass


class _StepUnpickler(pickle.Unpickler):
    """Reads a ``torch.save`` pickle's plain values; every global it names is ``_Opaque`` (no
    module is imported, no code runs) and its tensor storages are not read."""

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):  # a state_dict: plain values
            return OrderedDict
        return _Opaque

    def persistent_load(self, pid):
        return None


def checkpoint_progress(path: Path, run_id: str) -> tuple[int, float | None] | None:
    """(the train step the run's checkpoint resumes from, the run's wall seconds up to it),
    read without torch; None when there is none, or it cannot be read or is not this run's
    (the run then starts over, or reports it)."""
    if not path.is_file():
        return None
    try:
        with zipfile.ZipFile(path) as z:
            name = next(n for n in z.namelist() if n.endswith("/data.pkl"))
            with z.open(name) as f:
                state = _StepUnpickler(f).load()
        if state.get("run_id") != run_id:
            return None
        step, wall = state["loop"]["step"], state["run"]["timing"].get("wall")
    except Exception:  # any damage: the checkpoint is reported when the run resumes
        return None
    if not isinstance(step, int):
        return None
    return step, float(wall) if isinstance(wall, (int, float)) and wall >= 0 else None


def _first_error_line(path: Path) -> str:
    try:
        error = json.loads(path.read_text(encoding="utf-8")).get("error", "")
    except (OSError, ValueError, AttributeError):
        return "failed.json unreadable"
    lines = str(error).strip().splitlines()
    return lines[0] if lines else ""


def _held_lock_inodes() -> set[int] | None:
    """Inodes of the files flock-ed on this machine (``/proc/locks``); None off Linux."""
    try:
        text = Path("/proc/locks").read_text()
    except OSError:
        return None
    inodes = set()
    for line in text.splitlines():
        fields = line.split()
        if "FLOCK" in fields and len(fields) >= 6:
            try:
                inodes.add(int(fields[5].rsplit(":", 1)[1]))
            except (IndexError, ValueError):
                pass
    return inodes


def lock_holder(lock: Path, held: set[int] | None) -> str | None:
    """``pid N on HOST`` when a live process holds the run's lock, else None (no lock, or a
    stale one: the kernel drops a flock with its process, kill -9 included).

    Read-only: taking the lock to test it (``RunLock.is_held_elsewhere``) would write to it. A
    lock of this machine is held when ``/proc/locks`` lists its file; a lock of another machine
    (a shared filesystem) is taken as held while its file names an owner (released locks are
    emptied)."""
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        inode = os.fstat(f.fileno()).st_ino
        try:
            owner = json.loads(f.read(4096) or b"{}")
        except ValueError:
            owner = {}
    if not isinstance(owner, dict):
        owner = {}
    pid, host = owner.get("pid"), owner.get("host")
    name = f"pid {pid} on {host}" if pid is not None else "another process"
    if host is not None and host != socket.gethostname():
        return name if pid is not None else None
    if held is not None:
        return name if inode in held else None
    return name if isinstance(pid, int) and pid_alive(pid) else None


def summary(rows: list[RunStatus]) -> dict:
    """Counts per status (those present), the run-seconds the suite's own finished runs took
    (reused runs cost this suite nothing) and what the runs not started will cost: each at the
    mean run-seconds of the finished runs (done or reused) of its method and env, the runs
    with none to go by counted apart. A study across sessions plans its next one on that."""
    counts = {s: sum(r.status == s for r in rows) for s in STATUSES}
    spent = sum(r.run_seconds or 0.0 for r in rows if r.status == "done")
    paid: dict[str, list[float]] = {}
    for r in rows:
        if r.status in ("done", "reused") and r.run_seconds is not None:
            paid.setdefault(r.cell, []).append(r.run_seconds)
    ahead = [r for r in rows if r.status == "not started"]
    known = [sum(paid[r.cell]) / len(paid[r.cell]) for r in ahead if r.cell in paid]
    return {
        "runs": len(rows),
        "counts": {s: n for s, n in counts.items() if n},
        "run_seconds": round(spent, 1),
        "not_started_run_seconds": round(sum(known), 1),
        "not_started_unestimated": len(ahead) - len(known),
    }


def as_records(rows: list[RunStatus]) -> list[dict]:
    return [asdict(r) for r in rows]


def age_text(seconds: float | None) -> str:
    """``42 s`` / ``17 min`` / ``3.2 h`` / ``2.0 d``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
