"""One tiny study through the real CLI: train, evaluate through mteb, store, report, rerun."""

import os
import subprocess
import sys

import optuna
import pytest

from ablate.results import load_scores
from ablate.storage import open_storage
from conftest import TINY_SPEC, write_spec

pytestmark = pytest.mark.slow


def _cli(*args, cwd, env):
    return subprocess.run([sys.executable, "-m", "ablate.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=900)


def test_tiny_study_end_to_end(tmp_path, model_cache):
    exported = tmp_path / "world"
    env = {**os.environ, "ABLATE_CACHE": str(model_cache)}
    assert _cli("data", "export", "--out", str(exported), cwd=tmp_path, env=env).returncode == 0
    # One embedded dataset by name, one loaded back from a BEIR-layout directory.
    spec = write_spec(tmp_path, "tiny", TINY_SPEC.format(name="tiny", datasets=f'"factoid", "{exported / "counter"}"'))
    db = tmp_path / "ablate.db"
    options = ["--profile-option", "subset_examples=64", "--storage", f"sqlite:///{db}"]

    first = _cli("run", str(spec), *options, cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "ran 4 trial(s)" in first.stdout
    assert "[4/4]" in first.stderr and "train step" in first.stderr  # progress is shown

    storage = open_storage(f"sqlite:///{db}")
    study = optuna.load_study(study_name="tiny@mini", storage=f"sqlite:///{db}")
    trials = study.get_trials()
    assert len(trials) == 4 and all(t.state.name == "COMPLETE" for t in trials)
    controls = trials[0].user_attrs["controls"]
    for key in ("per_device_batch", "gradient_accumulation", "samples_per_update", "optimizer_updates",
                "negatives_per_query", "cached_mnrl_mini_batch", "learning_rate", "training_examples_seen"):
        assert key in controls
    by_batch = {t.params["per_device_batch"]: t.user_attrs["controls"] for t in trials}
    assert by_batch[8]["negatives_per_query"] == 15 and by_batch[32]["optimizer_updates"] == 2
    scores = load_scores(storage.engine, [t._trial_id for t in trials])
    assert set(scores["dataset"].unique()) == {"factoid", "counter"}
    assert scores.group_by("trial_id").len()["len"].to_list() == [800] * 4  # 400 + 400 queries, none dropped
    for t in trials:  # the stored objective is the macro-average of the stored per-query scores
        mine = scores.filter(scores["trial_id"] == t._trial_id).group_by("dataset").agg(
            __import__("polars").col("ndcg_at_10").mean())["ndcg_at_10"].mean()
        assert t.value == pytest.approx(mine, abs=1e-12)

    report = _cli("report", str(spec), "--storage", f"sqlite:///{db}", "--out", str(tmp_path / "r.md"),
                  cwd=tmp_path, env=env)
    assert report.returncode == 0, report.stderr
    assert "per_device_batch=32  vs  per_device_batch=8" in report.stdout
    assert "| macro" in report.stdout and "| factoid" in report.stdout and "| counter" in report.stdout
    assert "seed variance" in report.stdout  # 2 seeds: the crossed test falls back, visibly
    assert (tmp_path / "r.md").read_text().strip() == report.stdout.strip()

    again = _cli("run", str(spec), *options, cwd=tmp_path, env=env)
    assert again.returncode == 0 and "ran 0 trial(s)" in again.stdout and "4 were already complete" in again.stdout
