"""Do a run's numbers depend on its torch thread count? The same tiny Point-Robot suite (FOCAL
and ER-TRL, seed 0, 20 train steps, 2 evaluations) run with ``ertrl-bench run --jobs 1
--executor-opt threads=1`` and ``threads=2``, and every number of each run's ``metrics.json``
and ``log.jsonl`` compared (timings left out): how many differ and the largest relative
difference; and each suite's time (datasets built before). Twice: with the tests' tiny networks
(hidden [16], batch 16) and with networks and batches big enough for torch to split a matmul
over threads (hidden [256, 256], batch 256).
Run: ``python benchmarks/thread_drift.py [OUT]`` (27 min on the busy VM below, most of it the
oversubscribed threads=2 runs; docs/running.md).

Measured on the shared 2-core VM, 2026-12-06, two other runs keeping both cores busy (load 3 to
7): tiny networks: 0 of 278 / 281 numbers differ; 28.5 s at threads=1, 203.0 s at threads=2.
Wide networks: FOCAL 216 of 278 differ (largest 3.1e-7), ER-TRL 250 of 281 (3.8e-3, the probe's
s.d. over resamples); 164.7 s at threads=1, 1215.8 s at threads=2 (oversubscribed cores).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers import build_datasets, entry_point, tiny_suite, write_suite  # noqa: E402

TIMING = ("timing", "seconds", "dataset")  # keys (and "*_s") whose values are not the run's numbers


def _numbers(x, path=""):
    """Every number of a JSON value by its path, timing keys left out."""
    if isinstance(x, dict):
        for k, v in x.items():
            if not (k.endswith("_s") or any(t in k for t in TIMING)):
                yield from _numbers(v, f"{path}/{k}")
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _numbers(v, f"{path}[{i}]")
    elif isinstance(x, int | float) and not isinstance(x, bool):
        yield path, x


def _run_numbers(run: Path) -> dict:
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return dict(_numbers({"metrics": json.loads((run / "metrics.json").read_text()), "log": log}))


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    wide = {"mlp": {"hidden": [256, 256]}, "brac": {"hidden": [256, 256]}}
    for size, extra in (("tiny", {}), ("wide", {"component_params": wide})):
        suite = tiny_suite(f"threads-{size}", methods=("focal", "ertrl"), **extra)
        if size == "wide":
            suite["train"].update(rl_batch=256, meta_batch=16)
        path = write_suite(out / f"{size}.yaml", suite)
        build_datasets(path)  # not timed
        seconds = {}
        for n in (1, 2):
            t0 = time.perf_counter()
            subprocess.run(
                [*entry_point(), "run", str(path), "--results-dir", str(out / f"threads{n}"),
                 "--jobs", "1", "--executor-opt", f"threads={n}"],
                check=True, capture_output=True, env={**os.environ, "ERTRL_BENCH_QUIET": "1"},
            )  # fmt: skip
            seconds[n] = time.perf_counter() - t0
        print(f"{size}: threads=1 {seconds[1]:.1f} s, threads=2 {seconds[2]:.1f} s")
        for run in sorted((out / "threads1" / suite["name"]).iterdir()):
            if not run.is_dir():
                continue
            a, b = _run_numbers(run), _run_numbers(out / "threads2" / suite["name"] / run.name)
            differ = [k for k in a if a[k] != b.get(k)]
            rel = max((abs(a[k] - b[k]) / max(abs(a[k]), 1e-12) for k in differ), default=0.0)
            print(f"  {run.name}: {len(differ)} of {len(a)} numbers differ, max rel {rel:.1e}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
