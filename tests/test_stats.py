"""The report's statistics: agent bootstrap coverage, effect sizes, the authors' test, power."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from ertrl_bench.measures.stats import (
    agent_bootstrap,
    agent_bootstrap_ci,
    authors_ttest,
    difference_ci,
    difference_trend,
    iqm,
    kendall_tau,
    min_detectable_effect,
    probability_of_improvement,
    probability_of_improvement_ci,
    seeds_for_effect,
    stratified_bootstrap_ci,
)


def _synthetic(rng, runs: int, tasks: int = 10):
    """Scores with a per-seed effect shared by every task of that seed's agent (sd 10) plus
    per-task noise (sd 3); the true mean is the mean of the task means."""
    mu = np.linspace(0.0, 50.0, tasks)
    seed_effect = rng.normal(0.0, 10.0, (runs, 1))
    return mu + seed_effect + rng.normal(0.0, 3.0, (runs, tasks)), float(mu.mean())


def _coverage(runs: int, datasets: int, method) -> float:
    rng = np.random.default_rng(1)
    hits = 0
    for i in range(datasets):
        scores, truth = _synthetic(rng, runs)
        hits += truth in method(scores, "mean", reps=1000, random_state=i)
    return hits / datasets


def test_agent_bootstrap_covers_and_per_task_resampling_does_not():
    # 1000 synthetic studies of 20 seeds: nominal 95% intervals must cover the truth 93-97% of
    # the time (binomial s.e. 0.7 points). Resampling runs independently per task (rliable's
    # stratified bootstrap) ignores the seed effect shared across tasks and under-covers (~48%;
    # 300 studies suffice to show it).
    agent = _coverage(20, 1000, agent_bootstrap_ci)
    per_task = _coverage(20, 300, stratified_bootstrap_ci)
    assert 0.93 <= agent <= 0.97, agent
    assert per_task < 0.6, per_task


def test_agent_bootstrap_coverage_with_few_seeds():
    # The limits the report states: no bootstrap reaches past the most extreme of 3 seeds
    # (~76%); with 5 the expanded percentiles come close to nominal (~93%).
    assert 0.70 < _coverage(3, 400, agent_bootstrap_ci) < 0.85
    assert 0.90 < _coverage(5, 400, agent_bootstrap_ci) < 0.96


def test_agent_bootstrap_keeps_runs_whole_and_stratifies_families():
    # Each run scores the same on every task: a sample mixing runs across tasks would produce
    # a row that is not constant; resampling whole rows never does.
    a = np.array([[0.0, 0.0, 0.0], [10.0, 10.0, 10.0]])
    boot = agent_bootstrap(a, lambda s: s.std(axis=-1).max(axis=-1))
    assert np.all(boot == 0.0)
    # Two families: every sample keeps both (family b's constant 100 is always in the pool).
    b = np.full((3, 2), 100.0)
    means = agent_bootstrap({"a": a, "b": b}, "mean", reps=500)
    assert means.min() >= (0 * 6 + 100 * 6) / 12 and means.max() <= (10 * 6 + 100 * 6) / 12
    assert agent_bootstrap_ci({"a": a, "b": b}, "mean").point == pytest.approx(
        (a.sum() + b.sum()) / 12
    )
    assert agent_bootstrap_ci(a).point == pytest.approx(iqm(a))
    # Deterministic for a fixed random_state.
    assert agent_bootstrap_ci(a, "mean", random_state=3) == agent_bootstrap_ci(
        a, "mean", random_state=3
    )


def test_difference_ci_is_centred_on_the_difference_and_covers_zero_when_equal():
    rng = np.random.default_rng(0)
    x, _ = _synthetic(rng, 10)
    y, _ = _synthetic(rng, 10)
    iv = difference_ci(x, y)
    assert iv.point == pytest.approx(x.mean() - y.mean())
    assert 0.0 in iv
    shifted = difference_ci(x + 100.0, y)
    assert shifted.low > 0


def _trend_pairs(rng, runs: int, slope: float) -> dict:
    """Both methods' synthetic scores at 5, 10, 20, 40 values; x's mean is ``slope`` points
    higher per doubling (0 at 5). Every value's agents are their own draws."""
    pairs = {}
    for k, v in enumerate((5, 10, 20, 40)):
        x, _ = _synthetic(rng, runs)
        y, _ = _synthetic(rng, runs)
        pairs[v] = (x + slope * k, y)
    return pairs


def test_difference_trend_is_the_least_squares_slope_per_doubling():
    rng = np.random.default_rng(0)
    pairs = _trend_pairs(rng, 5, 3.0)
    t = np.log2([5, 10, 20, 40])
    gains = [pairs[v][0].mean() - pairs[v][1].mean() for v in (5, 10, 20, 40)]
    trend = difference_trend(pairs, reps=500)
    assert trend.slope == pytest.approx(np.polyfit(t, gains, 1)[0])
    assert trend.low < trend.slope < trend.high and trend.values == 4
    assert 0 < trend.p <= 1 and trend.mde_80 > 0
    xs = [pairs[v][0].mean(axis=1) for v in (5, 10, 20, 40)]
    ys = [pairs[v][1].mean(axis=1) for v in (5, 10, 20, 40)]
    c = (t - t.mean()) / ((t - t.mean()) ** 2).sum()
    se = np.sqrt(
        sum(ci**2 * (x.var(ddof=1) + y.var(ddof=1)) / 5 for ci, x, y in zip(c, xs, ys, strict=True))
    )
    assert trend.p == pytest.approx(2 * sps.t.sf(abs(trend.slope) / se, trend_df(c, xs, ys)))
    with pytest.raises(ValueError, match="two or more axis values"):
        difference_trend({5: pairs[5]})


def trend_df(c, xs, ys) -> float:
    """Welch-Satterthwaite degrees of freedom of the weighted sum, by hand."""
    parts = [
        ci**2 * a.var(ddof=1) / a.size for ci, x, y in zip(c, xs, ys, strict=True) for a in (x, y)
    ]
    return sum(parts) ** 2 / sum(q**2 / 4 for q in parts)


def test_difference_trend_false_positives_and_power():
    """Synthetic studies (5 seeds a method and value, the seed sd 10 of ``_synthetic``): with
    no trend p < 0.05 in about 5% of them (4.3% of 2000 when written); with a true slope equal
    to the median reported MDE, in about 80%; the CI covers the true slope."""
    rng = np.random.default_rng(3)
    null = [
        difference_trend(_trend_pairs(rng, 5, 0.0), reps=200, random_state=i) for i in range(300)
    ]
    mde = float(np.median([t.mde_80 for t in null]))
    alt = [
        difference_trend(_trend_pairs(rng, 5, mde), reps=200, random_state=i) for i in range(300)
    ]
    assert np.mean([t.p < 0.05 for t in null]) <= 0.09
    assert 0.65 <= np.mean([t.p < 0.05 for t in alt]) <= 0.92
    assert np.mean([t.low <= 0 <= t.high for t in null]) >= 0.9
    assert np.mean([t.low <= mde <= t.high for t in alt]) >= 0.9


def test_probability_of_improvement_by_hand():
    # Task 1: X runs (1, 3) vs Y runs (2, 2): pairs 1>2 no, 1>2 no, 3>2 yes, 3>2 yes: 0.5.
    # Task 2: X (5, 5) vs Y (5, 1): 5=5 half, 5>1, 5=5 half, 5>1: (0.5 + 1 + 0.5 + 1) / 4 = 0.75.
    x = np.array([[1.0, 5.0], [3.0, 5.0]])
    y = np.array([[2.0, 5.0], [2.0, 1.0]])
    assert probability_of_improvement(x, y) == pytest.approx((0.5 + 0.75) / 2)
    # Mann-Whitney U / (n m) per task, as rliable defines it.
    u = sps.mannwhitneyu(x[:, 1], y[:, 1]).statistic
    assert u / 4 == pytest.approx(0.75)
    assert probability_of_improvement(x, y) + probability_of_improvement(y, x) == pytest.approx(1)
    iv = probability_of_improvement_ci(x + 100, y)
    assert iv.point == 1.0 and iv.low == 1.0
    with pytest.raises(ValueError, match="same families and tasks"):
        probability_of_improvement(x, y[:, :1])


def test_authors_ttest_is_their_formula():
    a, b = np.array([70.0, 71.5, 69.0, 70.2, 71.3]), np.array([66.0, 68.0, 63.5, 70.1, 66.9])
    t = (a.mean() - b.mean()) / np.sqrt(a.var() / 5 + b.var() / 5)  # ddof-0 stds
    res = authors_ttest(a, b)
    assert res.t == pytest.approx(t) and res.df == 4
    assert res.p == pytest.approx(sps.t.sf(t, 4))
    welch = sps.ttest_ind(a, b, equal_var=False).pvalue
    assert res.p < welch  # one-sided and ddof 0: smaller than Welch's two-sided p
    assert np.isnan(authors_ttest([1.0], [2.0, 3.0]).p)


def test_min_detectable_effect_has_80_percent_power():
    a = np.array([-1.0, -0.5, 0.0, 0.5, 1.0]) * 1.2649  # sample sd 1
    d = min_detectable_effect(a, a)
    assert d == pytest.approx(2.0, abs=0.1)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20000, 5)), rng.normal(size=(20000, 5)) + d
    power = (sps.ttest_ind(x, y, axis=1, equal_var=False).pvalue < 0.05).mean()
    assert power == pytest.approx(0.8, abs=0.04)
    assert min_detectable_effect(2 * a, 2 * a) == pytest.approx(2 * d)  # scales with spread
    assert np.isnan(min_detectable_effect([1.0], a))


def _with_sd(n: int, sd: float, shift: float = 0.0) -> np.ndarray:
    """``n`` per-seed scores whose sample s.d. (ddof 1) is exactly ``sd``."""
    z = np.linspace(-1.0, 1.0, n)
    return shift + z / z.std(ddof=1) * sd


@pytest.mark.parametrize(("sd_a", "sd_b", "effect"), [(4.5, 4.5, 10.0), (6.1, 3.1, 10.0),
                                                      (18.4, 0.7, 7.0), (1.0, 0.0, 2.5)])  # fmt: skip
def test_seeds_for_effect_is_the_smallest_n_min_detectable_effect_accepts(sd_a, sd_b, effect):
    n = seeds_for_effect(sd_a, sd_b, effect)
    assert n is not None and n >= 2
    assert min_detectable_effect(_with_sd(n, sd_a, 50.0), _with_sd(n, sd_b)) <= effect
    if n > 2:
        assert min_detectable_effect(_with_sd(n - 1, sd_a, 50.0), _with_sd(n - 1, sd_b)) > effect


def test_seeds_for_effect_grows_with_the_spread_and_shrinks_with_the_effect():
    by_effect = [seeds_for_effect(5.0, 4.0, d) for d in (2.0, 5.0, 10.0, 20.0)]
    assert by_effect == sorted(by_effect, reverse=True) and by_effect[0] > by_effect[-1]
    by_sd = [seeds_for_effect(sd, 4.0, 10.0) for sd in (1.0, 5.0, 10.0, 20.0)]
    assert by_sd == sorted(by_sd) and by_sd[0] < by_sd[-1]
    assert seeds_for_effect(5.0, 4.0, 10.0) == seeds_for_effect(4.0, 5.0, 10.0)  # symmetric
    assert seeds_for_effect(2 * 5.0, 2 * 4.0, 2 * 10.0) == seeds_for_effect(5.0, 4.0, 10.0)
    assert seeds_for_effect(0.1, 0.1, 10.0) == 2  # the smallest n a t-test has


def test_seeds_for_effect_says_none_past_the_cap_and_refuses_what_it_cannot_size():
    assert seeds_for_effect(30.0, 30.0, 1.0, max_seeds=50) is None
    assert seeds_for_effect(30.0, 30.0, 1.0) is None  # ~14000 seeds: past the default 1000
    with pytest.raises(ValueError, match="no spread"):
        seeds_for_effect(0.0, 0.0, 10.0)
    with pytest.raises(ValueError, match="two seeds"):
        seeds_for_effect(float("nan"), 1.0, 10.0)
    with pytest.raises(ValueError, match="positive"):
        seeds_for_effect(1.0, 1.0, 0.0)


def test_kendall_tau():
    assert kendall_tau([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    assert np.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))


def test_fdr_adjust_is_benjamini_hochberg_by_hand_and_leaves_untestable_out():
    """q_(i) = min over j >= i of p_(j) m / j (p sorted): 0.01 x 3/1, then 0.03 x 3/2 = 0.045
    and 0.04 x 3/3 = 0.04 -> the step-up minimum 0.04 for both; a NaN p is no test."""
    from ertrl_bench.measures.stats import fdr_adjust

    q = fdr_adjust([0.04, float("nan"), 0.01, 0.03])
    assert q[[0, 2, 3]] == pytest.approx([0.04, 0.03, 0.04])
    assert np.isnan(q[1])
    assert np.isnan(fdr_adjust([float("nan")])[0])  # a family with no test at all
    one = fdr_adjust([0.02])
    assert one.tolist() == [0.02]  # a family of one test: nothing to adjust
