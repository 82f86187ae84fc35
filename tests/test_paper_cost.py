"""suites/paper.yaml is the paper's whole grid, and benchmarks/paper_cost.py's GPU-hour model
adds up and cites an existing file for every input."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.paper_cost import PROBE_S, Inputs, estimate, main
from ertrl_bench.suite_loader import load_suite

ROOT = Path(__file__).parents[1]
FAMILIES = {
    "cheetah-vel",
    "ant-dir",
    "ant-goal",
    "humanoid-dir",
    "hopper-mass",
    "hopper-friction",
    "walker-mass",
    "walker-friction",
}
METHODS = {"focal", "csro", "ertrl", "unicorn", "offline_pearl"}


def test_paper_suite_is_the_whole_grid_at_paper_tier():
    suite, specs = load_suite("paper")
    assert suite.tier == "paper" and len(specs) == 200
    cells = {(s.env.type, s.method.name, s.seed) for s in specs}
    assert cells == {(f, m, seed) for f in FAMILIES for m in METHODS for seed in range(5)}
    assert len({s.run_id() for s in specs}) == 200
    assert all(s.eval.probe.enabled for s in specs)
    by_family = {s.env.type: s.train for s in specs}
    assert by_family["cheetah-vel"].steps_per_iteration == 1000  # the paper's, docs/paper.md
    assert {t.iterations for t in by_family.values()} == {100}


@pytest.fixture(scope="module")
def inputs():
    return Inputs([])


def test_every_input_cites_an_existing_file(inputs):
    assert inputs.sources
    for figure, _value, source in inputs.sources:
        for path in source.split(" (")[0].split(", "):
            assert (ROOT / path).is_file(), (figure, path)
    assert inputs.device == "NVIDIA H200"


def test_the_model_adds_up(inputs):
    rows = {r["family"]: r for r in estimate(inputs)}
    assert set(rows) == FAMILIES and all(r["runs"] == 25 for r in rows.values())
    for r in rows.values():
        assert r["probe_h"] == 0  # overlapped: beside the next run's training
        assert r["runs_h"] == pytest.approx(r["train_h"] + r["eval_h"])
        assert r["total_h"] == pytest.approx(r["data_h"] + r["runs_h"])
    # Cheetah-Vel's train time: 5 seeds x 100k steps of each method's graphed step
    cheetah = sum(5 * 100_000 * inputs.step_ms("cheetah-vel", m)[0] / 3.6e6 for m in METHODS)
    assert rows["cheetah-vel"]["train_h"] == pytest.approx(cheetah)
    assert inputs.step_ms("cheetah-vel", "focal") == (pytest.approx(5.01, abs=0.01), False)
    assert inputs.step_ms("cheetah-vel", "csro")[1] is True  # no GPU figure yet: an estimate
    inline = {r["family"]: r for r in estimate(inputs, overlap=False)}
    assert sum(r["probe_h"] for r in inline.values()) == pytest.approx(200 * PROBE_S / 3600)
    tf32 = {r["family"]: r for r in estimate(inputs, precision="tf32")}
    assert tf32["ant-dir"]["data_h"] < rows["ant-dir"]["data_h"]


def test_the_command_prints_inputs_and_totals(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "all 200 runs" in out and "call3-gpu_figures.json" in out and "suite_cost.txt" in out


def test_a_gpu_sessions_figures_replace_the_estimates(tmp_path, inputs):
    """benchmarks/gpu_session.sh's gpu_figures.json: the graphed SAC update and the GPU host's
    evaluation enter the model (a made-up file: this checks the arithmetic, not a figure)."""
    import json

    figures = tmp_path / "gpu_figures.json"
    figures.write_text(
        json.dumps(
            {
                "info": {"device": "a GPU"},
                "sac_graph": {"tasks": 40, "update_ms": {"graph/bf16": [4.0, 6.0]}},
                "eval": {"evaluation_s": 30.0, "runs_per_task": 2},
            }
        )
    )
    newer = Inputs([figures])
    assert newer.device == "a GPU" and newer.sac["graph/bf16"]["update"] == 5.0
    assert any(str(figures) in source for _, _, source in newer.sources)
    rows = {r["family"]: r for r in estimate(newer, precision="graph/bf16")}
    assert rows["cheetah-vel"]["eval_h"] == pytest.approx(25 * 100 * 30.0 / 3600)
    old = {r["family"]: r for r in estimate(inputs, precision="tf32")}
    assert rows["ant-dir"]["data_h"] < old["ant-dir"]["data_h"]
