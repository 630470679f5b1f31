"""The paper profile's real loading code, run offline on small local fixtures in the hub's formats."""

import os
import subprocess
import sys

import datasets
import pytest

from ablate.beir import write_beir
from ablate.profiles import PaperProfile, ProfileError
from ablate.spec import parse_spec
from ablate.trial import run_trial
from conftest import REPO


def test_unreachable_hub_gives_clear_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("ABLATE_PAPER_MODEL", raising=False)
    with pytest.raises(ProfileError, match=r"cannot get model 'answerdotai/ModernBERT-base' .*ABLATE_PAPER_MODEL"):
        PaperProfile().base_model()


def test_cli_paper_profile_offline_exits_2_and_writes_nothing(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("ABLATE_PAPER_MODEL", None)
    db = tmp_path / "p.db"
    result = subprocess.run([sys.executable, "-m", "ablate.cli", "run", "batch-size", "--profile", "paper",
                             "--storage", f"sqlite:///{db}"], capture_output=True, text=True, cwd=REPO, env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: paper profile: cannot get model")
    assert not db.exists()


@pytest.fixture(scope="module")
def paper_fixtures(tmp_path_factory, small_profile):
    """A saved checkpoint, a triplet-hard parquet copy, and a BEIR-layout test set: the paper formats."""
    root = tmp_path_factory.mktemp("paper")
    world = small_profile.world
    rows = world.train_triplets[:500]
    (root / "msmarco" / "triplet-hard").mkdir(parents=True)
    datasets.Dataset.from_dict({"query": [r[0] for r in rows], "positive": [r[1] for r in rows],
                                "negative": [r[2] for r in rows]}).to_parquet(
        str(root / "msmarco" / "triplet-hard" / "train-00000-of-00001.parquet"))
    write_beir(world.datasets["factoid"], root / "beir-factoid")
    return {"model": str(small_profile.base_model()), "data": str(root / "msmarco"),
            "beir": str(root / "beir-factoid")}


def test_official_subset_is_taken_as_train_st_does(paper_fixtures):
    profile = PaperProfile(model=paper_fixtures["model"], train_data=paper_fixtures["data"], subset_rows=200,
                           held_out_rows=100)
    subset = profile.training_set("subset")
    full = profile.training_set("full")
    assert len(subset) == 200 and len(full) == 400
    expected = datasets.load_dataset("parquet", data_dir=paper_fixtures["data"] + "/triplet-hard", split="train") \
        .train_test_split(test_size=100, seed=12)["train"]
    assert subset["query"] == expected["query"][:200]
    assert subset.column_names == ["query", "positive", "negative"]


def test_too_small_training_copy_is_refused(paper_fixtures):
    profile = PaperProfile(model=paper_fixtures["model"], train_data=paper_fixtures["data"], held_out_rows=100)
    with pytest.raises(ProfileError, match="has 400 training rows, fewer than the 1250000 of the official subset"):
        profile.training_set("subset")
    with pytest.raises(ProfileError, match="not more than the 1000 held out"):
        PaperProfile(model=paper_fixtures["model"], train_data=paper_fixtures["data"]).training_set("subset")


@pytest.mark.slow
def test_paper_profile_trial_runs_on_local_fixtures(paper_fixtures):
    spec = parse_spec({"name": "p", "question": "q?", "seeds": [0], "factors": {"per_device_batch": [8, 16]},
                       "fixed": {"learning_rate": 1e-3}, "datasets": {"paper": [paper_fixtures["beir"]]}})
    profile = PaperProfile(model=paper_fixtures["model"], train_data=paper_fixtures["data"], subset_rows=64,
                           held_out_rows=100)
    outcome = run_trial(spec, spec.cells()[0], profile)
    assert outcome.controls["training_examples_seen"] == 64 and outcome.controls["optimizer_updates"] == 8
    (scores,) = outcome.scores
    assert scores.dataset == "factoid" and scores.per_query.height == 400
