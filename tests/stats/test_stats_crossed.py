"""ablate.stats.contrast & friends: brute-force agreement, macro-average, fallback, pivot checks, bootstrap."""

import warnings

import numpy as np
import polars as pl
import pytest
from scipy import stats

from ablate.stats import (
    CrossedDesign,
    SeedVarianceWarning,
    contrast,
    contrast_by_dataset,
    paired,
    two_way_bootstrap,
    variance_components,
)
from ablate.stats.simulation import simulate_design


def _unbalanced_study():
    """3 configs with 3/4/5 seeds, 2 datasets with 40 and 70 queries, as a long table."""
    rng = np.random.default_rng(42)
    rows = []
    seeds = {"A": [0, 1, 2], "B": [0, 1, 2, 3], "C": [10, 11, 12, 13, 14]}
    run_effect = {(c, s): rng.normal(0, 0.02) for c in seeds for s in seeds[c]}
    for ds, Q in (("fiqa", 40), ("nfcorpus", 70)):
        u = rng.normal(0.4, 0.2, Q)
        for c, mu in (("A", 0.0), ("B", 0.01), ("C", 0.03)):
            cu = rng.normal(0, 0.05, Q)
            for s in seeds[c]:
                y = u + mu + cu + run_effect[(c, s)] + rng.normal(0, 0.05, Q)
                rows += [{"dataset": ds, "query": f"q{q}", "config": c, "seed": s, "score": y[q]} for q in range(Q)]
    return pl.DataFrame(rows).sample(fraction=1.0, shuffle=True, seed=1)


def _brute_force(table, weights):
    """Spec formulas with explicit loops over dicts (independent of the vectorized code)."""
    cells = {}
    for r in table.iter_rows(named=True):
        cells[(r["dataset"], r["config"], r["seed"], r["query"])] = r["score"]
    datasets = sorted({k[0] for k in cells})
    K = len(datasets)
    seeds = {c: sorted({k[2] for k in cells if k[1] == c}) for c in weights}
    est, terms = 0.0, []
    macro_run = {(c, s): 0.0 for c in weights for s in seeds[c]}
    for ds in datasets:
        queries = sorted({k[3] for k in cells if k[0] == ds})
        Q = len(queries)
        D = []
        for q in queries:
            D.append(sum(w * sum(cells[(ds, c, s, q)] for s in seeds[c]) / len(seeds[c]) for c, w in weights.items()))
        mean_d = sum(D) / Q
        est += mean_d / K
        vq = sum((x - mean_d) ** 2 for x in D) / (Q - 1)
        terms.append((vq / (K * K * Q), Q - 1))
        for c, w in weights.items():
            S = len(seeds[c])
            y = [[cells[(ds, c, s, q)] for q in queries] for s in seeds[c]]
            grand = sum(map(sum, y)) / (S * Q)
            rows = [sum(r) / Q for r in y]
            colm = [sum(y[i][j] for i in range(S)) / S for j in range(Q)]
            for i, s in enumerate(seeds[c]):
                macro_run[(c, s)] += rows[i] / K
            ss = sum((y[i][j] - rows[i] - colm[j] + grand) ** 2 for i in range(S) for j in range(Q))
            ms = ss / ((S - 1) * (Q - 1))
            terms.append((-(w**2) * ms / (K * K * S * Q), (S - 1) * (Q - 1)))
    for c, w in weights.items():
        S = len(seeds[c])
        m = [macro_run[(c, s)] for s in seeds[c]]
        mbar = sum(m) / S
        s2 = sum((x - mbar) ** 2 for x in m) / (S - 1)
        terms.append((w**2 * s2 / S, S - 1))
    var = sum(t for t, _ in terms)
    df = var**2 / sum(t * t / d for t, d in terms)
    return est, np.sqrt(var), df


@pytest.mark.parametrize("weights", [{"B": 1, "A": -1}, {"C": 1, "A": -0.5, "B": -0.5}, {"C": 1}])
def test_contrast_matches_brute_force_per_dataset_and_macro(weights):
    table = _unbalanced_study()
    for ds in (None, "fiqa", "nfcorpus"):
        sub = table if ds is None else table.filter(pl.col("dataset") == ds)
        est, se, df = _brute_force(sub, weights)
        r = contrast(table, weights, dataset=ds)
        assert r.estimate == pytest.approx(est, rel=1e-10)
        assert r.se == pytest.approx(se, rel=1e-10)
        assert r.df == pytest.approx(df, rel=1e-10)
        assert r.dataset == ("macro" if ds is None else ds)
        assert r.p_value == pytest.approx(2 * stats.t.sf(abs(est / se), df), rel=1e-9)
        half = stats.t.ppf(0.975, df) * se
        assert (r.ci_low, r.ci_high) == pytest.approx((est - half, est + half), rel=1e-9)
        assert r.se**2 == pytest.approx(sum(r.components.values()), rel=1e-10)


def test_single_dataset_table_equals_filtered_and_renamed_columns():
    table = _unbalanced_study()
    one = table.filter(pl.col("dataset") == "fiqa")
    r1 = contrast(table, {"B": 1, "A": -1}, dataset="fiqa")
    r2 = contrast(one.drop("dataset"), {"B": 1, "A": -1})
    renamed = one.rename({"query": "qid", "score": "ndcg@10", "config": "cfg"})
    r3 = contrast(renamed, {"B": 1, "A": -1}, columns={"query": "qid", "score": "ndcg@10", "config": "cfg"})
    assert r1.estimate == pytest.approx(r2.estimate) == pytest.approx(r3.estimate)
    assert r1.se == pytest.approx(r2.se) == pytest.approx(r3.se)


def test_contrast_by_dataset_has_one_row_per_dataset_plus_macro():
    table = _unbalanced_study()
    out = contrast_by_dataset(table, {"C": 1, "A": -1})
    assert out["dataset"].to_list() == ["fiqa", "nfcorpus", "macro"]
    macro = contrast(table, {"C": 1, "A": -1})
    assert out.filter(pl.col("dataset") == "macro")["se"][0] == pytest.approx(macro.se)
    assert out["estimate"][:2].mean() == pytest.approx(macro.estimate)


def test_query_only_contrast_equals_paired_t_on_seed_averaged_scores():
    design = simulate_design({"A": 0.4, "B": 0.41}, n_seeds=4, n_queries=300, seed=3)
    r = contrast(design, {"B": 1, "A": -1}, method="query-only")
    a = design.scores["(all)"]["A"].mean(axis=0)
    b = design.scores["(all)"]["B"].mean(axis=0)
    t = paired(a, b)
    assert r.p_value == pytest.approx(t.p_value, rel=1e-10)
    assert (r.ci_low, r.ci_high) == pytest.approx((t.ci_low, t.ci_high), rel=1e-10)
    assert r.df == 299 and "query-only" in r.method


def test_fewer_than_three_seeds_falls_back_visibly():
    design = simulate_design({"A": 0.4, "B": 0.41}, n_seeds=2, n_queries=200, seed=4)
    with pytest.warns(SeedVarianceWarning, match="seed variance not estimable"):
        r = contrast(design, {"B": 1, "A": -1})
    assert r.method.startswith("query-only") and r.warning.startswith("query-only: seed variance not estimable")
    assert r.components["seed"] == 0.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = contrast_by_dataset(design, {"B": 1, "A": -1})
    assert sum(issubclass(w.category, SeedVarianceWarning) for w in caught) == 1
    assert out["warning"].is_not_null().all()


def test_seed_variance_widens_the_interval():
    design = simulate_design({"A": 0.4, "B": 0.41}, n_seeds=5, n_queries=2000, sd_seed=0.02, seed=5)
    crossed = contrast(design, {"B": 1, "A": -1})
    query_only = contrast(design, {"B": 1, "A": -1}, method="query-only")
    assert crossed.se > 2 * query_only.se
    assert crossed.components["seed"] > crossed.components["query"]


def test_variance_components_recover_truth_on_average():
    truth = dict(sd_config_query=0.08, sd_seed=0.015, sd_interaction=0.06)
    est = [variance_components(simulate_design({"A": 0.4, "B": 0.4}, n_seeds=6, n_queries=500, seed=i, **truth),
                               {"B": 1, "A": -1}) for i in range(300)]
    assert np.mean([e.query_var for e in est]) == pytest.approx(2 * 0.08**2, rel=0.05)
    assert np.mean([e.interaction_var for e in est]) == pytest.approx(0.06**2, rel=0.02)
    assert np.mean([e.seed_var for e in est]) == pytest.approx(0.015**2, rel=0.1)


def test_pivot_rejects_incomplete_duplicated_or_nan_tables():
    table = _unbalanced_study()
    with pytest.raises(ValueError, match="has no score for query"):
        contrast(table.slice(1), {"B": 1, "A": -1})
    with pytest.raises(ValueError, match="has 2 rows"):
        contrast(pl.concat([table, table.head(1)]), {"B": 1, "A": -1})
    nan = table.with_columns(pl.when(pl.int_range(pl.len()) == 5).then(float("nan")).otherwise(pl.col("score")).alias("score"))
    with pytest.raises(ValueError, match="NaN"):
        contrast(nan, {"B": 1, "A": -1})
    with pytest.raises(ValueError, match="lacks column"):
        contrast(table.drop("seed"), {"B": 1, "A": -1})
    with pytest.raises(ValueError, match="not in the table"):
        contrast(table, {"Z": 1, "A": -1})
    with pytest.raises(ValueError, match="all zero"):
        contrast(table, {"B": 0})
    with pytest.raises(ValueError, match="dataset 'msmarco' not in the table"):
        contrast(table, {"B": 1, "A": -1}, dataset="msmarco")


def test_design_roundtrip_and_row_order_independence():
    design = simulate_design({"A": 0.4, "B": 0.42, "C": 0.43}, n_seeds=3, n_queries={"x": 30, "y": 50}, seed=6)
    table = design.to_table()
    again = CrossedDesign.from_table(table.reverse())
    for k in design.datasets:
        for c in design.configs:
            np.testing.assert_array_equal(design.scores[k][c], again.scores[k][c])


def test_two_way_bootstrap_variance_matches_its_closed_form():
    # Pigeonhole bootstrap variance ~ V_Q/Q (1-1/Q) + sum w^2 s2_c/S (1-1/S): the crossed formula
    # without the interaction correction, with plug-in (biased) variances.
    design = simulate_design({"A": 0.4, "B": 0.41}, n_seeds=8, n_queries={"x": 300, "y": 500}, seed=7)
    boot = two_way_bootstrap(design, lambda v: v["B"] - v["A"], B=4000, seed=1)
    r = contrast(design, {"B": 1, "A": -1})
    S = 8
    expected = r.components["query"] * (1 - 1 / 400) + r.components["seed"] * (S - 1) / S
    assert boot.se**2 == pytest.approx(expected, rel=0.1)
    assert boot.estimate == pytest.approx(r.estimate, rel=1e-12)
    assert boot.B == 4000 and boot.seed == 1 and boot.n_nonfinite == 0


def test_two_way_bootstrap_named_contrasts_ratio_and_determinism():
    design = simulate_design({"A": 0.40, "B": 0.42, "C": 0.45}, n_seeds=5, n_queries=400, seed=8)
    contrasts = {"first": {"B": 1, "A": -1}, "second": {"C": 1, "B": -1}}

    def shares(v):
        total = v["first"] + v["second"]
        return {"share_first": v["first"] / total, "share_second": v["second"] / total}

    out = two_way_bootstrap(design, shares, contrasts=contrasts, B=2000, seed=3)
    assert set(out) == {"share_first", "share_second"}
    assert out["share_first"].estimate + out["share_second"].estimate == pytest.approx(1.0)
    assert out["share_first"].ci_low < out["share_first"].estimate < out["share_first"].ci_high
    np.testing.assert_allclose(out["share_first"].replicates + out["share_second"].replicates, 1.0)
    again = two_way_bootstrap(design, shares, contrasts=contrasts, B=2000, seed=3)
    np.testing.assert_array_equal(again["share_first"].replicates, out["share_first"].replicates)
    other = two_way_bootstrap(design, shares, contrasts=contrasts, B=2000, seed=4)
    assert not np.array_equal(other["share_first"].replicates, out["share_first"].replicates)
    assert "replicates" not in out["share_first"].to_dict()


def test_two_way_bootstrap_warns_below_five_seeds_and_checks_statistic():
    design = simulate_design({"A": 0.4, "B": 0.41}, n_seeds=3, n_queries=100, seed=9)
    with pytest.warns(SeedVarianceWarning, match="S >= 5"):
        r = two_way_bootstrap(design, lambda v: v["B"] - v["A"], B=200)
    assert r.warning is not None
    with pytest.raises(ValueError, match="shape"):
        two_way_bootstrap(design, lambda v: 1.0 + np.zeros(7), B=200)
