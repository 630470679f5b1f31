"""Shared plumbing for result objects and score units.

Scores are stored and computed on the 0..1 scale (NDCG@10 = 0.4312). Reports show
"points" = score x 100 (43.12). Every public argument that takes points says so in
its name (``margin_points``); everything else is on the 0..1 scale.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

POINTS_PER_UNIT = 100.0
"""1 NDCG point = 0.01 on the 0..1 score scale."""


def points_to_score(points: float) -> float:
    """Convert NDCG points (0..100 scale) to the 0..1 score scale."""
    return float(points) / POINTS_PER_UNIT


def score_to_points(score: float) -> float:
    """Convert a 0..1 score (or difference of scores) to NDCG points."""
    return float(score) * POINTS_PER_UNIT


def _plain(value: Any) -> Any:
    # Reports serialise these dicts (JSON, polars rows); numpy scalars and tuples get in the way.
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, float) and math.isnan(value):
        return value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class ResultMixin:
    """``to_dict()`` for frozen result dataclasses; array-valued fields are left out."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            if isinstance(value, np.ndarray):
                continue
            out[field.name] = _plain(value)
        return out
