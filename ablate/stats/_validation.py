"""Argument checks shared by the public functions: one clear ValueError per problem."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

ALTERNATIVES = ("two-sided", "greater", "less")


def check_alternative(alternative: str) -> str:
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")
    return alternative


def check_probability(name: str, value: float, *, open_interval: bool = True) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}") from None
    if not (0.0 < value < 1.0) and open_interval:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    return value


def check_positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer (it is recorded in the result), got {seed!r}")
    return int(seed)


def _as_scores_and_ids(
    name: str, x: Any, ids: Sequence[Any] | None, query_col: str, score_col: str
) -> tuple[np.ndarray, list[Any] | None]:
    """Split one side of a paired comparison into (float scores, ids or None)."""
    if isinstance(x, pl.DataFrame):
        if ids is not None:
            raise ValueError(f"ids_{name} must be None when {name} is a DataFrame (ids come from column {query_col!r})")
        missing = [c for c in (query_col, score_col) if c not in x.columns]
        if missing:
            raise ValueError(
                f"{name} is a DataFrame without column(s) {missing}; expected columns {query_col!r} and {score_col!r}"
            )
        return x.get_column(score_col).to_numpy(), x.get_column(query_col).to_list()
    if isinstance(x, Mapping):
        if ids is not None:
            raise ValueError(f"ids_{name} must be None when {name} is a mapping (its keys are the query ids)")
        return np.asarray(list(x.values())), list(x.keys())
    if isinstance(x, pl.Series):
        values = x.to_numpy()
    else:
        values = np.asarray(x)
    return values, (list(ids) if ids is not None else None)


def aligned_differences(
    a: Any,
    b: Any,
    ids_a: Sequence[Any] | None = None,
    ids_b: Sequence[Any] | None = None,
    *,
    query_col: str = "query",
    score_col: str = "score",
    min_n: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (a, b) as float64 vectors after checking they are aligned query by query.

    Never realigns: ids must be identical and in the same order, else ValueError.
    """
    va, ia = _as_scores_and_ids("a", a, ids_a, query_col, score_col)
    vb, ib = _as_scores_and_ids("b", b, ids_b, query_col, score_col)
    for name, v in (("a", va), ("b", vb)):
        if v.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional (one score per query), got shape {v.shape}")
        if not (np.issubdtype(v.dtype, np.number) or v.dtype == bool):
            raise ValueError(f"{name} must hold numeric scores, got dtype {v.dtype}")
    if len(va) != len(vb):
        raise ValueError(f"a and b must score the same queries: got {len(va)} and {len(vb)} scores")
    if (ia is None) != (ib is None):
        raise ValueError("query ids given for only one side: pass ids for both a and b, or for neither")
    if ia is not None and ib is not None:
        for name, ids, v in (("a", ia, va), ("b", ib, vb)):
            if len(ids) != len(v):
                raise ValueError(f"ids_{name} has {len(ids)} ids for {len(v)} scores")
            if len(set(ids)) != len(ids):
                raise ValueError(f"query ids of {name} contain duplicates; each query must appear once")
        if ia != ib:
            pos = next(i for i, (x, y) in enumerate(zip(ia, ib)) if x != y)
            raise ValueError(
                f"query ids of a and b differ at position {pos} ({ia[pos]!r} vs {ib[pos]!r}); "
                "align both runs on the same query order first (a missing query scores 0, trec_eval -c)"
            )
    va = va.astype(np.float64)
    vb = vb.astype(np.float64)
    for name, v in (("a", va), ("b", vb)):
        bad = ~np.isfinite(v)
        if bad.any():
            raise ValueError(
                f"{name} contains {int(bad.sum())} NaN/inf score(s) (first at position {int(np.argmax(bad))}); "
                "score missing queries as 0 upstream"
            )
    if len(va) < min_n:
        raise ValueError(f"a and b need at least {min_n} queries, got {len(va)}")
    return va, vb
