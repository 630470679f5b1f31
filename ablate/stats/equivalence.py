"""Equivalence testing (TOST): the evidence for "this factor does not matter".

Margins are given in NDCG points (``margin_points=1.0`` = 0.01 on the 0..1 score scale);
estimates, intervals and the margin in the result are on the 0..1 scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from ._results import ResultMixin, points_to_score
from ._validation import aligned_differences, check_probability
from .crossed import ContrastResult


@dataclass(frozen=True)
class EquivalenceResult(ResultMixin):
    """Two one-sided tests against +-margin. ``equivalent`` iff ``p_value`` (the larger of the
    two one-sided p-values) <= alpha, i.e. the (1 - 2 alpha) CI lies inside (-margin, +margin)."""

    estimate: float
    se: float
    df: float
    margin: float
    margin_points: float
    ci_low: float
    ci_high: float
    p_lower: float
    p_upper: float
    p_value: float
    equivalent: bool
    alpha: float
    method: str
    null_hypothesis: str


def _tost(estimate: float, se: float, df: float, margin: float, alpha: float, method: str, margin_points: float):
    if se > 0:
        p_lower = float(stats.t.sf((estimate + margin) / se, df))  # H0: L <= -margin
        p_upper = float(stats.t.cdf((estimate - margin) / se, df))  # H0: L >= +margin
        half = float(stats.t.ppf(1 - alpha, df) * se)
    else:
        p_lower = 0.0 if estimate > -margin else 1.0
        p_upper = 0.0 if estimate < margin else 1.0
        half = 0.0
    p = max(p_lower, p_upper)
    return EquivalenceResult(
        estimate=float(estimate), se=float(se), df=float(df), margin=margin, margin_points=margin_points,
        ci_low=estimate - half, ci_high=estimate + half, p_lower=p_lower, p_upper=p_upper, p_value=p,
        equivalent=bool(p <= alpha), alpha=alpha, method=method,
        null_hypothesis=f"|effect| >= margin ({margin_points:g} points = {margin:g} on the 0..1 scale)",
    )


def tost(
    a: Any,
    b: Any = None,
    *,
    margin_points: float = 1.0,
    alpha: float = 0.05,
    ids_a: Sequence[Any] | None = None,
    ids_b: Sequence[Any] | None = None,
) -> EquivalenceResult:
    """Equivalence test (two one-sided t tests) with margin ``margin_points`` NDCG points.

    H0: |effect| >= margin; rejecting it (``equivalent=True``) supports "the effect is smaller
    than the margin". The (1 - 2 alpha) CI (90% at alpha 0.05) is reported.

    Two forms:

    - ``tost(a, b)`` -- query level: paired differences b - a of two fixed runs (aligned as in
      :func:`ablate.stats.paired`), t with n - 1 df. Ignores seed variance: about these runs only.
    - ``tost(contrast_result)`` -- crossed: uses a :class:`ContrastResult`'s estimate, SE and
      Satterthwaite df, so it covers query and seed variance (a configuration-level claim, as
      long as the contrast did not fall back to query-only; check its ``warning``).
    """
    alpha = check_probability("alpha", alpha)
    if alpha >= 0.5:
        raise ValueError(f"alpha must be in (0, 0.5) for TOST (its CI has level 1 - 2 alpha), got {alpha}")
    try:
        margin_points = float(margin_points)
    except (TypeError, ValueError):
        raise ValueError(f"margin_points must be a positive number of NDCG points, got {margin_points!r}") from None
    if not (margin_points > 0 and np.isfinite(margin_points)):
        raise ValueError(f"margin_points must be a positive number of NDCG points (1.0 = 0.01 score), got {margin_points!r}")
    margin = points_to_score(margin_points)
    if isinstance(a, ContrastResult):
        if b is not None or ids_a is not None or ids_b is not None:
            raise ValueError("tost(contrast_result) takes no b/ids_a/ids_b")
        return _tost(a.estimate, a.se, a.df, margin, alpha, f"TOST on contrast ({a.method})", margin_points)
    if b is None:
        raise ValueError("tost needs either two aligned score vectors (a, b) or one ContrastResult")
    va, vb = aligned_differences(a, b, ids_a, ids_b)
    d = vb - va
    n = d.shape[0]
    return _tost(float(d.mean()), float(d.std(ddof=1) / np.sqrt(n)), float(n - 1), margin, alpha,
                 "TOST on paired query differences (runs fixed)", margin_points)
