"""Results layout. A run's ``metrics.json`` is written last, atomically: its presence means done.

::

    results/<suite>/suite.json             every expected run (id, method, env, seed)
    results/<suite>/<run_id>/spec.json     the resolved RunSpec
    results/<suite>/<run_id>/env.json      versions, git SHA, device, torch threads, plugins
    results/<suite>/<run_id>/log.jsonl     training log (one JSON object per line)
    results/<suite>/<run_id>/encodings.npz final z's per task for the z map (compressed)
    results/<suite>/<run_id>/metrics.json  final scores (the "done" marker)
    results/<suite>/<run_id>/failed.json   why a run failed (removed when it re-runs)
    results/<suite>/<run_id>/checkpoint.pt the training state while it runs (removed when done;
                                           ``ertrl_bench.checkpoint``)
    results/<suite>/<run_id>/.lock         held (flock) by the process running it: pid + host

Nothing is written outside the results folder: every path is checked to stay inside it
(suite and method names are validated as safe names too, see ``config.SLUG_PATTERN``).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import platform
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ertrl_bench.config import RunSpec
from ertrl_bench.data.store import atomic_write_bytes, atomic_write_json
from ertrl_bench.errors import ErtrlError


def inside(root: Path, *parts: str) -> Path:
    """``root / parts...``, refusing any result that is not strictly inside ``root``.

    Lexical check (``..`` and absolute parts), so a results folder that is a symlink still works.
    """
    base = os.path.normpath(os.path.abspath(root))
    path = os.path.normpath(os.path.join(base, *parts))
    if os.path.commonpath([base, path]) != base or path == base:
        raise ErtrlError(
            f"{os.path.join(str(root), *parts)}: outside the results folder {root};"
            " refusing to write there (names in a suite must be plain names, not paths)"
        )
    return Path(root).joinpath(*parts)


def refuse_symlinked_folder(folder: Path) -> None:
    """A folder inside the results folder must not be a symlink (the results root itself may)."""
    if folder.is_symlink():
        raise ErtrlError(
            f"{folder}: is a symlink; results are written only into real folders under the"
            " results folder. Remove the link (or point --results-dir at its target)"
        )


def check_writable_dir(path: Path, what: str = "--results-dir") -> Path:
    """Create ``path`` if needed and prove it is a writable folder, or say why not (exit 2)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ErtrlError(f"{path}: is a file, not a folder ({what} must be a folder)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ErtrlError(
            f"{path}: cannot write there ({exc.strerror or exc}); choose another {what}"
        ) from None
    return path


class RunLock:
    """A per-run lock: ``<run dir>/.lock`` held with ``flock`` and naming its owner (pid, host).

    The kernel drops the lock when its process dies (kill -9 included), so a lock file left
    behind is stale by construction: the next process takes it over. Works across processes
    on one machine and on shared filesystems with working POSIX locks (NFSv4, Lustre).
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting; False if another process holds it.

        Raises ``ErtrlError`` when ``.lock`` is not a plain file of its own (a symlink, a hard
        link, a folder, a FIFO...): taking it would write through to something else, so the
        run fails with the fix and the suite's other runs go on.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags, 0o666)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ErtrlError(self._not_a_lock("a symlink")) from None
            if exc.errno == errno.EISDIR:
                raise ErtrlError(self._not_a_lock("a folder")) from None
            raise ErtrlError(
                f"{self.path}: cannot open the run's lock file ({exc.strerror or exc})"
            ) from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            os.close(fd)
            kind = "a hard link" if stat.S_ISREG(st.st_mode) else "a FIFO, socket or device"
            raise ErtrlError(self._not_a_lock(kind))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                return False
            raise
        owner = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()})
        os.ftruncate(fd, 0)
        os.pwrite(fd, owner.encode(), 0)
        self._fd = fd
        return True

    def _not_a_lock(self, what: str) -> str:
        return (
            f"{self.path}: is {what}, not the run's lock file; nothing was written through it."
            " Remove it (no ertrl-bench process made it) and rerun"
        )

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def is_held_elsewhere(self) -> bool:
        """True if another process holds the lock (a broken ``.lock`` is held by nobody)."""
        if not self.path.exists():
            return False
        try:
            if self.acquire():
                self.release()
                return False
        except ErtrlError:
            return False
        return True

    def owner(self) -> str:
        """``pid 123 on host`` of the holder (best effort, for messages)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as f:
                o = json.loads(f.read(4096) or "{}")
            return f"pid {o['pid']} on {o['host']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"


class RunDir:
    def __init__(self, root: Path, spec: RunSpec):
        self.spec = spec
        self.path = inside(root, spec.suite, spec.run_id())
        self.lock = RunLock(self.path / ".lock")

    def check_real_folders(self) -> None:
        """Refuse a suite or run folder that is a symlink: the run's files would be written (and
        a previous attempt's removed) wherever it points, outside the results folder."""
        for folder in (self.path.parent, self.path):
            refuse_symlinked_folder(folder)

    @contextmanager
    def unfinished_and_free(self) -> Iterator[bool]:
        """Hold the run's lock while it stays unfinished, quietly: True inside when held (it is
        released on leaving), False when the folder is unusable, another process holds the
        run, or it is done. For work done on a run before it is run (copying, extending),
        which leaves anything in its way to ``runner.execute``, which reports it."""
        if self.is_done():
            yield False
            return
        try:
            self.check_real_folders()
            taken = self.lock.acquire()
        except ErtrlError:
            taken = False
        if not taken:
            yield False
            return
        try:
            yield not self.is_done()  # finished by another process while we looked
        finally:
            self.lock.release()

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.json"

    def metrics_problem(self) -> str | None:
        """Why this run is not finished (None: its ``metrics.json`` is there and fits the
        schema). One check for ``run``'s "done" test, its resume summary and the report."""
        from ertrl_bench.results_schema import MetricsFileError, read_metrics

        if not os.path.lexists(self.metrics_path):
            return "no metrics.json"
        try:
            read_metrics(self.metrics_path)
        except MetricsFileError as exc:
            return str(exc)
        return None

    def is_done(self) -> bool:
        return self.metrics_problem() is None

    def read_metrics(self) -> dict:
        """The finished run's metrics as a dict (validated; ``MetricsFileError`` otherwise)."""
        from ertrl_bench.results_schema import read_metrics

        return read_metrics(self.metrics_path).model_dump(by_alias=True)

    def start(self, device: str) -> None:
        """Fresh attempt: clear what a previous attempt left, record spec and environment.

        A ``metrics.json`` that does not fit the schema (so the run is redone) is kept aside as
        ``metrics.invalid.json``, not deleted: it may be someone's hand edit.
        """
        self._clear_attempt()
        atomic_write_json(self.path / "spec.json", self.spec.model_dump(mode="json"))
        atomic_write_json(self.path / "env.json", environment_info(device))

    def _clear_attempt(self) -> None:
        """Remove what an unfinished previous attempt left (an invalid ``metrics.json`` is kept
        aside as ``metrics.invalid.json``)."""
        self.path.mkdir(parents=True, exist_ok=True)
        if (
            self.metrics_path.is_file()
            and not self.metrics_path.is_symlink()
            and not self.is_done()
        ):
            os.replace(self.metrics_path, self.path / "metrics.invalid.json")
        for name in ("metrics.json", "failed.json", "log.jsonl", "encodings.npz"):
            (self.path / name).unlink(missing_ok=True)

    def copy_finished(self, source: Path, source_spec: RunSpec, reused_from: str) -> dict:
        """Make this run a copy of the finished run in ``source`` (the same computation under
        another suite's name: equal ``computation_key``), written as a run of this suite.

        ``spec.json`` is the source's spec with this suite's name (its run id is this run's);
        ``env.json`` and ``encodings.npz`` are copied as they are; ``log.jsonl`` gets one more
        line ``{"reused_from": ...}`` and ``metrics.json`` (written last: the done marker) this
        run's id and ``reused_from`` ("<suite>/<run id>"). Checkpoints, locks and
        ``failed.json`` are not copied (an own unfinished attempt's checkpoint is removed);
        nothing in ``source`` is written. Returns the metrics.
        """
        spec = source_spec.model_copy(update={"suite": self.spec.suite})
        if spec.run_id() != self.spec.run_id():
            raise ErtrlError(
                f"{source}: not the same computation as {self.spec.run_id()}; not reused"
            )
        metrics = json.loads((source / "metrics.json").read_text(encoding="utf-8"))
        metrics.update(run_id=self.spec.run_id(), reused_from=reused_from)
        log = (source / "log.jsonl").read_bytes() if (source / "log.jsonl").is_file() else b""
        log += (json.dumps({"reused_from": reused_from}) + "\n").encode()
        self._clear_attempt()
        self.checkpoint_path.unlink(missing_ok=True)
        atomic_write_json(self.path / "spec.json", spec.model_dump(mode="json"))
        atomic_write_bytes(self.path / "log.jsonl", lambda f: f.write(log))
        for name in ("env.json", "encodings.npz"):
            if (source / name).is_file():
                data = (source / name).read_bytes()
                atomic_write_bytes(self.path / name, lambda f, data=data: f.write(data))
        self.write_metrics(metrics)
        return metrics

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint.pt"

    def read_log(self) -> str:
        try:
            return (self.path / "log.jsonl").read_text()
        except FileNotFoundError:
            return ""

    def restore_log(self, text: str) -> None:
        """The training log as a checkpoint recorded it (a resumed run continues from there)."""
        atomic_write_bytes(self.path / "log.jsonl", lambda f: f.write(text.encode()))

    def log(self, record: dict) -> None:
        # appended, so not replaced atomically: O_NOFOLLOW refuses a symlink planted there
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self.path / "log.jsonl", flags, 0o666)
        with os.fdopen(fd, "a") as f:
            f.write(json.dumps(record) + "\n")

    def write_encodings(self, arrays: dict[str, np.ndarray]) -> None:
        atomic_write_bytes(self.path / "encodings.npz", lambda f: np.savez_compressed(f, **arrays))

    def write_metrics(self, metrics: dict) -> None:
        from ertrl_bench.results_schema import validate_metrics  # the shape the report reads

        validate_metrics(metrics)
        atomic_write_json(self.metrics_path, metrics)

    def write_failed(self, error: str, traceback: str) -> None:
        atomic_write_json(self.path / "failed.json", {"error": error, "traceback": traceback})


def _read_index(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_suite_index(root: Path, suite: str, specs: list[RunSpec]) -> Path:
    """``results/<suite>/suite.json``: every expected run; the cost of earlier invocations of
    ``run`` (``invocations``, see ``record_invocation``) is kept."""
    path = inside(root, suite, "suite.json")
    refuse_symlinked_folder(path.parent)
    runs = [
        {"run_id": s.run_id(), "method": s.method.name, "env": s.env.type, "seed": s.seed}
        for s in specs
    ]
    index: dict = {"suite": suite, "runs": runs}
    previous = _read_index(path).get("invocations")
    if isinstance(previous, list):
        index["invocations"] = previous
    atomic_write_json(path, index)
    return path


class CostMeter:
    """Wall-clock, CPU time and peak memory of one ``ertrl-bench run`` on this machine.

    CPU time is user + system of this process and of its finished child processes (the local
    executor's workers); peak memory is the largest resident set of this process or of any
    one finished child (``getrusage``'s ``ru_maxrss``, Linux: KiB). Work done on other machines
    (the ray executor's remote workers) is not seen.
    """

    def __init__(self) -> None:
        import resource
        import time

        self._resource, self._time = resource, time
        self.start_wall = time.perf_counter()
        self.start_cpu = self._cpu()
        self.started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def _usage(self):
        r = self._resource
        return r.getrusage(r.RUSAGE_SELF), r.getrusage(r.RUSAGE_CHILDREN)

    def _cpu(self) -> float:
        return sum(u.ru_utime + u.ru_stime for u in self._usage())

    def read(self) -> dict:
        peak_kib = max(u.ru_maxrss for u in self._usage())
        return {
            "started": self.started,
            "wall_s": round(self._time.perf_counter() - self.start_wall, 1),
            "cpu_s": round(self._cpu() - self.start_cpu, 1),
            "peak_rss_mb": round(peak_kib / 1024, 1),
        }


def record_invocation(root: Path, suite: str, record: dict) -> Path:
    """Append one ``run`` invocation's cost (``CostMeter.read()`` plus outcome counts and the
    machine) to ``suite.json``'s ``invocations``: a resumed suite lists each invocation."""
    path = inside(root, suite, "suite.json")
    refuse_symlinked_folder(path.parent)
    index = _read_index(path) or {"suite": suite, "runs": []}
    previous = index.get("invocations")
    index["invocations"] = [*(previous if isinstance(previous, list) else []), record]
    atomic_write_json(path, index)
    return path


def _git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip() or None
    except Exception:
        return None


def environment_info(device: str) -> dict:
    import gymnasium
    import mujoco
    import torch

    from ertrl_bench import __version__
    from ertrl_bench.plugins import describe_plugins

    return {
        "ertrl_bench": __version__,
        "git_sha": _git_sha(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "gymnasium": gymnasium.__version__,
        "mujoco": mujoco.__version__,
        "device": device,
        # on CPU a different count may change a run's numbers in the last bits (docs/running.md)
        "torch_threads": torch.get_num_threads(),
        "plugins": {p["name"]: p["version"] for p in describe_plugins()},
    }
