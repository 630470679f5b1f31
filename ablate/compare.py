"""Two trained models, query by query: the paired test, win/tie/loss, and the queries that moved most.

This is the "fixed models" claim (``ablate.stats.paired``): the two runs are taken as they are and only
the queries are a sample, so seed-to-seed variance is not in the error. Use ``ablate report`` for claims
about configurations. Differences are always trial B minus trial A, on the 0..1 scale in the result and
in points (x100) when printed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from optuna.trial import TrialState

from ablate.query import QueryError, StudyDatabase
from ablate.stats import PairedResult, paired


@dataclass
class DatasetComparison:
    dataset: str
    result: PairedResult
    mean_a: float
    mean_b: float
    largest: pl.DataFrame          # query_id, a, b, diff, text (largest |b - a| first)
    text_note: str | None = None   # why query text is missing, when it is
    unmatched: int = 0             # queries scored by only one of the trials (left out)


@dataclass
class Comparison:
    study: str
    metric: str
    test: str
    trial_a: tuple[int, str]       # (number, "arm, seed=s")
    trial_b: tuple[int, str]
    datasets: list[DatasetComparison] = field(default_factory=list)


def _label(trial) -> str:
    return f"{trial.user_attrs.get('arm')}, seed={trial.user_attrs.get('seed')}"


def query_texts(db: StudyDatabase, study: str, dataset: str, revision: str) -> tuple[dict[str, str] | None, str]:
    """Query id -> text for a dataset at the stored revision, or (None, why not).

    Texts are not stored with the scores; they are rebuilt from what the study recorded: a BEIR
    directory named in the spec (if it is still there) or the mini profile's generated world (the
    profile's recorded world seed). The revision must match, or the text could belong to other queries.
    """
    from ablate.beir import DatasetError, read_beir

    attrs = db.study(study).user_attrs
    profile = attrs.get("profile", {})
    for entry in attrs.get("spec", {}).get("datasets", {}).get(profile.get("profile", ""), []):
        path = Path(entry).expanduser()
        if path.name == dataset and path.is_dir():
            try:
                local = read_beir(path)
            except DatasetError:
                continue
            if local.revision == revision:
                return local.queries, ""
    if profile.get("profile") == "mini":
        from ablate.profiles import MiniProfile
        from ablate.world import WorldSize, generate

        # The evaluation sets do not depend on the number of training triplets, so a world without
        # them (a fraction of a second) usually has the same revision; else build the recorded one.
        world_set = generate(profile.get("world_seed", 0), WorldSize(train_triplets=1)).datasets.get(dataset)
        if world_set is None or world_set.revision != revision:
            options = {k: profile[k] for k in ("world_seed", "subset_examples") if k in profile}
            world_set = MiniProfile(**options).world.datasets.get(dataset)
        if world_set is not None and world_set.revision == revision:
            return world_set.queries, ""
        if world_set is not None:
            return None, (f"query text unavailable for {dataset}: the regenerated world has revision "
                          f"{world_set.revision}, the scores {revision}")
    return None, (f"query text unavailable for {dataset}: not stored with the scores and not recoverable "
                  f"here from the {profile.get('profile', 'recorded')} profile")


def compare_trials(db: StudyDatabase, study: str, a: int | str, b: int | str, dataset: str | None = None,
                   metric: str | None = None, top: int = 5, test: str = "t") -> Comparison:
    """Compare trial ``b`` against trial ``a`` of ``study`` on each shared dataset (or ``dataset``)."""
    name = db.resolve_study(study)
    trial_a, trial_b = db.trial(name, a), db.trial(name, b)
    for t in (trial_a, trial_b):
        if t.state != TrialState.COMPLETE:
            raise QueryError(f"trial {t.number} of {name!r} is {t.state.name}; only COMPLETE trials have scores")
    metric = metric or db.study(name).user_attrs.get("metric", "ndcg_at_10")
    wide = db.scores_wide.filter(pl.col("trial_id").is_in([trial_a._trial_id, trial_b._trial_id])).collect()
    if metric not in wide.columns:
        known = [c for c in wide.columns if c.endswith(("_at_10", "_at_100"))]
        raise QueryError(f"unknown metric {metric!r}; metrics: {', '.join(known)}")
    sets_a = set(wide.filter(pl.col("trial_id") == trial_a._trial_id)["dataset"].to_list())
    sets_b = set(wide.filter(pl.col("trial_id") == trial_b._trial_id)["dataset"].to_list())
    shared = sorted(sets_a & sets_b)
    if dataset is not None and dataset not in shared:
        raise QueryError(f"no dataset {dataset!r} scored by both trials {trial_a.number} and {trial_b.number}; "
                         f"datasets: {', '.join(shared) or 'none'}")
    revisions = dict(db.runs.filter(pl.col("trial_id") == trial_b._trial_id).select("dataset", "revision")
                     .collect().iter_rows())
    out = Comparison(study=name, metric=metric, test=test, trial_a=(trial_a.number, _label(trial_a)),
                     trial_b=(trial_b.number, _label(trial_b)))
    for ds in [dataset] if dataset else shared:
        left, right = (wide.filter((pl.col("trial_id") == t._trial_id) & (pl.col("dataset") == ds))
                       .select("query_id", metric) for t in (trial_a, trial_b))
        both = left.join(right, on="query_id", suffix="_b").rename({metric: "a", f"{metric}_b": "b"}).sort("query_id")
        result = paired(both["a"].to_numpy(), both["b"].to_numpy(), test=test)
        largest = (both.with_columns((pl.col("b") - pl.col("a")).alias("diff"))
                   .sort([pl.col("diff").abs(), pl.col("query_id")], descending=[True, False]).head(top))
        texts, note = query_texts(db, name, ds, revisions.get(ds, ""))
        largest = largest.with_columns(pl.col("query_id").replace_strict(texts or {}, default=None,
                                                                         return_dtype=pl.String).alias("text"))
        out.datasets.append(DatasetComparison(
            dataset=ds, result=result, mean_a=float(both["a"].mean()), mean_b=float(both["b"].mean()),
            largest=largest, text_note=note or None,
            unmatched=left.height + right.height - 2 * both.height))
    return out


def _short(text: str | None, width: int = 72) -> str:
    if text is None:
        return "-"
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 3] + "..."


def format_comparison(c: Comparison) -> str:
    lines = [f"{c.study}: trial {c.trial_b[0]} ({c.trial_b[1]}) vs trial {c.trial_a[0]} ({c.trial_a[1]}); "
             f"{c.metric}, differences are B - A in points (x100); B = trial {c.trial_b[0]}, A = trial {c.trial_a[0]}"]
    for d in c.datasets:
        r = d.result
        p = f"={r.p_value:.2g}" if r.p_value >= 1e-4 else "<1e-4"
        lines += ["", f"{d.dataset} ({r.n} queries): A {100 * d.mean_a:.2f}, B {100 * d.mean_b:.2f}, "
                      f"diff {100 * r.estimate:+.2f} [{100 * r.ci_low:+.2f}, {100 * r.ci_high:+.2f}] "
                      f"({r.confidence:.0%} CI), paired {r.test} p{p}; B wins/ties/losses {r.wins}/{r.ties}/{r.losses}"]
        if d.unmatched:
            lines.append(f"  note: {d.unmatched} queries scored by only one trial are left out")
        lines.append("  largest differences (B - A, points; query text):")
        for row in d.largest.iter_rows(named=True):
            lines.append(f"    {100 * row['diff']:+7.2f}  {row['query_id']:<12} A {100 * row['a']:6.2f}  "
                         f"B {100 * row['b']:6.2f}  {_short(row['text'])}")
        if d.text_note:
            lines.append(f"  ({d.text_note})")
    return "\n".join(lines)
