"""The z probe of docs/paper.md ("Probe"), as every run computes it at its end.

Per resample a fresh draw of ``transitions`` per task (train + moderate tasks), the first ``test``
of each task for test, the rest for training; linear regression and RBF-SVR to the task
parameter; test RMSE mean and std over resamples, stored as ``metrics["probe"]``.
"""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch

from ertrl_bench.measures.probe import (
    ProbeConfig,
    draw_probe_indices,
    probe_resample,
)
from ertrl_bench.runner import execute
from ertrl_bench.suite_loader import load_suite
from tests.helpers import TINY_PROBE, tiny_suite, write_suite


def _encodings(rng, noise: float, informative: bool = True, tasks: int = 30, n: int = 60):
    params = np.linspace(0.1, 4.0, tasks)[:, None]
    signal = params if informative else np.zeros_like(params)
    zi = signal[:, None, :] + noise * rng.standard_normal((tasks, n, 3))  # [T, n, L]
    return zi, params


def test_defaults_are_the_papers_protocol():
    cfg = ProbeConfig()
    assert (cfg.transitions, cfg.test, cfg.resamples) == (1000, 200, 5)
    assert cfg.svr_max_train_rows == "all"  # no silent row cap: the SVR fits all 24k rows
    assert ProbeConfig(svr_max_train_rows=None).svr_max_train_rows == "all"  # a suite's null
    with pytest.raises(ValueError, match="at least 5"):
        ProbeConfig(svr_max_train_rows=4)
    assert 30 * (cfg.transitions - cfg.test) == 24_000 and 30 * cfg.test == 6_000
    with pytest.raises(ValueError):
        ProbeConfig(transitions=100, test=100)  # no training rows left


def test_probe_recovers_the_parameter_only_when_z_carries_it():
    rng = np.random.default_rng(0)
    zi, params = _encodings(rng, noise=0.05)
    res, n_tr, n_te = probe_resample(zi, params, 20)
    assert (n_tr, n_te) == (30 * 40, 30 * 20)  # per task: first 20 test, 40 training
    # z = param + N(0, 0.05^2) in 3 dims: the least-squares readout averages the 3 noises
    assert 0.02 < res["linear"] < 0.04
    assert res["svr"] < 0.15
    blind, _, _ = probe_resample(_encodings(rng, 0.05, informative=False)[0], params, 20)
    spread = float(params.std())  # an uninformed probe predicts about the mean: RMSE ~ std
    assert blind["linear"] == pytest.approx(spread, rel=0.1)
    assert blind["svr"] > 0.8 * spread


def test_svr_row_cap_is_an_explicit_option():
    rng = np.random.default_rng(1)
    zi, params = _encodings(rng, noise=0.3)
    full, n_tr, _ = probe_resample(zi, params, 20)
    capped, _, _ = probe_resample(
        zi, params, 20, svr_max_train_rows=60, rng=np.random.default_rng(0)
    )
    assert n_tr == 1200
    assert capped["linear"] == full["linear"]  # the cap only touches the SVR
    assert capped["svr"] != full["svr"] and capped["svr"] > full["svr"]  # fewer rows, worse fit


def test_each_resample_draws_fresh_transitions():
    gen = torch.Generator().manual_seed(0)
    counts = torch.tensor([5000, 5000, 30])
    a = draw_probe_indices(counts, 1000, gen)
    b = draw_probe_indices(counts, 1000, gen)
    assert a.shape == (3, 1000) and not torch.equal(a, b)
    for row in (0, 1):  # enough data: no transition twice within a draw
        assert len(torch.unique(a[row])) == 1000 and int(a[row].max()) < 5000
    assert int(a[2].max()) < 30  # a small task: drawn with replacement, inside its data


def test_a_run_stores_the_probe_and_small_encodings(tmp_path):
    suite = tiny_suite(name="probe")
    (spec,) = load_suite(write_suite(tmp_path / "s.yaml", suite))[1]
    out = execute(spec, tmp_path / "results")
    assert out.status == "done", out.message
    run_dir = tmp_path / "results" / "probe" / spec.run_id()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    probe = metrics["probe"]
    assert set(probe) == {"linear", "svr", "resamples"}  # the schema the report reads
    assert probe["resamples"] == TINY_PROBE["resamples"]
    for model in ("linear", "svr"):
        assert set(probe[model]) == {"rmse_mean", "rmse_std"}
        vals = metrics["probe_protocol"]["values"][model]
        assert len(vals) == TINY_PROBE["resamples"]
        assert probe[model]["rmse_mean"] == pytest.approx(np.mean(vals))
        assert probe[model]["rmse_std"] == pytest.approx(np.std(vals))
        assert probe[model]["rmse_std"] > 0  # fresh draws per resample: the values differ
    per_task_train = TINY_PROBE["transitions"] - TINY_PROBE["test"]
    assert metrics["probe_protocol"]["n_train"] == 30 * per_task_train  # 20 train + 10 moderate
    assert metrics["probe_protocol"]["n_test"] == 30 * TINY_PROBE["test"]
    with np.load(run_dir / "encodings.npz") as enc:
        assert "zi" not in enc.files and "z_offline" in enc.files
    with zipfile.ZipFile(run_dir / "encodings.npz") as z:
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in z.infolist())
