"""Executors run a list of RunSpecs: ``local`` (this machine, ``jobs`` processes) and ``ray``.

An executor is ``factory(options) -> obj`` with ``map(fn, specs) -> iterator of outcomes`` in
completion order. ``fn`` is a picklable callable taking one RunSpec. An executor whose runs go
on at the same time sets ``parallel = True``: the runner then builds the datasets the runs need
once, before dispatching them, instead of letting concurrent runs build the same one (so does
one with ``builds_data_first = True``: the overlapped local executor, on the runs' device). Every
executor runs ``runner.execute``, which takes the run's lock (``store.RunLock``): two processes
(or Ray workers) never run the same run at once.
Options come from ``ertrl-bench run --executor ray --executor-opt num_cpus=2 ...``.
``fn`` accepts ``cpu_pool=`` (``runner.execute``): the local executor's ``overlap`` passes a
worker pool and gets back, for runs whose CPU-only ending went to it, objects with
``ready()``, ``outcome()`` and ``interrupt()`` (``runner.Deferred``).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, model_validator

from ertrl_bench.errors import ErtrlError
from ertrl_bench.options import Strict
from ertrl_bench.plugins import hookimpl


def usable_cores() -> int:
    """Cores this process may run on (affinity / cgroup-aware where the OS says so)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


class LocalOptions(Strict):
    jobs: PositiveInt | None = Field(
        None,
        description="Runs at the same time, each in its own process; null: one per usable core"
        " (at most one per run); 1: one after another in this process (readable progress bars).",
    )
    threads: PositiveInt | None = Field(
        None,
        description="Torch threads per run; null: usable cores // jobs (at least 1) in worker"
        " processes, torch's own default (one per core, or $OMP_NUM_THREADS) in this process.",
    )
    overlap: bool = Field(
        False,
        description="Train one run at a time in this process (the GPU's) while cpu_workers"
        " processes run the finished runs' probe regressions (docs/running.md).",
    )
    cpu_workers: PositiveInt = Field(
        1, description="Worker processes for the probe regressions of overlap."
    )

    @model_validator(mode="after")
    def _overlap_trains_one_at_a_time(self):
        if self.overlap and self.jobs not in (None, 1):
            raise ValueError(
                "overlap trains one run at a time in this process (jobs: 1); its parallelism"
                " is cpu_workers"
            )
        return self

    seeds_per_step: PositiveInt = Field(
        1,
        description="K > 1: up to K runs that differ only in seed train as one computation, every"
        " network an ensemble over the seeds (ertrl_bench.seed_batch); each writes its own run"
        " folder with the run alone's numbers (within float rounding). A job is then a seed group.",
    )

    @model_validator(mode="after")
    def _seed_groups_not_overlapped(self):
        if self.overlap and self.seeds_per_step > 1:
            raise ValueError("seeds_per_step and overlap are not combined yet: use one of them")
        return self


def _init_worker(threads: int, parent_pid: int) -> None:
    import torch

    os.environ["ERTRL_BENCH_QUIET"] = "1"  # N progress bars on one terminal are unreadable
    torch.set_num_threads(threads)
    # Ctrl-C is the parent's to handle: it stops the pool (SIGTERM), which each run turns into
    # its "interrupted" marker (_call_in_worker); an idle worker just ends (default SIGTERM)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent_pid)


def _die_with_parent(parent_pid: int) -> None:
    """A worker whose parent is gone (kill -9, SIGTERM) gets SIGTERM: it never finishes its run
    as an orphan. Linux: the kernel sends it (prctl PR_SET_PDEATHSIG); elsewhere, or should
    prctl fail, a thread notices the parent's pid change within a second."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # this process's symbols: libc's prctl on Linux
        if libc.prctl(1, signal.SIGTERM, 0, 0, 0) != 0:  # 1 = PR_SET_PDEATHSIG
            raise OSError(ctypes.get_errno(), "prctl")
    except (OSError, AttributeError):
        import threading

        def watch() -> None:
            while os.getppid() == parent_pid:
                time.sleep(1.0)
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os.kill(os.getpid(), signal.SIGTERM)


def _interrupted(signum, frame) -> None:
    """SIGTERM in a worker's run: stop it as Ctrl-C would (``execute`` writes the run's
    "interrupted" marker); a second signal is ignored so the marker gets written."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


class LocalExecutor:
    """Runs on this machine: one after another in this process, or ``jobs`` worker processes.

    Parallel runs give the same numbers as sequential ones (every run seeds its own RNGs and
    is deterministic on CPU); each worker uses ``threads`` torch threads so N x T fits the cores.
    """

    def __init__(self, options: LocalOptions | None = None):
        self.options = options or LocalOptions()

    def plan(self, n_runs: int) -> tuple[int, int]:
        """(jobs, threads) for ``n_runs`` runs on this machine (threads: each worker
        process's; with one job the runs train in this process, on ``threads`` if set)."""
        cores = usable_cores()
        # never more processes than runs (each holds torch and its data: ~1 GB)
        jobs = 1 if self.options.overlap else max(1, min(self.options.jobs or cores, n_runs))
        threads = self.options.threads or max(1, cores // jobs)
        return jobs, threads

    @property
    def builds_data_first(self) -> bool:
        """overlap: the datasets are built before the first run, on the runs' device."""
        return self.options.overlap

    @property
    def seeds_per_step(self) -> int:
        return self.options.seeds_per_step

    @property
    def parallel(self) -> bool:
        # None: decided per suite, may be parallel; overlap trains one run at a time
        return self.options.jobs != 1 and not self.options.overlap

    def map(self, fn: Callable, specs: list) -> Iterator:
        jobs, threads = self.plan(len(specs))
        if self.options.overlap or jobs == 1 or len(specs) <= 1:  # training in this process
            from ertrl_bench.nn import torch_threads  # torch is imported only when runs run

            with torch_threads(self.options.threads):
                if self.options.overlap:
                    yield from self._map_overlapped(fn, specs)
                else:
                    for spec in specs:
                        yield fn(spec)
            return
        ctx = multiprocessing.get_context("spawn")  # fork after torch's threads start can hang
        pool = ctx.Pool(jobs, initializer=_init_worker, initargs=(threads, os.getpid()))
        try:
            yield from pool.imap_unordered(partial(_call_in_worker, fn), specs)  # completion order
            pool.close()
        except BaseException:  # Ctrl-C, or the consumer stopped: no orphan workers go on
            pool.terminate()
            raise
        finally:
            pool.join()

    def _map_overlapped(self, fn: Callable, specs: list) -> Iterator:
        """Train each run here, one after another; its probe regressions go to the CPU pool
        and their outcome is reported when done (checked after each run's training, and all
        waited for at the end). SIGTERM stops it as Ctrl-C does: the run in training and the
        runs whose regressions are unfinished record "interrupted"."""
        ctx = multiprocessing.get_context("spawn")
        pool = ctx.Pool(
            self.options.cpu_workers, initializer=_init_worker, initargs=(1, os.getpid())
        )
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _interrupted) if main else None
        pending: list = []
        try:
            for spec in specs:
                out = fn(spec, cpu_pool=pool)
                if hasattr(out, "outcome"):
                    pending.append(out)
                else:
                    yield out
                for d in [d for d in pending if d.ready()]:
                    pending.remove(d)
                    yield d.outcome()
            while pending:
                yield pending[0].outcome()
                pending.pop(0)
            pool.close()
        except BaseException:  # Ctrl-C, SIGTERM, or the consumer stopped
            for d in pending:  # a finished probe is kept; an unfinished one is "interrupted"
                d.outcome() if d.ready() else d.interrupt()
            pool.terminate()
            raise
        finally:
            pool.join()
            if main:
                signal.signal(signal.SIGTERM, previous)


class RayOptions(Strict):
    address: str | None = None  # None: start a local Ray; "auto": join a running cluster
    num_cpus: PositiveFloat = 1.0  # per run
    num_gpus: float = 0.0  # per run (e.g. 0.25 to pack four runs on a GPU)
    max_retries: NonNegativeInt = 1  # times Ray reruns a run whose worker died


class RayExecutor:
    """One Ray task per run; results come back as they finish (``ray.wait``)."""

    parallel = True

    def __init__(self, options: RayOptions | None = None):
        self.options = options or RayOptions()
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ErtrlError("the ray executor needs Ray: pip install 'ertrl-bench[ray]'") from None

    def map(self, fn: Callable, specs: list) -> Iterator:
        import ray

        o = self.options
        if not ray.is_initialized():
            ray.init(address=o.address, ignore_reinit_error=True, log_to_driver=False)
        # ray.remote takes plain functions only (fn is often a functools.partial)
        remote = ray.remote(_call).options(
            num_cpus=o.num_cpus, num_gpus=o.num_gpus, max_retries=o.max_retries
        )
        pending = [remote.remote(fn, spec) for spec in specs]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])


def _call(fn: Callable, spec):
    return fn(spec)


def _call_in_worker(fn: Callable, spec):
    """``fn(spec)`` in a pool worker: SIGTERM (the pool stopping, or the parent gone) interrupts
    the run cleanly; the worker then exits without a traceback (its parent reports)."""
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        return fn(spec)
    except KeyboardInterrupt:
        os._exit(130)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@hookimpl
def register_executors(register):
    register("local", LocalExecutor, LocalOptions)
    register("ray", RayExecutor, RayOptions)
