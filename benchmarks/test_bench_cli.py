"""CLI start-up: ``ertrl-bench --help``, ``plugins`` and ``validate smoke`` against ``python -c pass``.

These commands load no torch and no MuJoCo (the components register by name, ``plugins.Lazy``,
with torch-free options; tests/test_cli_startup.py checks it), so they start in about the time
Python needs for numpy, gymnasium, pydantic and typer. Reported: the median of 5 start-ups of
each command in seconds and as a ratio to ``python -c pass`` measured in the same call.

The bound, ratio < 40, comes from measurements on the shared 2-core VM at load ~10
(benchmarks/measured/cpu-2core-2026-12-06/NOTES.md): 13-21 with lazy loading, 80-85 when every
command imported torch. Run: ``tox -e bench`` or
``pytest benchmarks/test_bench_cli.py -m bench -s -p no:cacheprovider``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import pytest

from tests.helpers import REPO, entry_point

COMMANDS = (["--help"], ["plugins"], ["validate", "smoke"])
MAX_RATIO = 40.0


def _median_seconds(argv: list[str], repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO)
        times.append(time.perf_counter() - t0)
        assert proc.returncode == 0, proc.stderr
    return statistics.median(times)


@pytest.mark.bench
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_cli_startup_ratio_to_bare_python(command):
    bare = _median_seconds([sys.executable, "-c", "pass"])
    cli = _median_seconds([*entry_point(), *command])
    ratio = cli / bare
    print(
        f"\nertrl-bench {' '.join(command)}: {cli:.2f} s, python -c pass {bare:.3f} s: {ratio:.1f}x"
    )
    assert ratio < MAX_RATIO, f"start-up {cli:.2f} s is {ratio:.0f}x a bare python"
