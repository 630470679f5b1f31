import polars as pl
import pytest
from ranx import Qrels, Run, evaluate as ranx_evaluate

from ablate.evaluate import _PerQueryCapture, check_against_mteb, evaluate
from ablate.train import load_encoder


@pytest.fixture(scope="module")
def untrained(small_profile):
    return load_encoder(small_profile.base_model(), 64)


@pytest.fixture(scope="module")
def scored(untrained, small_profile):
    world = small_profile.world
    return {s.dataset: s for s in evaluate(untrained, [world.datasets["graded"], world.datasets["counter"]],
                                           max_seq_length=128)}


def test_per_query_scores_average_to_mteb_aggregate(scored):
    for scores in scored.values():
        check_against_mteb(scores)  # raises on any disagreement
        for metric, value in scores.mteb_scores.items():
            assert scores.per_query[metric].mean() == pytest.approx(value, abs=1e-5)


def test_every_judged_query_is_scored(scored, small_profile):
    for name, scores in scored.items():
        dataset = small_profile.world.datasets[name]
        assert sorted(scores.per_query["query_id"].to_list()) == sorted(dataset.qrels)


def test_per_query_ndcg_matches_an_independent_implementation(scored, small_profile):
    scores = scored["graded"]
    qrels = Qrels(small_profile.world.datasets["graded"].qrels)
    run = Run({row["query_id"]: dict(zip(row["doc_ids"], map(float, row["scores"])))
               for row in scores.ranked.iter_rows(named=True)})
    independent = ranx_evaluate(qrels, run, "ndcg@10", return_mean=False)
    ours = scores.per_query.sort("query_id")
    ranx_by_query = dict(zip(run.keys(), independent))
    for qid, value in zip(ours["query_id"], ours["ndcg_at_10"]):
        assert value == pytest.approx(ranx_by_query[qid], abs=1e-6)


def test_ignore_identical_ids_removes_self_hits(untrained, small_profile):
    counter = small_profile.world.datasets["counter"]
    kept, = evaluate(untrained, [counter], ignore_identical_ids=False, max_seq_length=128)
    dropped, = evaluate(untrained, [counter], ignore_identical_ids=True, max_seq_length=128)
    top_kept = kept.ranked.select(pl.col("doc_ids").list.first(), "query_id")
    self_first = (top_kept["doc_ids"] == top_kept["query_id"]).mean()
    assert self_first > 0.95  # the query's own text wins when it is not removed
    assert not any(q in docs for q, docs in zip(dropped.ranked["query_id"], dropped.ranked["doc_ids"]))
    assert dropped.per_query["mrr_at_10"].mean() > kept.per_query["mrr_at_10"].mean()


def test_query_missing_from_the_run_counts_zero():
    capture = _PerQueryCapture()
    pytrec_scores = {"q1": {"ndcg_cut_10": 1.0, "recall_100": 1.0}}
    capture.task_specific_scores(pytrec_scores, {"q1": {"d1": 1}, "q2": {"d2": 1}}, {"q1": {"d1": 0.9}},
                                 "test", "default")
    (per_query, ranked), = capture.captured.values()
    assert per_query.sort("query_id").to_dicts() == [
        {"query_id": "q1", "ndcg_at_10": 1.0, "mrr_at_10": 1.0, "recall_at_100": 1.0},
        {"query_id": "q2", "ndcg_at_10": 0.0, "mrr_at_10": 0.0, "recall_at_100": 0.0},
    ]
    assert ranked.filter(pl.col("query_id") == "q2")["doc_ids"].to_list() == [[]]
