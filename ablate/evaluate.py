"""Evaluation through mteb, keeping every query's score.

mteb's results hold aggregates only, so each task is wrapped to capture pytrec_eval's per-query scores
and the ranked lists in ``task_specific_scores``. A judged query the run did not retrieve counts 0 and is
kept. mteb's result cache is disabled: with a local model path every model has the same name, and a
cache would silently return an earlier model's scores.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterable

import polars as pl

from ablate.beir import RetrievalDataset

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
    split: str = "test"
    documents_encoded: int = 0       # corpus documents this model encoded for this dataset
    documents_reused: int = 0        # ... and those reused from a task sharing the corpus


@dataclass(frozen=True)
class PreparedTask:
    """An mteb retrieval task ready to run (data loaded or loadable), with what the trial records about it.

    Tasks with the same ``corpus_group`` search the same corpus; it is encoded once per model for all of them.
    """

    name: str
    revision: str
    task: Any
    split: str = "test"
    corpus_group: str | None = None


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


def local_task(dataset: RetrievalDataset, ignore_identical_ids: bool):
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


def hub_task(name: str, split: str, *, languages: list[str] | None = None, data_dir: str | None = None,
             keep_self_hits: bool = False):
    """An mteb task by name (e.g. ``"ArguAna"``) with per-query capture, restricted to one split.

    ``data_dir`` is a local copy of the task's hub dataset (same layout); the task's recorded revision is
    kept. Self-hits follow mteb's own protocol for the task (ArguAna, FEVER, ... drop a document whose id
    equals the query id) unless ``keep_self_hits`` turns that off for every task.
    """
    import mteb

    template = mteb.get_task(name)
    task = type(f"Scored{type(template).__name__}", (_PerQueryCapture, type(template)), {})()
    if languages:
        task = task.filter_languages(languages)
    task = task.filter_eval_splits([split])
    if data_dir is not None:
        # An instance copy: mteb's metadata object is shared by every instance of the task class.
        task.metadata = task.metadata.model_copy(deep=True)
        task.metadata.dataset["path"] = str(data_dir)
    if keep_self_hits:
        task.ignore_identical_ids = False
    return task


def evaluate(
    model,
    datasets: Iterable[RetrievalDataset],
    ignore_identical_ids: bool = True,
    max_seq_length: int | None = None,
    batch_size: int = 128,
) -> list[DatasetScores]:
    """Score ``model`` on each local dataset through mteb; one ``DatasetScores`` per dataset."""
    tasks = [PreparedTask(ds.name, ds.revision, local_task(ds, ignore_identical_ids)) for ds in datasets]
    return evaluate_tasks(model, tasks, max_seq_length=max_seq_length, batch_size=batch_size)


def evaluate_tasks(model, tasks: list[PreparedTask], max_seq_length: int | None = None,
                   batch_size: int = 128) -> list[DatasetScores]:
    """Run prepared tasks (each carrying the per-query capture mixin); results in the order given.

    Tasks of one ``corpus_group`` run back to back and share the corpus embeddings, which are dropped after
    the group's last task, so at most one shared corpus is held in memory.
    """
    import mteb
    from mteb.models.sentence_transformer_wrapper import SentenceTransformerEncoderWrapper

    from ablate.corpus_cache import SharedCorpusEncoder

    logging.getLogger("mteb").setLevel(logging.WARNING)
    if max_seq_length is not None:
        model.max_seq_length = max_seq_length
    encoder = SharedCorpusEncoder(SentenceTransformerEncoderWrapper(model))
    order = _grouped_order(tasks)
    results: dict[int, DatasetScores] = {}
    for position, index in enumerate(order):
        prepared = tasks[index]
        following = tasks[order[position + 1]] if position + 1 < len(order) else None
        encoder.retain = prepared.corpus_group is not None and following is not None \
            and following.corpus_group == prepared.corpus_group
        encoded_before, reused_before = encoder.encoded_documents, encoder.reused_documents
        result = mteb.evaluate(encoder, prepared.task, cache=None, overwrite_strategy="always",
                               show_progress_bar=False,
                               encode_kwargs={"batch_size": batch_size, "show_progress_bar": False})
        if not encoder.retain:
            encoder.release()
        task_result = result.task_results[0]
        if prepared.split not in task_result.scores:
            raise RuntimeError(f"mteb evaluated {prepared.name} without its {prepared.split!r} split "
                               f"(got {', '.join(task_result.scores)})")
        split_scores = task_result.scores[prepared.split][0]
        captured = getattr(prepared.task, "captured", None)
        if not captured:
            raise RuntimeError(f"mteb evaluated {prepared.name} without calling the per-query hook; "
                               "scores would be lost")
        if len(captured) != 1:
            raise RuntimeError(f"{prepared.name}: mteb evaluated {len(captured)} subsets/splits "
                               f"({', '.join(captured)}); expected exactly one")
        (per_query, ranked), = captured.values()
        results[index] = DatasetScores(
            dataset=prepared.name,
            revision=prepared.revision,
            per_query=per_query,
            ranked=ranked,
            mteb_scores={m: float(split_scores[m]) for m in METRICS if m in split_scores},
            ignore_identical_ids=bool(prepared.task.ignore_identical_ids),
            max_seq_length=int(model.max_seq_length),
            split=prepared.split,
            documents_encoded=encoder.encoded_documents - encoded_before,
            documents_reused=encoder.reused_documents - reused_before,
        )
    return [results[i] for i in range(len(tasks))]


def _grouped_order(tasks: list[PreparedTask]) -> list[int]:
    """Task indices with each corpus group's members moved next to its first member."""
    order: list[int] = []
    for i, task in enumerate(tasks):
        if i in order:
            continue
        order.append(i)
        if task.corpus_group is not None:
            order += [j for j in range(i + 1, len(tasks)) if tasks[j].corpus_group == task.corpus_group]
    return order


def check_against_mteb(scores: DatasetScores, tolerance: float = 1e-9) -> None:
    """Raise if the per-query means disagree with mteb's own aggregates (they must be the same numbers)."""
    for metric, expected in scores.mteb_scores.items():
        got = float(scores.per_query[metric].mean())
        if abs(got - expected) > max(tolerance, 1e-5 * abs(expected)) + 5e-6:
            raise RuntimeError(f"{scores.dataset}: per-query mean {metric}={got:.6f} differs from mteb's "
                               f"aggregate {expected:.6f}; refusing to store inconsistent scores")

