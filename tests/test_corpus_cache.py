"""A corpus that several tasks search is encoded once per model, with the same scores as encoding it apart."""

import dataclasses

import polars as pl
import pytest

from ablate.beir import RetrievalDataset
from ablate.evaluate import PreparedTask, evaluate_tasks, local_task
from ablate.train import load_encoder


@pytest.fixture(scope="module")
def encoder(small_profile):
    return load_encoder(small_profile.base_model(), 64)


@pytest.fixture(scope="module")
def two_views(small_profile):
    """Two test sets over one corpus, the second's copy with one document changed and one added
    (as Climate-FEVER's copy of the FEVER corpus has 25 documents more)."""
    base = small_profile.world.datasets["factoid"]
    queries = list(base.qrels)
    first = RetrievalDataset("first", base.corpus, base.queries, {q: base.qrels[q] for q in queries[:200]})
    changed_id = next(iter(base.corpus))
    corpus = {**base.corpus, changed_id: {"title": "", "text": "a rewritten document"},
              "extra-doc": {"title": "", "text": "a document only the second copy has"}}
    second = RetrievalDataset("second", corpus, base.queries, {q: base.qrels[q] for q in queries[200:]})
    return first, second, len(base.corpus)


def _tasks(first, second, group):
    return [PreparedTask(first.name, "r", local_task(first, True), corpus_group=group),
            PreparedTask(second.name, "r", local_task(second, True), corpus_group=group)]


def test_shared_corpus_is_encoded_once_and_scores_are_unchanged(encoder, two_views):
    first, second, n_docs = two_views
    apart = evaluate_tasks(encoder, _tasks(first, second, None))
    shared = evaluate_tasks(encoder, _tasks(first, second, "same-corpus"))
    assert [s.documents_encoded for s in apart] == [n_docs, n_docs + 1]
    assert [s.documents_reused for s in apart] == [0, 0]
    # Only the changed and the added document are encoded again for the second task.
    assert [s.documents_encoded for s in shared] == [n_docs, 2]
    assert [s.documents_reused for s in shared] == [0, n_docs - 1]
    for a, b in zip(apart, shared):
        assert a.per_query.equals(b.per_query)
        assert a.ranked.equals(b.ranked)


def test_group_members_run_together_and_results_keep_the_given_order(encoder, two_views, small_profile):
    first, second, n_docs = two_views
    other = small_profile.world.datasets["longdoc"]
    tasks = _tasks(first, second, "g")
    tasks.insert(1, PreparedTask(other.name, "r", local_task(other, True)))
    scores = evaluate_tasks(encoder, tasks)
    assert [s.dataset for s in scores] == ["first", "longdoc", "second"]
    assert scores[2].documents_reused == n_docs - 1  # the group ran back to back despite the order given
    assert scores[1].documents_reused == 0


def test_embeddings_are_released_after_the_group(encoder, two_views):
    first, second, n_docs = two_views
    again = dataclasses.replace(first, name="again")
    tasks = [PreparedTask(first.name, "r", local_task(first, True), corpus_group="g1"),
             PreparedTask(second.name, "r", local_task(second, True), corpus_group="g1"),
             PreparedTask(again.name, "r", local_task(again, True), corpus_group="g2")]
    scores = evaluate_tasks(encoder, tasks)
    assert scores[1].documents_reused == n_docs - 1  # shared within g1
    assert scores[2].documents_reused == 0  # g1's embeddings were dropped after its last task
    assert pl.Series([s.per_query.height for s in scores]).to_list() == [200, 200, 200]


def test_a_corpus_encoded_in_several_chunks_is_shared_too(encoder, two_views, monkeypatch):
    """mteb encodes large corpora chunk by chunk; documents are matched across chunks of the two copies."""
    from mteb.models import search_wrappers

    first, second, n_docs = two_views
    original = search_wrappers.SearchEncoderWrapper.__init__
    monkeypatch.setattr(search_wrappers.SearchEncoderWrapper, "__init__",
                        lambda self, model, corpus_chunk_size=50_000, **kw: original(self, model, 500, **kw))
    apart = evaluate_tasks(encoder, _tasks(first, second, None))
    shared = evaluate_tasks(encoder, _tasks(first, second, "g"))
    assert shared[1].documents_reused == n_docs - 1 and shared[1].documents_encoded == 2
    for a, b in zip(apart, shared):
        assert a.per_query.equals(b.per_query)
