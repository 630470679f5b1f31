"""ablate.stats power: R power.t.test values, statsmodels agreement, crossed power vs simulation."""

import numpy as np
import pytest
from statsmodels.stats.power import TTestIndPower, TTestPower, tt_solve_power

from ablate.stats import (
    CrossedDesign,
    VarianceComponents,
    contrast,
    mde_crossed,
    power_crossed,
    power_t,
    queries_needed,
    seeds_needed,
)


def test_r_power_t_test_two_sample_values():
    # R's power.t.test counts only the effect's tail (strict = FALSE)
    r = power_t(delta=1, sd=1, n=20, design="two-sample", strict=False)
    assert r.power == pytest.approx(0.8689528, abs=1e-6)
    # R solves n with uniroot(tol = eps^0.25 ~ 1.2e-4), so its printed n is only good to ~1e-5
    n2 = power_t(delta=1, sd=1, power=0.9, design="two-sample", strict=False).n
    n1 = power_t(delta=1, sd=1, power=0.9, design="two-sample", alternative="one-sided").n
    assert n2 == pytest.approx(22.02110, abs=2e-5)
    assert n1 == pytest.approx(17.84713, abs=2e-5)


def test_agrees_with_statsmodels():
    assert power_t(delta=1, sd=1, n=20, design="two-sample").power == pytest.approx(
        TTestIndPower().power(1, 20, 0.05), abs=1e-9)
    for es, n in [(0.1, 500), (0.3, 40), (0.05, 3000)]:
        assert power_t(delta=es, sd=1, n=n).power == pytest.approx(TTestPower().power(es, n, 0.05), abs=1e-9)
        assert power_t(delta=es, sd=1, n=n, alternative="one-sided").power == pytest.approx(
            TTestPower().power(es, n, 0.05, alternative="larger"), abs=1e-9)
    assert power_t(delta=0.1, sd=1, power=0.8).n == pytest.approx(
        tt_solve_power(effect_size=0.1, power=0.8, alpha=0.05), abs=1e-5)
    assert power_t(sd=1, n=300, power=0.8).delta == pytest.approx(
        tt_solve_power(nobs=300, power=0.8, alpha=0.05), abs=1e-7)
    assert power_t(delta=1, sd=1, power=0.9, design="two-sample").n == pytest.approx(
        TTestIndPower().solve_power(1, power=0.9, alpha=0.05), abs=1e-5)


def test_queries_needed_for_one_point():
    assert [queries_needed(0.01, sd) for sd in (0.10, 0.20, 0.30)] == [787, 3142, 7066]


def test_mde_roundtrip():
    r = power_t(sd=0.15, n=1000, power=0.8)
    assert power_t(delta=r.delta, sd=0.15, n=1000).power == pytest.approx(0.8, abs=1e-9)


def _components(query_var, seed_var, inter, Q, S):
    return VarianceComponents(query_var=query_var, sd_query_diff=np.sqrt(query_var), seed_var=seed_var,
                              interaction_var=inter, sum_w2=2.0, n_weighted_configs=2, n_queries=Q,
                              n_seeds=S, dataset="x")


def test_crossed_power_reduces_to_paired_without_seed_noise():
    c = _components(0.02, 0.0, 0.0, 1000, 5)
    crossed = power_crossed(0.005, c, n_seeds=5)
    paired_ = power_t(delta=0.005, sd=np.sqrt(0.02), n=1000)
    assert crossed.df == pytest.approx(999)
    assert crossed.power == pytest.approx(paired_.power, abs=1e-10)


def test_seed_noise_caps_power_and_seeds_needed_is_minimal():
    c = _components(0.0128, 1e-4, 0.0064, 1000, 5)
    p = [power_crossed(0.01, c, n_seeds=s).power for s in (3, 5, 10, 20)]
    assert all(x < y for x, y in zip(p, p[1:]))
    s = seeds_needed(0.015, c, power=0.8)
    assert s is not None and s > 3
    assert power_crossed(0.015, c, n_seeds=s).power >= 0.8 > power_crossed(0.015, c, n_seeds=s - 1).power
    # more seeds cannot remove query variance: 1 point is out of reach with 1000 queries here
    assert seeds_needed(0.01, c, max_seeds=200) is None
    # more queries cannot remove seed variance: 0.002 needs many seeds even with 10^6 queries
    assert seeds_needed(0.002, c, n_queries=10**6, max_seeds=50) is None
    m = mde_crossed(c, n_seeds=s)
    assert power_crossed(m, c, n_seeds=s).power == pytest.approx(0.8, abs=1e-8)


def test_crossed_power_matches_simulated_rejection_rate():
    # truth: query var of differences 2*0.08^2, seed sd 0.01, interaction sd 0.08; Q=400, S=4
    truth = _components(2 * 0.08**2, 0.01**2, 0.08**2, 400, 4)
    delta = 0.016
    predicted = power_crossed(delta, truth, n_seeds=4).power
    rng = np.random.default_rng(2024)
    n_sim, S, Q = 1500, 4, 400
    rejected = 0
    for _ in range(n_sim):
        u = rng.normal(0, 0.25, Q)
        arrays = {c: mu + u + rng.normal(0, 0.08, Q) + rng.normal(0, 0.01, (S, 1)) + rng.normal(0, 0.08, (S, Q))
                  for c, mu in (("A", 0.4), ("B", 0.4 + delta))}
        rejected += contrast(CrossedDesign.from_arrays(arrays), {"B": 1, "A": -1}).p_value < 0.05
    rate = rejected / n_sim
    assert 0.35 < predicted < 0.75
    assert abs(rate - predicted) < 3 * np.sqrt(predicted * (1 - predicted) / n_sim) + 0.01


@pytest.mark.parametrize("kwargs,match", [
    (dict(delta=0.1, sd=1), "exactly one"),
    (dict(delta=0.1, sd=1, n=10, power=None, design="welch"), "design"),
    (dict(delta=-0.1, sd=1, n=10), "delta"),
    (dict(delta=0.1, sd=0, n=10), "sd"),
    (dict(delta=0.1, sd=1, power=1.5), "power"),
])
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        power_t(**kwargs)
