"""Synthetic crossed studies with known truth, for checking the engine (tests, bench, planning).

Scores follow the model the crossed analysis assumes, with Gaussian terms and no clipping to
0..1: y[k,c,s,q] = mu[c] + u[k,q] + (cu)[k,c,q] + v[c,s] + e[k,c,s,q]. The seed effect v is
shared by a run across datasets (one trained model scored on every dataset).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np

from ._validation import check_positive_int, check_seed
from .design import CrossedDesign


def simulate_design(
    config_means: Mapping[Hashable, float],
    *,
    n_seeds: int,
    n_queries: int | Mapping[Hashable, int],
    sd_query: float = 0.25,
    sd_config_query: float = 0.08,
    sd_seed: float = 0.01,
    sd_interaction: float = 0.08,
    seed: int = 0,
) -> CrossedDesign:
    """Draw one study. ``n_queries`` is an int (one dataset) or dataset -> count. SDs are on the
    0..1 scale: ``sd_seed=0.01`` is a seed-to-seed spread of 1 NDCG point in a run's mean."""
    n_seeds = check_positive_int("n_seeds", n_seeds)
    rng = np.random.default_rng(check_seed(seed))
    per_dataset = {"(all)": n_queries} if isinstance(n_queries, (int, np.integer)) else dict(n_queries)
    configs = list(config_means)
    seed_effects = {c: rng.normal(0.0, sd_seed, n_seeds) for c in configs}
    arrays: dict[Hashable, dict[Hashable, np.ndarray]] = {}
    for k, Q in per_dataset.items():
        Q = check_positive_int("n_queries", Q, minimum=2)
        u = rng.normal(0.0, sd_query, Q)
        arrays[k] = {}
        for c in configs:
            cu = rng.normal(0.0, sd_config_query, Q)
            e = rng.normal(0.0, sd_interaction, (n_seeds, Q))
            arrays[k][c] = config_means[c] + u + cu + seed_effects[c][:, None] + e
    return CrossedDesign.from_arrays(arrays)
