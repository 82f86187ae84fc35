"""Suite throughput: the local executor with ``--jobs N`` (N processes x T torch threads) vs one
run after another in one process, on this machine.

Setting: 2 x cores Point-Robot runs (tiny data and networks, 200 train steps, 2 evaluations each),
datasets built before timing. Reported: runs per minute and the ratio parallel / sequential,
against sequential runs with every core's threads (the default) and with one thread (tiny
networks run faster on one thread, so that is the per-core baseline). Measured on the shared
2-core VM (load ~2): 4 runs, sequential 2 threads 112.5 s, 1 thread 11.5 s, --jobs 2 x 1 thread
14.3 s: 7.85x and 0.81x (worker start-up, ~3 s of imports each, outweighs 3 s runs). With idle cores the ratio approaches N for runs this small (one thread each is
enough); a busy machine lowers it. Run: ``tox -e bench`` or
``pytest benchmarks/test_bench_jobs.py -m bench -s -p no:cacheprovider``.
"""

from __future__ import annotations

import time

import pytest
import torch

from ertrl_bench.executors import LocalExecutor, LocalOptions, usable_cores
from ertrl_bench.runner import prepare_datasets, run_suite
from ertrl_bench.suite_loader import load_suite
from tests.helpers import tiny_suite, write_suite


@pytest.mark.bench
def test_jobs_throughput_vs_sequential(tmp_path):
    cores = usable_cores()
    if cores < 2:
        pytest.skip("one usable core: nothing to parallelise")
    suite = tiny_suite(name="bench-jobs", seeds=list(range(2 * cores)))
    suite["train"].update(iterations=2, steps_per_iteration=100)
    specs = load_suite(write_suite(tmp_path / "s.yaml", suite))[1]
    prepare_datasets(specs, tmp_path / "warm")

    times = {}
    for threads in (cores, 1):  # sequential as run by default (every core), and one thread
        torch.set_num_threads(threads)
        t0 = time.perf_counter()
        seq = run_suite(specs, tmp_path / f"seq{threads}", LocalExecutor(LocalOptions(jobs=1)))
        times[threads] = time.perf_counter() - t0
        assert [o.status for o in seq] == ["done"] * len(specs)
    par_ex = LocalExecutor()  # the default: one process per core, cores // N threads each
    jobs, threads = par_ex.plan(len(specs))
    t0 = time.perf_counter()
    par = run_suite(specs, tmp_path / "par", par_ex)
    t_par = time.perf_counter() - t0

    assert [o.status for o in par] == ["done"] * len(specs)
    rate = lambda t: 60 * len(specs) / t  # noqa: E731
    print(
        f"\n{len(specs)} runs on {cores} cores: sequential with {cores} threads"
        f" {times[cores]:.1f} s ({rate(times[cores]):.1f} runs/min), with 1 thread"
        f" {times[1]:.1f} s ({rate(times[1]):.1f} runs/min); --jobs {jobs} x {threads} thread(s)"
        f" {t_par:.1f} s ({rate(t_par):.1f} runs/min): {times[cores] / t_par:.2f}x and"
        f" {times[1] / t_par:.2f}x"
    )
    # vs the default sequential run (every core's threads); against one-thread sequential runs
    # this short a suite can lose: each worker process first imports torch (~3 s of CPU)
    assert times[cores] / t_par > 1.0, "parallel runs were slower than sequential ones"
