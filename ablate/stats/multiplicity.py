"""Multiplicity adjustment for families of tests.

Convention used by the reports:

- confirmatory family: one test per factor on the macro-average across datasets -> Holm
  (controls the family-wise error rate, valid under any dependence);
- exploratory family: one test per factor per dataset -> Benjamini-Hochberg (controls the false
  discovery rate under independence or positive dependence; Benjamini-Yekutieli under any
  dependence, at a cost in power).

Note statsmodels' ``multipletests`` defaults to Holm-Sidak, not Holm; here the method is always named.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from ._validation import check_probability

_ALIASES = {"holm": "holm", "bonferroni": "bonferroni", "bh": "bh", "fdr_bh": "bh", "by": "by", "fdr_by": "by"}
KINDS = {"confirmatory": "holm", "exploratory": "bh"}


def _check_pvalues(pvalues: Any) -> np.ndarray:
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1 or p.size == 0:
        raise ValueError(f"pvalues must be a non-empty 1-D sequence, got shape {p.shape}")
    if not np.all(np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("pvalues must all be finite numbers in [0, 1] (no NaN)")
    return p


def adjust(pvalues: Sequence[float] | np.ndarray, method: str = "holm") -> np.ndarray:
    """Adjusted p-values, in input order, capped at 1 and monotone in the raw p-values.

    Reject hypothesis i at level alpha iff ``adjusted[i] <= alpha``.

    - ``"holm"`` (default): step-down Holm; FWER control under arbitrary dependence.
    - ``"bonferroni"``: p * m; FWER under arbitrary dependence.
    - ``"bh"`` / ``"fdr_bh"``: Benjamini-Hochberg step-up; FDR control for independent or
      positively dependent (PRDS) p-values.
    - ``"by"`` / ``"fdr_by"``: Benjamini-Yekutieli; FDR under arbitrary dependence.

    Assumes each p-value is valid (uniform or stochastically larger under its own null).
    """
    if method not in _ALIASES:
        raise ValueError(f"method must be one of {sorted(_ALIASES)}, got {method!r}")
    method = _ALIASES[method]
    p = _check_pvalues(pvalues)
    m = p.size
    if method == "bonferroni":
        return np.minimum(p * m, 1.0)
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    rank = np.arange(1, m + 1)
    if method == "holm":
        adj_sorted = np.maximum.accumulate(ranked * (m - rank + 1))
    else:
        scale = 1.0 if method == "bh" else float(np.sum(1.0 / rank))
        adj_sorted = np.minimum.accumulate((ranked * m * scale / rank)[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adj_sorted, 1.0)
    return out


@dataclass(frozen=True)
class Family:
    """A declared family of hypotheses: ``kind`` picks the default method (confirmatory -> Holm,
    exploratory -> Benjamini-Hochberg); ``method`` overrides it."""

    name: str
    kind: str = "confirmatory"
    method: str | None = None
    alpha: float = 0.05

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}, got {self.kind!r}")
        if self.method is not None and self.method not in _ALIASES:
            raise ValueError(f"method must be one of {sorted(_ALIASES)} or None, got {self.method!r}")
        check_probability("alpha", self.alpha)

    @property
    def resolved_method(self) -> str:
        return _ALIASES[self.method] if self.method is not None else KINDS[self.kind]

    def adjust(self, pvalues: Sequence[float] | np.ndarray, labels: Sequence[Any] | None = None) -> pl.DataFrame:
        """Table with columns family, kind, method, label, p_value, p_adjusted, reject (input order)."""
        p = _check_pvalues(pvalues)
        if labels is None:
            labels = [str(i) for i in range(p.size)]
        if len(labels) != p.size:
            raise ValueError(f"labels has {len(labels)} entries for {p.size} p-values")
        adj = adjust(p, self.resolved_method)
        return pl.DataFrame({
            "family": [self.name] * p.size,
            "kind": [self.kind] * p.size,
            "method": [self.resolved_method] * p.size,
            "label": [str(x) for x in labels],
            "p_value": p,
            "p_adjusted": adj,
            "reject": adj <= self.alpha,
        })
