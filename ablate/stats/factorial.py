"""Exact attribution in a two-level full factorial design, as linear contrasts of cell means.

Each factor has a "low" level 0 (the paper) and a "high" level 1 (the reproduction). The
returned weight mappings plug straight into :func:`ablate.stats.contrast` (crossed SE) and
:func:`ablate.stats.two_way_bootstrap` (ratios such as shares phi_i / sum phi).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Mapping, Sequence



def _check_cells(cells: Mapping[Hashable, Sequence[int]], factors: Sequence[str]) -> dict[tuple[int, ...], Hashable]:
    k = len(factors)
    if k == 0 or len(set(factors)) != k:
        raise ValueError(f"factors must be a non-empty list of distinct names, got {list(factors)}")
    by_levels: dict[tuple[int, ...], Hashable] = {}
    for config, levels in cells.items():
        lv = tuple(int(x) for x in levels)
        if len(lv) != k or any(x not in (0, 1) for x in lv):
            raise ValueError(f"cells[{config!r}] must be {k} levels of 0/1 (one per factor {list(factors)}), got {levels!r}")
        if lv in by_levels:
            raise ValueError(f"configs {by_levels[lv]!r} and {config!r} have the same levels {lv}")
        by_levels[lv] = config
    if len(by_levels) != 2**k:
        raise ValueError(f"a full 2^{k} factorial needs {2**k} cells, got {len(by_levels)}")
    return by_levels


def _effect_name(factors: Sequence[str], subset: tuple[int, ...]) -> str:
    return ":".join(factors[i] for i in subset)


def factorial_effects(cells: Mapping[Hashable, Sequence[int]], factors: Sequence[str]) -> dict[str, dict[Hashable, float]]:
    """Weights of every main effect and interaction, coding levels -1/2 and +1/2.

    A main effect is the difference of marginal means (high minus low); a two-factor interaction
    the difference of differences, averaged over the other factors; and so on (the regression
    coefficients of the -1/2,+1/2-coded model). Names: "bs", "bs:lr", ... in the order of
    ``factors``. These are estimands, not tests.

    Convention note: Yates' convention divides every contrast by 2^(k-1), which halves a
    two-factor interaction and quarters a three-factor one relative to these values. In a 2^3
    design phi_i = main_i + I_3/12 with I_3 as returned here, i.e. main_i + ABC_Yates/3.
    """
    by_levels = _check_cells(cells, factors)
    k = len(factors)
    out: dict[str, dict[Hashable, float]] = {}
    for order in range(1, k + 1):
        for subset in itertools.combinations(range(k), order):
            scale = 4.0**order / 2.0**k
            out[_effect_name(factors, subset)] = {
                config: scale * math.prod(lv[i] - 0.5 for i in subset) for lv, config in by_levels.items()
            }
    return out


def shapley_contrasts(cells: Mapping[Hashable, Sequence[int]], factors: Sequence[str]) -> dict[str, dict[Hashable, float]]:
    """Weights of each factor's Shapley value for the gain from all-low to all-high.

    phi_i averages factor i's marginal contribution over every order of switching factors from
    0 to 1; sum_i phi_i = y(1,...,1) - y(0,...,0) exactly. Each phi_i is a linear contrast of cell
    means, so :func:`ablate.stats.contrast` gives its crossed SE.
    """
    by_levels = _check_cells(cells, factors)
    k = len(factors)
    out: dict[str, dict[Hashable, float]] = {}
    for i, name in enumerate(factors):
        w = {config: 0.0 for config in by_levels.values()}
        others = [j for j in range(k) if j != i]
        for size in range(k):
            coef = math.factorial(size) * math.factorial(k - size - 1) / math.factorial(k)
            for subset in itertools.combinations(others, size):
                without = tuple(1 if j in subset else 0 for j in range(k))
                with_i = tuple(1 if (j in subset or j == i) else 0 for j in range(k))
                w[by_levels[with_i]] += coef
                w[by_levels[without]] -= coef
        out[name] = w
    return out


def variance_fractions(
    cell_means: Mapping[Hashable, float], cells: Mapping[Hashable, Sequence[int]], factors: Sequence[str]
) -> dict[str, float]:
    """Share of the between-cell variance of the 2^k table carried by each effect (exact ANOVA
    decomposition of a balanced two-level design; shares sum to 1)."""
    effects = factorial_effects(cells, factors)
    missing = [c for c in cells if c not in cell_means]
    if missing:
        raise ValueError(f"cell_means lacks config(s) {missing}")
    ss = {}
    for name, w in effects.items():
        order = name.count(":") + 1
        coef = sum(w[c] * float(cell_means[c]) for c in w)  # regression coefficient in -1/2,+1/2 coding
        ss[name] = len(cells) * (coef / 2.0**order) ** 2
    total = sum(ss.values())
    if total == 0:
        raise ValueError("all cell means are equal; variance fractions are undefined")
    return {name: float(v / total) for name, v in ss.items()}
