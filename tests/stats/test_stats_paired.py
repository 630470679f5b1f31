"""ablate.stats.paired: published values, scipy agreement, randomization vs brute force, input checks."""

import itertools
import json

import numpy as np
import polars as pl
import pytest
from scipy import stats

from ablate.stats import paired

# R `sleep` data (STATISTICS.md value 1)
G1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
G2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]
# Hollander & Wolfe (value 2)
HW_X = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30]
HW_Y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29]


def test_paired_t_reproduces_sleep_data():
    r = paired(G2, G1)  # estimate = mean(b - a) = mean(g1 - g2)
    assert r.test == "t"
    assert r.statistic == pytest.approx(-4.062128, abs=1e-6)
    assert r.df == 9
    assert r.p_value == pytest.approx(0.002833, abs=1e-6)
    assert r.ci_low == pytest.approx(-2.459886, abs=1e-6)
    assert r.ci_high == pytest.approx(-0.700114, abs=1e-6)
    assert r.estimate == pytest.approx(-1.58, abs=1e-12)
    d = np.subtract(G1, G2)
    assert r.effect_size_dz == pytest.approx(d.mean() / d.std(ddof=1))
    assert (r.wins, r.ties, r.losses, r.n) == (0, 1, 9, 10)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_paired_t_matches_scipy(alternative):
    rng = np.random.default_rng(1)
    a = rng.random(300)
    b = a + rng.normal(0.01, 0.1, 300)
    r = paired(a, b, alternative=alternative)
    ref = stats.ttest_rel(b, a, alternative=alternative)
    assert r.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    ci = stats.ttest_rel(b, a).confidence_interval(0.95)
    assert (r.ci_low, r.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-10)


def test_wilcoxon_reproduces_hollander_wolfe():
    greater = paired(HW_Y, HW_X, "wilcoxon", alternative="greater")
    assert greater.statistic == 40
    assert greater.p_value == pytest.approx(0.01953125, abs=1e-12)
    two = paired(HW_Y, HW_X, "wilcoxon")
    assert two.p_value == pytest.approx(0.0390625, abs=1e-12)
    assert two.statistic == 40  # W+ (R's V), not scipy's min(W+, W-)
    assert "exact" in two.method and "median" in two.null_hypothesis


@pytest.mark.parametrize("zero_method", ["wilcox", "pratt", "zsplit"])
def test_wilcoxon_with_zeros_and_ties_matches_scipy(zero_method):
    rng = np.random.default_rng(2)
    a = np.round(rng.random(80), 1)
    b = np.round(a + rng.normal(0.05, 0.2, 80), 1)
    r = paired(a, b, "wilcoxon", zero_method=zero_method)
    ref = stats.wilcoxon(b - a, zero_method=zero_method, method="approx")
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert r.ties > 0 and "approximation" in r.method


def _sign_vectors(pos, neg, ties=0):
    d = np.array([1.0] * pos + [-1.0] * neg + [0.0] * ties) * 0.01
    return np.zeros(d.size), d


@pytest.mark.parametrize("pos,n,expected", [(29, 50, 0.3222363), (25, 43, 0.3603777)])
def test_sign_test_reproduces_binomial_values(pos, n, expected):
    a, b = _sign_vectors(pos, n - pos, ties=7)  # ties are dropped
    r = paired(a, b, "sign")
    assert r.p_value == pytest.approx(expected, abs=1e-6)
    assert r.statistic == pos and r.ties == 7
    assert r.p_value == pytest.approx(stats.binomtest(pos, n).pvalue, rel=1e-12)


def _brute_force_randomization(d, alternative):
    obs = d.sum()
    sums = np.array([np.dot(s, d) for s in itertools.product([1, -1], repeat=d.size)])
    tol = 1e-9 * np.abs(d).sum()
    if alternative == "greater":
        return np.mean(sums >= obs - tol)
    if alternative == "less":
        return np.mean(sums <= obs + tol)
    return np.mean(np.abs(sums) >= abs(obs) - tol)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_exact_randomization_equals_brute_force_and_monte_carlo_agrees(alternative):
    rng = np.random.default_rng(3)
    a = rng.random(14)
    b = a + rng.normal(0.05, 0.1, 14)
    truth = _brute_force_randomization(b - a, alternative)
    exact = paired(a, b, "randomization", alternative=alternative)
    assert exact.B == 2**14 and exact.seed is None and "exact" in exact.method
    assert exact.p_value == pytest.approx(truth, abs=1e-12)
    mc = paired(a, b, "randomization", alternative=alternative, exact=False, B=20_000, seed=5)
    se = np.sqrt(truth * (1 - truth) / 20_000)
    assert abs(mc.p_value - truth) < 3 * se + 1 / 20_001
    assert mc.B == 20_000 and mc.seed == 5


def test_exact_randomization_counts_ties_with_the_observed_value():
    # integer-valued differences create exact ties in the null distribution
    a = np.zeros(8)
    b = np.array([1, 1, 1, -1, 1, 1, -1, 1.0])
    assert paired(a, b, "randomization").p_value == pytest.approx(_brute_force_randomization(b, "two-sided"))


def test_randomization_switches_to_monte_carlo_above_20_queries():
    rng = np.random.default_rng(4)
    assert "exact" in paired(rng.random(20), rng.random(20), "randomization").method
    r = paired(rng.random(21), rng.random(21), "randomization", B=999)
    assert "Monte-Carlo" in r.method and r.B == 999
    with pytest.raises(ValueError, match="exact=True"):
        paired(rng.random(21), rng.random(21), "randomization", exact=True)


def test_large_n_randomization_is_close_to_paired_t():
    rng = np.random.default_rng(6)
    a = rng.random(800)
    b = a + rng.normal(0.004, 0.1, 800)
    t = paired(a, b)
    r = paired(a, b, "randomization", B=20_000, seed=1)
    assert 0.01 < t.p_value < 0.5
    assert abs(r.p_value - t.p_value) < 3 * r.p_value_mc_se + 0.01


def test_monte_carlo_p_is_never_zero_and_is_deterministic():
    a = np.zeros(500)
    b = np.full(500, 0.1) + np.linspace(0, 0.01, 500)
    r = paired(a, b, "randomization", B=2000, seed=9)
    assert r.p_value == pytest.approx(1 / 2001)
    rng = np.random.default_rng(7)
    a, b = rng.random(300), rng.random(300)
    p1 = paired(a, b, "randomization", B=3000, seed=11).p_value
    assert paired(a, b, "randomization", B=3000, seed=11).p_value == p1
    assert paired(a, b, "randomization", B=3000, seed=12).p_value != p1


def test_bootstrap_ci_close_to_t_and_p_consistent():
    rng = np.random.default_rng(8)
    a = rng.random(2000)
    b = a + rng.normal(0.01, 0.1, 2000)
    t = paired(a, b)
    bs = paired(a, b, "bootstrap", B=5000, seed=3)
    width_t = t.ci_high - t.ci_low
    assert bs.ci_method == "bootstrap percentile"
    assert abs(bs.ci_low - t.ci_low) < 0.08 * width_t and abs(bs.ci_high - t.ci_high) < 0.08 * width_t
    assert abs(bs.p_value - t.p_value) < 3 * bs.p_value_mc_se + 0.005
    assert paired(a, b, "bootstrap", B=5000, seed=3) == bs


def test_query_keyed_inputs_are_checked_not_realigned():
    a = {"q1": 0.1, "q2": 0.5, "q3": 0.3}
    b = {"q1": 0.2, "q2": 0.4, "q3": 0.6}
    r = paired(a, b)
    assert r.estimate == pytest.approx(0.1)
    with pytest.raises(ValueError, match="differ at position 1"):
        paired(a, {"q1": 0.2, "q3": 0.6, "q2": 0.4})
    df_a = pl.DataFrame({"query": ["q1", "q2", "q3"], "score": [0.1, 0.5, 0.3]})
    df_b = pl.DataFrame({"query": ["q1", "q2", "q3"], "score": [0.2, 0.4, 0.6]})
    assert paired(df_a, df_b).estimate == pytest.approx(0.1)
    r2 = paired(pl.Series([0.1, 0.5, 0.3]), [0.2, 0.4, 0.6], ids_a=["x", "y", "z"], ids_b=["x", "y", "z"])
    assert r2.estimate == pytest.approx(0.1)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(a=[0.1, 0.2, 0.3], b=[0.1, 0.2]), "same queries"),
        (dict(a=[0.1, np.nan, 0.3], b=[0.1, 0.2, 0.3]), "NaN"),
        (dict(a=[0.1, 0.2, 0.3], b=[0.1, 0.2, 0.3], ids_a=["a", "b", "c"]), "only one side"),
        (dict(a=[0.1, 0.2, 0.3], b=[0.1, 0.2, 0.3], ids_a=["a", "b", "b"], ids_b=["a", "b", "b"]), "duplicates"),
        (dict(a=[0.1, 0.2, 0.3], b=[0.1, 0.2, 0.3], test="ttest"), "test must be one of"),
        (dict(a=[0.1, 0.2, 0.3], b=[0.1, 0.2, 0.3], alternative="bigger"), "alternative"),
        (dict(a=[0.1, 0.2, 0.3], b=[0.1, 0.2, 0.3], confidence=95), "confidence"),
        (dict(a=[0.1], b=[0.2]), "at least 2"),
        (dict(a=[[0.1, 0.2]], b=[[0.1, 0.2]]), "one-dimensional"),
        (dict(a=[0.1, 0.2, 0.3], b=[0.1, 0.2, 0.3], test="randomization", exact=False, B=0), "B must"),
    ],
)
def test_bad_input_raises_clear_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        paired(**kwargs)


def test_to_dict_is_json_serialisable():
    r = paired(G2, G1, "randomization")
    d = r.to_dict()
    json.dumps(d)
    assert d["B"] == 1024 and d["estimate"] == pytest.approx(-1.58)
