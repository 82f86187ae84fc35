"""benchmarks/gpu_session.sh, the one-call collection of #27's GPU figures, checked on the CPU
in its dry-run mode (toy sizes: a check of the script, not a measurement)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import tiny_suite, write_suite

ROOT = Path(__file__).parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_session.sh"


def test_the_script_parses_and_names_existing_stages():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    text = SCRIPT.read_text()
    figures = (ROOT / "benchmarks" / "gpu_figures.py").read_text()
    stages = text.split("GPU_FIGURES_STAGES=")[1].split()[0].split(",")
    assert stages == ["sac_graph", "kseed", "graph_more", "eval"]
    for stage in stages:
        assert f'("{stage}", stage_{stage}' in figures
    for test in ("tests/test_sac_update.py", "tests/test_cuda_graph.py"):
        assert (ROOT / test).is_file() and test in text


@pytest.mark.slow  # ~3 min on 2 busy cores: the SAC variants, one evaluation, a tiny suite
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_dry_run_writes_every_output(tmp_path):
    suite = write_suite(tmp_path / "tiny.yaml", tiny_suite(name="tiny", seeds=[0, 1]))
    out = tmp_path / "out"
    env = {
        **os.environ,
        "OUT": str(out),
        "GPU_SESSION_DRY": "1",
        "SMOKE_SUITE": str(suite),
        "ERTRL_BENCH_DATA": str(tmp_path / "data"),
    }
    subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, env=env, check=True, timeout=1200)
    figures = json.loads((out / "gpu_figures.json").read_text())
    assert set(figures["sac_graph"]["update_ms"]) == {
        f"{v}/{p}" for v in ("eager", "graph") for p in ("float32", "tf32", "bf16")
    }
    assert "skipped" in figures["kseed"] or "focal/k5_ms" in figures["kseed"]
    assert figures["eval"]["evaluation_s"] > 0
    smoke = json.loads((out / "smoke-timing.json").read_text())
    assert smoke["rc"] == 0 and len(smoke["runs"]) == 2
    assert all(r["timing_s"]["probe"] > 0 for r in smoke["runs"])
    assert "rc=0" in (out / "pytest-cuda.log").read_text()
    assert (out / "session.log").read_text().strip().endswith("done")
