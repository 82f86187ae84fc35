"""Regression against stored reference results (``results/reference/tiny.json``).

A tiny deterministic suite (the same settings as ``tests/helpers.py:tiny_suite``) must reproduce
the stored final scores. After an intended change of numbers, refresh the reference with
``python tests/test_regression.py --write`` and say why in the commit message.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import pytest

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference" / "tiny.json"
TOLERANCE = 1.0  # normalized-return points: catches behaviour changes, not float noise
METHODS = ["focal", "csro", "ertrl", "unicorn", "offline_pearl"]  # all five named methods


def compute(tmp: Path) -> dict:
    from ertrl_bench.runner import execute
    from ertrl_bench.suite_loader import load_suite
    from tests.helpers import tiny_suite, write_suite

    _, specs = load_suite(
        write_suite(tmp / "s.yaml", tiny_suite(name="reference", methods=METHODS))
    )
    out = {}
    for spec in specs:
        o = execute(spec, tmp / "results")
        assert o.status == "done", o.message
        out[spec.method.name] = o.metrics["final"]
    return out


def test_tiny_suite_matches_reference(tmp_path):
    if not REFERENCE.exists():
        pytest.fail(f"{REFERENCE} is missing: create it with `python {__file__} --write`")
    expected = json.loads(REFERENCE.read_text())
    got = compute(tmp_path)
    for method, by_split in expected.items():
        for split, by_protocol in by_split.items():
            for protocol, values in by_protocol.items():
                actual = got[method][split][protocol]["normalized"]
                assert actual == pytest.approx(values["normalized"], abs=TOLERANCE), (
                    method,
                    split,
                    protocol,
                )


if __name__ == "__main__" and "--write" in sys.argv:
    import os

    os.environ.setdefault("ERTRL_BENCH_QUIET", "1")
    os.environ.setdefault("ERTRL_BENCH_LOAD_PLUGINS", "")
    sys.path.insert(0, str(REFERENCE.parents[2]))
    with tempfile.TemporaryDirectory() as d:
        os.environ.setdefault("ERTRL_BENCH_DATA", str(Path(d) / "data"))
        REFERENCE.write_text(json.dumps(compute(Path(d)), indent=2, sort_keys=True) + "\n")
    print(f"wrote {REFERENCE}")
