"""Reports: the trial grid of a spec, and the first significance report of a finished study.

All statistics come from ``ablate.stats``; this module only selects, arranges and words them.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from datetime import datetime, timezone

import polars as pl

from ablate import __version__, stats
from ablate.profiles import DEFAULT_SETTINGS, OFFICIAL_SUBSET_ROWS, TRIPLET_HARD_ROWS
from ablate.scheduler import StudyMismatch, study_name
from ablate.spec import StudySpec
from ablate.storage import redact
from ablate.tables import markdown_table, scores_frame, trials_frame
from ablate.train import TrainingConfig, controls

METRIC_TITLES = {"ndcg_at_10": "NDCG@10", "mrr_at_10": "MRR@10", "recall_at_100": "Recall@100"}


_table = markdown_table


def format_grid(spec: StudySpec) -> str:
    """The study's question, fixed settings and every cell with the controls it implies (paper units)."""
    out = [f"{spec.name}: {spec.question}", ""]
    fixed = {**DEFAULT_SETTINGS, **spec.fixed}
    out.append("fixed: " + ", ".join(f"{k}={v}" for k, v in sorted(fixed.items()) if k not in spec.factors))
    out.append(f"seeds: {', '.join(map(str, spec.seeds))}   metric: {spec.metric}")
    for profile, names in spec.datasets.items():
        out.append(f"datasets ({profile}): {', '.join(names)}")
    out.append("")
    factor_names = list(spec.factors)
    header = ["#", *factor_names, "seed", "negatives/query", "samples/update", "updates (1.25M)"]
    rows = []
    for i, cell in enumerate(spec.cells(), start=1):
        settings = {**fixed, **cell.arm.as_dict()}
        derived = controls(TrainingConfig(per_device_batch=settings["per_device_batch"],
                                          learning_rate=settings["learning_rate"],
                                          gradient_accumulation=settings["gradient_accumulation"],
                                          train_examples=OFFICIAL_SUBSET_ROWS if settings["train_set"] == "subset"
                                          else TRIPLET_HARD_ROWS - 1_000))
        rows.append([str(i), *(f"{cell.arm.as_dict()[f]:g}" if isinstance(cell.arm.as_dict()[f], float)
                               else str(cell.arm.as_dict()[f]) for f in factor_names), str(cell.seed),
                     str(derived["negatives_per_query"]), str(derived["samples_per_update"]),
                     str(derived["optimizer_updates"])])
    out.append(_table(header, rows))
    return "\n".join(out)


def _pts(x: float) -> str:
    return f"{100 * x:+.2f}"


def _p(p: float | None) -> str:
    if p is None:
        return "-"
    return f"{p:.2g}" if p >= 1e-4 else "<1e-4"


def _load(spec: StudySpec, profile: str, storage):
    import optuna

    name = study_name(spec.name, profile)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise StudyMismatch(f"no study {name!r} in this database; run `ablate run {spec.name} --profile "
                            f"{profile}` first") from None
    return study


def build_report(spec: StudySpec, profile: str, storage, confidence: float = 0.95) -> str:
    """Markdown report: per dataset and macro-average, each arm against the baseline arm (the first)."""
    study = _load(spec, profile, storage)
    trials = trials_frame(study)
    scores = scores_frame(study, storage.engine)
    metric = spec.metric
    title = METRIC_TITLES.get(metric, metric)
    expected = {c.key for c in spec.cells()}
    complete = set(trials.filter(pl.col("state") == "COMPLETE")["cell"].to_list()) if not trials.is_empty() else set()
    lines = [
        f"# {spec.name} ({profile} profile)",
        "",
        f"**Question.** {spec.question}",
        "",
        f"Study `{study.study_name}` in `{redact(storage.url)}`; {len(complete & expected)} of {len(expected)} "
        f"cells complete; metric {title}; differences in points (x100) as later arm minus baseline arm.",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by ablate {__version__}.",
    ]
    described = study.user_attrs.get("profile", {})
    lines.append("Profile settings: " + ", ".join(f"{k}={v}" for k, v in described.items() if k != "profile") + ".")
    if described.get("learning_rate_scale", 1) != 1:
        lines.append(f"Profile note: mini trains a from-scratch tiny encoder; learning rates are multiplied by "
                     f"{described['learning_rate_scale']:g} (relative levels keep their meaning).")
    missing = sorted(expected - complete)
    if missing:
        lines.append(f"Missing cells ({len(missing)}), not in any number below: " + "; ".join(missing[:8])
                     + (" ..." if len(missing) > 8 else ""))
    if scores.is_empty():
        return "\n".join(lines + ["", "No complete trials yet."])

    long = scores.select(pl.col("dataset"), pl.col("query_id").alias("query"), pl.col("arm").alias("config"),
                         pl.col("seed"), pl.col(metric).alias("score"))
    arms = [a.label for a in spec.arms() if a.label in set(long["config"].to_list())]
    if len(arms) < 2:
        return "\n".join(lines + ["", "Fewer than two arms have complete trials; nothing to compare."])
    baseline = arms[0]
    # Stored names, in evaluation order (a spec entry may be a path; the dataset keeps its own name).
    spec_order = {Path(entry).name: i for i, entry in enumerate(spec.datasets_for(profile))}
    datasets = sorted(long["dataset"].unique().to_list(), key=lambda name: (spec_order.get(name, len(spec_order)), name))

    run_means = long.group_by("dataset", "config", "seed").agg(pl.col("score").mean())
    macro_runs = run_means.group_by("config", "seed").agg(pl.col("score").mean(), pl.len().alias("k"))
    per_arm = {}
    for (dataset, config), group in run_means.group_by("dataset", "config"):
        per_arm[(dataset, config)] = group["score"]
    for (config,), group in macro_runs.group_by("config"):
        per_arm[("macro", config)] = group["score"]

    def mean_sd(dataset: str, config: str) -> str:
        values = per_arm.get((dataset, config))
        if values is None or len(values) == 0:
            return "-"
        sd = f" ± {100 * values.std():.2f}" if len(values) > 1 else ""
        return f"{100 * values.mean():.2f}{sd}"

    if profile == "paper":
        lines += reproduction_view(long, arms, datasets)
    if len(spec.factors) > 1:
        lines += _cell_means_section(spec, arms, datasets, mean_sd, title)
        lines += _attribution_section(spec, long, title)
        return "\n".join(lines)

    sections = []
    confirmatory, exploratory = [], []
    for other in arms[1:]:
        pair = long.filter(pl.col("config").is_in([baseline, other]))
        weights = {other: 1.0, baseline: -1.0}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            crossed = stats.contrast_by_dataset(pair, weights, confidence=confidence)
        query_level = stats.contrast_by_dataset(pair, weights, method="query-only", confidence=confidence)
        notes = sorted({str(w.message) for w in caught})
        confirmatory.append(crossed.filter(pl.col("dataset") == "macro")["p_value"][0])
        for row in crossed.filter(pl.col("dataset") != "macro").iter_rows(named=True):
            exploratory.append(((len(sections), row["dataset"]), row["p_value"]))
        sections.append((other, crossed, query_level, pair, notes))

    holm = stats.adjust(confirmatory, method="holm")
    bh = dict(zip([key for key, _ in exploratory], stats.adjust([p for _, p in exploratory], method="bh")))
    for index, (other, crossed, query_level, pair, notes) in enumerate(sections):
        lines += ["", f"## {other}  vs  {baseline}", ""]
        crossed_label = "seeds+queries" if not notes else "FALLBACK query-only, see note"
        header = ["dataset", "queries", "seeds", f"baseline {title}", f"arm {title}", "Δ points",
                  f"{int(confidence * 100)}% CI ({crossed_label})", "p", "p adj", f"{int(confidence * 100)}% CI "
                  "(queries, seed-avg)", "p paired t", "W/T/L"]
        rows = []
        for dataset in [*datasets, "macro"]:
            c = crossed.filter(pl.col("dataset") == dataset)
            q = query_level.filter(pl.col("dataset") == dataset)
            if c.is_empty():
                continue
            c, q = c.row(0, named=True), q.row(0, named=True)
            if dataset == "macro":
                adjusted = f"{_p(float(holm[index]))} (Holm)"
                wtl = "-"
            else:
                adjusted = f"{_p(float(bh[(index, dataset)]))} (BH)"
                wtl = _wins(pair.filter(pl.col("dataset") == dataset), baseline, other)
            rows.append([dataset, str(c["n_queries"]), str(c["n_seeds"]), mean_sd(dataset, baseline),
                         mean_sd(dataset, other), _pts(c["estimate"]),
                         f"[{_pts(c['ci_low'])}, {_pts(c['ci_high'])}]", _p(c["p_value"]), adjusted,
                         f"[{_pts(q['ci_low'])}, {_pts(q['ci_high'])}]", _p(q["p_value"]), wtl])
        lines.append(_table(header, rows))
        for note in notes:
            lines.append(f"\nNote: {note}")
    lines += [
        "",
        "How to read this. *Seeds+queries* is the configuration-level test (queries and training seeds both "
        "random, crossed; closed-form variance components, Satterthwaite df): it answers \"does this setting "
        "train better models\". *Queries, seed-avg* is a paired t over queries on seed-averaged scores: it treats "
        "the trained models as fixed and is too optimistic for configuration claims. Baseline/arm columns: mean "
        "± SD over seeds of each run's mean. p adj: Holm across comparisons on the macro-average (confirmatory "
        "family); Benjamini-Hochberg across comparisons x datasets (exploratory family). W/T/L: queries where "
        "the arm's seed-averaged score is higher / equal / lower.",
    ]
    if len(spec.factors[next(iter(spec.factors))]) == 2:
        lines += _attribution_section(spec, long, title, tables=False)
    return "\n".join(lines)


def reproduction_view(long: pl.DataFrame, arms: list[str], datasets: list[str], size: str = "base") -> list[str]:
    """Datasets as columns, laid out like the reproduction report: published rows, then this study's arms.

    Each arm's cell is its mean over seeds and queries (x100) with a 95% CI from the crossed design, which
    for a single configuration's mean includes between-query variance.
    """
    from ablate.published import citation, values

    paper, repro = values("paper", size), values("reproduction", size)
    header = ["", *datasets]
    rows = [[f"paper ({size}, published)", *(f"{paper[d]:.1f}" if d in paper else "-" for d in datasets)],
            [f"reproduction ({size}, published)", *(f"{repro[d]:.2f}" if d in repro else "-" for d in datasets)]]
    for arm in arms:
        cells = []
        for d in datasets:
            subset = long.filter((pl.col("dataset") == d) & (pl.col("config") == arm))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = stats.contrast(subset, {arm: 1.0})
            cells.append(f"{100 * r.estimate:.2f} [{100 * r.ci_low:.1f}, {100 * r.ci_high:.1f}]")
        rows.append([arm, *cells])
    return ["", "## Reproduction view (NDCG@10 x100; this study: mean [95% CI])", "", _table(header, rows), "",
            f"Sources: paper: {citation('paper')}; reproduction: {citation('reproduction')}."]


def _cell_means_section(spec, arms, datasets, mean_sd, title) -> list[str]:
    header = ["arm", *datasets, "macro"]
    rows = [[arm, *(mean_sd(d, arm) for d in datasets), mean_sd("macro", arm)] for arm in arms]
    return ["", f"## Cell means ({title} x100, mean ± SD over seeds)", "", _table(header, rows)]


def _ci(row, lo="ci_low", hi="ci_high") -> str:
    return f"[{100 * row[lo]:+.2f}, {100 * row[hi]:+.2f}]"


def _attribution_section(spec, long, title, tables: bool = True) -> list[str]:
    from ablate.analysis import IncompleteStudy, attribute

    try:
        result = attribute(spec, long, metric_title=title)
    except IncompleteStudy as err:
        return ["", f"Attribution not shown: {err}."]
    out: list[str] = []
    if tables and result.total is not None:
        t = result.total
        out += ["", "## Attribution of the gain", "",
                f"Total gain from `{result.baseline}` to `{result.target}`: {100 * t['estimate']:+.2f} points, "
                f"95% CI {_ci(t)}, p {_p(t['p_value'])} (crossed seeds x queries, macro-average). Shapley values sum "
                f"to the total to {result.shapley_sum_error:.1e}.", ""]
        shap = {r["name"]: r for r in result.shapley.iter_rows(named=True)}
        header = ["factor", "main effect", "95% CI", "p (Holm)", "Shapley φ", "95% CI", "p (Holm)",
                  "share of gain", "share 95% CI (bootstrap)"]
        rows = []
        for r in result.main_effects.iter_rows(named=True):
            phi = shap.get(r["name"], {})
            share = phi.get("share")
            rows.append([r["name"], _pts(r["estimate"]), _ci(r), _p(r["p_holm"]),
                         _pts(phi["estimate"]) if phi else "-", _ci(phi) if phi else "-",
                         _p(phi.get("p_holm")) if phi else "-",
                         f"{100 * share:.0f}%" if share is not None else "not shown",
                         f"[{100 * phi['share_ci_low']:.0f}%, {100 * phi['share_ci_high']:.0f}%]"
                         if share is not None else "-"])
        out.append(_table(header, rows))
        if not result.interactions.is_empty():
            out += ["", "### Interactions (difference of differences, points; Holm within the family)", ""]
            rows = [[r["name"], _pts(r["estimate"]), _ci(r), _p(r["p_value"]), _p(r["p_holm"])]
                    for r in result.interactions.iter_rows(named=True)]
            out.append(_table(["interaction", "estimate", "95% CI", "p", "p (Holm)"], rows))
        if not result.paths.is_empty():
            out += ["", "### Ablation paths (contribution of each step, points, on cell means)", ""]
            rows = []
            for (direction, order), group in result.paths.group_by("direction", "order", maintain_order=True):
                steps = ", ".join(f"{r['factor']} {_pts(r['contribution'])}" for r in group.iter_rows(named=True))
                rows.append([direction, order, steps])
            out.append(_table(["direction", "order", "steps"], rows))
        if not result.per_dataset.is_empty():
            out += ["", "### Main effects per dataset (exploratory; Benjamini-Hochberg over factors x datasets)", ""]
            rows = [[r["name"], r["dataset"], _pts(r["estimate"]), _ci(r), _p(r["p_value"]), _p(r["p_bh"])]
                    for r in result.per_dataset.iter_rows(named=True)]
            out.append(_table(["factor", "dataset", "effect", "95% CI", "p", "p (BH)"], rows))
    if tables and not result.levels.is_empty():
        out += ["", "## Multi-level factors", "", "Marginal means (x100) with 95% CI:", ""]
        rows = [[r["factor"], r["level"], f"{100 * r['mean']:.2f}", _ci(r)] for r in result.levels.iter_rows(named=True)]
        out.append(_table(["factor", "level", "mean", "95% CI"], rows))
        out += ["", "Pairwise contrasts (points; Holm within each factor):", ""]
        rows = [[r["name"], _pts(r["estimate"]), _ci(r), _p(r["p_value"]), _p(r["p_holm"])]
                for r in result.pairwise.iter_rows(named=True)]
        out.append(_table(["contrast", "estimate", "95% CI", "p", "p (Holm)"], rows))
    if result.verdicts:
        out += ["", "## Conclusions", ""]
        out += [f"- {v.statement}" for v in result.verdicts]
        margin = result.verdicts[0].margin_points
        out += ["", "Power of the crossed test (80% power, two-sided alpha 0.05, variance components from this study):",
                ""]
        rows = [[v.factor, str(v.seeds), f"{v.mde_points:.2f}",
                 str(v.seeds_for_margin) if v.seeds_for_margin else "not reachable by seeds alone"]
                for v in result.verdicts]
        out.append(_table(["factor", "seeds per cell", "minimum detectable effect (points)",
                           f"seeds per cell for {margin:g} point"], rows))
    for note in result.notes:
        out.append(f"\nNote: {note}")
    return out


def _wins(frame: pl.DataFrame, baseline: str, other: str) -> str:
    averaged = frame.group_by("config", "query").agg(pl.col("score").mean())
    a = averaged.filter(pl.col("config") == baseline).select("query", pl.col("score").alias("a"))
    b = averaged.filter(pl.col("config") == other).select("query", pl.col("score").alias("b"))
    joined = a.join(b, on="query", how="inner")
    diff = joined["b"] - joined["a"]
    return f"{int((diff > 1e-12).sum())}/{int((diff.abs() <= 1e-12).sum())}/{int((diff < -1e-12).sum())}"
