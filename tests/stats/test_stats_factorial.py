"""ablate.stats factorial attribution: STATISTICS.md value 7 (Shapley identity, variance fractions)."""

import itertools

import pytest

from ablate.stats import factorial_effects, shapley_contrasts, variance_fractions

FACTORS = ["bs", "lr", "frac"]
CELLS = {f"bs{a}-lr{b}-frac{c}": (a, b, c) for a, b, c in itertools.product((0, 1), repeat=3)}
Y = {k: .40 + .010 * v[0] + .004 * v[1] - .002 * v[2] + .003 * v[0] * v[1] for k, v in CELLS.items()}


def _apply(weights):
    return sum(w * Y[c] for c, w in weights.items())


def test_shapley_values_and_efficiency():
    phi = {f: _apply(w) for f, w in shapley_contrasts(CELLS, FACTORS).items()}
    assert phi["bs"] == pytest.approx(0.0115, abs=1e-12)
    assert phi["lr"] == pytest.approx(0.0055, abs=1e-12)
    assert phi["frac"] == pytest.approx(-0.0020, abs=1e-12)
    assert sum(phi.values()) == pytest.approx(0.015, abs=1e-12)
    assert sum(phi.values()) == pytest.approx(Y["bs1-lr1-frac1"] - Y["bs0-lr0-frac0"], abs=1e-12)
    for w in shapley_contrasts(CELLS, FACTORS).values():
        assert sum(w.values()) == pytest.approx(0.0, abs=1e-12)


def test_effects_and_phi_equals_main_plus_three_way_over_three():
    eff = {name: _apply(w) for name, w in factorial_effects(CELLS, FACTORS).items()}
    assert eff["bs"] == pytest.approx(0.0115) and eff["lr"] == pytest.approx(0.0055)
    assert eff["frac"] == pytest.approx(-0.002) and eff["bs:lr"] == pytest.approx(0.003)
    assert eff["bs:frac"] == pytest.approx(0, abs=1e-12) and eff["bs:lr:frac"] == pytest.approx(0, abs=1e-12)
    # With -1/2,+1/2 coding the three-way interaction (difference of differences of differences)
    # enters each phi_i as I/12; in Yates' convention (contrast / 2^(k-1) = I/4) that is ABC/3,
    # the form quoted in STATISTICS.md.
    y3 = {k: Y[k] + 0.006 * v[0] * v[1] * v[2] for k, v in CELLS.items()}
    eff3 = {n: sum(w * y3[c] for c, w in ws.items()) for n, ws in factorial_effects(CELLS, FACTORS).items()}
    phi3 = {f: sum(w * y3[c] for c, w in ws.items()) for f, ws in shapley_contrasts(CELLS, FACTORS).items()}
    for f in FACTORS:
        assert phi3[f] == pytest.approx(eff3[f] + eff3["bs:lr:frac"] / 12, abs=1e-12)
        yates_abc = eff3["bs:lr:frac"] / 4
        assert phi3[f] == pytest.approx(eff3[f] + yates_abc / 3, abs=1e-12)
    assert eff3["bs:lr:frac"] == pytest.approx(0.006, abs=1e-12)


def test_variance_fractions():
    frac = variance_fractions(Y, CELLS, FACTORS)
    assert frac["bs"] == pytest.approx(.7837, abs=5e-5)
    assert frac["lr"] == pytest.approx(.1793, abs=5e-5)
    assert frac["frac"] == pytest.approx(.0237, abs=5e-5)
    assert frac["bs:lr"] == pytest.approx(.0133, abs=5e-5)
    assert sum(frac.values()) == pytest.approx(1.0)


def test_incomplete_design_rejected():
    with pytest.raises(ValueError, match="full 2"):
        shapley_contrasts({k: v for k, v in list(CELLS.items())[:7]}, FACTORS)
    with pytest.raises(ValueError, match="0/1"):
        factorial_effects({"a": (0, 2)}, ["x", "y"])
