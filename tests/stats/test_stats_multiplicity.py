"""ablate.stats.adjust / Family: BH 1995 example and agreement with statsmodels."""

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from ablate.stats import Family, adjust

BH_P = [.0001, .0004, .0019, .0095, .0201, .0278, .0298, .0344, .0459, .3240, .4262, .5719, .6528, .7590, 1.0]


def test_benjamini_hochberg_1995_example():
    bh = adjust(BH_P, "bh")
    assert bh[:6] == pytest.approx([.0015, .003, .0095, .035625, .0603, .063857], abs=1e-6)
    assert (bh <= 0.05).sum() == 4
    holm = adjust(BH_P)  # Holm is the default
    assert holm[:6] == pytest.approx([.0015, .0056, .0247, .114, .2211, .278], abs=1e-6)
    assert (holm <= 0.05).sum() == 3
    assert (adjust(BH_P, "bonferroni") <= 0.05).sum() == 3


@pytest.mark.parametrize("method,sm", [("holm", "holm"), ("bonferroni", "bonferroni"), ("bh", "fdr_bh"),
                                       ("by", "fdr_by"), ("fdr_bh", "fdr_bh"), ("fdr_by", "fdr_by")])
def test_agrees_with_statsmodels_in_input_order(method, sm):
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = np.concatenate([rng.uniform(0, 0.05, 5), rng.uniform(0, 1, 20)])
        p[3] = p[7]  # a tie
        rng.shuffle(p)
        ours = adjust(p, method)
        ref = multipletests(p, method=sm)[1]
        np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-15)
        order = np.argsort(p)
        assert np.all(np.diff(ours[order]) >= -1e-15) and ours.max() <= 1.0 and np.all(ours >= p - 1e-15)


def test_family_defaults_and_table():
    conf = Family("factors on macro", kind="confirmatory")
    t = conf.adjust(BH_P[:5], labels=list("abcde"))
    assert t["method"][0] == "holm" and t["label"].to_list() == list("abcde")
    np.testing.assert_allclose(t["p_adjusted"].to_numpy(), adjust(BH_P[:5], "holm"))
    expl = Family("factors per dataset", kind="exploratory")
    assert expl.resolved_method == "bh"
    assert expl.adjust(BH_P)["reject"].sum() == 4
    assert Family("x", kind="exploratory", method="by").resolved_method == "by"


@pytest.mark.parametrize("args,match", [(([0.1, np.nan],), "NaN"), (([0.1, 1.2],), r"\[0, 1\]"),
                                        (([],), "non-empty"), (([0.1], "hommel"), "method must be")])
def test_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        adjust(*args)
    with pytest.raises(ValueError, match="kind"):
        Family("x", kind="primary")
