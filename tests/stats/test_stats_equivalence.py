"""ablate.stats.tost: two one-sided tests against scipy, margin units, crossed form, size at the margin."""

import numpy as np
import pytest
from scipy import stats

from ablate.stats import contrast, tost
from ablate.stats.simulation import simulate_design


def test_query_level_tost_equals_two_scipy_one_sided_tests():
    rng = np.random.default_rng(0)
    a = rng.random(1500)
    b = a + rng.normal(0.002, 0.08, 1500)
    r = tost(a, b, margin_points=1.0)
    assert r.margin == pytest.approx(0.01)
    d = b - a
    lower = stats.ttest_1samp(d, -0.01, alternative="greater").pvalue
    upper = stats.ttest_1samp(d, 0.01, alternative="less").pvalue
    assert r.p_lower == pytest.approx(lower, rel=1e-10) and r.p_upper == pytest.approx(upper, rel=1e-10)
    assert r.p_value == pytest.approx(max(lower, upper), rel=1e-10)
    ci90 = stats.ttest_1samp(d, 0).confidence_interval(0.90)
    assert (r.ci_low, r.ci_high) == pytest.approx((ci90.low, ci90.high), rel=1e-10)
    assert r.equivalent == (-0.01 < ci90.low and ci90.high < 0.01)
    assert r.equivalent
    assert not tost(a, b, margin_points=0.2).equivalent


def test_crossed_tost_uses_contrast_se_and_df():
    design = simulate_design({"A": 0.4, "B": 0.4}, n_seeds=5, n_queries=3000, sd_seed=0.003, seed=1)
    c = contrast(design, {"B": 1, "A": -1})
    r = tost(c, margin_points=1.0)
    assert r.se == c.se and r.df == c.df
    assert r.p_lower == pytest.approx(stats.t.sf((c.estimate + 0.01) / c.se, c.df), rel=1e-12)
    assert r.equivalent


def test_tost_size_at_the_margin_is_at_most_alpha():
    rng = np.random.default_rng(5)
    n, reps = 400, 2000
    rejections = 0
    for _ in range(reps):
        d = rng.normal(0.01, 0.05, n)  # true effect exactly at the 1-point margin
        rejections += tost(np.zeros(n), d).equivalent
    rate = rejections / reps
    assert 0.03 < rate < 0.07, rate


@pytest.mark.parametrize("kwargs,match", [(dict(margin_points=0), "margin_points"),
                                          (dict(margin_points=float("nan")), "margin_points"),
                                          (dict(alpha=0.6), "alpha")])
def test_bad_arguments(kwargs, match):
    a, b = np.zeros(10), np.linspace(0, 0.01, 10)
    with pytest.raises(ValueError, match=match):
        tost(a, b, **kwargs)
    with pytest.raises(ValueError, match="either two aligned"):
        tost(a)
