"""Export a study in the formats the IR world reads: TREC run files, per-query tables, mteb results JSON.

Layout of ``ablate export STUDY --out DIR``::

    DIR/runs/trial-<n>.<dataset>.trec      one TREC run per COMPLETE trial x dataset (top-100 per query)
    DIR/per_query.parquet, per_query.csv   every exported trial x dataset x query, one column per metric
    DIR/mteb/<model>/<revision>/<task>.json  mteb TaskResult files (mteb's own aggregates), + model_meta.json
    DIR/manifest.json                      what was exported from where, with package versions

Run files list ``qid Q0 docno rank score tag`` with ranks ordered by score descending and ties broken by
doc id *descending*: the order pytrec_eval (and so mteb) uses, which is the order the stored metrics were
computed on, so trec_eval or ranx re-scoring a run reproduces the stored per-query numbers. Scores are
the stored float32 values written exactly. The provenance header is a block of ``#`` lines; strict
readers (``trec_eval``, ``ranx.Run.from_file``) do not accept comments, so export with
``header=False`` (``--no-header``) for them, or read with :func:`read_run`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from ablate.provenance import package_versions
from ablate.query import QueryError, StudyDatabase, config_hash
from ablate.storage import redact

FORMATS = ("trec", "parquet", "csv", "mteb")
TIE_RULE = "score descending, ties by doc id descending (pytrec_eval/mteb order)"


def select_trials(db: StudyDatabase, study: str, trials: list[int] | None = None):
    """The COMPLETE trials of ``study`` to export (all of them, or the numbers given)."""
    from optuna.trial import TrialState

    name = db.resolve_study(study)
    if trials:
        chosen = [db.trial(name, n) for n in trials]
        for t in chosen:
            if t.state != TrialState.COMPLETE:
                raise QueryError(f"trial {t.number} of {name!r} is {t.state.name}; only COMPLETE trials have scores")
        return chosen
    chosen = [t for t in db.frozen_trials(name) if t.state == TrialState.COMPLETE]
    if not chosen:
        raise QueryError(f"study {name!r} has no COMPLETE trials to export")
    return chosen


def check_datasets(db: StudyDatabase, trial_ids: list[int], datasets: list[str] | None) -> list[str]:
    """The datasets to export; an unknown name is a QueryError listing the known ones."""
    known = sorted(db.runs.filter(pl.col("trial_id").is_in(trial_ids)).select("dataset").unique()
                   .collect()["dataset"].to_list())
    for name in datasets or []:
        if name not in known:
            raise QueryError(f"no dataset {name!r} in the exported trials; datasets: {', '.join(known) or 'none'}")
    return list(datasets) if datasets else known


def ranked_lines(rankings: pl.LazyFrame, tag: str) -> pl.DataFrame:
    """TREC lines (one column ``line``) in query order, then rank order under ``TIE_RULE``."""
    return (rankings.sort(["query_id", "score", "doc_id"], descending=[False, True, True])
            .with_columns(pl.int_range(1, pl.len() + 1).over("query_id").alias("rank"))
            .select(pl.format("{} Q0 {} {} {} {}", "query_id", "doc_id", "rank",
                              pl.col("score").cast(pl.Float64).cast(pl.String), pl.lit(tag)).alias("line"))
            .collect())


def run_header(db: StudyDatabase, study: str, trial, dataset: str, revision: str, extra: dict) -> list[str]:
    attrs = trial.user_attrs
    settings = attrs.get("settings") or {}
    recorded = attrs.get("versions") or {"ablate": attrs.get("ablate_version", "unknown")}
    fields = {
        "format": "qid Q0 docno rank score tag; " + TIE_RULE,
        "study": study,
        "trial": f"{trial.number} (trial_id {trial._trial_id})",
        "cell": f"{attrs.get('arm')}, seed={attrs.get('seed')}",
        "seed": attrs.get("seed"),
        "config_hash": config_hash(settings),
        "settings": json.dumps(settings, sort_keys=True),
        "dataset": dataset,
        "dataset_revision": revision,
        "profile": json.dumps(db.study(study).user_attrs.get("profile", {}), sort_keys=True),
        "versions_at_trial": " ".join(f"{k}={v}" for k, v in sorted(recorded.items())),
        "versions_at_export": " ".join(f"{k}={v}" for k, v in package_versions().items()),
        **extra,
    }
    return [f"# {key}: {value}" for key, value in fields.items()]


def read_run(path: str | os.PathLike) -> dict[str, dict[str, float]]:
    """A run file (with or without a ``#`` header) as ``{qid: {docno: score}}``, e.g. for ``ranx.Run``."""
    run: dict[str, dict[str, float]] = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.strip() or line.startswith("#"):
                continue
            qid, _, doc, _, score, _ = line.split()
            run.setdefault(qid, {})[doc] = float(score)
    return run


def _mteb_task_name(dataset: str, profile: str | None) -> str:
    if profile == "paper":
        from ablate.paper import PAPER_TASKS

        task = PAPER_TASKS.get(dataset)
        return task.mteb_name if task else dataset.partition(":")[0]
    return f"ablate-{dataset}"


def mteb_result(run_row: dict, trial, task_name: str, metric: str) -> dict:
    """An mteb ``TaskResult`` dict carrying the aggregates mteb computed when the trial was evaluated."""
    scores = {k[len("mteb_"):]: v for k, v in run_row.items() if k.startswith("mteb_") and v is not None}
    scores.update({"main_score": scores.get(metric), "hf_subset": "default", "languages": ["eng-Latn"]})
    timings = trial.user_attrs.get("timings") or {}
    return {"dataset_revision": run_row["revision"], "task_name": task_name,
            "mteb_version": (trial.user_attrs.get("versions") or {}).get("mteb") or package_versions().get("mteb"),
            "scores": {"test": [scores]}, "evaluation_time": timings.get("eval_s"), "kg_co2_emissions": None}


def export_study(db: StudyDatabase, study: str, out: str | os.PathLike, trials: list[int] | None = None,
                 datasets: list[str] | None = None, formats: tuple[str, ...] = FORMATS,
                 header: bool = True) -> list[Path]:
    """Write the exports of ``study`` under ``out``; returns the files written.

    Every name is checked before anything is written, and files are built in a scratch directory and
    moved into ``out`` at the end, so bad input or a failure midway leaves ``out`` as it was.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise QueryError(f"unknown export format {unknown[0]!r}; formats: {', '.join(FORMATS)}")
    name = db.resolve_study(study)
    chosen = select_trials(db, name, trials)
    ids = [t._trial_id for t in chosen]
    names = check_datasets(db, ids, datasets)
    by_id = {t._trial_id: t for t in chosen}
    attrs = db.study(name).user_attrs
    metric = attrs.get("metric", "ndcg_at_10")
    profile = attrs.get("profile", {}).get("profile")
    runs = db.runs.filter(pl.col("trial_id").is_in(ids) & pl.col("dataset").is_in(names)).collect()

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".ablate-export-", dir=out.parent))
    try:
        written = []
        if "trec" in formats:
            for row in runs.iter_rows(named=True):
                trial = by_id[row["trial_id"]]
                lines = ranked_lines(db.ranked(row["trial_id"], row["dataset"]).lazy(),
                                     tag=f"{name}.trial{trial.number}")
                path = scratch / "runs" / f"trial-{trial.number}.{row['dataset']}.trec"
                path.parent.mkdir(parents=True, exist_ok=True)
                head = run_header(db, name, trial, row["dataset"], row["revision"],
                                  {"queries": row["n_queries"], "top_k": 100}) if header else []
                path.write_text("\n".join(head + lines["line"].to_list()) + "\n", encoding="utf-8")
                written.append(path)
        if "parquet" in formats or "csv" in formats:
            table = (db.scores_wide.filter(pl.col("trial_id").is_in(ids) & pl.col("dataset").is_in(names))
                     .sort("number", "dataset", "query_id").collect())
            if "parquet" in formats:
                table.write_parquet(scratch / "per_query.parquet")
                written.append(scratch / "per_query.parquet")
            if "csv" in formats:
                table.write_csv(scratch / "per_query.csv")
                written.append(scratch / "per_query.csv")
        if "mteb" in formats:
            for trial in chosen:
                model = f"ablate__{name.replace('@', '_')}__trial-{trial.number}"
                revision = config_hash(trial.user_attrs.get("settings")) or "no_revision_available"
                folder = scratch / "mteb" / model / revision
                folder.mkdir(parents=True, exist_ok=True)
                meta = {"name": model.replace("__", "/", 1), "revision": revision,
                        "framework": ["Sentence Transformers"],
                        "ablate": {"study": name, "trial": trial.number, "arm": trial.user_attrs.get("arm"),
                                   "seed": trial.user_attrs.get("seed"), "settings": trial.user_attrs.get("settings")}}
                (folder / "model_meta.json").write_text(json.dumps(meta, indent=2) + "\n")
                written.append(folder / "model_meta.json")
                for row in runs.filter(pl.col("trial_id") == trial._trial_id).iter_rows(named=True):
                    task = _mteb_task_name(row["dataset"], profile)
                    path = folder / f"{task}.json"
                    path.write_text(json.dumps(mteb_result(row, trial, task, metric), indent=2) + "\n")
                    written.append(path)
        manifest = {"study": name, "storage": redact(db.url), "exported": datetime.now(timezone.utc).isoformat(),
                    "trials": [t.number for t in chosen], "datasets": names, "formats": list(formats),
                    "run_order": TIE_RULE, "run_header": header, "versions": package_versions(),
                    "files": sorted(str(p.relative_to(scratch)) for p in written)}
        (scratch / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        written.append(scratch / "manifest.json")
        final = []
        for path in written:
            target = out / path.relative_to(scratch)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
            final.append(target)
        return final
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

