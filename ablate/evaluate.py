"""Evaluation through mteb, keeping every query's score.

mteb's results hold aggregates only, so each task is wrapped to capture pytrec_eval's per-query scores
and the ranked lists in ``task_specific_scores``. A judged query the run did not retrieve counts 0 and is
kept. mteb's result cache is disabled: with a local model path every model has the same name, and a
cache would silently return an earlier model's scores.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Iterable

import polars as pl

from ablate.beir import RetrievalDataset

os.environ.setdefault("HF_HUB_OFFLINE", "1")

METRICS = ("ndcg_at_10", "mrr_at_10", "recall_at_100")
TOP_K = 100


@dataclass(frozen=True)
class DatasetScores:
    """One model on one dataset: per-query metrics, the top-k ranking, and mteb's own aggregates."""

    dataset: str
    revision: str
    per_query: pl.DataFrame          # query_id, ndcg_at_10, mrr_at_10, recall_at_100
    ranked: pl.DataFrame             # query_id, doc_ids (list), scores (list), top TOP_K
    mteb_scores: dict[str, float]    # mteb's aggregate for the same run (ndcg_at_10, mrr_at_10, recall_at_100)
    ignore_identical_ids: bool
    max_seq_length: int


def _mrr_at(results: dict[str, float], relevant: set[str], k: int) -> float:
    # Same ordering rule as mteb/pytrec_eval: score descending, ties by doc id descending.
    ranked = sorted(results.items(), key=lambda item: (item[1], item[0]), reverse=True)[:k]
    for rank, (doc_id, _) in enumerate(ranked, start=1):
        if doc_id in relevant:
            return 1.0 / rank
    return 0.0


class _PerQueryCapture:
    """Mixin for an mteb retrieval task: remembers per-query scores and rankings of the last evaluation."""

    captured: dict[str, tuple[pl.DataFrame, pl.DataFrame]]

    def task_specific_scores(self, scores, qrels, results, hf_split, hf_subset) -> dict[str, float]:
        query_ids = sorted(qrels)
        rows = {"query_id": query_ids, "ndcg_at_10": [], "mrr_at_10": [], "recall_at_100": []}
        doc_lists, score_lists = [], []
        for qid in query_ids:
            per_query = scores.get(qid, {})
            run = results.get(qid, {})
            rows["ndcg_at_10"].append(float(per_query.get("ndcg_cut_10", 0.0)))
            rows["recall_at_100"].append(float(per_query.get("recall_100", 0.0)))
            relevant = {d for d, grade in qrels[qid].items() if grade > 0}
            rows["mrr_at_10"].append(_mrr_at(run, relevant, 10))
            top = sorted(run.items(), key=lambda item: (item[1], item[0]), reverse=True)[:TOP_K]
            doc_lists.append([d for d, _ in top])
            score_lists.append([float(s) for _, s in top])
        per_query = pl.DataFrame(rows, schema={"query_id": pl.String, "ndcg_at_10": pl.Float64,
                                               "mrr_at_10": pl.Float64, "recall_at_100": pl.Float64})
        ranked = pl.DataFrame({"query_id": query_ids, "doc_ids": doc_lists, "scores": score_lists},
                              schema={"query_id": pl.String, "doc_ids": pl.List(pl.String),
                                      "scores": pl.List(pl.Float32)})
        self.captured = getattr(self, "captured", {})
        self.captured[f"{hf_subset}/{hf_split}"] = (per_query, ranked)
        return {}


def _local_task(dataset: RetrievalDataset, ignore_identical_ids: bool):
    from datasets import Dataset
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.task_metadata import TaskMetadata

    metadata = TaskMetadata(
        name=f"ablate-{dataset.name}",
        description=dataset.character or f"Local BEIR-layout dataset {dataset.name}",
        reference=None,
        dataset={"path": f"local/{dataset.name}", "revision": dataset.revision},
        type="Retrieval",
        category="t2t",
        modalities=["text"],
        eval_splits=["test"],
        eval_langs=["eng-Latn"],
        main_score="ndcg_at_10",
        date=None,
        domains=None,
        task_subtypes=None,
        license=None,
        annotations_creators=None,
        dialect=None,
        sample_creation=None,
        bibtex_citation="",
    )

    class LocalRetrieval(_PerQueryCapture, AbsTaskRetrieval):
        def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
            corpus = Dataset.from_dict({
                "id": list(dataset.corpus),
                "title": [doc.get("title", "") for doc in dataset.corpus.values()],
                "text": [doc["text"] for doc in dataset.corpus.values()],
            })
            queries = Dataset.from_dict({"id": list(dataset.queries), "text": list(dataset.queries.values())})
            self.dataset = {"default": {"test": {"corpus": corpus, "queries": queries,
                                                 "relevant_docs": dataset.qrels, "top_ranked": None}}}
            self.data_loaded = True

    LocalRetrieval.metadata = metadata  # mteb reads task metadata from the class, as its own tasks declare it
    task = LocalRetrieval()
    task.ignore_identical_ids = ignore_identical_ids
    return task


def hub_task(name: str, ignore_identical_ids: bool | None = None, languages: list[str] | None = None):
    """An mteb task by name (e.g. ``"ArguAna"``), with per-query capture; its data comes from the hub."""
    import mteb

    template = mteb.get_task(name, languages=languages) if languages else mteb.get_task(name)
    base = type(template)
    task = type(f"Scored{base.__name__}", (_PerQueryCapture, base), {})()
    if languages:
        task = task.filter_languages(languages) if hasattr(task, "filter_languages") else task
    if ignore_identical_ids is not None:
        task.ignore_identical_ids = ignore_identical_ids
    return task


def evaluate(
    model,
    datasets: Iterable[RetrievalDataset],
    ignore_identical_ids: bool = True,
    max_seq_length: int | None = None,
    batch_size: int = 128,
) -> list[DatasetScores]:
    """Score ``model`` on each local dataset through mteb; one ``DatasetScores`` per dataset."""
    tasks = [(ds.name, ds.revision, _local_task(ds, ignore_identical_ids)) for ds in datasets]
    return evaluate_tasks(model, tasks, max_seq_length=max_seq_length, batch_size=batch_size)


def evaluate_tasks(model, tasks, max_seq_length: int | None = None, batch_size: int = 128) -> list[DatasetScores]:
    """Run prepared ``(name, revision, task)`` triples; tasks must carry the per-query capture mixin."""
    import mteb

    logging.getLogger("mteb").setLevel(logging.WARNING)
    if max_seq_length is not None:
        model.max_seq_length = max_seq_length
    out = []
    for name, revision, task in tasks:
        result = mteb.evaluate(model, task, cache=None, overwrite_strategy="always", show_progress_bar=False,
                               encode_kwargs={"batch_size": batch_size, "show_progress_bar": False})
        task_result = result.task_results[0]
        split_scores = task_result.scores["test"][0]
        if not getattr(task, "captured", None):
            raise RuntimeError(f"mteb evaluated {name} without calling the per-query hook; scores would be lost")
        (per_query, ranked), = task.captured.values()
        out.append(DatasetScores(
            dataset=name,
            revision=revision,
            per_query=per_query,
            ranked=ranked,
            mteb_scores={m: float(split_scores[m]) for m in METRICS if m in split_scores},
            ignore_identical_ids=bool(task.ignore_identical_ids),
            max_seq_length=int(model.max_seq_length),
        ))
    return out


def check_against_mteb(scores: DatasetScores, tolerance: float = 1e-9) -> None:
    """Raise if the per-query means disagree with mteb's own aggregates (they must be the same numbers)."""
    for metric, expected in scores.mteb_scores.items():
        got = float(scores.per_query[metric].mean())
        if abs(got - expected) > max(tolerance, 1e-5 * abs(expected)) + 5e-6:
            raise RuntimeError(f"{scores.dataset}: per-query mean {metric}={got:.6f} differs from mteb's "
                               f"aggregate {expected:.6f}; refusing to store inconsistent scores")

