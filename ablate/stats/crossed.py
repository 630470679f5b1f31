"""Configuration-level inference for the crossed seeds x queries design.

Model, per dataset k: y[c,s,q] = mu_c + u_q + (cu)_cq + v_cs + e_csq, with config c fixed, seed s
random and *nested in c* (seed 3 of config A and seed 3 of config B are different runs and are
never paired, even if they share a number), query q random and crossed with every run. A claim
"config B trains better models than config A" must generalise over both new queries and new
training seeds, so the standard error of a contrast combines both sources of variance.

Closed-form (method-of-moments) variance of a contrast L = sum_c w_c mean_c:

    Var(L) = V_Q / Q + sum_c w_c^2 s2_c / S_c - sum_c w_c^2 MS_e,c / (S_c Q)

where V_Q is the variance over queries of D_q = sum_c w_c ybar[c,.,q], s2_c the variance over
seeds of the run means of config c, and MS_e,c the seed x query interaction mean square of
config c. The last term removes the seed x query noise counted twice by the first two; when the
sum is <= 0 it is dropped (reported in ``method``). Degrees of freedom: Satterthwaite. For the
macro-average over K datasets the seed term uses run means of the macro-average (a run's seed
effect is shared across datasets) and the query terms add as sum_k V_Q,k / (K^2 Q_k).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from scipy import stats

from . import _resampling
from ._results import ResultMixin
from ._validation import check_alternative, check_positive_int, check_probability, check_seed
from .design import Columns, CrossedDesign, as_design

MIN_SEEDS_FOR_SEED_VARIANCE = 3
MIN_SEEDS_FOR_BOOTSTRAP = 5
METHODS = ("crossed", "query-only")


class SeedVarianceWarning(UserWarning):
    """Seed variance could not be estimated (too few seeds); the result ignores training noise."""


@dataclass(frozen=True)
class ContrastResult(ResultMixin):
    """A linear contrast of configuration means, on the 0..1 score scale.

    ``components`` holds the variance terms (each already divided by its sample sizes), so
    ``se**2 == components["query"] + components["seed"] + components["interaction_correction"]``
    (the last is <= 0, and 0 when dropped or not used).
    """

    estimate: float
    se: float
    df: float
    ci_low: float
    ci_high: float
    p_value: float
    statistic: float
    method: str
    components: Mapping[str, float]
    weights: Mapping[Hashable, float]
    dataset: str
    n_datasets: int
    n_queries: int
    n_seeds: int
    alternative: str
    confidence: float
    null_hypothesis: str
    warning: str | None = None


def _check_weights(weights: Mapping[Hashable, float], design: CrossedDesign) -> dict[Hashable, float]:
    if not isinstance(weights, Mapping) or not weights:
        raise ValueError("weights must be a non-empty mapping config -> weight, e.g. {'B': 1, 'A': -1}")
    unknown = [c for c in weights if c not in design.configs]
    if unknown:
        raise ValueError(f"weights name config(s) {unknown} not in the table; valid configs: {list(design.configs)}")
    out = {}
    for c, w in weights.items():
        try:
            w = float(w)
        except (TypeError, ValueError):
            raise ValueError(f"weight for config {c!r} must be a number, got {w!r}") from None
        if not np.isfinite(w):
            raise ValueError(f"weight for config {c!r} must be finite, got {w!r}")
        if w != 0.0:
            out[c] = w
    if not out:
        raise ValueError("weights are all zero; give at least one config a non-zero weight")
    return out


def _dataset_label(design: CrossedDesign) -> str:
    return str(design.datasets[0]) if len(design.datasets) == 1 else "macro"


@dataclass(frozen=True)
class _Moments:
    """Per-dataset and macro summaries of one contrast, shared by contrast() and variance_components()."""

    estimate: float
    q_terms: list[tuple[float, float, int]]  # (V_Q,k, df, Q_k)
    seed_var: dict[Hashable, float]  # s2_c of macro run means
    interaction_ms: dict[Hashable, list[float]]  # MS_e,c,k per dataset
    n_queries: list[int]
    n_seeds: dict[Hashable, int]


def _moments(design: CrossedDesign, w: Mapping[Hashable, float]) -> _Moments:
    K = len(design.datasets)
    estimate = 0.0
    q_terms = []
    run_means = {c: np.zeros(len(design.seeds[c])) for c in w}
    ms_e: dict[Hashable, list[float]] = {c: [] for c in w}
    for k in design.datasets:
        per_config = design.scores[k]
        Q = len(design.queries[k])
        D = np.zeros(Q)
        for c, wc in w.items():
            y = per_config[c]
            S = y.shape[0]
            col_means = y.mean(axis=0)
            row_means = y.mean(axis=1)
            D += wc * col_means
            run_means[c] += row_means / K
            if S > 1 and Q > 1:
                resid = y - row_means[:, None] - col_means[None, :] + row_means.mean()
                ms_e[c].append(float((resid * resid).sum() / ((S - 1) * (Q - 1))))
            else:
                ms_e[c].append(float("nan"))
        estimate += float(D.mean()) / K
        q_terms.append((float(D.var(ddof=1)) if Q > 1 else float("nan"), float(Q - 1), Q))
    seed_var = {c: float(m.var(ddof=1)) if m.size > 1 else float("nan") for c, m in run_means.items()}
    return _Moments(estimate, q_terms, seed_var, ms_e, [len(design.queries[k]) for k in design.datasets],
                    {c: len(design.seeds[c]) for c in w})


def _satterthwaite(terms: list[tuple[float, float]]) -> float:
    total = sum(t for t, _ in terms)
    denom = sum(t * t / df for t, df in terms if t != 0.0)
    return float(total * total / denom) if denom > 0 else float("inf")


def _t_test(estimate: float, se: float, df: float, alternative: str, confidence: float):
    """(t, p, ci_low, ci_high); a zero SE gives an infinite t (or p = 1 when the estimate is 0 too)."""
    if se == 0.0:
        if estimate == 0.0:
            return 0.0, 1.0, estimate, estimate
        stat = float(np.sign(estimate) * np.inf)
    else:
        stat = estimate / se
    if alternative == "greater":
        p = stats.t.sf(stat, df)
    elif alternative == "less":
        p = stats.t.cdf(stat, df)
    else:
        p = min(1.0, 2.0 * stats.t.sf(abs(stat), df))
    half = stats.t.ppf(0.5 + confidence / 2.0, df) * se
    return float(stat), float(p), float(estimate - half), float(estimate + half)


def _contrast_on_design(
    design: CrossedDesign,
    w: Mapping[Hashable, float],
    method: str,
    alternative: str,
    confidence: float,
    emit_warning: bool = True,
) -> ContrastResult:
    K = len(design.datasets)
    mom = _moments(design, w)
    q_parts = [(v / (K * K * Q), df) for v, df, Q in mom.q_terms]
    if any(Q < 2 for Q in mom.n_queries):
        raise ValueError("every dataset needs at least 2 queries to estimate query variance")
    min_seeds = min(mom.n_seeds.values())
    warning = None
    if method == "crossed" and min_seeds < MIN_SEEDS_FOR_SEED_VARIANCE:
        few = {c: s for c, s in mom.n_seeds.items() if s < MIN_SEEDS_FOR_SEED_VARIANCE}
        warning = (
            f"query-only: seed variance not estimable with S<{MIN_SEEDS_FOR_SEED_VARIANCE} "
            f"(seeds per config {few}); the SE ignores training-seed noise and is too small for a config-level claim"
        )
        if emit_warning:
            warnings.warn(warning, SeedVarianceWarning, stacklevel=3)
        method = "query-only"

    if method == "query-only":
        var = sum(t for t, _ in q_parts)
        df = _satterthwaite(q_parts)
        components = {"query": var, "seed": 0.0, "interaction_correction": 0.0}
        label = "query-only (seeds treated as fixed)"
        null = "the contrast of these fixed runs' means is 0 over the population of queries"
    else:
        seed_parts = [(w[c] ** 2 * mom.seed_var[c] / mom.n_seeds[c], float(mom.n_seeds[c] - 1)) for c in w]
        inter_parts = [
            (-(w[c] ** 2) * ms / (K * K * mom.n_seeds[c] * Q), float((mom.n_seeds[c] - 1) * (Q - 1)))
            for c in w
            for ms, Q in zip(mom.interaction_ms[c], mom.n_queries)
        ]
        parts = q_parts + seed_parts + inter_parts
        var = sum(t for t, _ in parts)
        label = "crossed variance components, Satterthwaite df"
        inter = sum(t for t, _ in inter_parts)
        if var <= 0.0:
            parts = q_parts + seed_parts
            var = sum(t for t, _ in parts)
            inter = 0.0
            label += " (interaction correction dropped: total was <= 0)"
        df = _satterthwaite(parts)
        components = {
            "query": sum(t for t, _ in q_parts),
            "seed": sum(t for t, _ in seed_parts),
            "interaction_correction": inter,
        }
        null = "the contrast of configuration means is 0 over new queries and new training seeds"
    se = float(np.sqrt(max(var, 0.0)))
    stat, p, lo, hi = _t_test(mom.estimate, se, df, alternative, confidence)
    return ContrastResult(
        estimate=mom.estimate, se=se, df=df, ci_low=lo, ci_high=hi, p_value=p, statistic=stat,
        method=label, components=components, weights=dict(w), dataset=_dataset_label(design),
        n_datasets=K, n_queries=int(sum(mom.n_queries)), n_seeds=int(min_seeds), alternative=alternative,
        confidence=confidence, null_hypothesis=null, warning=warning,
    )


def _select(design: CrossedDesign, dataset: Hashable | None) -> CrossedDesign:
    return design if dataset is None else design.subset(dataset)


def contrast(
    data: pl.DataFrame | CrossedDesign,
    weights: Mapping[Hashable, float],
    *,
    dataset: Hashable | None = None,
    method: str = "crossed",
    alternative: str = "two-sided",
    confidence: float = 0.95,
    columns: Columns | Mapping[str, str] | None = None,
) -> ContrastResult:
    """Estimate and test a linear contrast of configuration means, L = sum_c w_c * mean_c.

    ``data``: long polars table (columns dataset, query, config, seed, score; rename via
    ``columns``) or a :class:`CrossedDesign` pivoted once and reused. Every run must score every
    query. ``weights``: config -> weight; unnamed configs get 0. Weights summing to 0 make a
    contrast (query main effects cancel); a single config with weight 1 estimates that config's
    mean, whose SE then includes the full between-query variance (no cancellation).

    ``dataset``: one dataset's label, or None for the macro-average over all datasets in the
    table (the unweighted mean of per-dataset contrasts; with one dataset it is that dataset).

    H0 (``method="crossed"``, default): L = 0 for the population of queries *and* training
    seeds, i.e. the configurations train equally good models. Assumes queries independent,
    seeds independent within each config, and seeds nested in configs (same seed numbers in
    different configs are not paired). The reference is a t with Satterthwaite df; the CI is
    two-sided at ``confidence`` regardless of ``alternative``.

    With fewer than 3 seeds in any weighted config, seed variance is not estimable: the result
    falls back to ``method="query-only"``, says so in ``method``/``warning`` and emits a
    :class:`SeedVarianceWarning`. ``method="query-only"`` asks for that test explicitly
    (H0: these fixed runs have equal mean; it over-rejects for configuration claims).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    check_alternative(alternative)
    confidence = check_probability("confidence", confidence)
    design = _select(as_design(data, columns), dataset)
    w = _check_weights(weights, design)
    return _contrast_on_design(design, w, method, alternative, confidence)


def contrast_by_dataset(
    data: pl.DataFrame | CrossedDesign,
    weights: Mapping[Hashable, float],
    *,
    method: str = "crossed",
    alternative: str = "two-sided",
    confidence: float = 0.95,
    macro_label: str = "macro",
    columns: Columns | Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """One :func:`contrast` per dataset plus a final macro-average row, as a polars DataFrame.

    Same null hypothesis and assumptions as :func:`contrast`. Columns: dataset, estimate, se,
    df, ci_low, ci_high, p_value, statistic, method, n_queries, n_seeds, warning. The table is
    pivoted once. A too-few-seeds fallback warns once for the whole table.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    check_alternative(alternative)
    confidence = check_probability("confidence", confidence)
    design = as_design(data, columns)
    w = _check_weights(weights, design)
    results = [
        _contrast_on_design(design.subset(k), w, method, alternative, confidence, emit_warning=False)
        for k in design.datasets
    ]
    macro = _contrast_on_design(design, w, method, alternative, confidence, emit_warning=False)
    if macro.warning:
        warnings.warn(macro.warning, SeedVarianceWarning, stacklevel=2)
    rows = []
    for label, r in [(str(k), r) for k, r in zip(design.datasets, results)] + [(macro_label, macro)]:
        rows.append({
            "dataset": label, "estimate": r.estimate, "se": r.se, "df": r.df, "ci_low": r.ci_low,
            "ci_high": r.ci_high, "p_value": r.p_value, "statistic": r.statistic, "method": r.method,
            "n_queries": r.n_queries, "n_seeds": r.n_seeds, "warning": r.warning,
        })
    return pl.DataFrame(rows, schema_overrides={"warning": pl.String})


# --------------------------------------------------------------------------- variance components


@dataclass(frozen=True)
class VarianceComponents(ResultMixin):
    """Variance components of one contrast, estimated by the method of moments (0..1 scale).

    - ``query_var``: variance over queries of the per-query contrast averaged over infinitely
      many seeds (sigma^2_D). ``sd_query_diff`` is its square root: for a pairwise contrast,
      the query-level SD of differences that drives query-level power.
    - ``seed_var``: variance of a run's mean score across training seeds within a config, net of
      query-sampling noise (sigma^2_v), pooled over the weighted configs.
    - ``interaction_var``: seed x query interaction variance within a config (sigma^2_e), pooled.

    For several datasets, ``query_var`` and ``interaction_var`` are *effective* per-query values
    scaled to the total query count Q: the macro query term equals ``query_var / Q``.
    Then Var(L) = query_var/Q + sum_w2 * (seed_var/S + interaction_var/(S*Q)) with S seeds per config.
    Negative moment estimates are truncated at 0.
    """

    query_var: float
    sd_query_diff: float
    seed_var: float
    interaction_var: float
    sum_w2: float
    n_weighted_configs: int
    n_queries: int
    n_seeds: int
    dataset: str


def variance_components(
    data: pl.DataFrame | CrossedDesign,
    weights: Mapping[Hashable, float],
    *,
    dataset: Hashable | None = None,
    columns: Columns | Mapping[str, str] | None = None,
) -> VarianceComponents:
    """Estimate query, seed and seed x query variance from a study's own long table.

    Uses the same model and assumptions as :func:`contrast` (queries and seeds random, seeds
    nested in configs, seed and interaction variance equal across the weighted configs when
    pooled). Needs at least 2 seeds per weighted config. These are estimates for planning
    (:func:`ablate.stats.power_crossed`), not a test; there is no null hypothesis.
    """
    design = _select(as_design(data, columns), dataset)
    w = _check_weights(weights, design)
    mom = _moments(design, w)
    if min(mom.n_seeds.values()) < 2:
        raise ValueError(f"variance_components needs >= 2 seeds per weighted config, got {mom.n_seeds}")
    K = len(design.datasets)
    Q_total = sum(mom.n_queries)
    # pooled interaction MS per dataset, weighted by the seed df of each config
    dfs = {c: mom.n_seeds[c] - 1 for c in w}
    ms_by_k = [sum(dfs[c] * mom.interaction_ms[c][i] for c in w) / sum(dfs.values()) for i in range(K)]
    inter_eff = Q_total * sum(ms / (K * K * Q) for ms, Q in zip(ms_by_k, mom.n_queries))
    q_eff = 0.0
    for i, (v, _, Q) in enumerate(mom.q_terms):
        sigma_d = v - sum(w[c] ** 2 * mom.interaction_ms[c][i] / mom.n_seeds[c] for c in w)
        q_eff += max(sigma_d, 0.0) / (K * K * Q)
    q_eff *= Q_total
    seed_net = {
        c: mom.seed_var[c] - sum(ms / (K * K * Q) for ms, Q in zip(mom.interaction_ms[c], mom.n_queries)) for c in w
    }
    seed_var = max(sum(dfs[c] * seed_net[c] for c in w) / sum(dfs.values()), 0.0)
    return VarianceComponents(
        query_var=float(q_eff), sd_query_diff=float(np.sqrt(q_eff)), seed_var=float(seed_var),
        interaction_var=float(inter_eff), sum_w2=float(sum(v * v for v in w.values())),
        n_weighted_configs=len(w), n_queries=int(Q_total), n_seeds=int(min(mom.n_seeds.values())),
        dataset=_dataset_label(design),
    )


# --------------------------------------------------------------------------- two-way bootstrap


@dataclass(frozen=True)
class BootstrapResult(ResultMixin):
    """Two-way bootstrap of a (possibly nonlinear) statistic of configuration means.

    ``estimate`` is the statistic on the observed data; ``ci_low``/``ci_high`` the percentile
    interval of the finite replicates; ``se`` their SD. ``n_nonfinite`` counts replicates where
    the statistic was NaN/inf (e.g. a ratio whose denominator hit 0); they are excluded.
    ``replicates`` (not in ``to_dict``) holds all B values.
    """

    name: str
    estimate: float
    ci_low: float
    ci_high: float
    se: float
    B: int
    seed: int
    confidence: float
    n_nonfinite: int
    dataset: str
    n_seeds: int
    method: str
    warning: str | None = None
    replicates: np.ndarray = field(default=None, repr=False, compare=False)  # type: ignore[assignment]


def _evaluate(statistic: Callable[[dict[Hashable, np.ndarray]], Any], values: dict[Hashable, np.ndarray], rows: int):
    out = statistic(values)
    single = not isinstance(out, Mapping)
    named = {"statistic": out} if single else dict(out)
    checked = {}
    for name, v in named.items():
        arr = np.asarray(v, dtype=np.float64)
        if arr.shape == () and rows == 1:
            arr = arr.reshape(1)
        if arr.shape != (rows,):
            raise ValueError(
                f"statistic must return an array of shape ({rows},) (one value per replicate; it is called on "
                f"arrays of replicates) or a mapping name -> such arrays; got shape {arr.shape} for {name!r}"
            )
        checked[name] = arr
    return single, checked


def two_way_bootstrap(
    data: pl.DataFrame | CrossedDesign,
    statistic: Callable[[dict[Hashable, np.ndarray]], Any],
    *,
    contrasts: Mapping[str, Mapping[Hashable, float]] | None = None,
    dataset: Hashable | None = None,
    B: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
    columns: Columns | Mapping[str, str] | None = None,
) -> BootstrapResult | dict[str, BootstrapResult]:
    """Two-way ("pigeonhole", Owen 2007) bootstrap for nonlinear statistics of config means.

    Each replicate draws one multinomial resample of the queries of every dataset, shared by
    every run of every config (keeping the query pairing), and independently resamples seeds
    with replacement within each config (a drawn seed brings its run's scores on all datasets).
    Config means are then macro-averaged over datasets (or taken on ``dataset``).

    ``statistic`` is vectorized: it receives a dict of arrays, one value per replicate, and must
    return an array of the same length, or a dict name -> array for several statistics at once
    (then a dict name -> :class:`BootstrapResult` is returned). Without ``contrasts`` the dict
    maps config -> config mean; with ``contrasts`` (name -> weights) it maps each contrast name
    to its value, e.g. ``statistic=lambda v: v["phi_bs"] / (v["phi_bs"] + v["phi_lr"])``.

    No null hypothesis is tested; the result is a percentile CI. Assumes queries and seeds are
    exchangeable random draws; with fewer than 5 seeds per config the seed resampling is too
    coarse to be reliable, which is reported in ``warning`` (and warned). ``seed`` fixes every draw.
    """
    B = check_positive_int("B", B)
    seed = check_seed(seed)
    confidence = check_probability("confidence", confidence)
    if not callable(statistic):
        raise ValueError("statistic must be a callable taking a dict of arrays and returning an array")
    design = _select(as_design(data, columns), dataset)
    configs = design.configs
    if contrasts is not None:
        if not isinstance(contrasts, Mapping) or not contrasts:
            raise ValueError("contrasts must be a non-empty mapping name -> weights mapping, or None")
        wmat = np.zeros((len(configs), len(contrasts)))
        for j, (name, weights) in enumerate(contrasts.items()):
            wc = _check_weights(weights, design)
            for i, c in enumerate(configs):
                wmat[i, j] = wc.get(c, 0.0)
        names = list(contrasts)
    K = len(design.datasets)
    n_seeds = [len(design.seeds[c]) for c in configs]
    offsets = np.concatenate([[0], np.cumsum(n_seeds)])
    # (Q_k, runs) per dataset, runs ordered by config then seed
    stacked = {k: np.ascontiguousarray(np.vstack([design.scores[k][c] for c in configs]).T) for k in design.datasets}

    def to_values(config_means: np.ndarray) -> dict[Hashable, np.ndarray]:
        if contrasts is None:
            return {c: config_means[:, i] for i, c in enumerate(configs)}
        vals = config_means @ wmat
        return {name: vals[:, j] for j, name in enumerate(names)}

    observed_means = np.array([[np.mean([design.scores[k][c].mean() for k in design.datasets]) for c in configs]])
    single, observed = _evaluate(statistic, to_values(observed_means), 1)
    reps = {name: np.empty(B) for name in observed}

    rng = np.random.default_rng(seed)
    max_q = max(len(design.queries[k]) for k in design.datasets)
    for lo, hi in _resampling.chunk_rows(max_q, B):
        rows = hi - lo
        run_means = np.zeros((rows, offsets[-1]))
        for k in design.datasets:
            Q = stacked[k].shape[0]
            counts = _resampling.multinomial_counts(Q, rows, rng)
            run_means += counts @ stacked[k] / (Q * K)
        config_means = np.empty((rows, len(configs)))
        for i, S in enumerate(n_seeds):
            seed_counts = _resampling.multinomial_counts(S, rows, rng)
            config_means[:, i] = (seed_counts * run_means[:, offsets[i] : offsets[i + 1]]).sum(axis=1) / S
        _, chunk = _evaluate(statistic, to_values(config_means), rows)
        if set(chunk) != set(reps):
            raise ValueError("statistic returned different names on replicates than on the observed data")
        for name, v in chunk.items():
            reps[name][lo:hi] = v

    min_seeds = min(n_seeds)
    warning = None
    if min_seeds < MIN_SEEDS_FOR_BOOTSTRAP:
        warning = (f"two-way bootstrap with S={min_seeds} seeds in some config; it needs S >= "
                   f"{MIN_SEEDS_FOR_BOOTSTRAP} to be reliable (seed resampling too coarse)")
        warnings.warn(warning, SeedVarianceWarning, stacklevel=2)
    results = {}
    for name, values in reps.items():
        finite = values[np.isfinite(values)]
        lo_ci, hi_ci = _resampling.percentile_interval(values, confidence)
        results[name] = BootstrapResult(
            name=name, estimate=float(observed[name][0]), ci_low=lo_ci, ci_high=hi_ci,
            se=float(finite.std(ddof=1)) if finite.size > 1 else float("nan"), B=B, seed=seed,
            confidence=confidence, n_nonfinite=int(values.size - finite.size), dataset=_dataset_label(design),
            n_seeds=min_seeds, method="two-way (pigeonhole) bootstrap: queries shared across runs, seeds within config",
            warning=warning, replicates=values,
        )
    return results["statistic"] if single else results
