"""Attribution on constructed tables whose effects, interactions and Shapley values are known exactly."""

import itertools
import math

import numpy as np
import polars as pl
import pytest

from ablate.analysis import attribute
from ablate.spec import parse_spec

FACTORS = {"per_device_batch": [16, 512], "learning_rate": [2e-5, 8e-5], "train_set": ["subset", "full"],
           "gradient_accumulation": [1, 32]}


def _spec(k: int, seeds=(0, 1, 2, 3, 4)):
    names = list(FACTORS)[:k]
    return parse_spec({"name": "t", "question": "q?", "seeds": list(seeds),
                       "factors": {n: FACTORS[n] for n in names}, "datasets": {"mini": ["a", "b"]}}, "t.toml")


def _table(spec, truth, n_queries=300, noise=0.0, seed=0):
    """Scores = truth(coded levels) + query effect (+ optional seed and residual noise), two datasets."""
    rng = np.random.default_rng(seed)
    rows = []
    for dataset in ("a", "b"):
        query_effect = rng.normal(0, 0.1, n_queries)
        for arm in spec.arms():
            code = tuple(spec.factors[f].index(v) for f, v in arm.levels)
            for s in spec.seeds:
                seed_shift = rng.normal(0, noise)
                scores = truth(code) + query_effect + (rng.normal(0, noise, n_queries) if noise else 0.0) + seed_shift
                rows.append(pl.DataFrame({"dataset": dataset, "query": [f"q{i}" for i in range(n_queries)],
                                          "config": arm.label, "seed": s, "score": scores}))
    return pl.concat(rows)


def _shapley_bruteforce(truth, k):
    """phi_i as the average marginal contribution over all k! orders (definition, not a formula)."""
    phi = [0.0] * k
    for order in itertools.permutations(range(k)):
        state = [0] * k
        for i in order:
            before = truth(tuple(state))
            state[i] = 1
            phi[i] += truth(tuple(state)) - before
    return [p / math.factorial(k) for p in phi]


@pytest.mark.parametrize("k", [2, 3, 4])
def test_shapley_values_match_the_definition_and_sum_to_the_gain(k):
    coefs = [0.010, 0.004, -0.002, 0.006][:k]

    def truth(code):
        y = 0.40 + sum(c * x for c, x in zip(coefs, code))
        if k >= 2:
            y += 0.003 * code[0] * code[1]
        if k >= 3:
            y += 0.002 * code[0] * code[1] * code[2]
        return y

    spec = _spec(k)
    result = attribute(spec, _table(spec, truth), bootstrap_b=500)
    expected = _shapley_bruteforce(truth, k)
    got = dict(zip(result.shapley["name"], result.shapley["estimate"]))
    for f, e in zip(list(FACTORS)[:k], expected):
        assert got[f] == pytest.approx(e, abs=1e-12)
    gain = truth((1,) * k) - truth((0,) * k)
    assert result.total["estimate"] == pytest.approx(gain, abs=1e-12)
    assert sum(got.values()) == pytest.approx(result.total["estimate"], abs=1e-9)
    assert result.shapley_sum_error <= 1e-9


def test_published_shapley_identity_and_effects():
    # STATISTICS.md value 7: y = .40 + .010 bs + .004 lr - .002 frac + .003 bs*lr (0/1 coding).
    truth = lambda c: 0.40 + 0.010 * c[0] + 0.004 * c[1] - 0.002 * c[2] + 0.003 * c[0] * c[1]  # noqa: E731
    spec = _spec(3)
    result = attribute(spec, _table(spec, truth), bootstrap_b=500)
    phi = dict(zip(result.shapley["name"], result.shapley["estimate"]))
    assert phi == pytest.approx({"per_device_batch": 0.0115, "learning_rate": 0.0055, "train_set": -0.0020},
                                abs=1e-12)
    mains = dict(zip(result.main_effects["name"], result.main_effects["estimate"]))
    # Main effect = difference of marginal means: bs = .010 + .003/2, lr = .004 + .003/2, frac = -.002.
    assert mains == pytest.approx({"per_device_batch": 0.0115, "learning_rate": 0.0055, "train_set": -0.002},
                                  abs=1e-12)
    inter = dict(zip(result.interactions["name"], result.interactions["estimate"]))
    assert inter["per_device_batch:learning_rate"] == pytest.approx(0.003, abs=1e-12)
    assert inter["per_device_batch:train_set"] == pytest.approx(0.0, abs=1e-12)
    assert inter["per_device_batch:learning_rate:train_set"] == pytest.approx(0.0, abs=1e-12)


def test_three_way_interaction_enters_shapley_as_a_third():
    truth = lambda c: 0.5 + 0.01 * c[0] * c[1] * c[2]  # noqa: E731 - pure three-way interaction
    spec = _spec(3)
    result = attribute(spec, _table(spec, truth), bootstrap_b=500)
    phi = result.shapley["estimate"].to_list()
    assert phi == pytest.approx([0.01 / 3] * 3, abs=1e-12)
    inter = dict(zip(result.interactions["name"], result.interactions["estimate"]))
    # difference of differences of differences, in the -1/2,+1/2 coding
    assert inter["per_device_batch:learning_rate:train_set"] == pytest.approx(0.01, abs=1e-12)


def test_ablation_paths_cover_every_order_and_each_path_sums_to_the_gain():
    truth = lambda c: 0.3 + 0.02 * c[0] + 0.01 * c[1] - 0.005 * c[0] * c[1] + 0.004 * c[2]  # noqa: E731
    spec = _spec(3)
    result = attribute(spec, _table(spec, truth), bootstrap_b=500)
    gain = truth((1, 1, 1)) - truth((0, 0, 0))
    for direction in ("add-one-in", "leave-one-out"):
        paths = result.paths.filter(pl.col("direction") == direction)
        assert paths["order"].n_unique() == 6
        sums = paths.group_by("order").agg(pl.col("contribution").sum())["contribution"]
        assert np.allclose(sums.to_numpy(), gain, atol=1e-12)
    first = result.paths.filter((pl.col("direction") == "add-one-in") & (pl.col("step") == 1))
    by_factor = first.group_by("factor").agg(pl.col("contribution").first())
    assert dict(zip(by_factor["factor"], by_factor["contribution"]))["per_device_batch"] == pytest.approx(0.02)


def test_shares_shown_only_when_the_total_gain_is_clear_and_verdict_words_follow_the_numbers():
    clear = lambda c: 0.3 + 0.03 * c[0] + 0.0 * c[1]  # noqa: E731
    spec = _spec(2)
    result = attribute(spec, _table(spec, clear, noise=0.002), bootstrap_b=2000)
    shares = dict(zip(result.shapley["name"], result.shapley["share"]))
    assert shares["per_device_batch"] == pytest.approx(1.0, abs=0.05)
    kinds = {v.factor: v.kind for v in result.verdicts}
    assert kinds["per_device_batch"] == "explains"
    assert kinds["learning_rate"] == "equivalent"  # true effect 0, tight CI: inside ±1 point

    flat = lambda c: 0.3  # noqa: E731
    noisy = attribute(spec, _table(spec, flat, noise=0.03, seed=3), bootstrap_b=500)
    assert noisy.shapley["share"].null_count() == 2
    assert any("total gain's CI includes 0" in n for n in noisy.notes)
    assert {v.kind for v in noisy.verdicts} <= {"undetermined", "equivalent"}
    assert any("undetermined" in v.statement and "seeds per cell would reach 80% power" in v.statement
               or "add queries" in v.statement for v in noisy.verdicts if v.kind == "undetermined")


def test_multi_level_factor_gets_level_means_and_pairwise_contrasts():
    spec = parse_spec({"name": "lr", "question": "q?", "seeds": [0, 1, 2],
                       "factors": {"learning_rate": [1e-5, 3e-5, 1e-4], "per_device_batch": [16, 512]},
                       "datasets": {"mini": ["a"]}}, "lr.toml")
    value = {1e-5: 0.30, 3e-5: 0.34, 1e-4: 0.32}

    def truth(code):
        return value[spec.factors["learning_rate"][code[0]]] + 0.01 * code[1]

    result = attribute(spec, _table(spec, truth), bootstrap_b=200)
    means = dict(zip(result.levels["level"], result.levels["mean"]))
    assert means["3e-05"] - means["1e-05"] == pytest.approx(0.04, abs=1e-12)
    assert len(means) == 3
    pairs = dict(zip(result.pairwise["name"], result.pairwise["estimate"]))
    assert pairs["learning_rate: 1e-05 -> 3e-05"] == pytest.approx(0.04, abs=1e-12)
    assert pairs["learning_rate: 3e-05 -> 0.0001"] == pytest.approx(-0.02, abs=1e-12)
    assert "p_holm" in result.pairwise.columns and result.shapley.is_empty()
    mains = dict(zip(result.main_effects["name"], result.main_effects["estimate"]))
    assert mains["per_device_batch"] == pytest.approx(0.01, abs=1e-12)



def test_reproduction_view_lays_out_published_numbers_and_arms():
    from ablate.published import values
    from ablate.report import reproduction_view

    spec = _spec(1)
    long = _table(spec, lambda c: 0.3 + 0.05 * c[0]).with_columns(
        pl.col("dataset").replace({"a": "ArguAna", "b": "SciFact"}))
    text = "\n".join(reproduction_view(long, [a.label for a in spec.arms()], ["ArguAna", "SciFact"]))
    assert "| paper (base, published)" in text and "35.7" in text and "46.38" in text  # ArguAna, Table 7 / card
    assert "per_device_batch=512" in text and "Sources: paper: Warner et al." in text
    assert values("reproduction", "large")["MLDR"] == 38.99
