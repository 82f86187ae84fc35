"""Executors through the real CLI: options, and Ray giving the same numbers as the local one."""

from __future__ import annotations

import json

import pytest

from tests.helpers import tiny_suite, write_suite


def finals(results) -> dict[str, dict]:
    return {
        p.parent.name: json.loads(p.read_text())["final"]
        for p in sorted(results.glob("*/*/metrics.json"))
    }


@pytest.mark.parametrize(
    "opts, message",
    [
        (["--executor-opt", "workers"], "--executor-opt 'workers': expected KEY=VALUE"),
        (["--executor-opt", "workers=2"], "--executor-opt.workers: unknown field"),
    ],
)
def test_bad_executor_options_are_named(cli, tmp_path, opts, message):
    suite = write_suite(tmp_path / "s.yaml", tiny_suite())
    proc = cli("run", str(suite), "--results-dir", str(tmp_path / "r"), *opts)
    assert proc.returncode == 2, proc.stderr
    assert message in " ".join(proc.stderr.split())
    assert not (tmp_path / "r").exists() or not list((tmp_path / "r").rglob("metrics.json"))


def test_ray_executor_matches_local(cli, tmp_path):
    pytest.importorskip("ray")
    suite = write_suite(tmp_path / "s.yaml", tiny_suite(seeds=(0, 1)))
    local = cli("run", str(suite), "--results-dir", str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr
    bad = cli(
        "run", str(suite), "--results-dir", str(tmp_path / "x"), "--executor", "ray",
        "--executor-opt", "num_cpus=-1",
    )  # fmt: skip
    assert bad.returncode == 2 and "--executor-opt.num_cpus" in bad.stderr
    ray = cli(
        "run", str(suite), "--results-dir", str(tmp_path / "ray"), "--executor", "ray",
        "--executor-opt", "num_cpus=1",
    )  # fmt: skip
    assert ray.returncode == 0, ray.stderr
    assert "building the runs' datasets first" in ray.stderr
    assert [ln.split()[0] for ln in ray.stderr.splitlines() if ln.strip().startswith("done")] == [
        "done",
        "done",
    ]
    ours, theirs = finals(tmp_path / "local"), finals(tmp_path / "ray")
    assert len(ours) == 2 and ours == theirs  # same config + seed: same numbers, any executor


def test_run_help_names_the_ray_extra_literally(cli):
    # rich markup once swallowed "[ray]", telling users to install plain 'ertrl-bench'
    res = cli("run", "--help", timeout=60)
    assert res.returncode == 0, res.stderr
    assert "'ertrl-bench[ray]'" in " ".join(res.stdout.replace("│", " ").split())
