"""suite.json records what each `ertrl-bench run` cost: wall-clock, CPU time, peak memory."""

from __future__ import annotations

import json
import sys

import pytest

from tests.helpers import tiny_suite, write_suite


def _run(monkeypatch, *args) -> int:
    from ertrl_bench import cli

    monkeypatch.setattr(sys, "argv", ["ertrl-bench", "run", *map(str, args)])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    return exc.value.code


def test_each_run_invocation_is_recorded_and_kept(tmp_path, monkeypatch):
    path = write_suite(tmp_path / "s.yaml", tiny_suite(name="costed"))
    results = tmp_path / "results"
    for _ in range(2):  # the second invocation finds the run done and skips it
        assert _run(monkeypatch, path, "--results-dir", results, "--jobs", "1") in (0, None)
    index = json.loads((results / "costed" / "suite.json").read_text())
    assert len(index["runs"]) == 1
    first, second = index["invocations"]
    assert first["runs"] == {"done": 1, "reused": 0, "skipped": 0, "failed": 0}
    assert second["runs"] == {"done": 0, "reused": 0, "skipped": 1, "failed": 0}
    assert first["wall_s"] > 0 and first["cpu_s"] > 0 and first["peak_rss_mb"] > 50
    assert first["executor"] == "local" and first["cpus"] >= 1
    assert second["wall_s"] < first["wall_s"]
