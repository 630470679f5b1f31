"""Evaluation-only factors reuse trained models, and the self-hit protocol shows on the ArguAna-like set."""

import optuna
import pytest

from ablate.analysis import attribute
from ablate.checkpoints import ModelStore
from ablate.progress import Progress
from ablate.scheduler import run_study
from ablate.spec import parse_spec
from ablate.storage import open_storage
from ablate.tables import scores_frame

pytestmark = pytest.mark.slow


def test_eval_only_cells_reuse_training_and_show_the_self_hit_effect(tmp_path, small_profile):
    spec = parse_spec({"name": "evalp", "question": "Does removing self-hits change NDCG@10?", "seeds": [0, 1, 2],
                       "factors": {"ignore_identical_ids": [False, True]},
                       "fixed": {"per_device_batch": 16, "learning_rate": 8e-5},
                       "datasets": {"mini": ["counter"]}}, "evalp.toml")
    url = f"sqlite:///{tmp_path / 'e.db'}"
    store = ModelStore(tmp_path / "trained")
    summary = run_study(spec, small_profile, open_storage(url), Progress(quiet=True), models=store)
    assert summary.ran == 6 and not summary.failed
    trials = optuna.load_study(study_name="evalp@mini", storage=url).get_trials()
    trained = [t for t in trials if t.user_attrs["trained"]]
    assert len(trained) == 3  # one training run per seed; the other protocol level only evaluates
    assert len({t.user_attrs["training_key"] for t in trials}) == 3
    # A reused model is the same model: its ranking is the trained one's with the self-hit removed.
    storage = open_storage(url)
    study = optuna.load_study(study_name="evalp@mini", storage=url)
    scores = scores_frame(study, storage.engine)
    ranked = scores_frame(study, storage.engine, with_ranked=True)
    for s in (0, 1, 2):
        kept = ranked.filter((ranked["seed"] == s) & (ranked["ignore_identical_ids"] == False)).sort("query_id")  # noqa: E712
        dropped = ranked.filter((ranked["seed"] == s) & (ranked["ignore_identical_ids"] == True)).sort("query_id")  # noqa: E712
        for q, with_self, without in zip(kept["query_id"], kept["doc_ids"].to_list(), dropped["doc_ids"].to_list()):
            assert [d for d in with_self if d != q] == without[: len(with_self) - (q in with_self)]

    long = scores.select("dataset", scores["query_id"].alias("query"), scores["arm"].alias("config"), "seed",
                         scores["ndcg_at_10"].alias("score"))
    result = attribute(spec, long.filter(long["dataset"] == "counter"), bootstrap_b=200)
    effect = result.main_effects.row(0, named=True)
    assert effect["name"] == "ignore_identical_ids"
    assert effect["ci_low"] > 0  # removing the query's own text from its results raises NDCG@10


def test_store_is_bounded_and_drops_least_recently_used(tmp_path, small_profile):
    from ablate.train import load_encoder

    model = load_encoder(small_profile.base_model(), 64)
    store = ModelStore(tmp_path / "s", budget_bytes=1)
    store.put("a", model)
    store.put("b", model)
    assert store.get("a") is None and store.get("b") is not None  # only the newest survives a tiny budget
    roomy = ModelStore(tmp_path / "r", budget_bytes=10**9)
    roomy.put("a", model)
    roomy.put("b", model)
    assert roomy.get("a") is not None and roomy.get("b") is not None
