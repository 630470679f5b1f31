"""Attribution of a gain to factors: factorial effects, Shapley values, ablation paths, multi-level contrasts.

Pure computation on the long table (dataset, query, config, seed, score) of one study; every number with
uncertainty comes from ``ablate.stats`` (crossed seeds x queries contrasts, two-way bootstrap for shares).
Levels are ordered as in the spec: a two-level factor's first level is the baseline (paper) side, its second
the target (reproduction) side.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from ablate import stats
from ablate.spec import StudySpec


class IncompleteStudy(ValueError):
    """Attribution needs at least one complete trial in every arm."""


@dataclass(frozen=True)
class FactorVerdict:
    factor: str
    statement: str
    kind: str  # "explains", "equivalent", "undetermined"
    seeds: int = 0
    mde_points: float = float("nan")
    seeds_for_margin: int | None = None
    margin_points: float = 1.0


@dataclass
class Attribution:
    """Everything the report says about which factor moved the metric, and how sure we are."""

    factors: list[str]
    two_level: list[str]
    multi_level: list[str]
    baseline: str | None
    target: str | None
    total: dict[str, Any] | None
    main_effects: pl.DataFrame
    interactions: pl.DataFrame
    shapley: pl.DataFrame
    per_dataset: pl.DataFrame
    paths: pl.DataFrame
    levels: pl.DataFrame
    pairwise: pl.DataFrame
    verdicts: list[FactorVerdict] = field(default_factory=list)
    shapley_sum_error: float | None = None
    notes: list[str] = field(default_factory=list)


def _arm_levels(spec: StudySpec) -> dict[str, dict[str, Any]]:
    return {arm.label: arm.as_dict() for arm in spec.arms()}


def _weights_for_level(arms: dict[str, dict], factor: str, level: Any) -> dict[str, float]:
    chosen = [a for a, levels in arms.items() if levels[factor] == level]
    return {a: 1.0 / len(chosen) for a in chosen}


def _combine(*parts: tuple[float, dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for scale, weights in parts:
        for k, v in weights.items():
            out[k] = out.get(k, 0.0) + scale * v
    return {k: v for k, v in out.items() if abs(v) > 1e-15}


def _row(name: str, result, **extra) -> dict[str, Any]:
    return {"name": name, "estimate": result.estimate, "se": result.se, "df": result.df, "ci_low": result.ci_low,
            "ci_high": result.ci_high, "p_value": result.p_value, "method": result.method,
            "warning": result.warning, **extra}


def _quiet_contrast(table, weights, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = stats.contrast(table, weights, **kwargs)
    return result, [str(w.message) for w in caught]


def attribute(spec: StudySpec, table: pl.DataFrame, margin_points: float = 1.0, bootstrap_b: int = 10_000,
              seed: int = 0, metric_title: str = "NDCG@10") -> Attribution:
    """Analyse ``table`` (columns dataset, query, config, seed, score; config = arm label) for ``spec``."""
    arms = _arm_levels(spec)
    present = set(table["config"].unique().to_list())
    missing = [a for a in arms if a not in present]
    if missing:
        raise IncompleteStudy(f"no complete trials yet for {len(missing)} arm(s) ({'; '.join(missing[:3])}"
                              f"{' ...' if len(missing) > 3 else ''}); finish the study before attributing")
    design = stats.CrossedDesign.from_table(table)
    factors = list(spec.factors)
    two_level = [f for f in factors if len(spec.factors[f]) == 2]
    multi_level = [f for f in factors if len(spec.factors[f]) > 2]
    notes: list[str] = []

    # Main effect of each two-level factor: difference of marginal means (equals the factorial main effect).
    mains, per_dataset = [], []
    main_weights = {}
    for f in two_level:
        low, high = spec.factors[f]
        w = _combine((1.0, _weights_for_level(arms, f, high)), (-1.0, _weights_for_level(arms, f, low)))
        main_weights[f] = w
        result, caught = _quiet_contrast(design, w)
        notes += caught
        mains.append(_row(f, result, contrast=f"{f}: {low} -> {high}"))
        by_dataset = stats.contrast_by_dataset(design, w)
        for row in by_dataset.filter(pl.col("dataset") != "macro").iter_rows(named=True):
            per_dataset.append({"name": f, **{k: row[k] for k in ("dataset", "estimate", "ci_low", "ci_high",
                                                                   "p_value", "method")}})
    main_effects = pl.DataFrame(mains) if mains else pl.DataFrame()
    if mains:
        main_effects = main_effects.with_columns(pl.Series("p_holm", stats.adjust(main_effects["p_value"].to_list(),
                                                                                    "holm")))
    per_dataset_frame = pl.DataFrame(per_dataset) if per_dataset else pl.DataFrame()
    if per_dataset:
        per_dataset_frame = per_dataset_frame.with_columns(
            pl.Series("p_bh", stats.adjust(per_dataset_frame["p_value"].to_list(), "bh")))

    interactions = shapley = paths = pl.DataFrame()
    baseline = target = None
    total = None
    shapley_error = None
    full_factorial = len(two_level) == len(factors) and len(factors) >= 1
    if full_factorial:
        coded = {label: tuple(spec.factors[f].index(levels[f]) for f in factors) for label, levels in arms.items()}
        baseline = next(a for a, c in coded.items() if not any(c))
        target = next(a for a, c in coded.items() if all(c))
        total_result, caught = _quiet_contrast(design, {target: 1.0, baseline: -1.0})
        notes += caught
        total = _row("total gain", total_result)
        if len(factors) >= 2:
            effects = stats.factorial_effects(coded, factors)
            rows = []
            for name, w in effects.items():
                if ":" not in name:
                    continue
                result, _ = _quiet_contrast(design, w)
                rows.append(_row(name, result, order=name.count(":") + 1))
            interactions = pl.DataFrame(rows)
            interactions = interactions.with_columns(
                pl.Series("p_holm", stats.adjust(interactions["p_value"].to_list(), "holm")))
        phi_weights = stats.shapley_contrasts(coded, factors)
        rows = []
        for f, w in phi_weights.items():
            result, _ = _quiet_contrast(design, w)
            rows.append(_row(f, result))
        shapley = pl.DataFrame(rows).with_columns(
            pl.Series("p_holm", stats.adjust([r["p_value"] for r in rows], "holm")))
        shapley_error = abs(float(shapley["estimate"].sum()) - total["estimate"])
        if shapley_error > 1e-9:
            raise AssertionError(f"Shapley values sum to {shapley['estimate'].sum()} but the total gain is "
                                 f"{total['estimate']}")
        if len(factors) >= 2:  # with one factor its share is 100% by construction
            shapley = shapley.join(_shares(design, phi_weights, total, bootstrap_b, seed, notes), on="name", how="left")
        paths = _ablation_paths(design, coded, factors)

    levels_frame, pairwise = _multi_level(design, arms, spec, multi_level, notes)
    attribution = Attribution(factors, two_level, multi_level, baseline, target, total, main_effects, interactions,
                              shapley, per_dataset_frame, paths, levels_frame, pairwise,
                              shapley_sum_error=shapley_error, notes=sorted(set(notes)))
    attribution.verdicts = _verdicts(design, attribution, main_weights, margin_points, metric_title)
    return attribution


def _shares(design, phi_weights, total, b, seed, notes) -> pl.DataFrame:
    names = list(phi_weights)
    if total is None or total["ci_low"] <= 0 <= total["ci_high"]:
        notes.append("shares of the gain are not shown: the total gain's CI includes 0")
        return pl.DataFrame({"name": names, "share": [None] * len(names), "share_ci_low": [None] * len(names),
                             "share_ci_high": [None] * len(names)},
                            schema={"name": pl.String, "share": pl.Float64, "share_ci_low": pl.Float64,
                                    "share_ci_high": pl.Float64})
    contrasts = {f"phi:{f}": w for f, w in phi_weights.items()}

    def share(values):
        denominator = sum(values[f"phi:{f}"] for f in names)
        return {f: values[f"phi:{f}"] / denominator for f in names}

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = stats.two_way_bootstrap(design, share, contrasts=contrasts, B=b, seed=seed)
    notes += [str(w.message) for w in caught]
    return pl.DataFrame({"name": names, "share": [results[f].estimate for f in names],
                         "share_ci_low": [results[f].ci_low for f in names],
                         "share_ci_high": [results[f].ci_high for f in names]})


def _cell_means(design) -> dict[str, float]:
    """Macro-average over datasets of each config's mean over seeds and queries."""
    means = {}
    for config in design.configs:
        means[config] = float(np.mean([design.scores[k][config].mean() for k in design.datasets]))
    return means


def _ablation_paths(design, coded: dict[str, tuple], factors: list[str]) -> pl.DataFrame:
    """Every order of switching factors: add-one-in from the baseline and leave-one-out from the target."""
    means = _cell_means(design)
    by_code = {code: label for label, code in coded.items()}
    k = len(factors)
    rows = []
    for order in itertools.permutations(range(k)):
        path_name = " -> ".join(factors[i] for i in order)
        state = [0] * k
        for step, i in enumerate(order, start=1):
            before = means[by_code[tuple(state)]]
            state[i] = 1
            rows.append({"direction": "add-one-in", "order": path_name, "step": step, "factor": factors[i],
                         "contribution": means[by_code[tuple(state)]] - before,
                         "reached": means[by_code[tuple(state)]]})
        state = [1] * k
        for step, i in enumerate(order, start=1):
            before = means[by_code[tuple(state)]]
            state[i] = 0
            rows.append({"direction": "leave-one-out", "order": path_name, "step": step, "factor": factors[i],
                         "contribution": before - means[by_code[tuple(state)]],
                         "reached": means[by_code[tuple(state)]]})
    return pl.DataFrame(rows)


def _multi_level(design, arms, spec, multi_level, notes) -> tuple[pl.DataFrame, pl.DataFrame]:
    level_rows, pair_rows = [], []
    for f in multi_level:
        for level in spec.factors[f]:
            w = _weights_for_level(arms, f, level)
            result, caught = _quiet_contrast(design, w)
            notes += caught
            level_rows.append({"factor": f, "level": str(level), "mean": result.estimate, "ci_low": result.ci_low,
                               "ci_high": result.ci_high})
        start = len(pair_rows)
        for a, b in itertools.combinations(spec.factors[f], 2):
            w = _combine((1.0, _weights_for_level(arms, f, b)), (-1.0, _weights_for_level(arms, f, a)))
            result, _ = _quiet_contrast(design, w)
            pair_rows.append(_row(f"{f}: {a} -> {b}", result, factor=f))
        ps = [r["p_value"] for r in pair_rows[start:]]
        for r, p in zip(pair_rows[start:], stats.adjust(ps, "holm")):
            r["p_holm"] = float(p)
    return pl.DataFrame(level_rows), pl.DataFrame(pair_rows)


def _verdicts(design, attribution: Attribution, main_weights, margin_points, metric_title) -> list[FactorVerdict]:
    """One sentence per two-level factor; the words follow from CI, TOST and power, never from hope."""
    margin = margin_points / 100
    verdicts = []
    if attribution.main_effects.is_empty():
        return verdicts
    shapley = {r["name"]: r for r in attribution.shapley.iter_rows(named=True)} if not attribution.shapley.is_empty() \
        else {}
    for row in attribution.main_effects.iter_rows(named=True):
        f = row["name"]
        result, _ = _quiet_contrast(design, main_weights[f])
        equivalence = stats.tost(result, margin_points=margin_points)
        components = stats.variance_components(design, main_weights[f])
        seeds = min(design.n_seeds.values())
        try:
            mde = stats.mde_crossed(components, n_seeds=max(seeds, 3))
            needed = stats.seeds_needed(margin, components)
        except ValueError:
            mde, needed = float("nan"), None
        ci = f"[{100 * row['ci_low']:+.2f}, {100 * row['ci_high']:+.2f}]"
        p_adj = row["p_holm"]
        if p_adj < 0.05:
            phi = shapley.get(f)
            if phi is not None and phi.get("share") is not None:
                text = (f"{f} accounts for {100 * phi['estimate']:+.2f} of the {100 * attribution.total['estimate']:+.2f} "
                        f"points from baseline to target (Shapley; share "
                        f"{100 * phi['share']:.0f}% [{100 * phi['share_ci_low']:.0f}%, {100 * phi['share_ci_high']:.0f}%]);"
                        f" main effect {100 * row['estimate']:+.2f} points, 95% CI {ci}, Holm p {_fmt_p(p_adj)}.")
            else:
                text = (f"{f} changes {metric_title} by {100 * row['estimate']:+.2f} points (main effect, "
                        f"95% CI {ci}, Holm p {_fmt_p(p_adj)}).")
            kind = "explains"
        elif equivalence.equivalent:
            text = (f"{f} is equivalent to zero within ±{margin_points:g} point (TOST p {_fmt_p(equivalence.p_value)}; "
                    f"main effect {100 * row['estimate']:+.2f}, 95% CI {ci}).")
            kind = "equivalent"
        else:
            need = f"{needed} seeds per cell would reach 80% power for {margin_points:g} point" if needed else \
                f"more seeds alone would not reach 80% power for {margin_points:g} point (add queries)"
            text = (f"{f}: no detectable effect, and not shown equivalent to zero either (undetermined): main effect "
                    f"{100 * row['estimate']:+.2f} points, 95% CI {ci}, Holm p {_fmt_p(p_adj)}; minimum detectable "
                    f"effect with {seeds} seeds {100 * mde:.2f} points; {need}.")
            kind = "undetermined"
        verdicts.append(FactorVerdict(f, text, kind, seeds, 100 * mde, needed, margin_points))
    return verdicts



def _fmt_p(p: float) -> str:
    return "<1e-4" if p < 1e-4 else f"{p:.2g}"
