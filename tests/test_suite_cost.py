"""benchmarks/suite_cost.py: a long suite's per-run cost from the phase timings of short runs
(docs/cost.md). Real short runs on tiny Point-Robot data; the estimate must be the documented
sum of what they measured."""

import pytest

from benchmarks.suite_cost import estimate, per_run_seconds, phase_costs
from ertrl_bench.runner import execute
from ertrl_bench.suite_loader import load_suite
from tests.helpers import TINY_PROBE, tiny_suite, write_suite


@pytest.fixture(scope="module")
def cost_results(tmp_path_factory):
    """Short runs as benchmarks/cost-small.yaml makes them: a grid without the probe, one
    evaluation each, and one run with the probe."""
    root = tmp_path_factory.mktemp("cost")
    suite = tiny_suite("cost", methods=("focal", "csro"))
    suite["train"].update(iterations=1, steps_per_iteration=6, eval_every=1)
    suite["eval"].update(splits=["moderate"], probe={"enabled": False})
    suite["runs"] = [
        {"env": "point-robot", "method": "focal",
         "eval": {"splits": ["moderate"], "probe": {**TINY_PROBE, "enabled": True}}},
    ]  # fmt: skip
    for spec in load_suite(write_suite(root / "cost.yaml", suite))[1]:
        assert execute(spec, root / "results").status == "done"
    return root / "results" / "cost"


def _long_suite(path, probe: bool):
    long = tiny_suite("long", methods=("focal", "csro"), seeds=(0, 1))
    long["train"].update(iterations=5, steps_per_iteration=40, eval_every=2)  # evals: 2, 4, 5
    long["eval"].update(splits=["moderate"])
    if not probe:
        long["eval"]["probe"] = {"enabled": False}
    return write_suite(path, long)


@pytest.mark.parametrize("probe", [True, False])
def test_estimate_is_the_sum_of_measured_phases(cost_results, tmp_path, probe):
    step, evaluation, probe_s, fixed = phase_costs(cost_results)
    assert set(step) == {("point-robot", "focal"), ("point-robot", "csro")}
    assert set(evaluation) == {("point-robot", ("moderate",))}
    assert probe_s > 0 and all(s > 0 for s in step.values())

    specs, per_run = per_run_seconds(_long_suite(tmp_path / "long.yaml", probe), cost_results)
    assert len(specs) == 4
    for method in ("focal", "csro"):
        expected = (
            fixed["point-robot"]
            + 200 * step["point-robot", method]
            + 3 * evaluation["point-robot", ("moderate",)]
            + (probe_s if probe else 0.0)
        )
        assert per_run["point-robot", method] == pytest.approx(expected)


def test_estimate_table_lists_every_method(cost_results, tmp_path):
    table = estimate(_long_suite(tmp_path / "long.yaml", True), cost_results)
    assert "| env | focal | csro |" in table and "| point-robot |" in table
    assert "4 runs" in table and "CPU-hours" in table


def test_estimate_names_what_was_not_measured(cost_results, tmp_path):
    other = tiny_suite("other")
    other["eval"].update(splits=["train"])
    with pytest.raises(SystemExit, match=r"no timing for focal on point-robot with splits"):
        estimate(write_suite(tmp_path / "other.yaml", other), cost_results)


def test_unreadable_run_is_named(cost_results, tmp_path):
    import shutil

    broken = tmp_path / "results"
    shutil.copytree(cost_results, broken)
    run = next(broken.glob("*/metrics.json")).parent
    (run / "spec.json").write_text("{not json")
    with pytest.raises(SystemExit, match=rf"{run.name}: unreadable spec.json / metrics.json"):
        phase_costs(broken)
