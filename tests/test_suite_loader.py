"""Suite expansion (``ertrl_bench.suite_loader.expand_suite``): every number resolved into the
run's spec, once, so the run id hashes what runs.

A schedule number a suite leaves out takes its family's value (``EnvFamily.schedule_defaults``)
at expansion; nothing is looked up at run time. These tests use tiny Point-Robot suites and
expand them only (no run), except one that starts a run to read its ``spec.json``.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from ertrl_bench.config import RunSpec
from ertrl_bench.envs.point_robot import PointRobot, PointRobotOptions
from ertrl_bench.errors import ConfigError
from ertrl_bench.plugins import hookimpl
from ertrl_bench.store import RunDir
from ertrl_bench.suite_loader import load_suite
from tests.helpers import tiny_suite, write_suite

FAMILY_EVAL = (  # the eval numbers tiny_suite leaves to the family
    "transitions",
    "online_min_transitions",
    "non_prior_min_transitions",
    "non_prior_exploration_transitions",
    "non_prior_random_transitions",
)


class FamilyPlugin:
    """Registers ``tuned-point-robot``: Point-Robot with its own schedule table."""

    def __init__(self, **hparams):
        self.hparams = hparams

    @hookimpl
    def register_envs(self, register):
        values = self.hparams

        class Tuned(PointRobot):
            name = "tuned-point-robot"

            def __init__(self, options=None):
                super().__init__(options)
                self.hparams = dataclasses.replace(self.hparams, **values)

        register("tuned-point-robot", Tuned, PointRobotOptions)


def _expand(tmp_path, name="s", **extra) -> list[RunSpec]:
    return load_suite(write_suite(tmp_path / f"{name}.yaml", tiny_suite(**extra)))[1]


def _tuned(tmp_path, **extra) -> RunSpec:
    suite = tiny_suite(**extra)
    suite["grid"]["envs"] = ["tuned-point-robot"]
    (spec,) = load_suite(write_suite(tmp_path / "tuned.yaml", suite))[1]
    return spec


def _nulls(value, path="") -> list[str]:
    if value is None:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _nulls(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _nulls(v, f"{path}[{i}]")]
    return []


def test_spec_json_has_every_number(tmp_path):
    """The spec.json a run writes holds the family's values: no number left to the run."""
    (spec,) = _expand(tmp_path)
    rd = RunDir(tmp_path / "results", spec)
    rd.start("cpu")  # what `run` writes before training
    written = json.loads((rd.path / "spec.json").read_text())
    assert _nulls(written["train"]) == []
    assert _nulls(written["eval"]) == []
    assert written["eval"]["probe"]["svr_max_train_rows"] == "all"  # the paper's: no row cap
    family = PointRobot()  # horizon 20: budget 3 x 20
    assert written["train"]["latent_dim"] == family.hparams.latent_dim == 8
    assert written["train"]["context_size"] == 8  # the suite's value beats the family's
    assert {k: written["eval"][k] for k in FAMILY_EVAL} == {
        "transitions": 60,
        "online_min_transitions": 40,
        "non_prior_min_transitions": 40,
        "non_prior_exploration_transitions": 20,
        "non_prior_random_transitions": 30,
    }


def test_family_values_follow_the_env_options(tmp_path):
    """Point-Robot's horizon is an env option: the budget and thresholds follow it."""
    suite = tiny_suite()
    suite["grid"]["envs"] = [{"type": "point-robot", "params": {"horizon": 30}}]
    (spec,) = load_suite(write_suite(tmp_path / "h.yaml", suite))[1]
    assert spec.eval.transitions == 90 and spec.eval.online_min_transitions == 60
    assert spec.eval.non_prior_exploration_transitions == 30
    assert spec.eval.non_prior_random_transitions == 45


def test_a_given_budget_halves_into_the_random_phase(tmp_path):
    (spec,) = _expand(tmp_path, eval={"transitions": 100, "probe": {"enabled": False}})
    assert spec.eval.transitions == 100 and spec.eval.non_prior_random_transitions == 50


def test_changing_a_family_default_changes_the_run_id(tmp_path, register_test_plugin):
    from ertrl_bench.plugins import unregister_plugin

    register_test_plugin(FamilyPlugin(latent_dim=5), "tuned")
    a = _tuned(tmp_path)
    unregister_plugin("tuned")
    register_test_plugin(FamilyPlugin(latent_dim=6), "tuned2")
    b = _tuned(tmp_path)
    assert (a.train.latent_dim, b.train.latent_dim) == (5, 6)
    assert a.run_id() != b.run_id()
    unregister_plugin("tuned2")
    register_test_plugin(FamilyPlugin(latent_dim=6, eval_transitions=80), "tuned3")
    c = _tuned(tmp_path)
    assert c.eval.transitions == 80 and c.eval.non_prior_random_transitions == 40
    assert c.run_id() != b.run_id()


def test_a_suite_value_equal_to_the_family_one_is_the_same_run(tmp_path):
    """Writing the family's value out makes no new run: the spec is the resolved numbers."""
    (implicit,) = _expand(tmp_path, name="a")
    (explicit,) = _expand(
        tmp_path,
        name="b",
        train={**tiny_suite()["train"], "latent_dim": 8},
        eval={**tiny_suite()["eval"], "transitions": 60, "non_prior_random_transitions": 30},
    )
    assert implicit.run_id() == explicit.run_id()


@pytest.mark.parametrize("enabled", [False, True])
def test_probe_true_or_false_is_short_for_enabled(tmp_path, enabled):
    """``eval.probe: false`` is ``{enabled: false}``: the same spec, so the same run id."""
    (short,) = _expand(tmp_path, name="a", eval={**tiny_suite()["eval"], "probe": enabled})
    (full,) = _expand(
        tmp_path, name="b", eval={**tiny_suite()["eval"], "probe": {"enabled": enabled}}
    )
    assert short.eval.probe.enabled is enabled
    assert short.model_dump(mode="json") == full.model_dump(mode="json")
    assert short.run_id() == full.run_id()


def test_a_family_value_that_breaks_a_rule_is_reported_with_the_env(tmp_path, register_test_plugin):
    """The suite sets online_min_transitions, the family's budget is below it: one error that
    names the field, the env and where the other value came from."""
    register_test_plugin(FamilyPlugin(eval_transitions=30), "tuned")
    with pytest.raises(ConfigError) as exc:
        _tuned(tmp_path, eval={**tiny_suite()["eval"], "online_min_transitions": 35})
    (line,) = exc.value.problems
    assert line.startswith("eval: online_min_transitions (35) must be less than transitions (30)")
    assert "env tuned-point-robot" in line and "family's" in line


def test_runs_entry_errors_name_the_run(tmp_path, register_test_plugin):
    register_test_plugin(FamilyPlugin(steps_per_iteration=10**6), "tuned")
    suite = tiny_suite()
    del suite["grid"]
    train = {k: v for k, v in suite["train"].items() if k != "steps_per_iteration"}
    suite["train"] = {**train, "iterations": 1000}
    suite["runs"] = [{"env": "tuned-point-robot", "method": "focal"}]
    with pytest.raises(ConfigError) as exc:
        load_suite(write_suite(tmp_path / "r.yaml", suite))
    (line,) = exc.value.problems
    assert line.startswith("runs[0].train: iterations x steps_per_iteration = 1,000,000,000")
    assert "env tuned-point-robot" in line


def test_grid_runs_go_seed_by_seed(tmp_path):
    """Every method's seed 0 comes before any seed 1: a study stopped half-way has the same
    seeds for every method."""
    specs = _expand(tmp_path, methods=("focal", "csro"), seeds=(0, 1))
    assert [(s.method.name, s.seed) for s in specs] == [
        ("focal", 0),
        ("csro", 0),
        ("focal", 1),
        ("csro", 1),
    ]
