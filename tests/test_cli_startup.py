"""The commands that neither train nor evaluate load no torch and no MuJoCo (fast start-up).

Each command runs in a fresh interpreter, which then reports the heavy modules it imported.
Timings are a benchmark (benchmarks/test_bench_cli.py), not a test.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import REPO

HEAVY = ("torch", "mujoco", "sklearn", "matplotlib", "ot")

SCRIPT = """
import json, sys
from ertrl_bench.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy} if m in sys.modules)), file=sys.stderr)
"""


def _heavy_modules_after(*argv: str) -> list[str]:
    code = SCRIPT.format(heavy=HEAVY)
    proc = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    return json.loads(proc.stderr.strip().splitlines()[-1])


def test_importing_the_cli_loads_no_torch():
    code = f"import sys, ertrl_bench.cli; print([m for m in {HEAVY} if m in sys.modules])"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert out.stdout.strip() == "[]", out.stderr


@pytest.mark.parametrize(
    "argv", [["--help"], ["plugins"], ["validate", "smoke"], ["status", "smoke"]], ids=str
)
def test_commands_that_do_not_train_load_no_torch(argv):
    assert _heavy_modules_after(*argv) == []
