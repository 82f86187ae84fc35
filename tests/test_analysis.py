"""Tests for ertrl_bench.analysis: stats, Wasserstein diversity, z-probe, plots."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from scipy.linalg import sqrtm
from scipy.optimize import linear_sum_assignment

from ertrl_bench.analysis import plots
from ertrl_bench.measures.probe import probe_heldout_tasks, probe_rmse
from ertrl_bench.measures.stats import (
    Interval,
    interval_estimates,
    iqm,
    mean_ci,
    mean_std,
    stratified_bootstrap,
    stratified_bootstrap_ci,
    welch_ttest,
)
from ertrl_bench.measures.wasserstein import (
    average_pairwise_distance,
    pairwise_distance_matrix,
    policy_distance,
    w2_between_samples,
)

# ----------------------------------------------------------------------------- stats


def test_iqm_by_hand():
    # 8 pooled scores: drop the lowest 2 and highest 2 (25 % each), mean of 3, 4, 5, 6.
    assert iqm(np.arange(1, 9)) == pytest.approx(4.5)
    # Pooled over runs x tasks, order irrelevant; an outlier seed does not move it.
    scores = np.array([[8.0, 1.0], [3.0, 6.0], [5.0, 2.0], [4.0, 1000.0]])
    assert iqm(scores) == pytest.approx((3 + 4 + 5 + 6) / 4)
    # 10 scores: trim floor(2.5) = 2 per end.
    assert iqm(np.array([0, 0, 1, 2, 3, 4, 5, 6, 100, 100.0])) == pytest.approx(3.5)


def test_mean_std_is_over_per_seed_task_means():
    scores = np.array([[1.0, 3.0], [5.0, 7.0]])  # per-seed means 2 and 6
    assert mean_std(scores) == pytest.approx((4.0, np.sqrt(8.0)))  # sample std by default
    assert mean_std(scores, ddof=0) == pytest.approx((4.0, 2.0))  # the paper's tables


def test_bootstrap_is_stratified_by_task():
    # Task 0 always scores 0, task 1 always 10 across runs: resampling runs within a task can
    # never mix them, so every bootstrap mean is exactly 5. An unstratified bootstrap over the
    # 8 pooled cells would not be constant.
    scores = np.column_stack([np.zeros(4), np.full(4, 10.0)])
    boot = stratified_bootstrap(scores, "mean", reps=500, random_state=1)
    assert np.all(boot == 5.0)
    # Runs do vary within a task -> the bootstrap spreads, and each sample is a pooled statistic
    # of real values.
    rng = np.random.default_rng(0)
    noisy = rng.normal(size=(5, 3))
    boot = stratified_bootstrap(noisy, "iqm", reps=500, random_state=1)
    assert boot.std() > 0
    assert noisy.min() <= boot.min() and boot.max() <= noisy.max()


def test_ci_contains_point_and_is_deterministic():
    rng = np.random.default_rng(3)
    scores = rng.normal(50, 10, size=(5, 20))
    a = stratified_bootstrap_ci(scores, reps=2000, random_state=7)
    b = stratified_bootstrap_ci(scores, reps=2000, random_state=7)
    c = stratified_bootstrap_ci(scores, reps=2000, random_state=8)
    assert isinstance(a, Interval)
    assert a == b
    assert a != c
    assert a.low < a.point < a.high
    assert a.point in a
    assert a.point == pytest.approx(iqm(scores))


def test_ci_narrows_with_more_seeds():
    rng = np.random.default_rng(0)
    few = stratified_bootstrap_ci(rng.normal(size=(3, 10)), random_state=0)
    many = stratified_bootstrap_ci(rng.normal(size=(60, 10)), random_state=0)
    assert many.width < few.width / 2


def test_single_run_has_degenerate_ci_and_interval_estimates_matches():
    one = stratified_bootstrap_ci(np.array([[1.0, 2.0, 3.0, 4.0]]), reps=100)
    assert one.low == one.high == one.point == pytest.approx(2.5)
    rng = np.random.default_rng(1)
    d = {"a": rng.normal(size=(4, 6)), "b": rng.normal(1, 1, size=(4, 6))}
    est = interval_estimates(d, "mean", reps=300, random_state=2)
    assert est["a"] == stratified_bootstrap_ci(d["a"], "mean", reps=300, random_state=2)
    assert est["b"].point == pytest.approx(d["b"].mean())
    with pytest.raises(ValueError):
        stratified_bootstrap_ci(d["a"], "median")


# ----------------------------------------------------------------------------- wasserstein


def _gaussian_w2(m1, s1, m2, s2) -> float:
    r2 = np.real(sqrtm(s2))
    bures = np.trace(s1 + s2 - 2 * np.real(sqrtm(r2 @ s1 @ r2)))
    return float(np.sqrt(np.sum((m1 - m2) ** 2) + bures))


M1, S1 = np.array([0.0, 0.0]), np.diag([1.0, 0.25])
M2, S2 = np.array([3.0, 1.0]), np.array([[2.0, 0.5], [0.5, 1.0]])


def test_identical_samples_have_zero_distance():
    x = np.random.default_rng(0).normal(size=(200, 3))
    assert w2_between_samples(x, x) == pytest.approx(0.0, abs=1e-9)
    assert w2_between_samples(x, x[::-1]) == pytest.approx(0.0, abs=1e-9)  # order-free


def test_two_gaussians_match_closed_form():
    """Independent samples, n = 1000: tolerance 0.15 (~5 %) covers the sampling error."""
    expected = _gaussian_w2(M1, S1, M2, S2)
    rng = np.random.default_rng(0)
    x = rng.multivariate_normal(M1, S1, size=1000)
    y = rng.multivariate_normal(M2, S2, size=1000)
    assert w2_between_samples(x, y) == pytest.approx(expected, abs=0.15)


def test_gaussian_optimal_map_is_recovered_exactly():
    """y = T(x) with T the Gaussian OT map (gradient of a convex function) is optimal for the
    empirical measures too, so emd must return exactly sqrt(mean |x - T x|^2), which itself is the
    closed form up to Monte-Carlo error (1 %)."""
    s1h = np.real(sqrtm(S1))
    s1h_inv = np.linalg.inv(s1h)
    a = s1h_inv @ np.real(sqrtm(s1h @ S2 @ s1h)) @ s1h_inv
    x = np.random.default_rng(1).multivariate_normal(M1, S1, size=800)
    y = M2 + (x - M1) @ a.T
    got = w2_between_samples(x, y)
    assert got == pytest.approx(np.sqrt(np.mean(np.sum((x - y) ** 2, axis=1))), rel=1e-6)
    assert got == pytest.approx(_gaussian_w2(M1, S1, M2, S2), rel=0.01)


def test_w2_is_symmetric_and_matches_linear_sum_assignment():
    rng = np.random.default_rng(2)
    for n, d in [(7, 1), (20, 2), (40, 3)]:
        x, y = rng.normal(size=(n, d)), rng.normal(1.0, 2.0, size=(n, d))
        cost = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
        rows, cols = linear_sum_assignment(cost)
        expected = np.sqrt(cost[rows, cols].mean())
        assert w2_between_samples(x, y) == pytest.approx(expected, rel=1e-9)
        assert w2_between_samples(y, x) == pytest.approx(expected, rel=1e-9)


def test_unequal_sizes_and_sliced_branch():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(30, 2))
    # Every point duplicated: same empirical distribution, different size.
    assert w2_between_samples(x, np.repeat(x, 2, axis=0)) == pytest.approx(0.0, abs=1e-9)
    # Above exact_max the sliced distance is used: for a pure translation by delta in d dims it
    # is |delta| / sqrt(d) (not |delta|), as documented.
    big = rng.normal(size=(300, 4))
    delta = np.array([2.0, 0.0, 0.0, 0.0])
    exact = w2_between_samples(big, big + delta)
    sliced = w2_between_samples(big, big + delta, exact_max=100, n_projections=2000)
    assert exact == pytest.approx(2.0, rel=1e-6)
    assert sliced == pytest.approx(2.0 / np.sqrt(4), rel=0.1)
    with pytest.raises(ValueError):
        w2_between_samples(x, rng.normal(size=(5, 3)))


def test_policy_distance_and_family_average():
    rng = np.random.default_rng(5)
    base = rng.normal(size=(4, 25, 2))  # S=4 states, K=25 actions, d=2
    shift = np.array([1.0, 0.0])
    # Task t's policy is the base policy shifted by t * shift at every state.
    acts = np.stack([base + t * shift for t in range(3)])  # [T=3, S, K, d]
    assert policy_distance(acts[0], acts[0]) == pytest.approx(0.0, abs=1e-9)
    assert policy_distance(acts[0], acts[2]) == pytest.approx(2.0, rel=1e-6)
    # A state-dependent difference: the mean over states is taken.
    b = base.copy()
    b[0] += np.array([4.0, 0.0])
    assert policy_distance(base, b) == pytest.approx(4.0 / 4, rel=1e-6)
    mat = pairwise_distance_matrix(acts)
    np.testing.assert_allclose(mat, mat.T)
    np.testing.assert_allclose(np.diag(mat), 0.0)
    # Pairs (0,1), (0,2), (1,2) are 1, 2, 1 apart.
    assert average_pairwise_distance(acts) == pytest.approx(4.0 / 3, rel=1e-6)
    # 1-D actions may come without the trailing axis.
    assert policy_distance(base[..., 0], base[..., 0] + 0.5) == pytest.approx(0.5)


# ----------------------------------------------------------------------------- probe


def _encodings(n_tasks=20, per_task=40, encoder="identity"):
    param = np.linspace(0.1, 4.0, n_tasks)
    y = np.repeat(param, per_task)
    if encoder == "identity":
        z = np.column_stack([y, np.zeros_like(y)])
    else:  # constant encoder: carries no task information
        z = np.ones((len(y), 3))
    return z, y


def test_probe_identity_encoder_has_near_zero_rmse():
    z, y = _encodings(encoder="identity")
    res = probe_rmse(z, y, n_resamples=5, seed=0)
    assert res["linear"].mean < 1e-8
    # SVR's epsilon-insensitive loss (0.1) bounds its accuracy; still far below std(y) ~ 1.1.
    assert res["svr"].mean < 0.12
    assert len(res["svr"].values) == 5
    assert res["linear"].n_test == round(0.2 * len(y))


def test_probe_constant_encoder_has_rmse_near_param_std():
    z, y = _encodings(encoder="constant")
    res = probe_rmse(z, y, seed=0)
    for model in ("linear", "svr"):
        assert res[model].mean == pytest.approx(y.std(), rel=0.15)
    assert res["linear"].std > 0  # resamples differ


def test_probe_is_deterministic_and_handles_multi_dim_targets():
    rng = np.random.default_rng(0)
    angle = rng.uniform(0, np.pi, size=300)
    y = np.column_stack([np.cos(angle), np.sin(angle)])
    z = np.column_stack([angle, rng.normal(size=300)])
    a = probe_rmse(z, y, seed=3)
    b = probe_rmse(z, y, seed=3)
    assert a == b
    # Non-linear target: the RBF-SVR beats the linear probe.
    assert a["svr"].mean < a["linear"].mean
    sub = probe_rmse(z, y, seed=3, max_samples=100, models=("linear",))
    assert sub["linear"].n_train + sub["linear"].n_test == 100


def test_probe_heldout_tasks_extrapolation():
    z_tr, y_tr = _encodings(encoder="identity")
    z_te = np.column_stack([np.full(10, 5.0), np.zeros(10)])
    res = probe_heldout_tasks(z_tr, y_tr, z_te, np.full(10, 5.0))
    assert res["linear"].mean < 1e-8  # a linear readout extrapolates a linear code
    assert res["svr"].mean > 0.3  # the RBF kernel cannot reach outside the training range
    assert res["linear"].std == 0.0 and res["linear"].n_test == 10


# ----------------------------------------------------------------------------- plots


def _png_ok(path):
    assert path.is_file() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_curve_band_mean_t_interval_and_iqm_bootstrap():
    values = np.array([[0.0, 10.0], [1.0, 20.0], [2.0, 30.0], [100.0, np.nan]])
    center, low, high = plots.curve_band(values, aggregate="iqm", reps=200)
    assert center[0] == pytest.approx(iqm(values[:, 0]))
    assert center[1] == pytest.approx(iqm([10.0, 20.0, 30.0]))  # NaN dropped
    assert np.all(low <= center) and np.all(center <= high)
    # Default: mean over seeds with scipy's t interval.
    center, low, high = plots.curve_band(values)
    ref = sps.t.interval(0.95, 2, loc=20.0, scale=sps.sem([10.0, 20.0, 30.0]))
    assert center[1] == 20.0 and (low[1], high[1]) == pytest.approx(ref)


def test_mean_ci_matches_scipy_and_degenerate_cases():
    vals = [1.0, 4.0, 2.5, 7.0, np.nan]
    iv = mean_ci(vals, 0.9)
    ref = sps.t.interval(0.9, 3, loc=np.mean(vals[:4]), scale=sps.sem(vals[:4]))
    assert iv.point == pytest.approx(3.625) and (iv.low, iv.high) == pytest.approx(ref)
    assert mean_ci([5.0]) == Interval(5.0, 5.0, 5.0)
    assert np.isnan(mean_ci([np.nan]).point)


def test_welch_ttest_is_scipys_unequal_variance_test():
    a, b = [10.0, 12.0, 11.5, 13.0, 9.0], [8.0, 8.5, 7.0]
    w = welch_ttest(a, b)
    ref = sps.ttest_ind(a, b, equal_var=False)
    assert (w.t, w.p) == pytest.approx((ref.statistic, ref.pvalue))
    # Welch differs from Student's pooled test when variances and sizes differ.
    assert w.p != pytest.approx(sps.ttest_ind(a, b).pvalue)
    assert (w.n_a, w.n_b, w.diff) == (5, 3, pytest.approx(np.mean(a) - np.mean(b)))
    one = welch_ttest([1.0], [2.0, 3.0])  # a single seed: no test, difference still given
    assert np.isnan(one.p) and one.diff == pytest.approx(-1.5)
    flat = welch_ttest([1.0, 1.0], [1.0, 1.0])  # no variance anywhere: undefined, not an error
    assert np.isnan(flat.t) and np.isnan(flat.p)


def test_plots_write_pngs(tmp_path):
    rng = np.random.default_rng(0)
    steps = np.arange(0, 1000, 100)
    curves = {
        "ertrl": (steps, np.cumsum(rng.uniform(0, 5, size=(3, 10)), axis=1)),
        "focal": (steps, np.cumsum(rng.uniform(0, 4, size=(3, 10)), axis=1)),
    }
    fig = plots.plot_learning_curves(curves, title="demo", path=tmp_path / "curves.png")
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [
        "ertrl (n=3)",
        "focal (n=3)",
    ]
    _png_ok(tmp_path / "curves.png")

    task = np.repeat(np.arange(5), 8).astype(float)
    z = np.column_stack([task, -task, rng.normal(size=40)])
    source = np.tile(["offline", "online"], 20)
    fig = plots.plot_z_map(z, task, source, path=tmp_path / "z_pca.png")
    _png_ok(tmp_path / "z_pca.png")
    # One marker style per context source, same colour scale for both.
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["offline", "online"]
    xy = plots.embed_2d(z, "tsne", max_iter=250)
    assert xy.shape == (40, 2) and np.isfinite(xy).all()

    fig = plots.plot_gain_vs_diversity([0.1, 0.3, 0.5], [1.0, 2.0, 3.5], ["a", "b", "c"])
    assert "Pearson r = 0.99" in fig.axes[0].get_title()
    fig = plots.plot_gain_vs_diversity([0.1, 0.3], [1.0, 2.0], path=tmp_path / "g.png")
    assert "needs >= 3" in fig.axes[0].get_title()
    _png_ok(tmp_path / "g.png")
