"""ablate.stats -- the statistics behind every ablation report.

Pick the analysis by the claim being made, because the claim decides what is random:

* "Model b beats model a on new queries" -- the two trained runs are fixed, only the queries
  are a sample. Use :func:`paired` (paired t by default; sign-flip randomization as a
  robustness check; Wilcoxon and sign tests only on request, since they test a median /
  symmetry null rather than the mean).
* "Configuration B trains better models than configuration A" -- what an ablation attributes.
  Both the queries and the training seeds are samples, and they are crossed (every run is
  scored on every query). Use :func:`contrast`: its SE combines query, seed and seed x query
  variance (closed-form variance components, Satterthwaite df), per dataset or on the macro
  average (:func:`contrast_by_dataset` gives both). A per-query test of one pair of runs
  ignores seed-to-seed spread and, at thousands of queries, rejects a true null far more often
  than its nominal rate. For nonlinear quantities (shares of a gain), use
  :func:`two_way_bootstrap`, which resamples queries once for all runs and seeds within configs.
* "This factor does not matter" -- not a failed test but an equivalence test: :func:`tost`
  with a margin in NDCG points.
* Several claims at once -- :func:`adjust` / :class:`Family`: Holm for the confirmatory family
  (each factor on the macro average), Benjamini-Hochberg for the exploratory one (each factor
  on each dataset).
* Planning -- :func:`power_t` / :func:`queries_needed` for query-level tests,
  :func:`variance_components` + :func:`power_crossed` / :func:`seeds_needed` /
  :func:`mde_crossed` for seeds and queries in the crossed design.
* Attribution in a 2^k design -- :func:`factorial_effects`, :func:`shapley_contrasts`,
  :func:`variance_fractions` build the contrast weights.

Units: scores live on the 0..1 scale everywhere (estimates, SEs, CIs, ``delta``). Only
arguments whose name ends in ``_points`` are in NDCG points (1 point = 0.01).
Randomness: every resampling function takes ``seed`` (default 0) and records it with ``B``.
"""

from ._results import POINTS_PER_UNIT, points_to_score, score_to_points
from .crossed import (
    BootstrapResult,
    ContrastResult,
    SeedVarianceWarning,
    VarianceComponents,
    contrast,
    contrast_by_dataset,
    two_way_bootstrap,
    variance_components,
)
from .design import Columns, CrossedDesign
from .equivalence import EquivalenceResult, tost
from .factorial import factorial_effects, shapley_contrasts, variance_fractions
from .multiplicity import Family, adjust
from .paired import PairedResult, paired
from .power import PowerResult, mde_crossed, power_crossed, power_t, queries_needed, seeds_needed

__all__ = [
    "POINTS_PER_UNIT",
    "BootstrapResult",
    "Columns",
    "ContrastResult",
    "CrossedDesign",
    "EquivalenceResult",
    "Family",
    "PairedResult",
    "PowerResult",
    "SeedVarianceWarning",
    "VarianceComponents",
    "adjust",
    "contrast",
    "contrast_by_dataset",
    "factorial_effects",
    "mde_crossed",
    "paired",
    "points_to_score",
    "power_crossed",
    "power_t",
    "queries_needed",
    "score_to_points",
    "seeds_needed",
    "shapley_contrasts",
    "tost",
    "two_way_bootstrap",
    "variance_components",
    "variance_fractions",
]
