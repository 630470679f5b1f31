"""Query-level paired tests of two fixed runs scored on the same queries.

These answer "does model b score higher than model a on new queries from this
population". The models (training runs) are treated as fixed, so training-seed noise is
*not* in the error: do not use them for claims about configurations; use
:func:`ablate.stats.contrast` for those.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats

from . import _resampling
from ._results import ResultMixin
from ._validation import (
    aligned_differences,
    check_alternative,
    check_positive_int,
    check_probability,
    check_seed,
)

PairedTest = Literal["t", "randomization", "wilcoxon", "sign", "bootstrap"]
TESTS: tuple[str, ...] = ("t", "randomization", "wilcoxon", "sign", "bootstrap")
ZERO_METHODS = ("wilcox", "pratt", "zsplit")

NULL_HYPOTHESES = {
    "t": "E[b - a] = 0 over the population of queries (the two fixed models score equally on average)",
    "randomization": (
        "b - a is symmetric about 0 for every query (labels a/b exchangeable within each query); "
        "statistic: mean(b - a)"
    ),
    "wilcoxon": (
        "b - a is symmetric about 0 (a median / pseudo-median null, not a null about the mean)"
    ),
    "sign": "P(b > a) = P(b < a) among untied queries (median of b - a is 0; not a null about the mean)",
    "bootstrap": "E[b - a] = 0; sampling distribution of the mean approximated by resampling queries",
}


@dataclass(frozen=True)
class PairedResult(ResultMixin):
    """Outcome of :func:`paired`. Scores and differences are on the 0..1 scale.

    ``estimate`` is always mean(b - a) and ``ci_low``/``ci_high`` a two-sided interval for it,
    whatever the test; ``ci_method`` says how it was obtained. ``B``/``seed`` are set for
    resampling tests (for exact enumeration ``B`` = 2**n and ``seed`` is None).
    """

    test: str
    estimate: float
    ci_low: float
    ci_high: float
    ci_method: str
    p_value: float
    statistic: float
    statistic_name: str
    df: float | None
    effect_size_dz: float
    n: int
    wins: int
    ties: int
    losses: int
    alternative: str
    confidence: float
    null_hypothesis: str
    method: str
    B: int | None = None
    seed: int | None = None
    p_value_mc_se: float | None = None


def _t_interval(d: np.ndarray, confidence: float) -> tuple[float, float, float, float, float]:
    """(mean, sd, t statistic, ci_low, ci_high) of the one-sample t on d."""
    n = d.shape[0]
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    se = sd / np.sqrt(n)
    if se == 0.0:
        t_stat = 0.0 if mean == 0.0 else float(np.sign(mean) * np.inf)
        return mean, sd, t_stat, mean, mean
    t_stat = mean / se
    half = stats.t.ppf(0.5 + confidence / 2.0, n - 1) * se
    return mean, sd, float(t_stat), float(mean - half), float(mean + half)


def _t_p_value(t_stat: float, df: float, alternative: str) -> float:
    if np.isnan(t_stat):
        return 1.0
    if alternative == "greater":
        return float(stats.t.sf(t_stat, df))
    if alternative == "less":
        return float(stats.t.cdf(t_stat, df))
    return float(min(1.0, 2.0 * stats.t.sf(abs(t_stat), df)))


def _tail_count(null_values: np.ndarray, observed: float, alternative: str, tol: float) -> int:
    # tol makes resampled values that equal the observed one up to rounding count as "as extreme"
    if alternative == "greater":
        return int(np.count_nonzero(null_values >= observed - tol))
    if alternative == "less":
        return int(np.count_nonzero(null_values <= observed + tol))
    return int(np.count_nonzero(np.abs(null_values) >= abs(observed) - tol))


def _signed_rank_plus(d: np.ndarray, zero_method: str) -> float:
    """Wilcoxon W+ (R's V): sum of ranks of |b - a| belonging to positive differences."""
    if zero_method == "wilcox":
        d = d[d != 0]
    ranks = stats.rankdata(np.abs(d))
    w_plus = ranks[d > 0].sum()
    if zero_method == "zsplit":
        w_plus += ranks[d == 0].sum() / 2.0
    return float(w_plus)


def paired(
    a: Any,
    b: Any,
    test: PairedTest = "t",
    *,
    alternative: str = "two-sided",
    confidence: float = 0.95,
    B: int = 10_000,
    seed: int = 0,
    exact: bool | None = None,
    zero_method: str = "wilcox",
    ids_a: Sequence[Any] | None = None,
    ids_b: Sequence[Any] | None = None,
    query_col: str = "query",
    score_col: str = "score",
) -> PairedResult:
    """Paired comparison of run ``b`` against run ``a`` on the same queries.

    Inputs: two aligned per-query score vectors (numpy arrays, lists, polars Series), or
    query-keyed inputs: mappings ``{query_id: score}``, polars DataFrames with columns
    ``query_col``/``score_col``, or vectors plus ``ids_a``/``ids_b``. Query ids must match
    exactly and in the same order; nothing is realigned silently. NaN/inf raise.

    Estimate: mean(b - a). ``alternative="greater"`` means b scores higher than a.

    Tests (``test``):

    - ``"t"`` (default) -- paired t. H0: E[b - a] = 0. Assumes queries are independent draws;
      relies on the CLT for the mean difference (fine at hundreds of queries), not on normality
      of individual differences. CI: t interval.
    - ``"randomization"`` -- sign-flip randomization test of mean(b - a). H0: each difference is
      symmetric about 0 (a and b exchangeable within each query). Exact enumeration of all
      2**n sign patterns when n <= 20 (or ``exact=True``), else ``B`` Monte-Carlo sign patterns
      with p = (k + 1) / (B + 1) (never 0). ``seed`` and ``B`` are recorded; the Monte-Carlo SE
      of p is reported. CI: t interval.
    - ``"wilcoxon"`` -- Wilcoxon signed-rank (scipy). H0: differences symmetric about 0; this is a
      median/pseudo-median null and over-rejects for a mean null at large n when the differences
      are skewed. Zeros: ``zero_method="wilcox"`` (default, as R) drops zero differences;
      ``"pratt"`` ranks them then drops them; ``"zsplit"`` splits their ranks between signs.
      Exact null distribution when there are no zeros or tied |differences| and n <= 50,
      otherwise the normal approximation with tie correction and no continuity correction.
      ``statistic`` is W+ (R's V). CI: t interval for the mean.
    - ``"sign"`` -- exact binomial sign test on wins vs losses; ties dropped. H0: P(b > a) =
      P(b < a). ``statistic`` = wins. CI: t interval for the mean.
    - ``"bootstrap"`` -- paired bootstrap over queries (``B`` resamples, ``seed``). CI: percentile
      interval of the resampled means. p: null-shifted bootstrap, (k + 1) / (B + 1). H0: E[b - a] = 0.

    Intervals are always two-sided at ``confidence`` regardless of ``alternative``.
    ``effect_size_dz`` = mean(b - a) / sd(b - a) (Cohen's d_z, sd with ddof=1).
    """
    if test not in TESTS:
        raise ValueError(f"test must be one of {TESTS}, got {test!r}")
    check_alternative(alternative)
    confidence = check_probability("confidence", confidence)
    if zero_method not in ZERO_METHODS:
        raise ValueError(f"zero_method must be one of {ZERO_METHODS}, got {zero_method!r}")
    va, vb = aligned_differences(a, b, ids_a, ids_b, query_col=query_col, score_col=score_col)
    d = vb - va
    n = int(d.shape[0])
    wins, losses = int(np.count_nonzero(d > 0)), int(np.count_nonzero(d < 0))
    ties = n - wins - losses
    mean, sd, t_stat, ci_low, ci_high = _t_interval(d, confidence)
    dz = mean / sd if sd > 0 else (0.0 if mean == 0 else float(np.sign(mean) * np.inf))
    common = dict(
        estimate=mean,
        effect_size_dz=float(dz),
        n=n,
        wins=wins,
        ties=ties,
        losses=losses,
        alternative=alternative,
        confidence=confidence,
        null_hypothesis=NULL_HYPOTHESES[test],
        test=test,
    )

    if test == "t":
        return PairedResult(
            ci_low=ci_low, ci_high=ci_high, ci_method="t", p_value=_t_p_value(t_stat, n - 1, alternative),
            statistic=t_stat, statistic_name="t", df=float(n - 1), method="paired t", **common,
        )

    if test == "randomization":
        if exact is None:
            exact = n <= _resampling.MAX_EXACT_N
        if exact and n > _resampling.MAX_EXACT_N:
            raise ValueError(f"exact=True enumerates 2**n sign patterns and needs n <= {_resampling.MAX_EXACT_N}, got n = {n}")
        tol = 1e-9 * float(np.abs(d).sum())
        observed = float(d.sum())
        if exact:
            sums = _resampling.all_sign_flip_sums(d)
            k = _tail_count(sums, observed, alternative, tol)
            p = k / sums.shape[0]
            return PairedResult(
                ci_low=ci_low, ci_high=ci_high, ci_method="t", p_value=float(p), statistic=mean,
                statistic_name="mean(b - a)", df=None,
                method=f"sign-flip randomization, exact enumeration of 2^{n} patterns",
                B=int(sums.shape[0]), seed=None, p_value_mc_se=0.0, **common,
            )
        B = check_positive_int("B", B)
        seed = check_seed(seed)
        sums = _resampling.sign_flip_sums(d, B, np.random.default_rng(seed))
        k = _tail_count(sums, observed, alternative, tol)
        p = (k + 1) / (B + 1)
        return PairedResult(
            ci_low=ci_low, ci_high=ci_high, ci_method="t", p_value=float(p), statistic=mean,
            statistic_name="mean(b - a)", df=None,
            method=f"sign-flip randomization, Monte-Carlo with B={B}, p=(k+1)/(B+1)",
            B=B, seed=seed, p_value_mc_se=float(np.sqrt(p * (1 - p) / B)), **common,
        )

    if test == "wilcoxon":
        w_plus = _signed_rank_plus(d, zero_method)
        nonzero = d[d != 0]
        if nonzero.size == 0:
            p, how = 1.0, "all differences are zero"
        else:
            has_ties = np.unique(np.abs(nonzero)).size < nonzero.size
            use_exact = nonzero.size == n and not has_ties and n <= 50
            how = "exact" if use_exact else "normal approximation (tie-corrected, no continuity correction)"
            res = stats.wilcoxon(
                d, zero_method=zero_method, alternative=alternative, method="exact" if use_exact else "approx"
            )
            p = float(res.pvalue)
        return PairedResult(
            ci_low=ci_low, ci_high=ci_high, ci_method="t (for the mean)", p_value=p, statistic=w_plus,
            statistic_name="W+ (sum of ranks of positive b - a)", df=None,
            method=f"Wilcoxon signed-rank, zero_method={zero_method}, {how}", **common,
        )

    if test == "sign":
        untied = wins + losses
        p = 1.0 if untied == 0 else float(stats.binomtest(wins, untied, 0.5, alternative=alternative).pvalue)
        return PairedResult(
            ci_low=ci_low, ci_high=ci_high, ci_method="t (for the mean)", p_value=p, statistic=float(wins),
            statistic_name="wins (b > a)", df=None,
            method=f"exact binomial sign test, {ties} ties dropped", **common,
        )

    # bootstrap
    B = check_positive_int("B", B)
    seed = check_seed(seed)
    means = _resampling.bootstrap_means(d, B, np.random.default_rng(seed))
    lo, hi = _resampling.percentile_interval(means, confidence)
    tol = 1e-9 * float(np.abs(d).mean())
    k = _tail_count(means - mean, mean, alternative, tol)
    p = (k + 1) / (B + 1)
    return PairedResult(
        ci_low=lo, ci_high=hi, ci_method="bootstrap percentile", p_value=float(p), statistic=mean,
        statistic_name="mean(b - a)", df=None,
        method=f"paired bootstrap over queries, B={B}, null-shifted p=(k+1)/(B+1)",
        B=B, seed=seed, p_value_mc_se=float(np.sqrt(p * (1 - p) / B)), **common,
    )
