"""Power and minimum detectable effect, for query-level paired tests and the crossed design.

Units: ``delta`` and ``sd`` are in the same units (use the 0..1 score scale throughout: one NDCG
point is delta = 0.01). Power is computed from the noncentral t distribution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from ._results import ResultMixin
from ._validation import check_positive_int, check_probability
from .crossed import MIN_SEEDS_FOR_SEED_VARIANCE, VarianceComponents

DESIGNS = ("paired", "one-sample", "two-sample")
SIDES = ("two-sided", "one-sided")


@dataclass(frozen=True)
class PowerResult(ResultMixin):
    """Power calculation. ``n`` is queries (paired / one-sample), per-group size (two-sample) or
    queries (crossed; then ``n_seeds`` is seeds per config). ``n_required`` = ceil(n) when n was
    solved for. ``se`` is the SE of the estimate implied by the design."""

    design: str
    solved_for: str
    delta: float
    sd: float | None
    n: float
    power: float
    alpha: float
    alternative: str
    df: float
    ncp: float
    se: float
    strict: bool
    n_seeds: int | None = None
    n_required: int | None = None


def _nct_sf(x: float, df: float, ncp: float) -> float:
    p = float(stats.nct.sf(x, df, ncp))
    if not np.isfinite(p):
        # scipy's nct can return NaN far in the tails at huge df/ncp, where t is normal anyway
        p = float(stats.norm.sf(x - ncp))
    return p


def _power_from(ncp: float, df: float, alpha: float, alternative: str, strict: bool) -> float:
    if alternative == "one-sided":
        return _nct_sf(stats.t.ppf(1 - alpha, df), df, ncp)
    crit = stats.t.ppf(1 - alpha / 2, df)
    p = _nct_sf(crit, df, ncp)
    if strict:
        p += 1.0 - _nct_sf(-crit, df, ncp)
    return float(p)


def _df_ncp_se(design: str, delta: float, sd: float, n: float) -> tuple[float, float, float]:
    if design == "two-sample":
        se = sd * math.sqrt(2.0 / n)
        return 2.0 * (n - 1.0), delta / se, se
    se = sd / math.sqrt(n)
    return n - 1.0, delta / se, se


def power_t(
    *,
    delta: float | None = None,
    sd: float = 1.0,
    n: float | None = None,
    power: float | None = None,
    alpha: float = 0.05,
    design: str = "paired",
    alternative: str = "two-sided",
    strict: bool = True,
) -> PowerResult:
    """Power of a t test, or the ``n`` / ``delta`` (minimum detectable effect) that gives ``power``.

    Exactly one of ``delta``, ``n``, ``power`` must be None; it is solved for (like R's
    ``power.t.test``). ``design="paired"`` (= ``"one-sample"``): n queries, sd = SD of per-query
    differences, ncp = delta sqrt(n) / sd, df n - 1. ``"two-sample"``: n per group, equal
    variances, ncp = delta sqrt(n/2) / sd, df 2(n - 1).

    The test's H0 is delta = 0; it assumes independent observations and approximately normal
    mean differences. ``strict=True`` (default, as statsmodels) counts rejections in both tails of
    a two-sided test; ``strict=False`` counts only the tail of the effect, as R's default.
    ``alternative`` is "two-sided" or "one-sided".
    """
    if design not in DESIGNS:
        raise ValueError(f"design must be one of {DESIGNS}, got {design!r}")
    if alternative not in SIDES:
        raise ValueError(f"alternative must be one of {SIDES}, got {alternative!r}")
    alpha = check_probability("alpha", alpha)
    missing = [name for name, v in (("delta", delta), ("n", n), ("power", power)) if v is None]
    if len(missing) != 1:
        raise ValueError(f"exactly one of delta, n, power must be None (it is solved for); got None for {missing}")
    if not (sd > 0 and np.isfinite(sd)):
        raise ValueError(f"sd must be a positive number, got {sd!r}")
    if n is not None and not n > 1:
        raise ValueError(f"n must be > 1, got {n!r}")
    if power is not None:
        power = check_probability("power", power)
        if power <= alpha / (2 if alternative == "two-sided" else 1):
            raise ValueError(f"power must exceed the test's size ({alpha}), got {power}")
    if delta is not None and not (delta > 0 and np.isfinite(delta)):
        raise ValueError(f"delta must be a positive number (effect to detect), got {delta!r}")

    def pw(d: float, size: float) -> float:
        df, ncp, _ = _df_ncp_se(design, d, sd, size)
        return _power_from(ncp, df, alpha, alternative, strict)

    solved = missing[0]
    if solved == "power":
        power = pw(delta, n)
    elif solved == "n":
        if pw(delta, 2.0) >= power:
            raise ValueError(f"delta={delta} is detected with power >= {power} already at n = 2; nothing to solve")
        hi = 4.0
        while pw(delta, hi) < power:
            hi *= 2.0
        n = optimize.brentq(lambda x: pw(delta, x) - power, 2.0, hi, xtol=1e-10, rtol=1e-14)
    else:
        delta = optimize.brentq(lambda x: pw(x, n) - power, sd * 1e-9, sd * 1e4, xtol=1e-14 * sd, rtol=1e-14)
    df, ncp, se = _df_ncp_se(design, delta, sd, n)
    return PowerResult(
        design=design, solved_for=solved, delta=float(delta), sd=float(sd), n=float(n), power=float(power),
        alpha=alpha, alternative=alternative, df=df, ncp=ncp, se=se, strict=strict,
        n_required=math.ceil(n - 1e-9) if solved == "n" else None,
    )


def queries_needed(delta: float, sd_diff: float, *, power: float = 0.8, alpha: float = 0.05) -> int:
    """Queries needed for a two-sided paired t at ``alpha`` to detect ``delta`` with ``power``
    (same assumptions as :func:`power_t`). E.g. 1 point (0.01) with sd_diff 0.10 -> 787."""
    return power_t(delta=delta, sd=sd_diff, power=power, alpha=alpha).n_required  # type: ignore[return-value]


# --------------------------------------------------------------------------- crossed design


def _crossed_terms(c: VarianceComponents, S: int, Q: int) -> list[tuple[float, float]]:
    """Expected mean-square terms of the crossed contrast estimator, for Satterthwaite df."""
    per_config = c.sum_w2 / c.n_weighted_configs
    terms = [((c.query_var + c.sum_w2 * c.interaction_var / S) / Q, Q - 1.0)]
    terms += [(per_config * (c.seed_var + c.interaction_var / Q) / S, S - 1.0)] * c.n_weighted_configs
    terms += [(-per_config * c.interaction_var / (S * Q), (S - 1.0) * (Q - 1.0))] * c.n_weighted_configs
    return terms


def _crossed_se_df(c: VarianceComponents, S: int, Q: int) -> tuple[float, float]:
    terms = _crossed_terms(c, S, Q)
    var = sum(t for t, _ in terms)
    denom = sum(t * t / df for t, df in terms if t != 0)
    return math.sqrt(max(var, 0.0)), (var * var / denom if denom > 0 else float("inf"))


def _check_components(components: VarianceComponents) -> VarianceComponents:
    if not isinstance(components, VarianceComponents):
        raise ValueError("components must be a VarianceComponents (see ablate.stats.variance_components)")
    return components


def power_crossed(
    delta: float,
    components: VarianceComponents,
    *,
    n_seeds: int,
    n_queries: int | None = None,
    alpha: float = 0.05,
    alternative: str = "two-sided",
) -> PowerResult:
    """Power of the crossed contrast test (:func:`ablate.stats.contrast`) to detect ``delta``.

    H0 of the planned test: the contrast is 0 over new queries and seeds. Uses Var(L) =
    query_var/Q + sum_w2 (seed_var/S + interaction_var/(S Q)) with S = ``n_seeds`` per config and
    Q = ``n_queries`` (default: the study's), the expected-mean-square Satterthwaite df, and a
    noncentral t with ncp = delta / SE. Assumes the components (estimated, e.g. by
    :func:`ablate.stats.variance_components`) hold for the planned study and that queries are
    added in the same proportions across datasets.
    """
    c = _check_components(components)
    S = check_positive_int("n_seeds", n_seeds, minimum=2)
    Q = check_positive_int("n_queries", n_queries if n_queries is not None else c.n_queries, minimum=2)
    alpha = check_probability("alpha", alpha)
    if alternative not in SIDES:
        raise ValueError(f"alternative must be one of {SIDES}, got {alternative!r}")
    if not (delta > 0 and np.isfinite(delta)):
        raise ValueError(f"delta must be a positive number on the 0..1 scale (0.01 = 1 point), got {delta!r}")
    se, df = _crossed_se_df(c, S, Q)
    ncp = delta / se if se > 0 else float("inf")
    p = 1.0 if se == 0 else _power_from(ncp, df, alpha, alternative, strict=True)
    return PowerResult(
        design="crossed", solved_for="power", delta=float(delta), sd=None, n=float(Q), power=p, alpha=alpha,
        alternative=alternative, df=df, ncp=ncp, se=se, strict=True, n_seeds=S,
    )


def seeds_needed(
    delta: float,
    components: VarianceComponents,
    *,
    power: float = 0.8,
    n_queries: int | None = None,
    alpha: float = 0.05,
    max_seeds: int = 1000,
) -> int | None:
    """Smallest seeds per config (>= 3, the minimum for the crossed test) reaching ``power`` for
    ``delta`` with ``n_queries`` queries; None if even ``max_seeds`` is not enough (e.g. the
    query term alone is too large: add queries). Assumptions as :func:`power_crossed`."""
    power = check_probability("power", power)
    for S in range(MIN_SEEDS_FOR_SEED_VARIANCE, check_positive_int("max_seeds", max_seeds, minimum=3) + 1):
        if power_crossed(delta, components, n_seeds=S, n_queries=n_queries, alpha=alpha).power >= power:
            return S
    return None


def mde_crossed(
    components: VarianceComponents,
    *,
    n_seeds: int,
    n_queries: int | None = None,
    power: float = 0.8,
    alpha: float = 0.05,
) -> float:
    """Minimum detectable effect (0..1 scale) of the crossed test at ``power`` (two-sided).
    Assumptions as :func:`power_crossed`."""
    power = check_probability("power", power)
    c = _check_components(components)
    Q = n_queries if n_queries is not None else c.n_queries
    se, _ = _crossed_se_df(c, n_seeds, Q)
    if se == 0:
        return 0.0
    return float(optimize.brentq(
        lambda d: power_crossed(d, c, n_seeds=n_seeds, n_queries=Q, alpha=alpha).power - power,
        se * 1e-6, se * 1e3, xtol=se * 1e-12,
    ))
